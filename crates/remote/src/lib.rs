//! The fleet over SSH: fetch each host's ed25519 host key *with verification* (the key the host
//! shows in the handshake must be trusted — by a pin or the user's known_hosts — and must equal the
//! host's key file read over the authenticated session), and deploy the shared infrastructure key
//! without ever exposing it (stdin only, `umask 0377`, atomic rename, verified by fingerprint).
//!
//! It drives the system OpenSSH through the `openssh` crate (one control master per host and run),
//! so the user's ssh config, agents, ProxyJump, certificates and known_hosts semantics apply.
//! It does not print, parse command lines or know about `.sops.yaml`; callers get typed results
//! per host and a progress callback.

mod backup;
mod connect;
mod deploy;
mod error;
mod fetch;
mod fleet;
mod host;
mod restore;
mod run_dir;
mod trust;
mod wipe;

pub use backup::BackedUpHost;
pub use deploy::{
    DeployAction, DeployOptions, DeployedHost, InfrastructureKey, InfrastructureKeyError,
};
pub use error::{FleetError, HostError, KeyFileError};
pub use fetch::FetchedHost;
pub use fleet::{
    deploy, fetch, read_host_private_key, restore_host_key, wipe_file, FleetOptions, HostResult,
    HostTarget,
};
pub use host::{HostSpec, HostSpecError};
pub use restore::{RestoreAction, RestoreOptions, RestoredHost};
pub use trust::{Fingerprint, FingerprintError, PinFile, PinFileError, PinRecorder, VerifiedBy};
pub use wipe::WipedHost;

/// Where a host's ed25519 public key lives unless told otherwise.
pub const DEFAULT_HOST_KEY_PATH: &str = "/etc/ssh/ssh_host_ed25519_key.pub";
/// Where the infrastructure key is deployed unless told otherwise.
pub const DEFAULT_DEPLOY_PATH: &str = "/root/id_infrastructure";
/// Hosts worked on at once unless told otherwise.
pub const DEFAULT_JOBS: usize = 16;
