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

use sha2::{Digest as _, Sha256};

/// A write that failed; the target is left as it was (its old content, or absent).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target changed after it was read (see [`FileStamp`]); the other writer's content is
    /// kept and this write was dropped.
    #[error("`{}` changed after it was read (someone else wrote it meanwhile); it was left as they wrote it: run again", path.display())]
    Changed {
        /// The target.
        path: PathBuf,
    },
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

/// What a file looked like when it was read, so a batch can refuse to rename over it once it has
/// changed: a writer that reads, computes and then replaces a file (a re-key) would otherwise
/// silently erase an edit made in between (`sops edit` rewrites the file in place; an editor
/// renames a new file over it).
///
/// The check compares device, inode, size, modification and change time (`ctime` cannot be set
/// by user space, so `touch -d` does not hide a write). A file whose change time was still
/// "recent" when it was read (within [`SETTLE`]) may be written again within the same coarse
/// timestamp tick of an older kernel without its times moving; for such a file the content
/// itself is compared as well (SHA-256).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    /// SHA-256 of the content read, kept only when the times alone cannot prove "unchanged".
    digest: Option<[u8; 32]>,
}

/// How old a file's change time must be, when it is read, for its times alone to show later
/// writes (kernel timestamps are taken from a clock that ticks every few milliseconds).
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for FileStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStamp")
            .field("device", &self.device)
            .field("inode", &self.inode)
            .field("size", &self.size)
            .field("checks_content", &self.digest.is_some())
            .finish()
    }
}

