//! Executing a plan: every file to change is re-read (and skipped if it changed since it was
//! planned), its data key recovered, re-wrapped or rotated, and written through
//! `hostage_atomic::write_batch` in bounded batches, so memory does not grow with the repo and
//! a killed run leaves each file old or new.

use std::path::PathBuf;

use hostage_recipients::IdentitySet;
use hostage_sops::{MacCheck, SopsFile};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::plan::{Action, FilePlan, Plan};
use crate::{parallel_map, Progress};

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "kebab-case")]
pub enum FileOutcome {
    /// The new content is written (durably).
    Written,
    /// Nothing was written to the file; why.
    Failed(String),
}

/// The result of [`apply`]: one outcome per file to change, in plan order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    /// `(display path, outcome)`.
    pub files: Vec<(String, FileOutcome)>,
}

impl ApplyReport {
    /// The files that failed, with their reasons.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files
            .iter()
            .filter_map(|(path, outcome)| match outcome {
                FileOutcome::Failed(reason) => Some((path.as_str(), reason.as_str())),
                FileOutcome::Written => None,
            })
    }

    /// How many files were written.
    pub fn written(&self) -> usize {
        self.files
            .iter()
            .filter(|(_, o)| *o == FileOutcome::Written)
            .count()
    }
}

/// Applies every rewrap and rotation of `plan` with `identities` (already unlocked: workers pass
/// no passphrase provider). Goes on past per-file errors and reports each one.
pub fn apply(
    plan: &Plan,
    identities: &IdentitySet,
    options: &ApplyOptions,
    progress: Progress<'_>,
) -> ApplyReport {
    let todo: Vec<&FilePlan> = plan
        .files
        .iter()
        .filter(|f| matches!(f.action, Action::Rewrap | Action::Rotate))
        .collect();
    let mut report = ApplyReport::default();
    for batch in todo.chunks(options.batch.max(1)) {
        let outputs = parallel_map(batch.len(), options.threads, &|i| {
            let result = rekey_file(batch[i], identities);
            progress();
            result
        });
        let mut writes: Vec<(PathBuf, Vec<u8>)> = Vec::with_capacity(batch.len());
        let mut outcomes: Vec<(String, Option<String>)> = Vec::with_capacity(batch.len());
        for (file, output) in batch.iter().zip(outputs) {
            match output {
                Ok(bytes) => {
                    writes.push((file.path.clone(), bytes));
                    outcomes.push((file.display.clone(), None));
                }
                Err(reason) => outcomes.push((file.display.clone(), Some(reason))),
            }
        }
        let write_error = hostage_atomic::write_batch(&writes).err().map(|e| {
            use std::error::Error as _;
            let cause = e.source().map(|s| format!(": {s}")).unwrap_or_default();
            format!("{e}{cause} (this batch may be partly written; run again to finish)")
        });
        drop(writes);
        for (display, failure) in outcomes {
            let outcome = match (failure, &write_error) {
                (Some(reason), _) => FileOutcome::Failed(reason),
                (None, Some(error)) => FileOutcome::Failed(error.clone()),
                (None, None) => FileOutcome::Written,
            };
            report.files.push((display, outcome));
        }
    }
    report
}

fn rekey_file(file: &FilePlan, identities: &IdentitySet) -> Result<Vec<u8>, String> {
    let bytes = fs_err::read(&file.path).map_err(|e| format!("cannot read the file: {e}"))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    if digest != file.digest {
        return Err("the file changed since it was planned; run again".into());
    }
    let sops = SopsFile::parse(&bytes, None).map_err(|e| e.to_string())?;
    drop(bytes);
    let key = sops
        .data_key(identities, &mut ())
        .map_err(|e| e.to_string())?;
    let out = match file.action {
        Action::Rotate => sops.rotate(&key, &file.wanted, MacCheck::Verify),
        _ => sops.rewrap(&key, &file.wanted, MacCheck::Verify),
    };
    out.map_err(|e| e.to_string())
}
