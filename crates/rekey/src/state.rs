//! Per-repo state of re-key runs: the lock that keeps two runs from interleaving, and the
//! journal that records a run's plan so a killed run is finished (and its exposure report not
//! lost) by the next one. Both live in `.git/hostage/` (or `.hostage/` outside git).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;
use std::io::BufRead as _;

use crate::exposure::{ExposedFile, ExposedRow, ExposureReport};
use crate::plan::{Action, FilePlan, KeyPaths, Plan, Recipient};
use crate::walk::TEMP_MARKER;
use crate::RekeyError;

const LOCK_FILE: &str = "rekey.lock";
const JOURNAL_FILE: &str = "rekey-journal.jsonl";
const JOURNAL_VERSION: u32 = 2;

/// Where re-key state lives for a repo whose `.sops.yaml` is in `config_dir`: `hostage/` inside
/// the git directory of the nearest enclosing work tree (worktrees' `.git` files are followed),
/// else `.hostage/` beside the config.
pub fn state_dir(config_dir: &Path) -> PathBuf {
    for dir in config_dir.ancestors() {
        let git = dir.join(".git");
        if git.is_dir() {
            return git.join("hostage");
        }
        if git.is_file() {
            if let Ok(text) = fs_err::read_to_string(&git) {
                if let Some(target) = text.lines().find_map(|l| l.strip_prefix("gitdir:")) {
                    return dir.join(target.trim()).join("hostage");
                }
            }
        }
    }
    config_dir.join(".hostage")
}

fn state_error(path: &Path, what: impl std::fmt::Display) -> RekeyError {
    RekeyError::State {
        path: path.to_owned(),
        what: what.to_string(),
    }
}

/// The repo's lock, held until dropped (an advisory `flock`, released by the kernel when the
/// process dies, so a killed run never leaves a stale lock).
#[derive(Debug)]
pub struct RepoLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl RepoLock {
    /// Takes the lock in `state_dir`, failing at once if another run holds it.
    pub fn acquire(state_dir: &Path) -> Result<Self, RekeyError> {
        fs_err::create_dir_all(state_dir).map_err(|e| state_error(state_dir, e))?;
        let path = state_dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| state_error(&path, e))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let holder = fs_err::read_to_string(&path)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty());
            return Err(RekeyError::Locked { path, holder });
        }
        // Best effort: the pid is only for the message another run prints.
        let _ = file.set_len(0);
        let _ = std::io::Write::write_all(&mut &file, std::process::id().to_string().as_bytes());
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One file of a journaled run: what the run does to it and, when it takes recipients off, what
/// they could read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The file (absolute).
    #[serde(with = "crate::store::os_path")]
    pub path: PathBuf,
    /// `rewrap` or `rotate`.
    pub action: Action,
    /// The file for display.
    pub display: String,
    /// The recipients the run takes off the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Recipient>,
    /// The encrypted values those recipients could read.
    #[serde(default, skip_serializing_if = "KeyPaths::is_empty")]
    pub key_paths: KeyPaths,
    /// The file has several key groups (a removed recipient held one Shamir share).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shamir_share_only: bool,
}

impl JournalEntry {
    /// The entry of a planned file.
    pub(crate) fn of(file: &FilePlan) -> Self {
        let mut removed: Vec<Recipient> = Vec::new();
        for r in file.groups.iter().flat_map(|g| &g.removed) {
            if !removed.iter().any(|seen| seen.recipient == r.recipient) {
                removed.push(Recipient::clone(r));
            }
        }
        Self {
            path: file.path.clone(),
            action: file.action,
            display: file.display.clone(),
            key_paths: if removed.is_empty() {
                KeyPaths::default()
            } else {
                file.key_paths.clone()
            },
            shamir_share_only: !removed.is_empty() && file.groups.len() > 1,
            removed,
        }
    }

    /// What the recipients taken off this file could read, if any were.
    pub(crate) fn exposed(self) -> Option<ExposedRow> {
        if self.removed.is_empty() {
            return None;
        }
        Some(ExposedRow {
            removed: self.removed,
            file: ExposedFile {
                path: self.display,
                key_paths: self.key_paths,
                shamir_share_only: self.shamir_share_only,
            },
        })
    }
}

fn write_line(out: &mut dyn std::io::Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// The journal's first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    version: u32,
    started: u64,
    pid: u32,
    config: PathBuf,
}

/// The record of a run in progress, written (durably) before its first file and removed after
/// its last: a header line, then one [`JournalEntry`] line per file, in path order. It is read
/// as a stream, so its size does not matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Journal {
    /// The journal file.
    path: PathBuf,
    /// When the run started (seconds since the Unix epoch).
    pub started: u64,
    /// The process that ran it.
    pub pid: u32,
    /// The `.sops.yaml` it followed.
    pub config: PathBuf,
}

impl Journal {
    fn file(state_dir: &Path) -> PathBuf {
        state_dir.join(JOURNAL_FILE)
    }

