use std::path::PathBuf;

/// Why a key could not be read or converted. Messages are written for the operator: they say what
/// was wrong and what to do instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not an OpenSSH public key line at all.
    #[error("not an OpenSSH public key line (expected `ssh-ed25519 AAAA… [comment]`, optionally after a host name or authorized_keys options)")]
    NotAKeyLine,

    /// The base64 blob of a key line could not be decoded or is malformed.
    #[error("the {algorithm} key blob is malformed: {reason}")]
    MalformedBlob {
        /// Algorithm named on the line.
        algorithm: String,
        /// What was wrong with the blob.
        reason: &'static str,
    },

    /// A `known_hosts` line with a marker (`@cert-authority`, `@revoked`): not a host key.
    #[error("this known_hosts line is marked {marker}: its key is a CA or revoked key, not a host's own key")]
    MarkerLine {
        /// The marker, e.g. `@cert-authority`.
        marker: String,
    },

    /// A key of an algorithm other than ed25519.
    #[error("sops-nix derives age identities from ed25519 keys only; this key is {algorithm}")]
    NotEd25519 {
        /// The key's algorithm, e.g. `ssh-rsa`.
        algorithm: String,
    },

    /// A host that offered keys, none of them ed25519.
    #[error(
        "sops-nix derives age identities from ed25519 keys only; this host has only {algorithms}"
    )]
    HostWithoutEd25519 {
        /// The algorithms the host offered, e.g. `ssh-rsa, ecdsa-sha2-nistp256`.
        algorithms: String,
    },

    /// An OpenSSH certificate instead of a plain key.
    #[error("this is an OpenSSH certificate ({algorithm}), not a key; give the plain key instead (for a host: /etc/ssh/ssh_host_ed25519_key.pub)")]
    Certificate {
        /// The certificate type, e.g. `ssh-ed25519-cert-v01@openssh.com`.
        algorithm: String,
    },

    /// The 32 bytes are not a usable point on the ed25519 curve.
    #[error("the ed25519 key is not a valid curve point ({reason}); the key is corrupt or was not made by ssh-keygen")]
    InvalidPoint {
        /// Why the point was rejected.
        reason: &'static str,
    },

    /// An `ssh-ed25519` recipient where an `age1…` recipient is required.
    #[error("`ssh-ed25519 …` is an age SSH recipient, not an X25519 `age1…` recipient; the two are different recipients and do not interoperate: sops-nix hosts decrypt with the age key converted from their host key, so use {converted}")]
    SshRecipientWhereAgeNeeded {
        /// The converted `age1…` recipient the user most likely wants.
        converted: String,
    },

    /// A string that should be an age X25519 recipient is not one.
    #[error("`{given}` is not an age X25519 recipient ({reason})")]
    InvalidAgeRecipient {
        /// The offending text, shortened.
        given: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A string that should be an age identity is not one. The text itself is never included.
    #[error("not an age identity: {reason}")]
    InvalidAgeIdentity {
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The private key file is not an OpenSSH private key.
    #[error("not an OpenSSH private key: {reason}")]
    NotAPrivateKey {
        /// Why it was rejected.
        reason: String,
    },

    /// The private key is passphrase-protected and no passphrase was available.
    #[error("the private key is protected by a passphrase and none was given (interactive prompt needs a terminal; for scripts use --passphrase-file or HOSTAGE_SSH_PASSPHRASE)")]
    PassphraseRequired,

    /// The passphrase did not decrypt the private key.
    #[error("wrong passphrase for the private key")]
    WrongPassphrase,

    /// Reading a key file failed.
    #[error("cannot read {path}")]
    Io {
        /// File that could not be read.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}
