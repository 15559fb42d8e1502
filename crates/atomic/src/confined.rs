//! Writes confined to one directory tree whose contents are untrusted.
//!
//! A secrets repository is input: a pull request can commit `pubkeys/web01.pub` as a symlink to
//! `~/.ssh/authorized_keys`, or `pubkeys` itself as a symlink to `/root/.ssh`. Writing "the
//! repository's file" must never replace a file outside the repository.
//!
//! The rule (documented in `docs/security.md`): the root is what the operator named (its own
//! path is trusted, symlinks in it included). Below it, every component is looked at with
//! `lstat`; a symlink is followed only while its target stays inside the root, re-checked at
//! every hop, so an in-repository symlink (`current.yaml -> v2/current.yaml`) still works and
//! the write replaces its target, never the link. A symlink whose target leaves the root, a
//! `..` above the root or an absolute path elsewhere is refused, naming the path and the link.
//! Missing directories are created only after the existing part was checked.
//!
//! What this does not defend against: another local process swapping a component for a symlink
//! between the check and the rename (an attacker who can already write into the operator's
//! checkout). Repository contents are the threat here, not concurrent local writers.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use crate::{io, WriteError};

/// How many symlinks one path may pass through (Linux's own limit is 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// A directory tree that writes may not leave: the writer for repository files.
#[derive(Clone, Debug)]
pub struct ConfinedDir {
    /// The root as the operator named it, made absolute (not resolved): for messages, and for
    /// paths built on it.
    given: PathBuf,
    /// The root with symlinks resolved: every resolved path starts with it.
    real: PathBuf,
}

impl ConfinedDir {
    /// Confines writes to `root`, which must exist (its own symlinks are resolved and trusted).
    pub fn new(root: &Path) -> Result<Self, WriteError> {
        let real = std::fs::canonicalize(root).map_err(io(root, "resolving the directory"))?;
        let given = std::path::absolute(root).map_err(io(root, "resolving the directory"))?;
        Ok(Self { given, real })
    }

