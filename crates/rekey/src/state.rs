//! Per-repo state of re-key runs: the lock that keeps two runs from interleaving, and the
//! journal that records a run's plan so a killed run is finished (and its exposure report not
//! lost) by the next one. Both live in `.git/hostage/` (or `.hostage/` outside git).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::{Action, Exposure, Plan};
use crate::walk::TEMP_MARKER;
use crate::RekeyError;

const LOCK_FILE: &str = "rekey.lock";
const JOURNAL_FILE: &str = "rekey-journal.json";
const JOURNAL_VERSION: u32 = 1;

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

/// One file of a journaled plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The file (absolute).
    pub path: PathBuf,
    /// `rewrap` or `rotate`.
    pub action: Action,
}

/// The record of a run in progress: written before the first file, removed after the last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version.
    pub version: u32,
    /// When the run started (seconds since the Unix epoch).
    pub started: u64,
    /// The process that ran it.
    pub pid: u32,
    /// The `.sops.yaml` it followed.
    pub config: PathBuf,
    /// The files it was going to change.
    pub files: Vec<JournalEntry>,
    /// What the recipients it removed could read (kept so a rerun still reports files the
    /// killed run already rotated).
    pub exposure: Vec<Exposure>,
}

impl Journal {
    /// The journal of `plan`, as a run is about to apply it, with the exposure report to keep
    /// (usually `plan.exposure()`, merged with a killed run's).
    pub fn from_plan(plan: &Plan, exposure: Vec<Exposure>) -> Self {
        Self {
            version: JOURNAL_VERSION,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            pid: std::process::id(),
            config: plan.config.clone(),
            files: plan
                .files
                .iter()
                .filter(|f| matches!(f.action, Action::Rewrap | Action::Rotate))
                .map(|f| JournalEntry {
                    path: f.path.clone(),
                    action: f.action,
                })
                .collect(),
            exposure,
        }
    }

    fn file(state_dir: &Path) -> PathBuf {
        state_dir.join(JOURNAL_FILE)
    }

    /// The journal a killed run left, if any.
    pub fn load(state_dir: &Path) -> Result<Option<Self>, RekeyError> {
        let path = Self::file(state_dir);
        let text = match fs_err::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(state_error(&path, e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            state_error(
                &path,
                format!("unreadable journal ({e}); delete it and run again"),
            )
        })
    }

    /// Writes the journal durably (before any file of the run is touched).
    pub fn save(&self, state_dir: &Path) -> Result<(), RekeyError> {
        fs_err::create_dir_all(state_dir).map_err(|e| state_error(state_dir, e))?;
        let path = Self::file(state_dir);
        let text = serde_json::to_vec(self).map_err(|e| state_error(&path, e))?;
        hostage_atomic::write(&path, &text).map_err(|e| state_error(&path, e))
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
    pub fn clean_temp_files(&self) -> usize {
        let mut dirs: Vec<&Path> = self.files.iter().filter_map(|f| f.path.parent()).collect();
        dirs.sort();
        dirs.dedup();
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
                if self.files.iter().any(|f| f.path == target)
                    && fs_err::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// `current` plus what `previous` (a killed run's journal) recorded, by recipient and file.
pub fn merge_exposure(mut current: Vec<Exposure>, previous: &[Exposure]) -> Vec<Exposure> {
    for old in previous {
        match current
            .iter_mut()
            .find(|e| e.recipient.recipient == old.recipient.recipient)
        {
            Some(entry) => {
                for file in &old.files {
                    if !entry.files.iter().any(|f| f.path == file.path) {
                        entry.files.push(file.clone());
                    }
                }
                entry.files.sort_by(|a, b| a.path.cmp(&b.path));
            }
            None => current.push(old.clone()),
        }
    }
    current.sort_by(|a, b| a.recipient.cmp(&b.recipient));
    current
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

    #[test]
    fn journal_round_trips_and_cleans_only_its_own_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.yaml");
        fs_err::write(&target, "x").unwrap();
        fs_err::write(dir.path().join(".a.yaml.hostage-tmp.1.2.3"), "x").unwrap();
        fs_err::write(dir.path().join(".b.yaml.hostage-tmp.1.2.3"), "x").unwrap();
        let journal = Journal {
            version: JOURNAL_VERSION,
            started: 1,
            pid: 2,
            config: dir.path().join(".sops.yaml"),
            files: vec![JournalEntry {
                path: target,
                action: Action::Rotate,
            }],
            exposure: Vec::new(),
        };
        journal.save(dir.path()).unwrap();
        assert_eq!(Journal::load(dir.path()).unwrap(), Some(journal.clone()));
        assert_eq!(journal.clean_temp_files(), 1);
        assert!(dir.path().join(".b.yaml.hostage-tmp.1.2.3").exists());
        Journal::remove(dir.path()).unwrap();
        assert_eq!(Journal::load(dir.path()).unwrap(), None);
    }
}
