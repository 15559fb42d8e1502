//! The one way hostage writes a file: atomically and durably. A reader sees the old content or
//! the new, never a mix, and after return the new content survives a crash.
//!
//! [`write`] does one file: a temp file in the same directory (the existing file's mode copied),
//! fsync, rename over the target, fsync the directory. [`write_batch`] does many and flushes
//! once: every temp is written, then all are flushed together ([`Flush`]: concurrent
//! `fdatasync`s, or one `syncfs` per filesystem), then every rename, then one fsync per directory. It does not print and knows nothing of sops.
//!
//! [`ConfinedDir`] is the writer for files whose path comes from untrusted content (a secrets
//! repository a pull request can add symlinks to): every component below the root is checked
//! without following a symlink out of it.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A write that failed; the target is left as it was (its old content, or absent).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target path has no file name or parent directory.
    #[error("cannot write `{}`: not a file path", path.display())]
    NotAFilePath {
        /// The path given.
        path: PathBuf,
    },
    /// A symlink on the way to the target leads out of the directory writes are confined to.
    #[error("refusing to write `{}`: the symlink `{}` points outside `{}` (repository contents are untrusted: replace the symlink with a regular file, or remove it)", path.display(), link.display(), root.display())]
    SymlinkLeavesRoot {
        /// The path given.
        path: PathBuf,
        /// The symlink that leads out.
        link: PathBuf,
        /// The directory writes are confined to.
        root: PathBuf,
    },
    /// The path itself leaves the directory writes are confined to (`..`, or absolute elsewhere).
    #[error("refusing to write `{}`: it is outside `{}`", path.display(), root.display())]
    OutsideRoot {
        /// The path given.
        path: PathBuf,
        /// The directory writes are confined to.
        root: PathBuf,
    },
    /// Symlinks on the way to the target point at each other (or nest too deep).
    #[error("refusing to write `{}`: too many levels of symlinks below `{}`", path.display(), root.display())]
    SymlinkLoop {
        /// The path given.
        path: PathBuf,
        /// The directory writes are confined to.
        root: PathBuf,
    },
    /// An I/O step failed.
    #[error("cannot write `{}`: {step}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

mod confined;
pub use confined::ConfinedDir;

fn io<'a>(path: &'a Path, step: &'static str) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        path: path.to_owned(),
        step,
        source,
    }
}

/// Writes `bytes` to `path` atomically and durably, keeping the mode of an existing file.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_with(path, |out| out.write_all(bytes))
}

/// [`write`] for content produced as a stream (a journal of 100,000 entries is written without
/// ever being whole in memory): `content` writes it to a buffered temp file.
pub fn write_with(
    path: &Path,
    content: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let staged = stage_with(path, content)?;
    staged
        .file
        .sync_all()
        .map_err(io(path, "flushing the temporary file"))?;
    drop(staged.file);
    commit(&staged.temp, &staged.target)?;
    let dir = fs_err::File::open(&staged.dir).map_err(io(path, "opening the directory"))?;
    dir.sync_all().map_err(io(path, "flushing the directory"))?;
    Ok(())
}

/// Writes every `(path, bytes)` atomically, durably, with one flush per filesystem instead of
/// one per file. All content is durable in temp files before the first rename; on an error
/// before that point no target is touched and the temp files are removed. Each file is replaced
/// atomically; the batch as a whole is not a transaction.
pub fn write_batch<P: AsRef<Path>, B: AsRef<[u8]>>(files: &[(P, B)]) -> Result<(), WriteError> {
    write_batch_with(files, Flush::default())
}

/// [`write_batch`] with an explicit [`Flush`] strategy.
pub fn write_batch_with<P: AsRef<Path>, B: AsRef<[u8]>>(
    files: &[(P, B)],
    how: Flush,
) -> Result<(), WriteError> {
    let batch = Batch::new(how);
    for (path, bytes) in files {
        batch.stage(path.as_ref(), bytes.as_ref())?;
    }
    batch.commit()
}

/// A batch of atomic writes that threads can fill concurrently: [`stage`](Batch::stage) writes a
/// temp file right away (no flush), [`commit`](Batch::commit) flushes them all together, renames
/// them into place and flushes their directories. Dropping an uncommitted batch removes its temps
/// and touches no target.
pub struct Batch {
    how: Flush,
    staged: std::sync::Mutex<Vec<(Staged, PathBuf)>>,
}

