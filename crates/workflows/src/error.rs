//! What stops a workflow. Errors of the crates below pass through as they are (their text already
//! names the file, line, host or recipient); a workflow's own refusals carry what to do next as
//! data ([`WorkflowError::hint`]), so the binary prints `error:`, `caused by:` and `hint:` without
//! downcasting anything.

use std::path::PathBuf;

/// Why a workflow stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// A workflow refused to go on (a host not confirmed, a key that contradicts its pin, a file
    /// the planner cannot handle…); the message says what and where.
    #[error("{message}")]
    Refused {
        /// What is wrong, and where.
        message: String,
        /// What to do about it, when the message alone does not say.
        hint: Option<String>,
    },
    /// A file this run read was changed by someone else before the run wrote it back: the run
    /// refuses to overwrite the other edit.
    #[error("{} was changed by someone else while this run was working; nothing of it was overwritten", path.display())]
    ChangedBySomeoneElse {
        /// The file.
        path: PathBuf,
    },
    /// An applied run stopped after the step its options named (a test seam; nothing is lost:
    /// every write before it is durable and the next run finishes the work).
    #[error("stopped after the {step} step, as asked")]
    StoppedAfter {
        /// The step's name.
        step: String,
    },
    /// A re-key needs a data key and none of the identities found opens any of the files to
    /// change: said once, before anything is read for writing, instead of once per file.
    #[error(
        "none of your identities opens any of the {files} file(s) to re-key; nothing was written\n  recipients that would open them:\n{}\n  identity sources tried:\n{}",
        indented(recipients),
        indented(tried)
    )]
    NoIdentity {
        /// How many files the run would change.
        files: usize,
        /// The recipients of those files (`name (age1…)`), perhaps cut short with a last line
        /// saying how many more.
        recipients: Vec<String>,
        /// Every identity source, in the order tried, with why it gave nothing usable.
        tried: Vec<String>,
    },
    /// What this workflow was doing when a lower error happened.
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// The error underneath.
        #[source]
        source: Box<WorkflowError>,
    },
    /// The `.sops.yaml` rules.
    #[error(transparent)]
    Rules(#[from] hostage_sops::rules::RulesError),
    /// A sops file.
    #[error(transparent)]
    Sops(#[from] hostage_sops::SopsError),
    /// The re-key engine, its lock or journal.
    #[error(transparent)]
    Rekey(#[from] hostage_rekey::RekeyError),
    /// The inventory.
    #[error(transparent)]
    Inventory(#[from] hostage_inventory::InventoryError),
    /// A key or an identity.
    #[error(transparent)]
    Key(#[from] hostage_recipients::KeyError),
    /// One host of the fleet.
    #[error(transparent)]
    Host(#[from] hostage_remote::HostError),
    /// The fleet run as a whole.
    #[error(transparent)]
    Fleet(#[from] hostage_remote::FleetError),
    /// The infrastructure key file.
    #[error(transparent)]
    InfrastructureKey(#[from] hostage_remote::InfrastructureKeyError),
    /// A fingerprint.
    #[error(transparent)]
    Fingerprint(#[from] hostage_remote::FingerprintError),
    /// An atomic write.
    #[error(transparent)]
    Write(#[from] hostage_atomic::WriteError),
    /// A file read or directory operation (`fs-err` names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Building or encoding an SSH key (a generated host key).
    #[error(transparent)]
    SshKey(#[from] ssh_key::Error),
    /// A record of this crate (the rotation state) that is not valid JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// One item per line, indented under a heading of a multi-line message.
fn indented(items: &[String]) -> String {
    if items.is_empty() {
        return "    (none)".to_owned();
    }
    items
        .iter()
        .map(|item| format!("    {item}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The result of a workflow step.
pub type Result<T, E = WorkflowError> = std::result::Result<T, E>;

impl WorkflowError {
    /// A refusal with its message and no hint.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::Refused {
            message: message.into(),
            hint: None,
        }
    }

    /// A refusal with its message and what to do.
    pub fn refused_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Refused {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// What the operator should do next, from the first error of the chain that knows.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Self::Refused { hint, .. } => hint.as_deref(),
            Self::ChangedBySomeoneElse { .. } => {
                Some("run the command again: it reads the new content and plans from it")
            }
            Self::StoppedAfter { .. } => Some("run the command again to finish"),
            Self::NoIdentity { .. } => Some(
                "give hostage the private key of one of those recipients: `--identity FILE` (an age identity file or an OpenSSH ed25519 key), `SOPS_AGE_KEY_FILE=FILE`, or the inventory's `recipients.workstation.identity` (with `--inventory`)",
            ),
            Self::Context { source, .. } => source.hint(),
            Self::Key(key) => key_hint(key),
            Self::Host(host) => host.hint(),
            Self::Rekey(hostage_rekey::RekeyError::Locked { .. }) => {
                Some("wait for the other run to finish, then run this again")
            }
            _ => None,
        }
    }

    /// Whether an I/O error in the chain is a broken pipe (the reader went away: not an error).
    pub fn is_broken_pipe(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return true;
            }
            cause = error.source();
        }
        false
    }
}

/// What to do about a key error, where the message alone does not say.
pub fn key_hint(error: &hostage_recipients::KeyError) -> Option<&'static str> {
    use hostage_recipients::KeyError;
    match error {
        KeyError::WrongPassphrase => Some("check the passphrase with `ssh-keygen -y -f KEY`"),
        KeyError::NotEd25519 { .. } | KeyError::HostWithoutEd25519 { .. } => Some(
            "generate an ed25519 host key (`ssh-keygen -t ed25519`; NixOS does by default) and use its .pub",
        ),
        _ => None,
    }
}

/// Adds what the workflow was doing to an error (like `anyhow::Context`, typed).
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// Wraps the error with the text `context` makes (only computed on error).
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<WorkflowError>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| WorkflowError::Context {
            context: context.into(),
            source: Box::new(e.into()),
        })
    }

    fn with_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| WorkflowError::Context {
            context: context(),
            source: Box::new(e.into()),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| WorkflowError::refused(context))
    }

    fn with_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| WorkflowError::refused(context()))
    }
}

/// Returns a [`WorkflowError::Refused`] made with `format!`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::WorkflowError::refused(format!($($arg)*)))
    };
}
pub(crate) use bail;