    /// Records, before anything is written, that a run is about to apply `plan`: every file it
    /// changes, with what the recipients it removes could read. The entries of `previous` (a
    /// killed run's journal) that `plan` does not redo are carried over, so their exposure is
    /// reported until a run completes.
    pub fn write(
        state_dir: &Path,
        plan: &Plan,
        previous: Option<&Journal>,
    ) -> Result<Self, RekeyError> {
        fs_err::create_dir_all(state_dir).map_err(|e| state_error(state_dir, e))?;
        let path = Self::file(state_dir);
        let header = Header {
            version: JOURNAL_VERSION,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            pid: std::process::id(),
            config: plan.config.clone(),
        };
        // Reading the previous journal while its replacement is written is safe: the new one
        // is a temp file until it is renamed over the old.
        let carried: Box<dyn Iterator<Item = Result<JournalEntry, RekeyError>>> = match previous {
            Some(previous) => Box::new(previous.entries()?),
            None => Box::new(std::iter::empty()),
        };
        let current = plan
            .files()
            .filter(|f| f.as_ref().map_or(true, FilePlan::changes))
            .map(|f| f.map(|f| JournalEntry::of(&f)));
        hostage_atomic::write_with(&path, |out| {
            use std::cmp::Ordering;
            let other = |e: RekeyError| std::io::Error::other(e.to_string());
            write_line(out, &header)?;
            let mut current = current.peekable();
            let mut carried = carried.peekable();
            loop {
                let order = match (current.peek(), carried.peek()) {
                    (None, None) => break,
                    (Some(Ok(a)), Some(Ok(b))) => a.path.cmp(&b.path),
                    (Some(_), None) | (Some(Err(_)), _) => Ordering::Less,
                    (None, Some(_)) | (_, Some(Err(_))) => Ordering::Greater,
                };
                let next = match order {
                    Ordering::Less => current.next(),
                    Ordering::Greater => carried.next(),
                    // Redone by this run: its own entry replaces the old one.
                    Ordering::Equal => {
                        carried.next();
                        current.next()
                    }
                };
                match next {
                    Some(entry) => write_line(out, &entry.map_err(other)?)?,
                    None => break,
                }
            }
            Ok(())
        })
        .map_err(|e| {
            use std::error::Error as _;
            let cause = e.source().map(|s| format!(": {s}")).unwrap_or_default();
            state_error(&path, format!("{e}{cause}"))
        })?;
        Ok(Self {
            path,
            started: header.started,
            pid: header.pid,
            config: header.config,
        })
    }

