//! Repo-wide re-key: make every sops file of a repo carry exactly the recipients `.sops.yaml`
//! gives it, as `sops updatekeys` would file by file, but in one parallel, crash-safe run.
//!
//! - [`walk`] lists the candidate files (`.gitignore` respected through `git ls-files`) as a
//!   compact [`FileList`].
//! - [`plan()`] reads each file, asks the rules for its recipients, compares them per key group
//!   and returns a [`Plan`] (unchanged, rewrap, rotate or error, with the reason); it needs no
//!   private key. [`verify`] optionally checks the data keys and MACs (for `--dry-run`).
//! - [`apply`] executes a plan in parallel, in bounded batches written by
//!   `hostage_atomic::write_batch`, going on past per-file errors.
//! - [`Plan::exposure`] says what removed recipients could read; [`RepoLock`] and [`Journal`]
//!   keep two runs from interleaving and let a killed run be finished by the next one.
//!
//! Memory does not grow with the repo: a plan's entries are spilled to an unnamed temp file as
//! they are made and every step (verify, apply, the exposure report, the journal) streams them
//! back in chunks of a few hundred files.
//!
//! It does not print and does not edit `.sops.yaml` (that is `hostage_sops::rules`).

mod apply;
mod error;
mod exposure;
mod plan;
mod state;
mod store;
mod walk;

pub use apply::{apply, apply_with, ApplyOptions, ApplyReport, ApplySeams, BatchHook, FileOutcome};
pub use error::RekeyError;
pub use exposure::{ExposedFile, Exposure, ExposureReport};
pub use plan::{
    carries_sops_metadata, plan, unlock_identities, verify, Action, FilePlan, GroupChange,
    KeyPaths, Plan, PlanOptions, Recipient, Rotate,
};
pub use state::{state_dir, Journal, JournalEntry, RepoLock};
pub use walk::{walk, FileList};

/// Called once per file done (for a progress bar); must be cheap and thread-safe.
pub type Progress<'a> = &'a (dyn Fn() + Sync);

/// Number of worker threads to use when the caller does not say.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The worker threads of one step (planning, verifying, applying), `threads` of them.
///
/// They live as long as the step, so each keeps its own malloc arena. Threads spawned afresh for
/// every chunk would each take one of glibc's arenas (up to 8 per core) in turn, leave it grown,
/// and peak memory would creep up with the number of files (measured: 30 MiB at 30,000 files
/// against 13 MiB with the pool; `docs/benchmarks.md`).
pub(crate) fn workers(threads: usize) -> Result<rayon::ThreadPool, RekeyError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|index| format!("hostage-rekey-{index}"))
        .build()
        .map_err(|e| RekeyError::Threads {
            what: e.to_string(),
        })
}
