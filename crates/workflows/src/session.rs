//! The one repository session every writer of a secrets repository goes through (the `rekey`
//! verb, onboard, rotate, restore, rotate-infra). The protocol, written once:
//!
//! 1. [`RepoSession::open`] takes the repository's exclusive lock, loads a killed run's journal
//!    and removes the temp files a killed run left (beside the journaled files, `.sops.yaml`,
//!    `pubkeys/` and the state directory; [`RepoSession::write_if_unchanged`] also clears those
//!    beside the file it writes).
//! 2. The workflow plans under the lock, or re-validates a plan made before it
//!    ([`RepoSession::revalidate`]: the files it planned from, kept as [`FileSnapshot`]s, must be
//!    unchanged, or nothing is written).
//! 3. [`RepoSession::write_journal`] records the files to re-key (merged with a killed run's)
//!    *before* `.sops.yaml` changes, so a run stopped after that write still knows what to finish.
//! 4. [`RepoSession::write_if_unchanged`] writes `.sops.yaml` and the inventory compare-and-swap:
//!    when their bytes are no longer those the plan was computed from, the run refuses
//!    ([`WorkflowError::ChangedBySomeoneElse`]) instead of undoing the other edit.
//! 5. [`RepoSession::finish_rekey`] removes the journal once every journaled file is written;
//!    dropping the session releases the lock. A workflow with writes after its re-key (the pin,
//!    the inventory) journals with [`RepoSession::begin_rekey`] instead and calls
//!    [`RepoSession::finish`] as its last write: a run killed anywhere before it leaves the
//!    journal, so the next run still finishes the files and reports their exposure (a journal
//!    removed right after the re-key left a kill before the pin with nothing to report, and a
//!    leftover journal that a re-run with nothing to re-key never removed).
//!
//! [`ApplyOptions::stop_after`] is the test seam: an apply stops after the named step, leaving
//! the state a crash there would leave.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hostage_rekey::{Exposure, Journal, Plan, RepoLock};

use crate::{Result, WorkflowError};

/// Marks the temp files `hostage-atomic` writes before renaming them over their target.
const TEMP_MARKER: &str = ".hostage-tmp.";

/// How an apply runs.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Stop (with [`WorkflowError::StoppedAfter`]) once the step of this name is done: onboard's
    /// and rotate's step names (`add-rule`, `rekey`…) or rotate-infra's `phase-N`. Tests use it
    /// to check that the next run finishes what a crash there would leave.
    pub stop_after: Option<String>,
}

