//! What can go wrong reading, verifying or re-writing a sops file.

/// An error of the sops engine. Never contains plaintext or key material.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// The bytes are not a sops file in any format we know.
    #[error("not a sops-encrypted file: {reason}")]
    NotSops {
        /// Why.
        reason: String,
    },
    /// The file looks like sops but some part of it cannot be read.
    #[error("malformed sops file: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
    },
    /// No identity could open enough key groups.
    #[error(
        "no identity can decrypt this file ({opened} of {needed} key group(s) opened)\n  file recipients:\n{}\n  identities tried:\n{}{}",
        list(recipients), list(tried),
        if problems.is_empty() { String::new() } else { format!("\n  identity sources that failed:\n{}", list(problems)) }
    )]
    NoIdentity {
        /// Key groups opened.
        opened: usize,
        /// Key groups needed (the Shamir threshold, or 1).
        needed: usize,
        /// Every master key of the file, as `group N: kind recipient`.
        recipients: Vec<String>,
        /// Every identity that was tried, as `recipient (source)`.
        tried: Vec<String>,
        /// Identity sources that were set but could not be loaded.
        problems: Vec<String>,
    },
    /// An `ENC[…]` value does not decrypt with the data key (wrong key, or tampered value).
    #[error(
        "the value at `{path}` does not decrypt with the data key (tampered file or wrong key)"
    )]
    ValueDecrypt {
        /// The value's path (its AAD).
        path: String,
    },
    /// The MAC does not match the content.
    #[error("MAC mismatch: the file's content does not match its MAC (tampered or corrupt); refusing (an explicit override exists)")]
    MacMismatch,
    /// The operation needs something this engine does not do.
    #[error("cannot {action}: {reason}")]
    Unsupported {
        /// What was asked.
        action: String,
        /// Why it cannot be done.
        reason: String,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "    (none)".into();
    }
    items
        .iter()
        .map(|i| format!("    - {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn malformed(what: impl Into<String>) -> SopsError {
    SopsError::Malformed { what: what.into() }
}
