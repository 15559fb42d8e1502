//! What hostage does to its own process before anything else: memory that holds data keys,
//! plaintext values and private keys must not end up in a core file or be read by a debugger,
//! and the secrets operators hand over in environment variables must not reach the children
//! hostage starts (ssh, its `ProxyCommand`/`KnownHostsCommand`/`LocalCommand`, sops), nor a
//! host through a `SendEnv`.
//!
//! - [`harden`]: `RLIMIT_CORE` 0 (inherited by children) and `PR_SET_DUMPABLE` 0 (no core, no
//!   ptrace attach by other processes of the same user, `/proc/<pid>/environ` and `mem` owned by
//!   root).
//! - [`capture_secret_environment`]: reads [`SECRET_VARIABLES`] once into zeroizing strings and
//!   removes them from the process environment, so no child can inherit them;
//!   [`secret_environment`] hands the captured values to the identity loader and the passphrase
//!   provider.
//!
//! It does not print; the binary calls both first thing in `main`, before any thread starts.

use std::sync::OnceLock;

use zeroize::Zeroizing;

/// The variables that carry secrets: an age identity and the passphrases of SSH keys.
pub const SECRET_VARIABLES: [&str; 3] = [
    "SOPS_AGE_KEY",
    "HOSTAGE_SSH_PASSPHRASE",
    "SSH_TO_AGE_PASSPHRASE",
];

/// The secret variables as they were when hostage started. `Debug` shows which are set, never
/// a value.
#[derive(Default)]
pub struct SecretEnvironment {
    sops_age_key: Option<Zeroizing<String>>,
    hostage_ssh_passphrase: Option<Zeroizing<String>>,
    ssh_to_age_passphrase: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for SecretEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<Zeroizing<String>>| v.as_ref().map(|_| "[REDACTED]");
        f.debug_struct("SecretEnvironment")
            .field("SOPS_AGE_KEY", &shown(&self.sops_age_key))
            .field(
                "HOSTAGE_SSH_PASSPHRASE",
                &shown(&self.hostage_ssh_passphrase),
            )
            .field("SSH_TO_AGE_PASSPHRASE", &shown(&self.ssh_to_age_passphrase))
            .finish()
    }
}

impl SecretEnvironment {
    /// Values given explicitly (tests, and library users that read their own configuration).
    pub fn new(
        sops_age_key: Option<&str>,
        hostage_ssh_passphrase: Option<&str>,
        ssh_to_age_passphrase: Option<&str>,
    ) -> Self {
        let own = |v: Option<&str>| v.map(|v| Zeroizing::new(v.to_owned()));
        Self {
            sops_age_key: own(sops_age_key),
            hostage_ssh_passphrase: own(hostage_ssh_passphrase),
            ssh_to_age_passphrase: own(ssh_to_age_passphrase),
        }
    }

    /// `SOPS_AGE_KEY` (one or more `AGE-SECRET-KEY-1…` lines), when set and not empty.
    pub fn sops_age_key(&self) -> Option<&Zeroizing<String>> {
        self.sops_age_key.as_ref().filter(|v| !v.is_empty())
    }

    /// The passphrase for protected SSH keys: `HOSTAGE_SSH_PASSPHRASE`, else Mic92's
    /// `SSH_TO_AGE_PASSPHRASE`.
    pub fn ssh_passphrase(&self) -> Option<&Zeroizing<String>> {
        self.hostage_ssh_passphrase
            .as_ref()
            .or(self.ssh_to_age_passphrase.as_ref())
    }

    fn read(remove: Removal) -> Self {
        let take = |name: &str| {
            let value = std::env::var_os(name)?;
            if remove == Removal::Remove {
                // Edition 2021: safe. Called before any thread starts (see `capture_…`).
                std::env::remove_var(name);
            }
            // A value that is not UTF-8 cannot be a key or a passphrase we can use.
            value.into_string().ok().map(Zeroizing::new)
        };
        Self {
            sops_age_key: take("SOPS_AGE_KEY"),
            hostage_ssh_passphrase: take("HOSTAGE_SSH_PASSPHRASE"),
            ssh_to_age_passphrase: take("SSH_TO_AGE_PASSPHRASE"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal {
    Remove,
    Keep,
}

static CAPTURED: OnceLock<SecretEnvironment> = OnceLock::new();

/// Reads [`SECRET_VARIABLES`] and removes them from this process's environment, so no child
/// inherits them; later calls return the first capture. Call it first thing in `main`, before
/// any thread starts: removing a variable races with C code reading the environment.
///
/// The kernel's copy of the initial environment (`/proc/<pid>/environ`) is not rewritten; after
/// [`harden`] only root can read it.
pub fn capture_secret_environment() -> &'static SecretEnvironment {
    CAPTURED.get_or_init(|| SecretEnvironment::read(Removal::Remove))
}

/// The captured secret variables. In a process that never called
/// [`capture_secret_environment`] (a test, a library user), the variables are read now and left
/// in place.
pub fn secret_environment() -> &'static SecretEnvironment {
    CAPTURED.get_or_init(|| SecretEnvironment::read(Removal::Keep))
}

/// Hardening that failed; the binary refuses to go on without it.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step}")]
pub struct HardenError {
    /// What could not be done.
    pub step: &'static str,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// No core dumps (also for children: the limit is inherited) and no ptrace attach: memory holds
/// data keys, plaintext values and private keys.
pub fn harden() -> Result<(), HardenError> {
    use rustix::process::{Resource, Rlimit};
    rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| HardenError {
        step: "disable core dumps (setrlimit RLIMIT_CORE 0)",
        source: e.into(),
    })?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| HardenError {
            step: "forbid ptrace attach (prctl PR_SET_DUMPABLE 0)",
            source: e.into(),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hardening_sets_the_core_limit_to_zero_and_the_process_not_dumpable() {
        harden().unwrap();
        let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((limit.current, limit.maximum), (Some(0), Some(0)));
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let env = SecretEnvironment::new(Some("AGE-SECRET-KEY-1XYZ"), Some("hunter2"), None);
        let text = format!("{env:?}");
        assert!(!text.contains("XYZ") && !text.contains("hunter2"), "{text}");
        assert!(text.contains("[REDACTED]"));
    }

    #[test]
    fn the_hostage_passphrase_wins_over_ssh_to_age_s() {
        let both = SecretEnvironment::new(None, Some("mine"), Some("theirs"));
        assert_eq!(both.ssh_passphrase().unwrap().as_str(), "mine");
        let theirs = SecretEnvironment::new(Some(""), None, Some("theirs"));
        assert_eq!(theirs.ssh_passphrase().unwrap().as_str(), "theirs");
        assert!(
            theirs.sops_age_key().is_none(),
            "empty means unset, as in sops"
        );
    }
}
