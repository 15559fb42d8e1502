//! age X25519 recipients and identities, in their bech32 text form.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32, Hrp};
use curve25519_dalek::montgomery::MontgomeryPoint;
use zeroize::{Zeroize, Zeroizing};

use crate::{Ed25519PublicKey, KeyError};

const RECIPIENT_HRP: &str = "age";
const IDENTITY_HRP: &str = "age-secret-key-";

/// An age X25519 recipient (`age1…`): the Montgomery u-coordinate of a public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgeRecipient([u8; 32]);

impl AgeRecipient {
    /// Wraps the 32 bytes of a Montgomery u-coordinate.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses an `age1…` X25519 recipient, explaining the usual mistakes (an `ssh-ed25519` key, a
    /// plugin or post-quantum recipient) instead of just saying "invalid".
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        match RecipientString::parse(text)? {
            RecipientString::X25519(recipient) => Ok(recipient),
            RecipientString::Ssh { ed25519, .. } => match ed25519 {
                Some(key) => Err(KeyError::SshRecipientWhereAgeNeeded {
                    converted: key.to_age_recipient()?.to_string(),
                }),
                None => Err(KeyError::InvalidAgeRecipient {
                    given: shorten(text),
                    reason: "an SSH key of another algorithm; sops-nix hosts need an `age1…` recipient converted from their ed25519 host key",
                }),
            },
            RecipientString::Plugin(_) => Err(KeyError::InvalidAgeRecipient {
                given: shorten(text),
                reason: "an age plugin recipient (e.g. a YubiKey); hostage manages X25519 `age1…` recipients only",
            }),
            RecipientString::PostQuantum(_) => Err(KeyError::InvalidAgeRecipient {
                given: shorten(text),
                reason: "a post-quantum `age1pq1…` recipient; hostage manages X25519 `age1…` recipients only",
            }),
        }
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(RECIPIENT_HRP);
        // Encoding 32 bytes under a short valid HRP cannot exceed any bech32 length limit.
        let text = bech32::encode::<Bech32>(hrp, &self.0).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeRecipient({self})")
    }
}

impl FromStr for AgeRecipient {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Any recipient string as sops stores it, classified the way sops' `parseRecipient` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientString {
    /// `age1…`: an X25519 recipient (what sops-nix hosts decrypt with).
    X25519(AgeRecipient),
    /// `ssh-ed25519 …` / `ssh-rsa …`: an age SSH recipient, stored verbatim by sops.
    Ssh {
        /// The line as written (sops compares these strings exactly, comment included).
        line: String,
        /// The ed25519 key, when the line is a valid `ssh-ed25519` key.
        ed25519: Option<Ed25519PublicKey>,
    },
    /// `age1<plugin>1…`: an age plugin recipient.
    Plugin(String),
    /// `age1pq1…`: a hybrid post-quantum recipient (sops 3.12+).
    PostQuantum(String),
}

impl RecipientString {
    /// Classifies and validates a recipient string (surrounding white space is ignored, as in sops).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.starts_with("ssh-") {
            let ed25519 = crate::parse_key_lines(text)
                .into_iter()
                .next()
                .and_then(|line| line.ok())
                .map(|line| line.key);
            return Ok(Self::Ssh {
                line: text.to_owned(),
                ed25519,
            });
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("age1pq1") {
            return Ok(Self::PostQuantum(text.to_owned()));
        }
        if !lower.starts_with("age1") {
            return Err(KeyError::InvalidAgeRecipient {
                given: shorten(text),
                reason: "it does not start with `age1`",
            });
        }
        // A plugin recipient has the form age1<name>1<data>. The bech32 data alphabet has no '1',
        // so a second '1' can only be a plugin name's separator.
        // Like age (and so sops), its bech32 checksum must hold: a placeholder such as
        // `age1example1qqq…` is refused, not carried along as a plugin nobody can encrypt to.
        if text.matches('1').count() > 1 {
            CheckedHrpstring::new::<Bech32>(text).map_err(|_| KeyError::InvalidAgeRecipient {
                given: shorten(text),
                reason: "it looks like an age plugin recipient (`age1<plugin>1…`), but its bech32 checksum or encoding is invalid",
            })?;
            return Ok(Self::Plugin(text.to_owned()));
        }
        let bytes =
            decode_bech32(text, RECIPIENT_HRP).map_err(|reason| KeyError::InvalidAgeRecipient {
                given: shorten(text),
                reason,
            })?;
        let bytes: [u8; 32] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::InvalidAgeRecipient {
                    given: shorten(text),
                    reason: "it does not hold 32 bytes",
                })?;
        Ok(Self::X25519(AgeRecipient(bytes)))
    }
}