    /// Confines writes to the directory holding `file` (`.` for a bare file name): the file
    /// itself, when it is a symlink, may not lead out of its own directory.
    pub fn of_parent(file: &Path) -> Result<Self, WriteError> {
        match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => Self::new(dir),
            _ => Self::new(Path::new(".")),
        }
    }

    /// The root as given.
    pub fn root(&self) -> &Path {
        &self.given
    }

    /// The physical path `path` names (relative paths are taken from the current directory, as
    /// every file system call does; the path must lead into the root): no symlink in it, inside
    /// the root. Components that do not exist yet are kept as they are.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, WriteError> {
        let outside = || WriteError::OutsideRoot {
            path: path.to_owned(),
            root: self.given.clone(),
        };
        let absolute = std::path::absolute(path).map_err(io(path, "resolving the path"))?;
        let relative = absolute
            .strip_prefix(&self.given)
            .or_else(|_| absolute.strip_prefix(&self.real))
            .map_err(|_| outside())?;
        let mut pending: VecDeque<OsString> = VecDeque::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => pending.push_back(name.to_owned()),
                Component::ParentDir => pending.push_back("..".into()),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return Err(outside()),
            }
        }
        let mut current = self.real.clone();
        let mut hops = 0;
        // Once a component is missing, nothing below it can be a symlink: stop looking.
        let mut missing = false;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                if current == self.real {
                    return Err(outside());
                }
                current.pop();
                continue;
            }
            let next = current.join(&name);
            if missing {
                current = next;
                continue;
            }
            let meta = match std::fs::symlink_metadata(&next) {
                Ok(meta) => meta,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    missing = true;
                    current = next;
                    continue;
                }
                Err(e) => return Err(io(path, "checking the path")(e)),
            };
            if !meta.file_type().is_symlink() {
                current = next;
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(WriteError::SymlinkLoop {
                    path: path.to_owned(),
                    root: self.given.clone(),
                });
            }
            let target = std::fs::read_link(&next).map_err(io(path, "reading the symlink"))?;
            let leaves = || WriteError::SymlinkLeavesRoot {
                path: path.to_owned(),
                link: next
                    .strip_prefix(&self.real)
                    .map_or_else(|_| next.clone(), |rel| self.given.join(rel)),
                root: self.given.clone(),
            };
            let target_relative = if target.is_absolute() {
                // An absolute link is followed only when it names a place inside the root.
                current = self.real.clone();
                target
                    .strip_prefix(&self.real)
                    .map_err(|_| leaves())?
                    .to_owned()
            } else {
                target
            };
            let mut expanded = Vec::new();
            for component in target_relative.components() {
                match component {
                    Component::Normal(part) => expanded.push(part.to_owned()),
                    Component::ParentDir => {
                        // Checked against the root when it is popped; name the link, not `..`.
                        expanded.push("..".into());
                    }
                    Component::CurDir => {}
                    Component::RootDir | Component::Prefix(_) => return Err(leaves()),
                }
            }
            // `..` inside a link's target that climbs above the root: the link leaves.
            let mut depth = current
                .strip_prefix(&self.real)
                .map(|rel| rel.components().count())
                .unwrap_or(0);
            for part in &expanded {
                if part == ".." {
                    depth = depth.checked_sub(1).ok_or_else(leaves)?;
                } else {
                    depth += 1;
                }
            }
            for part in expanded.into_iter().rev() {
                pending.push_front(part);
            }
        }
        Ok(current)
    }

    /// Creates `dir` (inside the root) and its missing parents, after checking the part that
    /// exists.
    pub fn create_dir_all(&self, dir: &Path) -> Result<PathBuf, WriteError> {
        let resolved = self.resolve(dir)?;
        fs_err::create_dir_all(&resolved).map_err(io(dir, "creating the directory"))?;
        Ok(resolved)
    }

    /// [`crate::write`] of `path` inside the root, creating missing parent directories.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
        let resolved = self.resolve_creating_parent(path)?;
        crate::write(&resolved, bytes)
    }

    /// [`crate::write_with`] of `path` inside the root, creating missing parent directories.
    pub fn write_with(
        &self,
        path: &Path,
        content: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), WriteError> {
        let resolved = self.resolve_creating_parent(path)?;
        crate::write_with(&resolved, content)
    }

    /// [`crate::write_batch`] of files inside the root: every path is checked before any temp
    /// file is written, so a refused path leaves every target untouched. Parent directories must
    /// exist (as with [`crate::write_batch`]).
    pub fn write_batch<P: AsRef<Path>, B: AsRef<[u8]>>(
        &self,
        files: &[(P, B)],
    ) -> Result<(), WriteError> {
        let resolved = files
            .iter()
            .map(|(path, bytes)| Ok((self.resolve(path.as_ref())?, bytes.as_ref())))
            .collect::<Result<Vec<_>, WriteError>>()?;
        crate::write_batch(&resolved)
    }

    fn resolve_creating_parent(&self, path: &Path) -> Result<PathBuf, WriteError> {
        let resolved = self.resolve(path)?;
        if let Some(parent) = resolved.parent() {
            fs_err::create_dir_all(parent).map_err(io(path, "creating the directory"))?;
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        repo: PathBuf,
        outside: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let outside = dir.path().join("home");
        fs_err::create_dir_all(repo.join("pubkeys")).unwrap();
        fs_err::create_dir_all(&outside).unwrap();
        fs_err::write(outside.join("authorized_keys"), b"precious\n").unwrap();
        Fixture {
            _dir: dir,
            repo,
            outside,
        }
    }

    #[test]
    fn a_symlinked_file_pointing_outside_is_refused_and_its_target_untouched() {
        let f = fixture();
        symlink(
            f.outside.join("authorized_keys"),
            f.repo.join("pubkeys/web01.pub"),
        )
        .unwrap();
        let repo = ConfinedDir::new(&f.repo).unwrap();
        let error = repo
            .write(&f.repo.join("pubkeys/web01.pub"), b"ssh-ed25519 AAAA\n")
            .unwrap_err();
        assert!(
            matches!(error, WriteError::SymlinkLeavesRoot { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("pubkeys/web01.pub"), "{error}");
        assert_eq!(
            fs_err::read(f.outside.join("authorized_keys")).unwrap(),
            b"precious\n"
        );
    }

    #[test]
    fn a_relative_symlink_climbing_out_is_refused() {
        let f = fixture();
        symlink(
            "../../home/authorized_keys",
            f.repo.join("pubkeys/web01.pub"),
        )
        .unwrap();
        let repo = ConfinedDir::new(&f.repo).unwrap();
        assert!(matches!(
            repo.write(&f.repo.join("pubkeys/web01.pub"), b"x"),
            Err(WriteError::SymlinkLeavesRoot { .. })
        ));
        assert_eq!(
            fs_err::read(f.outside.join("authorized_keys")).unwrap(),
            b"precious\n"
        );
    }

    #[test]
    fn a_symlinked_directory_pointing_outside_is_refused_before_creating_anything() {
        let f = fixture();
        symlink(&f.outside, f.repo.join("backups")).unwrap();
        let repo = ConfinedDir::new(&f.repo).unwrap();
        assert!(matches!(
            repo.write(&f.repo.join("backups/new/dir/key.yaml"), b"x"),
            Err(WriteError::SymlinkLeavesRoot { .. })
        ));
        assert!(!f.outside.join("new").exists());
        assert!(matches!(
            repo.write_batch(&[(f.repo.join("backups/authorized_keys"), b"x")]),
            Err(WriteError::SymlinkLeavesRoot { .. })
        ));
        assert_eq!(
            fs_err::read(f.outside.join("authorized_keys")).unwrap(),
            b"precious\n"
        );
    }

    #[test]
    fn paths_above_the_root_are_refused() {
        let f = fixture();
        let repo = ConfinedDir::new(&f.repo).unwrap();
        for path in [
            f.repo.join("../home/authorized_keys"),
            f.repo.join("pubkeys/../../home/authorized_keys"),
            f.outside.join("authorized_keys"),
            PathBuf::from("relative/to/the/current/directory"),
        ] {
            assert!(
                matches!(repo.write(&path, b"x"), Err(WriteError::OutsideRoot { .. })),
                "{}",
                path.display()
            );
        }
        assert_eq!(
            fs_err::read(f.outside.join("authorized_keys")).unwrap(),
            b"precious\n"
        );
    }

    #[test]
    fn symlinks_that_stay_inside_are_followed_and_the_link_kept() {
        let f = fixture();
        fs_err::create_dir_all(f.repo.join("v2")).unwrap();
        fs_err::write(f.repo.join("v2/current.yaml"), b"old").unwrap();
        symlink("../v2/current.yaml", f.repo.join("pubkeys/current.yaml")).unwrap();
        symlink(f.repo.join("v2"), f.repo.join("latest")).unwrap();
        let repo = ConfinedDir::new(&f.repo).unwrap();
        repo.write(&f.repo.join("pubkeys/current.yaml"), b"new")
            .unwrap();
        assert_eq!(
            fs_err::read(f.repo.join("v2/current.yaml")).unwrap(),
            b"new"
        );
        assert!(
            fs_err::symlink_metadata(f.repo.join("pubkeys/current.yaml"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        repo.write(&f.repo.join("latest/other.yaml"), b"via absolute link")
            .unwrap();
        assert_eq!(
            fs_err::read(f.repo.join("v2/other.yaml")).unwrap(),
            b"via absolute link"
        );
    }

    #[test]
    fn symlink_loops_are_refused() {
        let f = fixture();
        symlink("b", f.repo.join("a")).unwrap();
        symlink("a", f.repo.join("b")).unwrap();
        let repo = ConfinedDir::new(&f.repo).unwrap();
        assert!(matches!(
            repo.write(&f.repo.join("a"), b"x"),
            Err(WriteError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn a_symlink_to_the_root_itself_stays_inside() {
        let f = fixture();
        symlink(".", f.repo.join("self")).unwrap();
        let repo = ConfinedDir::new(&f.repo).unwrap();
        repo.write(&f.repo.join("self/self/file"), b"x").unwrap();
        assert_eq!(fs_err::read(f.repo.join("file")).unwrap(), b"x");
    }
}
