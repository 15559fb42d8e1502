//! What can stop a re-key as a whole (per-file problems are entries of the plan or the report).

use std::path::PathBuf;

/// An error that stops the whole run.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    /// A path given to walk cannot be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `git ls-files` failed in a git work tree.
    #[error("cannot list the files of `{}` with git: {message}", path.display())]
    Git {
        /// The directory.
        path: PathBuf,
        /// What git said.
        message: String,
    },
    /// Another run holds the repo's lock.
    #[error("another `hostage rekey` is running in this repo (lock `{}` held{})", path.display(), holder.as_ref().map(|h| format!(" by pid {h}")).unwrap_or_default())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The pid written by the holder, if readable.
        holder: Option<String>,
    },
    /// The lock or the journal cannot be written or read.
    #[error("cannot use the re-key state in `{}`: {what}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What failed.
        what: String,
    },
    /// The temp file a plan is spilled to cannot be written or read.
    #[error("cannot use the plan's temporary file in `{}`: {what} (check the space there, or point TMPDIR elsewhere)", dir.display())]
    Spill {
        /// The temp directory.
        dir: PathBuf,
        /// What failed.
        what: String,
    },
    /// The worker threads cannot be started.
    #[error("cannot start the worker threads: {what} (try a lower --jobs)")]
    Threads {
        /// What failed.
        what: String,
    },
}
