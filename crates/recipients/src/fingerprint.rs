//! The `SHA256:` fingerprint of an SSH key, as `ssh-keygen -l` prints it: what an operator reads
//! on a console and writes into `--expect-fingerprint` or an inventory pin. One type for every
//! crate, so a pin read from the inventory and a key seen on the wire compare directly.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Ed25519PublicKey;

/// An OpenSSH SHA-256 key fingerprint: `SHA256:` and 43 characters of unpadded base64.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

/// A string that is not an OpenSSH SHA-256 fingerprint.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not an OpenSSH SHA256 fingerprint (as `ssh-keygen -l -f KEY.pub` prints: SHA256: and 43 base64 characters)")]
pub struct FingerprintError {
    /// The input.
    pub text: String,
}

impl Fingerprint {
    /// Parses `SHA256:…` as `ssh-keygen -l` prints it (surrounding white space is ignored).
    pub fn parse(text: &str) -> Result<Self, FingerprintError> {
        let text = text.trim();
        let valid = text.strip_prefix("SHA256:").is_some_and(|b64| {
            b64.len() == 43
                && b64
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        });
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(FingerprintError {
                text: text.to_owned(),
            })
        }
    }

    /// The fingerprint of an ed25519 key.
    pub fn of(key: &Ed25519PublicKey) -> Self {
        Self(key.fingerprint())
    }

    /// The `SHA256:…` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = FingerprintError;
    fn try_from(text: String) -> Result<Self, FingerprintError> {
        Self::parse(&text)
    }
}

impl From<Fingerprint> for String {
    fn from(fingerprint: Fingerprint) -> Self {
        fingerprint.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_with_43_base64_characters_is_a_fingerprint() {
        let good = format!("SHA256:{}", "A".repeat(43));
        assert_eq!(
            Fingerprint::parse(&format!(" {good}\n")).unwrap().as_str(),
            good
        );
        for bad in [
            "MD5:aa:bb",
            "SHA256:short",
            &format!("SHA256:{}=", "A".repeat(42)),
            "",
        ] {
            let error = Fingerprint::parse(bad).unwrap_err().to_string();
            assert!(error.contains("ssh-keygen -l"), "{error}");
        }
    }
}