impl Batch {
    /// An empty batch.
    pub fn new(how: Flush) -> Self {
        Self {
            how,
            staged: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Writes `bytes` to a temp file beside `path`; the target is replaced on [`commit`](Self::commit).
    pub fn stage(&self, path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
        let staged = stage(path, bytes)?;
        self.lock().push((staged, path.to_owned()));
        Ok(())
    }

    /// Number of files staged so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Staged, PathBuf)>> {
        // A panic while holding the lock leaves a consistent Vec: keep using it.
        self.staged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Flushes every temp, renames each over its target, flushes each directory once. Each file
    /// is replaced atomically; a failure while renaming leaves earlier files new, later ones old
    /// (never a torn file) and removes the remaining temps.
    pub fn commit(self) -> Result<(), WriteError> {
        let staged = std::mem::take(&mut *self.lock());
        let cleanup = |staged: &[(Staged, PathBuf)]| {
            for (s, _) in staged {
                let _ = fs_err::remove_file(&s.temp);
            }
        };
        if let Err(error) = flush(&staged, self.how) {
            cleanup(&staged);
            return Err(error);
        }
        let mut directories = Vec::new();
        for (index, (s, path)) in staged.iter().enumerate() {
            if let Err(e) = commit(&s.temp, &s.target) {
                cleanup(&staged[index + 1..]);
                return Err(e);
            }
            directories.push((s.dir.clone(), path.as_path()));
        }
        let mut flushed = BTreeSet::new();
        for (dir, path) in directories {
            if flushed.insert(dir.clone()) {
                let handle = fs_err::File::open(&dir).map_err(io(path, "opening the directory"))?;
                handle
                    .sync_all()
                    .map_err(io(path, "flushing the directory"))?;
            }
        }
        Ok(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for (s, _) in self.lock().drain(..) {
            let _ = fs_err::remove_file(&s.temp);
        }
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("how", &self.how)
            .field("staged", &self.len())
            .finish()
    }
}

/// How a batch makes its temp files durable before renaming them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flush {
    /// `fdatasync` every temp file from a pool of threads; the journal merges the concurrent
    /// flushes into a few commits and only our files are written out. The default.
    #[default]
    Files,
    /// One `syncfs` per filesystem: a single call, but it also writes out every other process's
    /// dirty data on that filesystem (slow on a busy machine).
    Filesystem,
}

fn flush(staged: &[(Staged, PathBuf)], how: Flush) -> Result<(), WriteError> {
    if how == Flush::Filesystem {
        let mut devices = BTreeSet::new();
        for (s, path) in staged {
            if devices.insert(s.device) {
                rustix::fs::syncfs(&s.file)
                    .map_err(|e| io(path, "flushing the filesystem")(e.into()))?;
            }
        }
        return Ok(());
    }
    let workers = staged.len().clamp(1, FLUSH_THREADS);
    let chunk = staged.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = staged
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<(), WriteError> {
                    for (s, path) in part {
                        s.file
                            .sync_data()
                            .map_err(io(path, "flushing the temporary file"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        let mut result = Ok(());
        for handle in handles {
            let outcome = handle.join().unwrap_or_else(|_| {
                Err(WriteError::Io {
                    path: PathBuf::new(),
                    step: "flushing (a flush thread panicked)",
                    source: std::io::Error::other("thread panicked"),
                })
            });
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    })
}

/// Concurrent flushes in [`write_batch`].
const FLUSH_THREADS: usize = 32;

struct Staged {
    file: std::fs::File,
    /// The file the rename replaces (symlinks resolved).
    target: PathBuf,
    temp: PathBuf,
    dir: PathBuf,
    device: u64,
}

fn temp_name(target: &std::ffi::OsStr) -> std::ffi::OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut name = std::ffi::OsString::from(".");
    name.push(target);
    name.push(format!(".hostage-tmp.{}.{n}.{nanos}", std::process::id()));
    name
}

/// Writes `bytes` to a new temp file beside `path` (not yet flushed).
fn stage(path: &Path, bytes: &[u8]) -> Result<Staged, WriteError> {
    stage_with(path, |out| out.write_all(bytes))
}

/// Writes what `content` produces to a new temp file beside `path` (not yet flushed).
fn stage_with(
    path: &Path,
    content: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<Staged, WriteError> {
    let not_a_file = || WriteError::NotAFilePath {
        path: path.to_owned(),
    };
    // Writing through a symlink replaces the file it points to, not the link.
    let resolved;
    let path = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            resolved = std::fs::canonicalize(path).map_err(io(path, "resolving the symlink"))?;
            resolved.as_path()
        }
        _ => path,
    };
    let name = path.file_name().ok_or_else(not_a_file)?;
    let dir = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) => p.to_owned(),
        None => return Err(not_a_file()),
    };
    let existing_mode = std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777);
    let temp = dir.join(temp_name(name));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // New files are created private; an existing file's mode is copied below.
    options.mode(existing_mode.unwrap_or(0o600));
    let mut file = options
        .open(&temp)
        .map_err(io(path, "creating the temporary file"))?;
    let result = (|| {
        let mut out = std::io::BufWriter::new(&mut file);
        content(&mut out).map_err(io(path, "writing the temporary file"))?;
        out.flush()
            .map_err(io(path, "writing the temporary file"))?;
        drop(out);
        if let Some(mode) = existing_mode {
            // `mode()` at creation is filtered by the umask; set it exactly.
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(io(path, "copying the file mode"))?;
        }
        let device = file
            .metadata()
            .map_err(io(path, "reading the temporary file"))?
            .dev();
        Ok(device)
    })();
    match result {
        Ok(device) => Ok(Staged {
            file,
            target: path.to_owned(),
            temp,
            dir,
            device,
        }),
        Err(e) => {
            let _ = fs_err::remove_file(&temp);
            Err(e)
        }
    }
}