impl FileStamp {
    /// The stamp of a file read as `content`, whose metadata (`File::metadata` of the handle it
    /// was read from, taken before reading) is `metadata`.
    pub fn new(metadata: &std::fs::Metadata, content: &[u8]) -> Self {
        let changed = (metadata.ctime(), metadata.ctime_nsec());
        let settled = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|now| i64::try_from(now.saturating_sub(SETTLE).as_secs()).ok())
            .is_some_and(|limit| changed.0 < limit);
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed,
            digest: (!settled).then(|| Sha256::digest(content).into()),
        }
    }

    fn same_times(&self, metadata: &std::fs::Metadata) -> bool {
        self.device == metadata.dev()
            && self.inode == metadata.ino()
            && self.size == metadata.size()
            && self.modified == (metadata.mtime(), metadata.mtime_nsec())
            && self.changed == (metadata.ctime(), metadata.ctime_nsec())
    }

    /// Whether `path` (followed if a symlink, as it was read) still is the file stamped.
    fn still_matches(&self, path: &Path) -> bool {
        let Ok(metadata) = std::fs::metadata(path) else {
            return false;
        };
        if !self.same_times(&metadata) {
            return false;
        }
        match &self.digest {
            None => true,
            Some(digest) => fs_err::read(path)
                .is_ok_and(|bytes| Sha256::digest(&bytes).as_slice() == digest.as_slice()),
        }
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

/// What [`Batch::commit_checked`] did not write: the targets that changed after they were read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// Targets left as someone else wrote them (the paths as given to
    /// [`stage_if_unchanged`](Batch::stage_if_unchanged)).
    pub changed: Vec<PathBuf>,
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

    /// [`stage`](Self::stage) for a target that was read as `read`: on commit it is replaced only
    /// if it is still that file, checked right before its rename; otherwise it is left alone.
    pub fn stage_if_unchanged(
        &self,
        path: &Path,
        bytes: &[u8],
        read: FileStamp,
    ) -> Result<(), WriteError> {
        let mut staged = stage(path, bytes)?;
        staged.expected = Some(read);
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
    ///
    /// A target staged with [`stage_if_unchanged`](Self::stage_if_unchanged) that changed since
    /// it was read fails the commit with [`WriteError::Changed`] (after every other file is
    /// written); [`commit_checked`](Self::commit_checked) reports such files instead.
    pub fn commit(self) -> Result<(), WriteError> {
        let committed = self.commit_checked(&|| {})?;
        match committed.changed.into_iter().next() {
            Some(path) => Err(WriteError::Changed { path }),
            None => Ok(()),
        }
    }

    /// Like [`commit`](Self::commit), but a target that changed after it was read is skipped and
    /// listed, not an error: its temp file is removed and the other writer's content stays.
    /// `before_renames` runs after the flush, right before the first check and rename (a test
    /// seam: an edit it makes lands exactly in the window the check guards; pass `&|| {}`).
    pub fn commit_checked(self, before_renames: &dyn Fn()) -> Result<Committed, WriteError> {
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
        before_renames();
        let mut committed = Committed::default();
        let mut directories = Vec::new();
        for (index, (s, path)) in staged.iter().enumerate() {
            if s.expected
                .is_some_and(|read| !read.still_matches(&s.target))
            {
                let _ = fs_err::remove_file(&s.temp);
                committed.changed.push(path.clone());
                continue;
            }
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
        Ok(committed)
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
    /// The target as it was read, when the rename must not overwrite a later change.
    expected: Option<FileStamp>,
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
    // Writing through a symlink replaces the file it points to, not the link. One `lstat`
    // answers both "is it a link" and, for a plain file, its mode and device.
    let resolved;
    let linked = std::fs::symlink_metadata(path).ok();
    let (path, existing) = match linked {
        Some(meta) if meta.file_type().is_symlink() => {
            resolved = std::fs::canonicalize(path).map_err(io(path, "resolving the symlink"))?;
            (resolved.as_path(), std::fs::metadata(&resolved).ok())
        }
        other => (path, other),
    };
    let name = path.file_name().ok_or_else(not_a_file)?;
    let dir = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) => p.to_owned(),
        None => return Err(not_a_file()),
    };
    let existing_mode = existing.as_ref().map(|m| m.permissions().mode() & 0o7777);
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
        // The temp sits beside the target, on its filesystem (a rename could not cross one).
        let device = match &existing {
            Some(meta) => meta.dev(),
            None => file
                .metadata()
                .map_err(io(path, "reading the temporary file"))?
                .dev(),
        };
        Ok(device)
    })();
    match result {
        Ok(device) => Ok(Staged {
            file,
            target: path.to_owned(),
            temp,
            dir,
            device,
            expected: None,
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

    fn stamp_of(path: &Path) -> FileStamp {
        let file = std::fs::File::open(path).unwrap();
        let metadata = file.metadata().unwrap();
        FileStamp::new(&metadata, &fs_err::read(path).unwrap())
    }

    #[test]
    fn a_target_edited_after_it_was_read_keeps_the_edit_and_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (edited, quiet) = (dir.path().join("edited"), dir.path().join("quiet"));
        fs_err::write(&edited, b"read").unwrap();
        fs_err::write(&quiet, b"read").unwrap();
        let batch = Batch::new(Flush::Files);
        batch
            .stage_if_unchanged(&edited, b"ours", stamp_of(&edited))
            .unwrap();
        batch
            .stage_if_unchanged(&quiet, b"ours", stamp_of(&quiet))
            .unwrap();
        // In place and the same size, as `sops edit` rewrites a file.
        let committed = batch
            .commit_checked(&|| fs_err::write(&edited, b"them").unwrap())
            .unwrap();
        assert_eq!(committed.changed, std::slice::from_ref(&edited));
        assert_eq!(fs_err::read(&edited).unwrap(), b"them");
        assert_eq!(fs_err::read(&quiet).unwrap(), b"ours");
        assert_eq!(
            fs_err::read_dir(dir.path()).unwrap().count(),
            2,
            "temp removed"
        );
    }

    #[test]
    fn a_target_replaced_by_rename_after_it_was_read_is_left_alone_and_commit_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs_err::write(&target, b"read").unwrap();
        let stamp = stamp_of(&target);
        let other = dir.path().join("editor-save");
        fs_err::write(&other, b"read").unwrap();
        fs_err::rename(&other, &target).unwrap();
        let batch = Batch::new(Flush::Files);
        batch.stage_if_unchanged(&target, b"ours", stamp).unwrap();
        match batch.commit() {
            Err(WriteError::Changed { path }) => assert_eq!(path, target),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(fs_err::read(&target).unwrap(), b"read");
    }

    #[test]
    fn a_recently_changed_target_is_compared_by_content_too() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs_err::write(&target, b"on disk").unwrap();
        let metadata = std::fs::metadata(&target).unwrap();
        // Just written, so its times alone prove nothing: the content read decides.
        let read_other = FileStamp::new(&metadata, b"not what is on disk");
        assert!(read_other.digest.is_some());
        assert!(!read_other.still_matches(&target));
        let read_same = FileStamp::new(&metadata, b"on disk");
        assert!(read_same.still_matches(&target));
    }

    #[test]
    fn an_unchanged_target_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs_err::write(&target, b"read").unwrap();
        let batch = Batch::new(Flush::Files);
        batch
            .stage_if_unchanged(&target, b"ours", stamp_of(&target))
            .unwrap();
        batch.commit().unwrap();
        assert_eq!(fs_err::read(&target).unwrap(), b"ours");
    }
}
