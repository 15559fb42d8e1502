//! OpenSSH ed25519 private keys and their conversion to age identities.

use std::fmt;

use curve25519_dalek::edwards::EdwardsPoint;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::{AgeIdentity, Ed25519PublicKey, KeyError, PassphraseProvider};

/// An OpenSSH private key file holding an ed25519 key, possibly still passphrase-protected.
pub struct OpenSshPrivateKey {
    inner: ssh_key::PrivateKey,
    public: Ed25519PublicKey,
}

impl OpenSshPrivateKey {
    /// Parses `-----BEGIN OPENSSH PRIVATE KEY-----` text. Other formats and algorithms get an error
    /// that says how to get an OpenSSH ed25519 key. The error never contains key material.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if let Some(reason) = foreign_format(text) {
            return Err(KeyError::NotAPrivateKey { reason });
        }
        let inner = ssh_key::PrivateKey::from_openssh(text.trim()).map_err(|e| {
            KeyError::NotAPrivateKey {
                reason: format!("the OpenSSH key container is malformed ({e})"),
            }
        })?;
        let algorithm = inner.algorithm();
        let Some(public) = inner.public_key().key_data().ed25519() else {
            return Err(KeyError::NotEd25519 {
                algorithm: algorithm.as_str().to_owned(),
            });
        };
        let public = Ed25519PublicKey::from_bytes(public.0);
        Ok(Self { inner, public })
    }

    /// The public half (readable without the passphrase).
    pub fn public_key(&self) -> Ed25519PublicKey {
        self.public
    }

    /// The key's comment, e.g. `root@gnomeregan`.
    pub fn comment(&self) -> &str {
        self.inner.comment()
    }

    /// Whether a passphrase is needed to [`unlock`](Self::unlock) the key.
    pub fn is_encrypted(&self) -> bool {
        self.inner.is_encrypted()
    }

    /// Decrypts the key (asking `passphrases` only when it is protected) and returns its seed.
    pub fn unlock(
        &self,
        passphrases: &mut dyn PassphraseProvider,
    ) -> Result<Ed25519Seed, KeyError> {
        let seed = if self.inner.is_encrypted() {
            let passphrase = passphrases
                .passphrase(&self.public)
                .ok_or(KeyError::PassphraseRequired)?;
            let decrypted =
                self.inner
                    .decrypt(passphrase.expose().as_bytes())
                    .map_err(|e| match e {
                        ssh_key::Error::Crypto => KeyError::WrongPassphrase,
                        other => KeyError::NotAPrivateKey {
                            reason: format!("cannot decrypt it ({other})"),
                        },
                    })?;
            seed_of(&decrypted)?
        } else {
            seed_of(&self.inner)?
        };
        if seed.public_key() != self.public {
            return Err(KeyError::NotAPrivateKey {
                reason: "its private half does not match its public half (corrupt file)".to_owned(),
            });
        }
        Ok(seed)
    }
}

impl fmt::Debug for OpenSshPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OpenSshPrivateKey([REDACTED] for {})",
            self.public.fingerprint()
        )
    }
}

fn seed_of(key: &ssh_key::PrivateKey) -> Result<Ed25519Seed, KeyError> {
    let keypair = key
        .key_data()
        .ed25519()
        .ok_or_else(|| KeyError::NotEd25519 {
            algorithm: key.algorithm().as_str().to_owned(),
        })?;
    Ok(Ed25519Seed(Zeroizing::new(keypair.private.to_bytes())))
}

/// Names PEM formats that are not the OpenSSH container, with what to do about them.
fn foreign_format(text: &str) -> Option<String> {
    let text = text.trim_start();
    if text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        return None;
    }
    if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return Some(
            "this is already an age identity (AGE-SECRET-KEY-1…); nothing to convert".to_owned(),
        );
    }
    if text.starts_with("ssh-") {
        return Some(
            "this is a public key; --private expects the private key file (without .pub)"
                .to_owned(),
        );
    }
    for kind in [
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "DSA PRIVATE KEY",
        "PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ] {
        if text.starts_with(&format!("-----BEGIN {kind}-----")) {
            return Some(format!(
                "this is a PEM `{kind}`; hostage reads OpenSSH-format ed25519 keys (`ssh-keygen -t ed25519` writes one)"
            ));
        }
    }
    Some("expected `-----BEGIN OPENSSH PRIVATE KEY-----`".to_owned())
}

/// The 32-byte seed of an ed25519 private key. Wiped when dropped.
pub struct Ed25519Seed(Zeroizing<[u8; 32]>);

impl Ed25519Seed {
    /// Wraps a seed.
    pub fn from_bytes(seed: Zeroizing<[u8; 32]>) -> Self {
        Self(seed)
    }

