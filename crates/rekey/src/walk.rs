//! Listing the files a re-key looks at: everything under the given paths that git would not
//! ignore. Whether a file is a sops file is decided later, from its content.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::RekeyError;

/// Directories never entered outside git (git's own data and hostage's state).
const SKIPPED_DIRS: &[&str] = &[".git", ".hostage"];

/// Marks the temp files of `hostage_atomic` (a killed run may leave some behind).
pub(crate) const TEMP_MARKER: &str = ".hostage-tmp.";

/// Lists the regular files under `roots` (files are taken as given), sorted and de-duplicated.
/// In a git work tree `.gitignore` (and the other excludes git reads) is respected by asking git
/// itself (`git ls-files --cached --others --exclude-standard`); elsewhere every file is listed.
/// Symbolic links, `.sops.yaml` files and hostage's temp files are left out.
pub fn walk(roots: &[PathBuf]) -> Result<Vec<PathBuf>, RekeyError> {
    let mut out = BTreeSet::new();
    for root in roots {
        let root = absolute(root);
        let meta = fs_err::symlink_metadata(&root).map_err(|source| RekeyError::Read {
            path: root.clone(),
            source,
        })?;
        if meta.is_file() {
            out.insert(root);
            continue;
        }
        match git_files(&root)? {
            Some(files) => out.extend(files),
            None => plain_walk(&root, &mut out)?,
        }
    }
    Ok(out.into_iter().filter(|p| keep(p)).collect())
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

/// The files git lists under `dir`, or `None` when `dir` is not in a git work tree (or git is
/// not installed).
fn git_files(dir: &Path) -> Result<Option<Vec<PathBuf>>, RekeyError> {
    match git(dir, &["rev-parse", "--is-inside-work-tree"]) {
        Ok(out) if out.status.success() && out.stdout.starts_with(b"true") => {}
        _ => return Ok(None),
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
    let out = git(dir, &listing).map_err(|e| RekeyError::Git {
        path: dir.to_owned(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(RekeyError::Git {
            path: dir.to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let mut files = Vec::new();
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        use std::os::unix::ffi::OsStrExt as _;
        let relative = Path::new(std::ffi::OsStr::from_bytes(name));
        if relative.components().any(|c| c.as_os_str() == ".hostage") {
            continue;
        }
        files.push(dir.join(relative));
    }
    Ok(Some(files))
}

fn plain_walk(dir: &Path, out: &mut BTreeSet<PathBuf>) -> Result<(), RekeyError> {
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
            out.insert(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            vec![PathBuf::from("a/b/x.yaml"), PathBuf::from("a/y.json")]
        );
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
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            vec![PathBuf::from(".gitignore"), PathBuf::from("kept.yaml")]
        );
    }
}
