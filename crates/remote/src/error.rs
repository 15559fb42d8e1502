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
