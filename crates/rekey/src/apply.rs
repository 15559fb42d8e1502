//! Executing a plan: every file to change is re-read (and skipped if it changed since it was
//! planned), its data key recovered, re-wrapped or rotated, and written through
//! `hostage_atomic::write_batch` in bounded batches, so memory does not grow with the repo and
//! a killed run leaves each file old or new.

use std::path::PathBuf;

use hostage_recipients::IdentitySet;
use hostage_sops::{MacCheck, SopsFile};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::plan::{Action, FilePlan, Plan};
use rayon::prelude::*;

use crate::{Progress, RekeyError};

/// How to apply.
#[derive(Clone, Copy, Debug)]
pub struct ApplyOptions {
    /// Worker threads.
    pub threads: usize,
    /// Files computed and then written together (one flush per batch); bounds memory.
    pub batch: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            threads: crate::default_threads(),
            batch: 256,
        }
    }
}

/// What happened to one file the plan changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "kebab-case")]
pub enum FileOutcome {
    /// The new content is written (durably).
    Written,
    /// Nothing was written to the file; why.
    Failed(String),
}

/// The totals of [`apply`]; each file's [`FileOutcome`] is in the plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Files written.
    pub written: usize,
    /// Files that failed (nothing written to them).
    pub failed: usize,
}

/// Applies every rewrap and rotation of `plan` with `identities` (already unlocked: workers pass
/// no passphrase provider), `options.batch` files at a time, recording each file's outcome in
/// the plan. Goes on past per-file errors; fails only when the plan's spill file does.
pub fn apply(
    plan: &mut Plan,
    identities: &IdentitySet,
    options: &ApplyOptions,
    progress: Progress<'_>,
) -> Result<ApplyReport, RekeyError> {
    let mut report = ApplyReport::default();
    let workers = crate::workers(options.threads)?;
    plan.rewrite(options.batch.max(1), |files| {
        let todo: Vec<&FilePlan> = files.iter().filter(|f| f.changes()).collect();
        let outputs: Vec<Result<Vec<u8>, String>> = workers.install(|| {
            todo.par_iter()
                .map(|file| {
                    let result = rekey_file(file, identities);
                    progress();
                    result
                })
                .collect()
        });
        let mut writes: Vec<(PathBuf, Vec<u8>)> = Vec::with_capacity(todo.len());
        let mut failures: Vec<Option<String>> = Vec::with_capacity(todo.len());
        for (file, output) in todo.iter().zip(outputs) {
            match output {
                Ok(bytes) => {
                    writes.push((file.path.clone(), bytes));
                    failures.push(None);
                }
                Err(reason) => failures.push(Some(reason)),
            }
        }
        let write_error = hostage_atomic::write_batch(&writes).err().map(|e| {
            use std::error::Error as _;
            let cause = e.source().map(|s| format!(": {s}")).unwrap_or_default();
            format!("{e}{cause} (this batch may be partly written; run again to finish)")
        });
        drop(writes);
        for (file, failure) in files.iter_mut().filter(|f| f.changes()).zip(failures) {
            let outcome = match (failure, &write_error) {
                (Some(reason), _) => FileOutcome::Failed(reason),
                (None, Some(error)) => FileOutcome::Failed(error.clone()),
                (None, None) => FileOutcome::Written,
            };
            match outcome {
                FileOutcome::Written => report.written += 1,
                FileOutcome::Failed(_) => report.failed += 1,
            }
            file.outcome = Some(outcome);
        }
        Ok(())
    })?;
    Ok(report)
}

fn rekey_file(file: &FilePlan, identities: &IdentitySet) -> Result<Vec<u8>, String> {
    // The cause only (the report names the file): failures of many files group by their text.
    let bytes = fs_err::read(&file.path)
        .map_err(|e| format!("cannot read the file: {}", crate::plan::io_cause(&e)))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    if digest != file.digest {
        return Err("the file changed since it was planned; run again".into());
    }
    let sops = SopsFile::parse(&bytes, None).map_err(|e| e.to_string())?;
    drop(bytes);
    // pgp/KMS/… keys the rule no longer names leave first (hostage cannot write them, only drop).
    let sops = file
        .without_leaving_master_keys(sops)
        .map_err(|e| e.to_string())?;
    let key = sops
        .data_key(identities, &mut ())
        .map_err(|e| e.to_string())?;
    let out = match file.action {
        Action::Rotate => sops.rotate(&key, &file.wanted, MacCheck::Verify),
        _ => sops.rewrap(&key, &file.wanted, MacCheck::Verify),
    };
    out.map_err(|e| e.to_string())
}
