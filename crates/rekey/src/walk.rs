//! Listing the files a re-key looks at: everything under the given paths that git would not
//! ignore. Whether a file is a sops file is decided later, from its content.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::RekeyError;

/// Directories never entered outside git (git's own data and hostage's state).
const SKIPPED_DIRS: &[&str] = &[".git", ".hostage"];

/// Marks the temp files of `hostage_atomic` (a killed run may leave some behind).
pub(crate) const TEMP_MARKER: &str = ".hostage-tmp.";

/// The files a walk found, sorted and without duplicates.
///
/// Kept compactly, the bytes of every path back to back and where each one is, because a repo
/// can hold far more files than sops files and the list lives while they are all planned: a
/// file costs its path's bytes and 16 more, not a `PathBuf` allocation and a tree node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileList {
    bytes: Vec<u8>,
    /// Where each path is in `bytes`, in path order.
    spans: Vec<(usize, usize)>,
}

impl FileList {
    /// How many files.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The files, in path order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Path> + '_ {
        self.spans.iter().map(|span| self.path(*span))
    }

    fn path(&self, (start, end): (usize, usize)) -> &Path {
        Path::new(OsStr::from_bytes(&self.bytes[start..end]))
    }

    fn push(&mut self, parts: &[&[u8]]) {
        let start = self.bytes.len();
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        self.spans.push((start, self.bytes.len()));
    }

    /// Sorts, drops duplicates, and keeps what `keep` accepts.
    fn finish(mut self, keep: impl Fn(&Path) -> bool) -> Self {
        let mut spans = std::mem::take(&mut self.spans);
        spans.sort_by(|a, b| self.path(*a).cmp(self.path(*b)));
        spans.dedup_by(|a, b| self.path(*a) == self.path(*b));
        spans.retain(|span| keep(self.path(*span)));
        spans.shrink_to_fit();
        self.spans = spans;
        self
    }
}

impl<'a> IntoIterator for &'a FileList {
    type Item = &'a Path;
    type IntoIter = Box<dyn ExactSizeIterator<Item = &'a Path> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Lists the regular files under `roots` (files are taken as given), sorted and de-duplicated.
/// In a git work tree `.gitignore` (and the other excludes git reads) is respected by asking git
/// itself (`git ls-files --cached --others --exclude-standard`); elsewhere every file is listed.
/// Symbolic links, `.sops.yaml` files and hostage's temp files are left out.
pub fn walk(roots: &[PathBuf]) -> Result<FileList, RekeyError> {
    let mut out = FileList::default();
    for root in roots {
        let root = absolute(root);
        let meta = fs_err::symlink_metadata(&root).map_err(|source| RekeyError::Read {
            path: root.clone(),
            source,
        })?;
        if meta.is_file() {
            out.push(&[root.as_os_str().as_bytes()]);
            continue;
        }
        if !git_files(&root, &mut out)? {
            plain_walk(&root, &mut out)?;
        }
    }
    Ok(out.finish(keep))
}

fn keep(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name == ".sops.yaml" || name.contains(TEMP_MARKER) {
        return false;
    }
    fs_err::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_owned())
}

/// Runs `git -C dir args…` (the one place this crate spawns a process).
fn git(dir: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("git").arg("-C").arg(dir).args(args).output()
}

/// Adds the files git lists under `dir` to `out`; `false` when `dir` is not in a git work tree
/// (or git is not installed).
fn git_files(dir: &Path, out: &mut FileList) -> Result<bool, RekeyError> {
    match git(dir, &["rev-parse", "--is-inside-work-tree"]) {
        Ok(result) if result.status.success() && result.stdout.starts_with(b"true") => {}
        _ => return Ok(false),
    }
    let listing = [
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
        "--",
        ".",
    ];
    let listed = git(dir, &listing).map_err(|e| RekeyError::Git {
        path: dir.to_owned(),
        message: e.to_string(),
    })?;
    if !listed.status.success() {
        return Err(RekeyError::Git {
            path: dir.to_owned(),
            message: String::from_utf8_lossy(&listed.stderr).trim().to_owned(),
        });
    }
    let dir_bytes = dir.as_os_str().as_bytes();
    let separator: &[u8] = if dir_bytes.ends_with(b"/") { b"" } else { b"/" };
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let relative = Path::new(OsStr::from_bytes(name));
        if relative.components().any(|c| c.as_os_str() == ".hostage") {
            continue;
        }
        out.push(&[dir_bytes, separator, name]);
    }
    Ok(true)
}

fn plain_walk(dir: &Path, out: &mut FileList) -> Result<(), RekeyError> {
    let entries = fs_err::read_dir(dir).map_err(|source| RekeyError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| RekeyError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| RekeyError::Read {
            path: path.clone(),
            source,
        })?;
        if kind.is_dir() {
            if !SKIPPED_DIRS.iter().any(|s| entry.file_name() == *s) {
                plain_walk(&path, out)?;
            }
        } else if kind.is_file() {
            out.push(&[path.as_os_str().as_bytes()]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files of `list`, relative to `root`.
    fn relative(list: &FileList, root: &Path) -> Vec<PathBuf> {
        list.iter()
            .map(|p| p.strip_prefix(root).unwrap().to_owned())
            .collect()
    }

    #[test]
    fn plain_walk_skips_git_dirs_temp_files_and_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs_err::create_dir_all(root.join("a/b")).unwrap();
        fs_err::create_dir_all(root.join(".hostage")).unwrap();
        for name in [
            "a/b/x.yaml",
            "a/y.json",
            ".sops.yaml",
            "a/.x.yaml.hostage-tmp.1.2.3",
            ".hostage/j",
        ] {
            fs_err::write(root.join(name), "x").unwrap();
        }
        let files = walk(&[root.to_owned()]).unwrap();
        let names = relative(&files, root);
        assert_eq!(
            names,
            vec![PathBuf::from("a/b/x.yaml"), PathBuf::from("a/y.json")]
        );
    }

    #[test]
    fn overlapping_roots_give_each_file_once_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs_err::create_dir_all(root.join("a/b")).unwrap();
        for name in ["a/x.yaml", "a/b/y.yaml", "a-b.yaml"] {
            fs_err::write(root.join(name), "x").unwrap();
        }
        let files = walk(&[root.join("a"), root.to_owned(), root.join("a/x.yaml")]).unwrap();
        let names = relative(&files, root);
        // Component order (what `Path` compares), not byte order: `a/…` before `a-b.yaml`.
        assert_eq!(
            names,
            [
                PathBuf::from("a/b/y.yaml"),
                PathBuf::from("a/x.yaml"),
                PathBuf::from("a-b.yaml")
            ]
        );
        assert_eq!(files.len(), 3);
    }

    #[test]
    fn git_work_trees_respect_gitignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let git = |args: &[&str]| {
            assert!(Command::new("git")
                .arg("-C")
                .arg(root)
                .args(args)
                .output()
                .unwrap()
                .status
                .success());
        };
        git(&["init", "-q"]);
        fs_err::write(root.join(".gitignore"), "ignored/\n*.bak\n").unwrap();
        fs_err::create_dir_all(root.join("ignored")).unwrap();
        for name in ["kept.yaml", "ignored/x.yaml", "old.bak"] {
            fs_err::write(root.join(name), "x").unwrap();
        }
        let files = walk(&[root.to_owned()]).unwrap();
        let names = relative(&files, root);
        assert_eq!(
            names,
            vec![PathBuf::from(".gitignore"), PathBuf::from("kept.yaml")]
        );
    }
}