    /// The journal a killed run left, if any.
    pub fn load(state_dir: &Path) -> Result<Option<Self>, RekeyError> {
        let path = Self::file(state_dir);
        let file = match fs_err::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(state_error(&path, e)),
        };
        let mut first = String::new();
        std::io::BufReader::new(file)
            .read_line(&mut first)
            .map_err(|e| state_error(&path, e))?;
        let header: Header = serde_json::from_str(&first).map_err(|e| {
            state_error(
                &path,
                format!("unreadable journal ({e}); delete it and run again"),
            )
        })?;
        if header.version != JOURNAL_VERSION {
            return Err(state_error(
                &path,
                format!(
                    "a journal of format {} (this hostage reads {JOURNAL_VERSION}); finish the run with the hostage that started it, or delete the journal and run again",
                    header.version
                ),
            ));
        }
        Ok(Some(Self {
            path,
            started: header.started,
            pid: header.pid,
            config: header.config,
        }))
    }

    /// The files of the journaled run (and of the killed runs it carries), in path order.
    pub fn entries(
        &self,
    ) -> Result<impl Iterator<Item = Result<JournalEntry, RekeyError>> + '_, RekeyError> {
        let file = fs_err::File::open(&self.path).map_err(|e| state_error(&self.path, e))?;
        Ok(std::io::BufReader::new(file).lines().skip(1).map(|line| {
            let line = line.map_err(|e| state_error(&self.path, e))?;
            serde_json::from_str(&line).map_err(|e| {
                state_error(
                    &self.path,
                    format!("unreadable journal entry ({e}); delete it and run again"),
                )
            })
        }))
    }

    /// The paths of every journaled file.
    pub fn paths(&self) -> Result<BTreeSet<PathBuf>, RekeyError> {
        self.entries()?.map(|e| e.map(|e| e.path)).collect()
    }

    /// What the journaled runs' removed recipients could read.
    pub fn exposure(&self) -> Result<ExposureReport<'_>, RekeyError> {
        ExposureReport::of_journal(self)
    }

    /// Removes the journal (the run is complete).
    pub fn remove(state_dir: &Path) -> Result<(), RekeyError> {
        let path = Self::file(state_dir);
        match fs_err::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(state_error(&path, e)),
            _ => Ok(()),
        }
    }

    /// Removes the temp files a killed run left beside the journaled files; returns how many.
    pub fn clean_temp_files(&self) -> Result<usize, RekeyError> {
        let targets = self.paths()?;
        let dirs: BTreeSet<&Path> = targets.iter().filter_map(|p| p.parent()).collect();
        let mut removed = 0;
        for dir in dirs {
            let Ok(entries) = fs_err::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some((target, _)) = name.split_once(TEMP_MARKER) else {
                    continue;
                };
                let target = dir.join(target.trim_start_matches('.'));
                if targets.contains(&target) && fs_err::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_repo_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RepoLock::acquire(dir.path()).unwrap();
        let second = RepoLock::acquire(dir.path()).unwrap_err();
        assert!(
            matches!(&second, RekeyError::Locked { holder: Some(pid), .. } if *pid == std::process::id().to_string()),
            "{second}"
        );
        drop(first);
        RepoLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn state_lives_in_the_git_dir_and_follows_worktree_files() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        fs_err::create_dir_all(repo.join(".git")).unwrap();
        fs_err::create_dir_all(repo.join("sub")).unwrap();
        assert_eq!(state_dir(&repo.join("sub")), repo.join(".git/hostage"));
        let worktree = dir.path().join("wt");
        fs_err::create_dir_all(&worktree).unwrap();
        fs_err::write(
            worktree.join(".git"),
            "gitdir: /elsewhere/.git/worktrees/wt\n",
        )
        .unwrap();
        assert_eq!(
            state_dir(&worktree),
            PathBuf::from("/elsewhere/.git/worktrees/wt/hostage")
        );
        let plain = dir.path().join("plain");
        fs_err::create_dir_all(&plain).unwrap();
        assert_eq!(state_dir(&plain), plain.join(".hostage"));
    }

    fn rotated(dir: &Path, name: &str, removed: &str) -> FilePlan {
        let recipient = |r: &str| {
            std::sync::Arc::new(Recipient {
                name: Some(r.to_owned()),
                recipient: format!("age1{r}"),
            })
        };
        FilePlan {
            path: dir.join(name),
            display: name.to_owned(),
            rule: Some(0),
            action: if removed.is_empty() {
                Action::Rewrap
            } else {
                Action::Rotate
            },
            reason: None,
            groups: vec![crate::GroupChange {
                kept: vec![recipient("alice")],
                added: Vec::new(),
                removed: [removed]
                    .iter()
                    .filter(|r| !r.is_empty())
                    .map(|r| recipient(r))
                    .collect(),
            }],
            key_paths: KeyPaths::new(["db.password".to_owned()]),
            outcome: None,
            wanted: std::sync::Arc::default(),
            digest: [0; 32],
        }
    }

    #[test]
    fn a_new_journal_carries_what_a_killed_run_did_not_redo() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join(".sops.yaml");
        let first = Plan::from_files(
            &config,
            vec![
                rotated(dir.path(), "a.yaml", "web01"),
                rotated(dir.path(), "c.yaml", "web01"),
            ],
        );
        let killed = Journal::write(dir.path(), &first, None).unwrap();
        assert_eq!(Journal::load(dir.path()).unwrap(), Some(killed.clone()));

        // The killed run finished a.yaml; c.yaml is redone (now only rewrapped), b.yaml is new.
        let second = Plan::from_files(
            &config,
            vec![
                rotated(dir.path(), "b.yaml", "db01"),
                rotated(dir.path(), "c.yaml", ""),
            ],
        );
        let journal = Journal::write(dir.path(), &second, Some(&killed)).unwrap();
        let entries: Vec<(String, Action)> = journal
            .entries()
            .unwrap()
            .map(|e| e.map(|e| (e.display, e.action)).unwrap())
            .collect();
        assert_eq!(
            entries,
            [
                ("a.yaml".to_owned(), Action::Rotate),
                ("b.yaml".to_owned(), Action::Rotate),
                ("c.yaml".to_owned(), Action::Rewrap),
            ]
        );
        let exposure = journal.exposure().unwrap().collect().unwrap();
        let by_name: Vec<(Option<String>, Vec<String>)> = exposure
            .into_iter()
            .map(|e| {
                (
                    e.recipient.name,
                    e.files.into_iter().map(|f| f.path).collect(),
                )
            })
            .collect();
        assert_eq!(
            by_name,
            [
                (Some("db01".to_owned()), vec!["b.yaml".to_owned()]),
                (Some("web01".to_owned()), vec!["a.yaml".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_journal_of_another_format_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join(JOURNAL_FILE),
            "{\"version\":1,\"started\":1,\"pid\":2,\"config\":\"/x\",\"files\":[]}",
        )
        .unwrap();
        let error = Journal::load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("format 1") && error.contains("delete the journal"),
            "{error}"
        );
    }

    #[test]
    fn journal_cleans_only_its_own_temp_files_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("a.yaml"), "x").unwrap();
        fs_err::write(dir.path().join(".a.yaml.hostage-tmp.1.2.3"), "x").unwrap();
        fs_err::write(dir.path().join(".b.yaml.hostage-tmp.1.2.3"), "x").unwrap();
        let plan = Plan::from_files(
            &dir.path().join(".sops.yaml"),
            vec![rotated(dir.path(), "a.yaml", "web01")],
        );
        let journal = Journal::write(dir.path(), &plan, None).unwrap();
        assert_eq!(journal.clean_temp_files().unwrap(), 1);
        assert!(dir.path().join(".b.yaml.hostage-tmp.1.2.3").exists());
        Journal::remove(dir.path()).unwrap();
        assert_eq!(Journal::load(dir.path()).unwrap(), None);
    }
}