    /// The age identity for the converted key: the first 32 bytes of SHA-512(seed), *not*
    /// clamped, exactly as Mic92's `ssh-to-age -private-key` prints it.
    pub fn to_age_identity(&self) -> AgeIdentity {
        let mut scalar = Zeroizing::new([0u8; 32]);
        scalar.copy_from_slice(&self.expanded()[..32]);
        AgeIdentity::from_scalar(scalar)
    }

    /// The ed25519 public key of this seed (RFC 8032: clamped SHA-512 prefix times the base point).
    pub fn public_key(&self) -> Ed25519PublicKey {
        let mut scalar = Zeroizing::new([0u8; 32]);
        scalar.copy_from_slice(&self.expanded()[..32]);
        Ed25519PublicKey::from_bytes(
            EdwardsPoint::mul_base_clamped(*scalar)
                .compress()
                .to_bytes(),
        )
    }

    fn expanded(&self) -> Zeroizing<[u8; 64]> {
        let mut hash = Zeroizing::new([0u8; 64]);
        hash.copy_from_slice(&Sha512::digest(self.0.as_slice()));
        hash
    }
}

impl fmt::Debug for Ed25519Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ed25519Seed([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Passphrase;

    // Mic92/ssh-to-age cmd/ssh-to-age/test-assets: public test keys, see tests/vectors/README.md.
    const MIC92_KEY: &str = include_str!("../tests/vectors/mic92/id_ed25519");
    const MIC92_KEY_PASSPHRASE: &str = include_str!("../tests/vectors/mic92/id_ed25519_passphrase");

    struct Fixed(Option<&'static str>);
    impl PassphraseProvider for Fixed {
        fn passphrase(&mut self, _: &Ed25519PublicKey) -> Option<Passphrase> {
            self.0.map(|p| Passphrase::new(p.to_owned()))
        }
    }

    #[test]
    fn private_key_converts_to_mic92_vector_without_clamping() {
        let key = OpenSshPrivateKey::parse(MIC92_KEY).unwrap();
        let identity = key.unlock(&mut Fixed(None)).unwrap().to_age_identity();
        assert_eq!(
            identity.to_secret_string().as_str(),
            "AGE-SECRET-KEY-1K3VN4N03PTHJWSJSCCMQCN33RY5FSKQPJ4KRRTG3JMQUYE0TUSEQEDH6V8"
        );
        assert_eq!(
            identity.recipient().to_string(),
            "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452"
        );
        assert_eq!(key.comment(), "joerg@turingmachine");
    }

    #[test]
    fn passphrase_protected_key_needs_the_right_passphrase() {
        let key = OpenSshPrivateKey::parse(MIC92_KEY_PASSPHRASE).unwrap();
        assert!(key.is_encrypted());
        assert!(matches!(
            key.unlock(&mut Fixed(None)),
            Err(KeyError::PassphraseRequired)
        ));
        assert!(matches!(
            key.unlock(&mut Fixed(Some("wrong"))),
            Err(KeyError::WrongPassphrase)
        ));
        let identity = key
            .unlock(&mut Fixed(Some("test")))
            .unwrap()
            .to_age_identity();
        assert_eq!(
            identity.recipient(),
            key.public_key().to_age_recipient().unwrap()
        );
    }

    #[test]
    fn foreign_formats_get_a_hint() {
        let err = OpenSshPrivateKey::parse("-----BEGIN RSA PRIVATE KEY-----\nMII\n").unwrap_err();
        assert!(err.to_string().contains("OpenSSH-format ed25519"), "{err}");
        let err = OpenSshPrivateKey::parse(
            "AGE-SECRET-KEY-1K3VN4N03PTHJWSJSCCMQCN33RY5FSKQPJ4KRRTG3JMQUYE0TUSEQEDH6V8",
        )
        .unwrap_err();
        assert!(err.to_string().contains("already an age identity"), "{err}");
        assert!(
            !err.to_string().contains("K3VN4N03"),
            "secret leaked into: {err}"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The public path (Edwards point → Montgomery) and the private path (SHA-512 scalar →
        /// X25519 base-point multiplication) must land on the same recipient for every key.
        #[test]
        fn public_and_private_conversions_agree(seed in any::<[u8; 32]>()) {
            let seed = Ed25519Seed::from_bytes(Zeroizing::new(seed));
            let from_public = seed.public_key().to_age_recipient().unwrap();
            let from_private = seed.to_age_identity().recipient();
            prop_assert_eq!(from_public, from_private);
        }

        #[test]
        fn converted_identities_round_trip_through_text(seed in any::<[u8; 32]>()) {
            let identity = Ed25519Seed::from_bytes(Zeroizing::new(seed)).to_age_identity();
            let parsed = crate::AgeIdentity::parse(&identity.to_secret_string()).unwrap();
            prop_assert_eq!(parsed.recipient(), identity.recipient());
            let recipient = crate::AgeRecipient::parse(&identity.recipient().to_string()).unwrap();
            prop_assert_eq!(recipient, identity.recipient());
        }
    }
}