/// An age X25519 identity (`AGE-SECRET-KEY-1…`). The scalar is kept exactly as given (not
/// clamped; X25519 clamps on use), so a converted SSH key prints like Mic92's `ssh-to-age`.
#[derive(Clone)]
pub struct AgeIdentity {
    scalar: Zeroizing<[u8; 32]>,
}

impl AgeIdentity {
    /// Wraps 32 secret bytes. The caller's copy should be zeroized by the caller.
    pub fn from_scalar(scalar: Zeroizing<[u8; 32]>) -> Self {
        Self { scalar }
    }

    /// Parses `AGE-SECRET-KEY-1…`. The error never contains the text.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if !text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-1") {
            return Err(KeyError::InvalidAgeIdentity {
                reason: "it does not start with AGE-SECRET-KEY-1",
            });
        }
        let mut bytes = decode_bech32(text, IDENTITY_HRP)
            .map_err(|reason| KeyError::InvalidAgeIdentity { reason })?;
        let mut scalar = Zeroizing::new([0u8; 32]);
        let ok = bytes.len() == 32;
        if ok {
            scalar.copy_from_slice(&bytes);
        }
        bytes.zeroize();
        if !ok {
            return Err(KeyError::InvalidAgeIdentity {
                reason: "it does not hold 32 bytes",
            });
        }
        Ok(Self { scalar })
    }

    /// The recipient that this identity decrypts for.
    pub fn recipient(&self) -> AgeRecipient {
        AgeRecipient(MontgomeryPoint::mul_base_clamped(*self.scalar).to_bytes())
    }

    /// The `AGE-SECRET-KEY-1…` text, in a buffer that is wiped when dropped.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let hrp = Hrp::parse_unchecked(IDENTITY_HRP);
        let lower = Zeroizing::new(
            bech32::encode::<Bech32>(hrp, self.scalar.as_slice())
                .expect("32 bytes under a short valid HRP are always encodable"),
        );
        Zeroizing::new(lower.to_ascii_uppercase())
    }

    /// The identity as the `age` crate's type, for decrypting age files (e.g. sops data keys).
    pub fn to_age(&self) -> age::x25519::Identity {
        age::x25519::Identity::from_str(&self.to_secret_string())
            .expect("our own AGE-SECRET-KEY encoding is always valid for age")
    }
}

impl fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeIdentity([REDACTED] for {})", self.recipient())
    }
}

impl PartialEq for AgeIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.scalar.as_slice() == other.scalar.as_slice()
    }
}

fn decode_bech32(text: &str, expected_hrp: &str) -> Result<Vec<u8>, &'static str> {
    let checked = CheckedHrpstring::new::<Bech32>(text)
        .map_err(|_| "its bech32 checksum or encoding is invalid")?;
    if checked.hrp().to_lowercase() != expected_hrp {
        return Err("it has the wrong bech32 prefix");
    }
    Ok(checked.byte_iter().collect())
}

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_round_trips_through_text() {
        let text = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452";
        let recipient = AgeRecipient::parse(text).unwrap();
        assert_eq!(recipient.to_string(), text);
    }

    #[test]
    fn recipient_with_bad_checksum_is_rejected() {
        let text = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn453";
        let err = AgeRecipient::parse(text).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn ssh_recipient_error_explains_and_offers_the_converted_key() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji joerg@turingmachine";
        let err = AgeRecipient::parse(line).unwrap_err().to_string();
        assert!(err.contains("do not interoperate"), "{err}");
        assert!(
            err.contains("age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452"),
            "{err}"
        );
    }

    #[test]
    fn plugin_and_post_quantum_recipients_are_classified() {
        assert!(matches!(
            RecipientString::parse(
                "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t"
            )
            .unwrap(),
            RecipientString::Plugin(_)
        ));
        let placeholder = RecipientString::parse(
            "age1example1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
        )
        .unwrap_err()
        .to_string();
        assert!(placeholder.contains("checksum"), "{placeholder}");
        assert!(matches!(
            RecipientString::parse("age1pq1abcdef").unwrap(),
            RecipientString::PostQuantum(_)
        ));
    }

    #[test]
    fn identity_debug_never_shows_the_secret() {
        let identity = AgeIdentity::from_scalar(Zeroizing::new([7u8; 32]));
        let debug = format!("{identity:?}");
        assert!(debug.contains("REDACTED"));
        assert!(!debug.contains(identity.to_secret_string().as_str()));
    }

    #[test]
    fn identity_round_trips_through_text_without_clamping() {
        let scalar = [0xffu8; 32];
        let identity = AgeIdentity::from_scalar(Zeroizing::new(scalar));
        let parsed = AgeIdentity::parse(&identity.to_secret_string()).unwrap();
        assert_eq!(*parsed.scalar, scalar);
    }
}
