//! `--commit`: after a verb changed the secrets repository, stage exactly the paths it changed
//! (what git shows as changed or new after the run and did not show, with the same content,
//! before it: a hand edit the operator has not committed stays out) and commit them with a message in the seed's style (`feat(<host>): add host SSH key as sops
//! recipient`). It refuses up front, before the verb changes anything, when the index already
//! holds staged changes (they would end up in hostage's commit), and it never pushes: the
//! operator pushes, then bumps the fleet flake's `secrets` input. Git does the work (the user's
//! own identity, hooks and signing config apply); this module is the one place the workflows
//! run it.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Serialize;

use crate::WorkflowError;

/// Which verb's commit, with what its message names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitKind {
    /// `onboard HOST`.
    Onboard {
        /// The host.
        host: String,
    },
    /// `rotate HOST`: the host has a new identity.
    Rotate {
        /// The host.
        host: String,
    },
    /// `rotate-infra`.
    RotateInfra,
    /// `rekey`.
    Rekey,
    /// `offboard HOST`: the host's recipient, public key, backup and inventory entry are gone.
    Offboard {
        /// The host.
        host: String,
    },
    /// `backup-host-key HOST`.
    BackupHostKey {
        /// The host.
        host: String,
    },
    /// `set FILE KEY`: the key's name and the file's path are in the message, never the value.
    Set {
        /// The file, relative to the repository (as the report names it).
        file: String,
        /// The key, as the report names it (one element per level).
        key: Vec<String>,
    },
    /// A verb without a variant of its own yet, with its own scope and summary
    /// (`feat(web01): remove host as sops recipient`).
    Other {
        /// The part in parentheses.
        scope: String,
        /// What the commit does, lowercase, no trailing period.
        summary: String,
    },
}

impl CommitKind {
    /// The commit message: conventional-commit style as the seed writes it by hand.
    pub fn message(&self) -> String {
        match self {
            Self::Onboard { host } => format!("feat({host}): add host SSH key as sops recipient"),
            Self::Rotate { host } => {
                format!("feat({host}): replace host SSH key as sops recipient")
            }
            Self::RotateInfra => "feat(infrastructure): rotate the infrastructure key".to_owned(),
            Self::Rekey => "chore(secrets): re-key sops files to match .sops.yaml".to_owned(),
            Self::Offboard { host } => {
                format!("feat({host}): remove host SSH key from sops recipients")
            }
            Self::BackupHostKey { host } => {
                format!("feat({host}): back up host SSH key, sops-encrypted")
            }
            Self::Set { file, key } => format!("feat(secrets): set {} in {file}", key_name(key)),
            Self::Other { scope, summary } => format!("feat({scope}): {summary}"),
        }
    }
}

/// A key as `set` was given it: `name` for a top-level key, sops' path form
/// (`["db"]["password"]`) for a nested one.
fn key_name(key: &[String]) -> String {
    match key {
        [one] => one.clone(),
        _ => key.iter().map(|k| format!("[\"{k}\"]")).collect(),
    }
}

/// What `--commit` did (`--json`: the `commit` member of the verb's document).
#[derive(Debug, Clone, Serialize)]
pub struct CommitReport {
    /// The new commit's id; `null` when the run changed nothing (no commit is made).
    pub commit: Option<String>,
    /// Its message.
    pub message: String,
    /// The paths committed, relative to the repository's top.
    pub paths: Vec<String>,
    /// What to do next (hostage never pushes).
    pub next_steps: Vec<String>,
}

/// A repository checked for `--commit` before the verb runs: it is a git work tree whose index
/// holds nothing staged.
#[derive(Debug)]
pub struct CommitGuard {
    top: PathBuf,
    /// The work tree's changes before the run: path → a hash of its content (`None`: absent).
    before: BTreeMap<String, Option<u64>>,
}

impl CommitGuard {
    /// Checks `repo` (the secrets repository) before anything changes: refuses a directory git
    /// does not track and an index that already holds staged changes.
    pub fn before(repo: &Path) -> crate::Result<Self> {
        let top = git(repo, &["rev-parse", "--show-toplevel"])?;
        if !top.status.success() {
            return Err(WorkflowError::refused_with_hint(
                format!("--commit: {} is not in a git work tree", repo.display()),
                "run `git init` there first, or leave out --commit",
            ));
        }
        let top = PathBuf::from(String::from_utf8_lossy(&top.stdout).trim_end_matches('\n'));
        let staged = staged(&top)?;
        if !staged.is_empty() {
            return Err(WorkflowError::refused_with_hint(
                format!(
                    "--commit: the index of {} already holds staged changes ({}); hostage commits only what its run changes",
                    top.display(),
                    staged.join(", ")
                ),
                "commit them or unstage them (`git restore --staged PATH`), then run again; nothing was changed",
            ));
        }
        let before = work_tree_changes(&top)?;
        Ok(Self { top, before })
    }

