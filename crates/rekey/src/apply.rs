//! Executing a plan: every file to change is read (and skipped if it changed since it was
//! planned), its data key recovered, re-wrapped or rotated, and staged by the worker that
//! computed it in a `hostage_atomic::Batch` per bounded batch, so memory does not grow with the
//! repo and a killed run leaves each file old or new. Right before each rename the target is
//! re-checked against what was read: an edit made meanwhile is kept, that file is refused.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use hostage_atomic::{Batch, Committed, FileStamp, Flush, WriteError};
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

/// Code run with the files of a batch (see [`ApplySeams::before_renames`]).
pub type BatchHook<'a> = &'a (dyn Fn(&[PathBuf]) + Sync);

/// Code a test runs at the points where the world outside can race a re-key (a test seam: the
/// product passes [`ApplySeams::default`], which runs nothing).
#[derive(Clone, Copy, Default)]
pub struct ApplySeams<'a> {
    /// Runs once per batch after its new contents are durable in temp files, right before each
    /// target is re-checked and renamed; gets the batch's files. An edit it makes to one of them
    /// is what a `sops edit` landing between hostage's read and its rename looks like.
    pub before_renames: Option<BatchHook<'a>>,
}

impl std::fmt::Debug for ApplySeams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplySeams")
            .field("before_renames", &self.before_renames.is_some())
            .finish()
    }
}

/// Why a file was not written because it changed after hostage read it.
pub(crate) const CHANGED_DURING_REKEY: &str =
    "changed during re-key (edited after hostage read it); the other change was kept and this file was not re-keyed: run again";

/// Applies every rewrap and rotation of `plan` with `identities` (already unlocked: workers pass
/// no passphrase provider), `options.batch` files at a time, recording each file's outcome in
/// the plan. Goes on past per-file errors; fails only when the plan's spill file does.
pub fn apply(
    plan: &mut Plan,
    identities: &IdentitySet,
    options: &ApplyOptions,
    progress: Progress<'_>,
) -> Result<ApplyReport, RekeyError> {
    apply_with(plan, identities, options, &ApplySeams::default(), progress)
}

/// [`apply`] with test seams.
///
/// Each file is read once here (its digest must equal the plan's), re-keyed and staged as a temp
/// file by the worker that computed it; the batch is then flushed together and each target is
/// re-checked against the [`FileStamp`] of that read right before its rename, so an edit made in
/// between (a `sops edit` during the run) is kept and the file fails with "changed during
/// re-key, run again" instead of being overwritten.
pub fn apply_with(
    plan: &mut Plan,
    identities: &IdentitySet,
    options: &ApplyOptions,
    seams: &ApplySeams<'_>,
    progress: Progress<'_>,
) -> Result<ApplyReport, RekeyError> {
    let mut report = ApplyReport::default();
    let workers = crate::workers(options.threads)?;
    // The repository is untrusted: a re-keyed file is written only where its path leads without
    // a symlink out of the directory of `.sops.yaml` (the walk already skips symlinked files).
    let repo = plan
        .config
        .parent()
        .and_then(|dir| hostage_atomic::ConfinedDir::new(dir).ok());
    let confine = |path: &Path| -> Result<PathBuf, String> {
        let own_dir;
        let root = match &repo {
            Some(repo) if std::path::absolute(path).is_ok_and(|p| p.starts_with(repo.root())) => {
                repo
            }
            _ => {
                own_dir =
                    hostage_atomic::ConfinedDir::of_parent(path).map_err(|e| e.to_string())?;
                &own_dir
            }
        };
        root.resolve(path).map_err(|e| e.to_string())
    };
    plan.rewrite(options.batch.max(1), |files| {
        let todo: Vec<&FilePlan> = files.iter().filter(|f| f.changes()).collect();
        let batch = Batch::new(Flush::default());
        let failures: Vec<Option<String>> = workers.install(|| {
            todo.par_iter()
                .map(|file| {
                    let result = rekey_file(file, identities).and_then(|(bytes, read)| {
                        let path = confine(&file.path)?;
                        batch
                            .stage_if_unchanged(&path, &bytes, read)
                            .map_err(|e| error_text(&e))
                    });
                    progress();
                    result.err()
                })
                .collect()
        });
        let before_renames = || {
            if let Some(hook) = seams.before_renames {
                let paths: Vec<PathBuf> = todo.iter().map(|f| f.path.clone()).collect();
                hook(&paths);
            }
        };
        let committed = batch.commit_checked(&before_renames);
        finish(committed, files, failures, &mut report)
    })?;
    Ok(report)
}

/// Records each changed file's outcome from its own failure, the batch's and the re-check.
fn finish(
    committed: Result<Committed, WriteError>,
    files: &mut [FilePlan],
    failures: Vec<Option<String>>,
    report: &mut ApplyReport,
) -> Result<(), RekeyError> {
    let (changed, write_error) = match committed {
        Ok(committed) => (committed.changed, None),
        Err(e) => (
            Vec::new(),
            Some(format!(
                "{} (this batch may be partly written; run again to finish)",
                error_text(&e)
            )),
        ),
    };
    for (file, failure) in files.iter_mut().filter(|f| f.changes()).zip(failures) {
        let outcome = match (failure, &write_error) {
            (Some(reason), _) => FileOutcome::Failed(reason),
            (None, Some(error)) => FileOutcome::Failed(error.clone()),
            (None, None) if changed.contains(&file.path) => {
                FileOutcome::Failed(CHANGED_DURING_REKEY.into())
            }
            (None, None) => FileOutcome::Written,
        };
        match outcome {
            FileOutcome::Written => report.written += 1,
            FileOutcome::Failed(_) => report.failed += 1,
        }
        file.outcome = Some(outcome);
    }
    Ok(())
}

fn error_text(error: &WriteError) -> String {
    use std::error::Error as _;
    let cause = error.source().map(|s| format!(": {s}")).unwrap_or_default();
    format!("{error}{cause}")
}

/// Reads the file once (it must still be what was planned), recovers its data key and re-wraps
/// or rotates it; returns the new content and the stamp of what was read.
fn rekey_file(file: &FilePlan, identities: &IdentitySet) -> Result<(Vec<u8>, FileStamp), String> {
    // The cause only (the report names the file): failures of many files group by their text.
    let (bytes, read) = read_stamped(&file.path)
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
    Ok((out.map_err(|e| e.to_string())?, read))
}

/// The content of `path` and the stamp of the file it was read from (taken from the open handle
/// before reading, so a write racing the read makes the stamp stale, never the other way round).
pub(crate) fn read_stamped(path: &Path) -> std::io::Result<(Vec<u8>, FileStamp)> {
    let (bytes, metadata) = read_with_metadata(path)?;
    let stamp = FileStamp::new(&metadata, &bytes);
    Ok((bytes, stamp))
}

/// The content of `path` and the metadata of the handle it was read from, in four system calls
/// (open, fstat, read until end, close): `fs_err::read` asks for the size twice and the position
/// once more, which a re-key of thousands of files pays thousands of times.
pub(crate) fn read_with_metadata(path: &Path) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    let mut file = fs_err::File::open(path)?;
    let metadata = file.metadata()?;
    let mut bytes = vec![0; usize::try_from(metadata.len()).unwrap_or(0) + 1];
    let mut filled = 0;
    loop {
        if filled == bytes.len() {
            bytes.resize(filled * 2 + 4096, 0);
        }
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok((bytes, metadata))
}
