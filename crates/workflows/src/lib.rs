//! The workflows: what an operator runs (onboard, offboard, rotate, restore, rotate-infra, rotate-key,
//! backup-host-key, set, status, and the re-key of a whole repository), each as gather (SSH answers, file bytes: the facts) → plan (a
//! pure function of the facts) → apply, on top of the inventory, the `.sops.yaml` rules, the
//! re-key engine and the fleet over SSH. Every run that writes a secrets repository goes through
//! one [`session::RepoSession`] (lock, a killed run's journal, compare-and-swap writes).
//!
//! Nothing here prints: callers get plans, reports and typed errors as values and may pass a
//! progress callback. The `hostage` binary parses arguments and renders what this crate returns.

pub mod backup_host_key;
pub mod check;
pub mod commit;
pub mod error;
pub mod fleet;
pub mod fleet_inventory;
pub mod host_key;
mod key_proof;
mod key_rotation;
pub mod names;
pub mod new_sops_file;
pub mod offboard;
pub mod onboard;
pub mod plaintext;
pub mod rekey;
pub mod rekey_identities;
pub mod restore;
pub mod rotate;
pub mod rotate_infra;
pub mod rotate_key;
pub mod session;
pub mod set;
pub mod status;

pub use error::{Context, Result, WorkflowError};
pub use fleet_inventory::{FleetInventory, InventoryPins, DEFAULT_INVENTORY};

/// What a long workflow step reports while it runs (the CLI draws it with indicatif on a
/// terminal). Every method has a do-nothing default; `()` reports nothing.
pub trait Progress: Sync {
    /// A step of `len` units starts (`planning`, `checking keys`, `re-keying`).
    fn phase(&self, _what: &'static str, _len: usize) {}
    /// One unit of the current step is done.
    fn advance(&self) {}
    /// The current step is over.
    fn done(&self) {}
    /// Something the operator should know that does not stop the run.
    fn warn(&self, _message: &str) {}
}

impl Progress for () {}

/// A single-threaded async runtime for the fleet operations a workflow runs (SSH through
/// `openssh`); one per call, so no runtime outlives the workflow.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `path` made absolute against the current directory, without resolving symlinks (ssh and sops
/// run from other directories); unchanged if the current directory cannot be known.
pub fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Expands a leading `~/` to `$HOME/`.
pub fn expand_home(path: &std::path::Path) -> std::path::PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => path.to_owned(),
    }
}
