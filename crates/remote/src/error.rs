//! What can go wrong, per host and for the whole run. Texts are written for the operator: they
//! name the fingerprints involved and say what to do.

use crate::Fingerprint;

/// Why one host failed. The other hosts of the run are not affected.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Nothing answered (refused, no route, unknown name).
    #[error("unreachable: {detail}")]
    Unreachable {
        /// ssh's own words.
        detail: String,
    },
    /// The host did not finish within the per-host timeout.
    #[error("timed out after {seconds}s (raise --timeout if the host is just slow)")]
    TimedOut {
        /// The timeout.
        seconds: u64,
    },
    /// The host refused our login.
    #[error("authentication failed: {detail} (check the user, your agent or IdentityFile)")]
    AuthFailed {
        /// ssh's own words.
        detail: String,
    },
    /// The host offers no ed25519 host key, so it has no age recipient.
    #[error("the host offers no ed25519 host key ({detail}); generate one with `ssh-keygen -A` on the host")]
    NoEd25519HostKey {
        /// ssh's own words.
        detail: String,
    },
    /// The handshake key does not match the pin: refused, nothing else ran.
    #[error(
        "REFUSED: the host presented {presented} but the pin is {expected}; this is a man-in-the-middle \
         or a reinstalled host: check out of band, then update the pin"
    )]
    PinMismatch {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// What the host presented.
        presented: Fingerprint,
    },
    /// ssh found a different key for this host in known_hosts: refused, nothing else ran.
    #[error(
        "REFUSED: the host presented {} but known_hosts has {} ({entry}); check out of band before \
         removing the old entry",
        presented.as_ref().map_or("an unknown key", |f| f.as_str()),
        known.as_ref().map_or("another key", |f| f.as_str())
    )]
    KnownHostsMismatch {
        /// What the host presented.
        presented: Option<Fingerprint>,
        /// What known_hosts holds, when it could be read.
        known: Option<Fingerprint>,
        /// ssh's "Offending … key in FILE:LINE".
        entry: String,
    },
    /// Neither a pin nor known_hosts vouches for the host key, and `--trust-new` was not given.
    #[error(
        "REFUSED: unknown host key{}; pass --expect-fingerprint SHA256:… after checking it out of band, \
         add it to known_hosts, or accept it once with --trust-new",
        presented.as_ref().map(|f| format!(" {f}")).unwrap_or_default()
    )]
    UnknownHost {
        /// What the host presented.
        presented: Option<Fingerprint>,
    },
    /// The authenticated host's key file holds another key than the one in the handshake.
    #[error(
        "REFUSED: the handshake key is {handshake} but {path} on the host holds {file}; something \
         between you and the host answers with its own key, or the file is stale"
    )]
    KeyFileMismatch {
        /// The remote key file.
        path: String,
        /// The key presented in the SSH handshake.
        handshake: Fingerprint,
        /// The key found in the file.
        file: Fingerprint,
    },
    /// The remote key file could not be used.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// A different infrastructure key is already deployed and `--replace` was not given.
    #[error(
        "{target} on the host holds another key ({existing}); not replaced: pass --replace to \
         replace it with {new}"
    )]
    DeployKeyDiffers {
        /// The remote target path.
        target: String,
        /// Fingerprint of the key already there (or why it could not be read).
        existing: String,
        /// Fingerprint of the key we would deploy.
        new: Fingerprint,
    },
    /// Writing the key on the host failed; the target was left as it was.
    #[error("deploying to {target} failed: {detail}")]
    Deploy {
        /// The remote target path.
        target: String,
        /// What the remote side reported.
        detail: String,
    },
    /// Recording the pin of a newly trusted host failed.
    #[error("cannot record the new pin: {0}")]
    PinRecord(String),
    /// Any other ssh failure.
    #[error("ssh failed: {detail}")]
    Ssh {
        /// ssh's own words.
        detail: String,
    },
}