fn commit(temp: &Path, path: &Path) -> Result<(), WriteError> {
    fs_err::rename(temp, path).map_err(|e| {
        let _ = fs_err::remove_file(temp);
        io(path, "renaming the temporary file into place")(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_content_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.yaml");
        fs_err::write(&path, b"old").unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs_err::read(&path).unwrap(), b"new");
        assert_eq!(
            fs_err::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        let leftovers: Vec<_> = fs_err::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn writing_through_a_symlink_replaces_its_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("real");
        fs_err::create_dir(&real_dir).unwrap();
        let real = real_dir.join("secret.yaml");
        fs_err::write(&real, b"old").unwrap();
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink("real/secret.yaml", &link).unwrap();
        write(&link, b"new").unwrap();
        write_batch(&[(&link, b"newer")]).unwrap();
        assert!(fs_err::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs_err::read(&real).unwrap(), b"newer");
    }

    #[test]
    fn new_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh");
        write(&path, b"x").unwrap();
        assert_eq!(
            fs_err::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn batch_writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs_err::create_dir(&sub).unwrap();
        let files: Vec<(PathBuf, Vec<u8>)> = (0..20)
            .map(|i| {
                let parent = if i % 2 == 0 {
                    dir.path()
                } else {
                    sub.as_path()
                };
                (
                    parent.join(format!("f{i}")),
                    format!("content {i}").into_bytes(),
                )
            })
            .collect();
        write_batch(&files).unwrap();
        for (path, bytes) in &files {
            assert_eq!(&fs_err::read(path).unwrap(), bytes);
        }
        let again: Vec<(PathBuf, Vec<u8>)> = files
            .iter()
            .map(|(p, _)| (p.clone(), b"syncfs".to_vec()))
            .collect();
        write_batch_with(&again, Flush::Filesystem).unwrap();
        assert_eq!(fs_err::read(&files[3].0).unwrap(), b"syncfs");
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 11);
    }

    #[test]
    fn threads_stage_into_one_batch_and_a_dropped_batch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let batch = Batch::new(Flush::Files);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (batch, dir) = (&batch, dir.path());
                scope.spawn(move || {
                    for i in 0..10 {
                        batch.stage(&dir.join(format!("t{t}-{i}")), b"x").unwrap();
                    }
                });
            }
        });
        assert_eq!(batch.len(), 40);
        batch.commit().unwrap();
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 40);

        let dropped = Batch::new(Flush::Files);
        dropped.stage(&dir.path().join("never"), b"y").unwrap();
        drop(dropped);
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 40);
    }

    #[test]
    fn a_failing_batch_touches_no_target() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        fs_err::write(&good, b"old").unwrap();
        let files = vec![
            (good.clone(), b"new".to_vec()),
            (dir.path().join("missing-dir/file"), b"x".to_vec()),
        ];
        assert!(write_batch(&files).is_err());
        assert_eq!(fs_err::read(&good).unwrap(), b"old");
        assert_eq!(
            fs_err::read_dir(dir.path()).unwrap().count(),
            1,
            "temps removed"
        );
    }
}