impl ApplyOptions {
    /// Fails with [`WorkflowError::StoppedAfter`] when `step` is the one to stop after.
    pub fn checkpoint(&self, step: &str) -> Result<()> {
        match &self.stop_after {
            Some(stop) if stop == step => Err(WorkflowError::StoppedAfter {
                step: step.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// A file's bytes as a run read them (or that it was absent), so the run can refuse to write it
/// back over someone else's edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSnapshot {
    path: PathBuf,
    bytes: Option<Vec<u8>>,
}

impl FileSnapshot {
    /// Reads `path` (absent is a valid state: the run will create it).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = match fs_err::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            path: path.to_owned(),
            bytes,
        })
    }

    /// Whether the file was absent when read.
    pub fn is_absent(&self) -> bool {
        self.bytes.is_none()
    }

    /// A snapshot of `path` holding `text` (what a run read from it earlier).
    pub fn of_text(path: &Path, text: &str) -> Self {
        Self {
            path: path.to_owned(),
            bytes: Some(text.as_bytes().to_vec()),
        }
    }

    /// The content as text; an absent or non-UTF-8 file is an error naming the file.
    pub fn text(&self) -> Result<&str> {
        let bytes = self.bytes.as_deref().ok_or_else(|| {
            WorkflowError::refused(format!("{} does not exist", self.path.display()))
        })?;
        std::str::from_utf8(bytes).map_err(|_| {
            WorkflowError::refused(format!("{} is not UTF-8 text", self.path.display()))
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is on disk now exactly as it was read.
    pub fn is_current(&self) -> Result<bool> {
        Ok(Self::read(&self.path)?.bytes == self.bytes)
    }

    /// Fails with [`WorkflowError::ChangedBySomeoneElse`] unless the file is as it was read.
    pub fn ensure_current(&self) -> Result<()> {
        if self.is_current()? {
            Ok(())
        } else {
            Err(WorkflowError::ChangedBySomeoneElse {
                path: self.path.clone(),
            })
        }
    }

    /// Writes `new` over the file if it is still as it was read; refuses otherwise. Outside a
    /// session (the inventory's pins, which `fetch` records without a repository) this is the
    /// whole protocol.
    pub fn write_if_unchanged(&self, new: &[u8]) -> Result<()> {
        self.ensure_current()?;
        if self.bytes.as_deref() == Some(new) {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        // `.sops.yaml` (the repository) and the inventory are untrusted: never write through a
        // symlink that leads out of the directory they live in.
        hostage_atomic::ConfinedDir::of_parent(&self.path)?.write(&self.path, new)?;
        Ok(())
    }
}

/// A run holding a secrets repository: its lock, and what a killed run left.
#[derive(Debug)]
pub struct RepoSession {
    repo: PathBuf,
    state: PathBuf,
    previous: Option<Journal>,
    /// This session wrote a journal or found a killed run's: [`RepoSession::finish`] removes it.
    journaled: bool,
    options: ApplyOptions,
    _lock: RepoLock,
}

impl RepoSession {
    /// Takes the lock of the repository at `repo` (the directory of its `.sops.yaml`), loads a
    /// killed run's journal and removes the temp files killed runs left.
    pub fn open(repo: &Path, options: ApplyOptions) -> Result<Self> {
        let state = hostage_rekey::state_dir(repo);
        let lock = RepoLock::acquire(&state)?;
        let previous = Journal::load(&state)?;
        if let Some(previous) = &previous {
            previous.clean_temp_files()?;
        }
        for dir in [repo.to_owned(), repo.join("pubkeys"), state.clone()] {
            remove_temp_files(&dir, ".")?;
        }
        Ok(Self {
            repo: repo.to_owned(),
            state,
            journaled: previous.is_some(),
            previous,
            options,
            _lock: lock,
        })
    }

    /// The repository.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// Where the lock, the journal and the workflows' records live (`.git/hostage/`).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The journal of a killed run this session finishes, if there was one.
    pub fn resumed(&self) -> Option<&Journal> {
        self.previous.as_ref()
    }

    /// The files a killed run journaled (this run re-keys them too).
    pub fn pending_files(&self) -> Result<BTreeSet<PathBuf>> {
        Ok(match &self.previous {
            Some(journal) => journal.paths()?,
            None => BTreeSet::new(),
        })
    }

    /// Re-validates a plan made before the lock was taken: every file it was computed from must
    /// still be as it was read, or the run refuses before writing anything.
    pub fn revalidate(&self, read: &[&FileSnapshot]) -> Result<()> {
        read.iter()
            .try_for_each(|snapshot| snapshot.ensure_current())
    }

    /// Records `plan`'s files (merged with a killed run's) before `.sops.yaml` changes.
    pub fn write_journal(&mut self, plan: &Plan) -> Result<Journal> {
        let journal = Journal::write(&self.state, plan, self.previous.as_ref())?;
        // The new journal holds the killed run's entries: it is the one to finish now.
        self.previous = None;
        self.journaled = true;
        Ok(journal)
    }

    /// Journals `plan`'s files (merged with a killed run's) before `.sops.yaml` changes, when it
    /// has any, and returns what the recipients taken off could read: this run's and the killed
    /// runs' it finishes. With nothing left to re-key, that is the killed run's report (its files
    /// are re-keyed already, but the operator has not been told). The journal stays until
    /// [`RepoSession::finish`].
    pub fn begin_rekey(&mut self, plan: &Plan) -> Result<Vec<Exposure>> {
        if !plan.is_empty() {
            let journal = self.write_journal(plan)?;
            return Ok(journal.exposure()?.collect()?);
        }
        Ok(match &self.previous {
            Some(previous) => previous.exposure()?.collect()?,
            None => Vec::new(),
        })
    }

    /// The run is complete: removes the journal it wrote or the killed run's it finished. A
    /// workflow's last write, so that a run killed before it is finished by the next one.
    pub fn finish(&mut self) -> Result<()> {
        if self.journaled {
            self.finish_rekey()?;
            self.journaled = false;
        }
        Ok(())
    }

    /// Writes `new` over `snapshot`'s file if it is still as the plan read it.
    ///
    /// First removes the temp files a killed writer of the same file left beside it, when that
    /// directory is inside the repository (a symlinked directory is the write's to refuse): a
    /// verb that journals nothing (`set`, `backup-host-key`) has only this run to clean after it.
    pub fn write_if_unchanged(&self, snapshot: &FileSnapshot, new: &[u8]) -> Result<()> {
        if let (Some(dir), Some(name)) = (snapshot.path().parent(), snapshot.path().file_name()) {
            let inside = match (fs_err::canonicalize(dir), fs_err::canonicalize(&self.repo)) {
                (Ok(dir), Ok(repo)) => dir.starts_with(repo),
                _ => false,
            };
            if inside {
                let prefix = format!(".{}{TEMP_MARKER}", name.to_string_lossy());
                remove_temp_files(dir, &prefix)?;
            }
        }
        snapshot.write_if_unchanged(new)
    }

    /// Removes the journal: every journaled file is written (and its exposure reported).
    pub fn finish_rekey(&mut self) -> Result<()> {
        self.previous = None;
        Journal::remove(&self.state)?;
        Ok(())
    }

    /// Fails with [`WorkflowError::StoppedAfter`] when the options say to stop after `step`.
    pub fn checkpoint(&self, step: &str) -> Result<()> {
        self.options.checkpoint(step)
    }
}

/// What a run that applies `plan` will report as exposed, seen before it runs (a dry run, a
/// plan's report): `plan`'s removals, and those of the killed run whose journal `leftover` is
/// that `plan` does not redo (its files may be re-keyed already, but the operator has not been
/// told). The same merge as [`Journal::write`]'s: a file `plan` redoes is reported as `plan` has
/// it.
pub fn owed_exposure(plan: &Plan, leftover: Option<&Journal>) -> Result<Vec<Exposure>> {
    let mut exposure: Vec<Exposure> = plan.exposure()?.collect()?;
    let Some(leftover) = leftover else {
        return Ok(exposure);
    };
    let redone: BTreeSet<String> = plan
        .files()
        .filter(|f| f.as_ref().map_or(true, hostage_rekey::FilePlan::changes))
        .map(|f| f.map(|f| f.display))
        .collect::<std::result::Result<_, _>>()?;
    for carried in leftover.exposure()?.collect()? {
        let files = carried
            .files
            .into_iter()
            .filter(|f| !redone.contains(&f.path));
        match exposure
            .iter_mut()
            .find(|e| e.recipient.recipient == carried.recipient.recipient)
        {
            Some(known) => {
                known.files.extend(files);
                known.files.sort_by(|a, b| a.path.cmp(&b.path));
            }
            None => {
                let files: Vec<_> = files.collect();
                if !files.is_empty() {
                    exposure.push(Exposure {
                        recipient: carried.recipient,
                        files,
                    });
                }
            }
        }
    }
    exposure.sort_by(|a, b| a.recipient.cmp(&b.recipient));
    Ok(exposure)
}

/// Removes `hostage-atomic` temp files in `dir` whose name starts with `prefix` (`"."` for all)
/// that a dead process left (they are never the result of a finished write: a rename replaces
/// them). A temp file of a live process is kept: a run outside the session (`fetch` recording a
/// pin in an inventory kept in the repository) may be writing it right now.
fn remove_temp_files(dir: &Path, prefix: &str) -> Result<usize> {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_temp = name
            .to_str()
            .is_some_and(|n| n.starts_with(prefix) && n.contains(TEMP_MARKER));
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let writer_alive = name.to_str().and_then(writer_pid).is_some_and(|pid| {
            pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists()
        });
        if is_temp && is_file && !writer_alive {
            fs_err::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The pid `hostage-atomic` wrote into a temp file's name (`.NAME.hostage-tmp.PID.N.NANOS`).
fn writer_pid(name: &str) -> Option<u32> {
    let (_, rest) = name.split_once(TEMP_MARKER)?;
    rest.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_changed_since_it_was_read_is_not_overwritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(".sops.yaml");
        fs_err::write(&path, "creation_rules: []\n").expect("write");
        let snapshot = FileSnapshot::read(&path).expect("read");
        fs_err::write(&path, "creation_rules: [{age: x}]\n").expect("write");
        let error = snapshot
            .write_if_unchanged(b"mine\n")
            .expect_err("a changed file must be refused");
        assert!(matches!(error, WorkflowError::ChangedBySomeoneElse { .. }));
        assert!(
            error.to_string().contains("changed by someone else"),
            "{error}"
        );
        assert_eq!(
            fs_err::read_to_string(&path).expect("read"),
            "creation_rules: [{age: x}]\n"
        );
    }

    #[test]
    fn a_file_unchanged_since_it_was_read_is_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent/new.pub");
        let snapshot = FileSnapshot::read(&path).expect("read");
        snapshot.write_if_unchanged(b"key\n").expect("write");
        assert_eq!(fs_err::read_to_string(&path).expect("read"), "key\n");
        // Created by someone else in between: refused.
        let path = dir.path().join("raced.pub");
        let snapshot = FileSnapshot::read(&path).expect("read");
        fs_err::write(&path, "theirs\n").expect("write");
        assert!(snapshot.write_if_unchanged(b"mine\n").is_err());
    }

    #[test]
    fn opening_a_session_removes_temp_files_a_killed_run_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs_err::create_dir(dir.path().join(".git")).expect("mkdir");
        let state = hostage_rekey::state_dir(dir.path());
        fs_err::create_dir_all(&state).expect("mkdir");
        let stray = [
            dir.path().join(".sops.yaml.hostage-tmp.999999999.0.0"),
            state.join(".rotate-infra.json.hostage-tmp.999999999.0.0"),
        ];
        for path in &stray {
            fs_err::write(path, "half").expect("write");
        }
        let kept = dir.path().join("notes.hostage-tmp.txt");
        fs_err::write(&kept, "not ours").expect("write");
        // A live writer's temp file (pid 1 is always alive) stays.
        let live = dir.path().join(".fleet.yaml.hostage-tmp.1.0.0");
        fs_err::write(&live, "being written").expect("write");
        let session = RepoSession::open(dir.path(), ApplyOptions::default()).expect("open");
        for path in &stray {
            assert!(!path.exists(), "{} left behind", path.display());
        }
        assert!(kept.exists());
        assert!(live.exists(), "a live writer's temp file was removed");
        drop(session);
    }

    #[test]
    fn a_second_session_on_the_same_repository_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs_err::create_dir(dir.path().join(".git")).expect("mkdir");
        let first = RepoSession::open(dir.path(), ApplyOptions::default()).expect("open");
        let second = RepoSession::open(dir.path(), ApplyOptions::default());
        assert!(matches!(
            second,
            Err(WorkflowError::Rekey(
                hostage_rekey::RekeyError::Locked { .. }
            ))
        ));
        drop(first);
        RepoSession::open(dir.path(), ApplyOptions::default()).expect("open after release");
    }

    /// A repository (`.git`, no sops file) whose state directory holds the journal of a killed
    /// run that took the infrastructure key off `secrets/a.yaml`, and an empty plan of it (the
    /// killed run's files are all re-keyed already).
    fn repo_with_a_killed_runs_journal() -> (tempfile::TempDir, PathBuf, Plan) {
        let dir = tempfile::tempdir().expect("temp dir");
        fs_err::create_dir(dir.path().join(".git")).expect("mkdir");
        let config_path = dir.path().join(".sops.yaml");
        fs_err::write(&config_path, "creation_rules: []\n").expect("write");
        let state = hostage_rekey::state_dir(dir.path());
        fs_err::create_dir_all(&state).expect("mkdir");
        let header = serde_json::json!({
            "version": 2, "started": 0, "pid": 999_999_999, "config": config_path,
        });
        let entry = serde_json::json!({
            "path": dir.path().join("secrets/a.yaml"),
            "action": "rotate",
            "display": "secrets/a.yaml",
            "removed": [{ "name": "infrastructure", "recipient": "age1infrastructure" }],
        });
        let journal = state.join("rekey-journal.jsonl");
        fs_err::write(&journal, format!("{header}\n{entry}\n")).expect("write");
        let config = hostage_sops::rules::SopsConfig::load(&config_path).expect("config");
        let files = hostage_rekey::walk(&[dir.path().to_owned()]).expect("walk");
        let plan = hostage_rekey::plan(
            &config,
            &files,
            &hostage_rekey::PlanOptions::default(),
            &|| {},
        )
        .expect("plan");
        assert!(plan.is_empty());
        (dir, journal, plan)
    }

    #[test]
    fn a_killed_runs_journal_is_reported_and_removed_by_finish_even_with_nothing_left_to_rekey() {
        let (dir, journal, plan) = repo_with_a_killed_runs_journal();
        let leftover = Journal::load(journal.parent().expect("state")).expect("load");
        let seen = owed_exposure(&plan, leftover.as_ref()).expect("owed");
        let mut session = RepoSession::open(dir.path(), ApplyOptions::default()).expect("open");
        let exposure = session.begin_rekey(&plan).expect("begin");
        assert_eq!(exposure, seen, "the dry run and the run report the same");
        assert_eq!(exposure.len(), 1, "{exposure:?}");
        assert_eq!(exposure[0].recipient.recipient, "age1infrastructure");
        assert_eq!(exposure[0].files[0].path, "secrets/a.yaml");
        assert!(
            journal.exists(),
            "the journal goes only with the last write"
        );
        session.finish().expect("finish");
        assert!(
            !journal.exists(),
            "the journal outlived the run that finished it"
        );
    }

    #[test]
    fn a_session_stopped_before_finish_leaves_the_journal_for_the_next_run() {
        let (dir, journal, plan) = repo_with_a_killed_runs_journal();
        let mut session = RepoSession::open(dir.path(), ApplyOptions::default()).expect("open");
        session.begin_rekey(&plan).expect("begin");
        drop(session);
        assert!(journal.exists());
        // A session that neither wrote nor found a journal has none to remove.
        fs_err::remove_file(&journal).expect("remove");
        let mut session = RepoSession::open(dir.path(), ApplyOptions::default()).expect("open");
        assert!(session.begin_rekey(&plan).expect("begin").is_empty());
        session.finish().expect("finish");
    }

    #[test]
    fn apply_stops_after_the_named_step_only() {
        let options = ApplyOptions {
            stop_after: Some("add-rule".to_owned()),
        };
        assert!(options.checkpoint("save-public-key").is_ok());
        assert!(matches!(
            options.checkpoint("add-rule"),
            Err(WorkflowError::StoppedAfter { .. })
        ));
    }
}