    /// Stages exactly the paths the run changed (see the module's documentation) and commits
    /// them with `kind`'s message. A run that changed nothing makes no commit.
    pub fn commit(self, kind: &CommitKind) -> crate::Result<CommitReport> {
        let message = kind.message();
        let after = work_tree_changes(&self.top)?;
        let paths: Vec<String> = after
            .iter()
            .filter(|(path, hash)| self.before.get(*path) != Some(hash))
            .map(|(path, _)| path.clone())
            .chain(
                self.before
                    .keys()
                    .filter(|path| !after.contains_key(*path))
                    .cloned(),
            )
            .collect();
        let next_steps = vec![
            "push the secrets repository (hostage never pushes): git push".to_owned(),
            "then bump the fleet flake's `secrets` input: nix flake update secrets (in the fleet repository), and deploy".to_owned(),
        ];
        if !paths.is_empty() {
            // `-A` stages deletions too; `--` keeps a path from being read as an option.
            let mut args = vec!["add", "-A", "--"];
            args.extend(paths.iter().map(String::as_str));
            expect_success(&self.top, &args, "git add")?;
        }
        let committed = staged(&self.top)?;
        if committed.is_empty() {
            return Ok(CommitReport {
                commit: None,
                message,
                paths: Vec::new(),
                next_steps: Vec::new(),
            });
        }
        expect_success(&self.top, &["commit", "-q", "-m", &message], "git commit")?;
        let head = git(&self.top, &["rev-parse", "HEAD"])?;
        Ok(CommitReport {
            commit: Some(String::from_utf8_lossy(&head.stdout).trim().to_owned()),
            message,
            paths: committed,
            next_steps,
        })
    }
}

/// The work tree's changed, deleted and untracked (not ignored) paths, relative to `top`, each
/// with a hash of its content (`None` when it is absent). The hash only compares this run's
/// before and after, so a fast non-cryptographic one does.
fn work_tree_changes(top: &Path) -> crate::Result<BTreeMap<String, Option<u64>>> {
    let out = expect_success(
        top,
        &["status", "--porcelain=v1", "-z", "--untracked-files=all"],
        "git status",
    )?;
    let mut changes = BTreeMap::new();
    for entry in out.stdout.split(|b| *b == 0) {
        // `XY path`; renames are staged (refused before the run), so one path per entry.
        let Some(path) = entry.get(3..).filter(|p| !p.is_empty()) else {
            continue;
        };
        let path = String::from_utf8_lossy(path).into_owned();
        let hash = fs_err::read(top.join(&path)).ok().map(|bytes| {
            let mut hasher = DefaultHasher::new();
            bytes.hash(&mut hasher);
            hasher.finish()
        });
        changes.insert(path, hash);
    }
    Ok(changes)
}

/// The paths staged in the index of `top`.
fn staged(top: &Path) -> crate::Result<Vec<String>> {
    let out = expect_success(
        top,
        &["diff", "--cached", "--name-only", "-z"],
        "git diff --cached",
    )?;
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

fn expect_success(dir: &Path, args: &[&str], what: &str) -> crate::Result<Output> {
    let out = git(dir, args)?;
    if !out.status.success() {
        return Err(WorkflowError::refused_with_hint(
            format!(
                "--commit: {what} failed in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "the run's changes are written but not committed: fix what git says, then commit them yourself",
        ));
    }
    Ok(out)
}

fn git(dir: &Path, args: &[&str]) -> crate::Result<Output> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| {
            WorkflowError::refused_with_hint(
                format!("--commit: cannot run git: {e}"),
                "install git (Debian package `git`), or leave out --commit",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::CommitKind;

    #[test]
    fn messages_follow_the_seeds_conventional_commit_style() {
        assert_eq!(
            CommitKind::Onboard {
                host: "gnomeregan".to_owned()
            }
            .message(),
            "feat(gnomeregan): add host SSH key as sops recipient"
        );
        assert_eq!(
            CommitKind::Other {
                scope: "web01".to_owned(),
                summary: "remove host as sops recipient".to_owned()
            }
            .message(),
            "feat(web01): remove host as sops recipient"
        );
    }

    #[test]
    fn offboard_backup_and_set_messages_name_the_host_or_the_key_and_file() {
        assert_eq!(
            CommitKind::Offboard {
                host: "web01".to_owned()
            }
            .message(),
            "feat(web01): remove host SSH key from sops recipients"
        );
        assert_eq!(
            CommitKind::BackupHostKey {
                host: "web01".to_owned()
            }
            .message(),
            "feat(web01): back up host SSH key, sops-encrypted"
        );
        assert_eq!(
            CommitKind::Set {
                file: "secrets/hosts/web02/db.yaml".to_owned(),
                key: vec!["db_password".to_owned()]
            }
            .message(),
            "feat(secrets): set db_password in secrets/hosts/web02/db.yaml"
        );
        assert_eq!(
            CommitKind::Set {
                file: "secrets/app.yaml".to_owned(),
                key: vec!["db".to_owned(), "password".to_owned()]
            }
            .message(),
            "feat(secrets): set [\"db\"][\"password\"] in secrets/app.yaml"
        );
    }
}
