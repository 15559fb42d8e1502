//! Keys and recipients: everything hostage knows about ssh-ed25519 and age X25519 keys.
//!
//! - [`parse_key_lines`] reads OpenSSH public keys in every shape operators paste around (bare lines,
//!   `authorized_keys` with options, `known_hosts` and `ssh-keyscan` output) into [`SshKeyLine`]s.
//! - [`Ed25519PublicKey::to_age_recipient`] and [`Ed25519Seed::to_age_identity`] convert between
//!   the two worlds exactly like Mic92's `ssh-to-age` (the secret scalar is *not* clamped, so the
//!   `AGE-SECRET-KEY-1…` strings are byte-identical to his tool's).
//! - [`IdentitySet::load`] finds the identities that can decrypt, in the places sops looks.
//!
//! This crate does no network, no sops file handling and no printing; private keys only ever live in
//! memory, in zeroizing types.

mod age_keys;
mod error;
mod fingerprint;
mod identities;
mod ssh_private;
mod ssh_public;

pub use age_keys::{AgeIdentity, AgeRecipient, RecipientString};
pub use error::KeyError;
pub use fingerprint::{Fingerprint, FingerprintError};
pub use identities::{
    IdentityCandidate, IdentityLoadProblem, IdentityOptions, IdentitySet, IdentitySource,
    Passphrase, PassphraseProvider,
};
pub use ssh_private::{Ed25519Seed, OpenSshPrivateKey};
pub use ssh_public::{parse_key_lines, Ed25519PublicKey, KeyLineError, SshKeyLine};