impl HostError {
    /// A stable machine name for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::TimedOut { .. } => "timeout",
            Self::AuthFailed { .. } => "auth-failed",
            Self::NoEd25519HostKey { .. } => "no-ed25519-host-key",
            Self::PinMismatch { .. } => "pin-mismatch",
            Self::KnownHostsMismatch { .. } => "known-hosts-mismatch",
            Self::UnknownHost { .. } => "unknown-host",
            Self::KeyFileMismatch { .. } => "key-file-mismatch",
            Self::KeyFile(_) => "key-file",
            Self::DeployKeyDiffers { .. } => "deployed-key-differs",
            Self::Deploy { .. } => "deploy-failed",
            Self::PinRecord(_) => "pin-record",
            Self::Ssh { .. } => "ssh",
        }
    }

    /// What the operator should do, when the message (the host's own words) does not say it:
    /// for a login user that `sudo -n` refuses (or a host without sudo), which commands hostage
    /// runs as root and the two ways to allow them.
    pub fn hint(&self) -> Option<&'static str> {
        let text = self.to_string();
        if SUDO_REFUSALS.iter().any(|refusal| text.contains(refusal)) {
            Some(SUDO_HINT)
        } else if SUDO_MISSING.iter().any(|missing| text.contains(missing)) {
            Some(NO_SUDO_HINT)
        } else {
            None
        }
    }

    /// True for the refusals that mean "this key is not to be trusted" (as opposed to failures).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::PinMismatch { .. }
                | Self::KnownHostsMismatch { .. }
                | Self::UnknownHost { .. }
                | Self::KeyFileMismatch { .. }
        )
    }
}

/// What sudo (1.8 and 1.9) says when `sudo -n` will not run a command: a password would be
/// needed, or the user may not run it at all.
const SUDO_REFUSALS: &[&str] = &[
    "sudo: a password is required",
    "sudo: a terminal is required",
    "is not in the sudoers file",
    "is not allowed to execute",
    "may not run sudo",
];

/// What the host's shell says when there is no sudo to run.
const SUDO_MISSING: &[&str] = &["sudo: not found", "sudo: command not found"];

/// The commands hostage runs as root through `sudo -n` (the remote scripts of `fetch.rs`,
/// `backup.rs`, `deploy.rs` and `wipe.rs`), and the two ways to let it.
const SUDO_HINT: &str = "the login user is not root, so hostage runs these commands as root through `sudo -n` (which never asks for a password): `cat` (fetch and backup-host-key read a host key only root can read), `test` and `ssh-keygen` (deploy looks at the key in place), `sh` (deploy, rotate --from-backup and offboard --wipe-remote write or delete a key; allowing `sh` is allowing everything). Give that user passwordless sudo for them (a sudoers `NOPASSWD:` rule; on NixOS `security.sudo.extraRules`), or log in as root (`user: root` for the host in the inventory)";

/// [`SUDO_HINT`] for a host that has no sudo.
const NO_SUDO_HINT: &str = "the login user is not root and the host has no sudo: log in as root (`user: root` for the host in the inventory), or install sudo with a passwordless (`NOPASSWD:`) rule for `cat`, `test`, `ssh-keygen` and `sh`";

/// The host's public key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading it failed even with `sudo -n`.
    #[error("cannot read {path} on the host: {detail}")]
    Unreadable {
        /// The remote path.
        path: String,
        /// What the host said.
        detail: String,
    },
    /// It holds no ed25519 public key.
    #[error("{path} on the host holds no ed25519 public key: {detail}")]
    NotEd25519 {
        /// The remote path.
        path: String,
        /// What was found instead.
        detail: String,
    },
}

/// A failure of the whole run, before any host was contacted.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The private working directory for control sockets could not be made.
    #[error("cannot create a private directory for ssh control sockets")]
    RunDir(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_user_sudo_refuses_gets_a_hint_naming_the_commands_and_the_root_login() {
        let refused = HostError::KeyFile(KeyFileError::Unreadable {
            path: "/etc/ssh/ssh_host_ed25519_key".to_owned(),
            detail: "sudo: a password is required".to_owned(),
        });
        let hint = refused.hint().expect("a hint");
        for named in [
            "`cat`",
            "`test`",
            "`ssh-keygen`",
            "`sh`",
            "NOPASSWD",
            "user: root",
        ] {
            assert!(hint.contains(named), "{named} missing from: {hint}");
        }
        let not_in_sudoers = HostError::Deploy {
            target: "/root/id_infrastructure".to_owned(),
            detail: "op is not in the sudoers file.  This incident will be reported.".to_owned(),
        };
        assert_eq!(not_in_sudoers.hint(), Some(SUDO_HINT));
        let no_sudo = HostError::Ssh {
            detail: "sh: 1: sudo: not found".to_owned(),
        };
        assert_eq!(no_sudo.hint(), Some(NO_SUDO_HINT));
    }

    #[test]
    fn other_host_failures_get_no_sudo_hint() {
        let failures = [
            HostError::Unreachable {
                detail: "connection refused".to_owned(),
            },
            HostError::KeyFile(KeyFileError::Unreadable {
                path: "/etc/ssh/ssh_host_ed25519_key.pub".to_owned(),
                detail: "cat: /etc/ssh/ssh_host_ed25519_key.pub: No such file or directory"
                    .to_owned(),
            }),
        ];
        for failure in failures {
            assert_eq!(failure.hint(), None, "{failure}");
        }
    }
}
