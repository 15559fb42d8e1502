//! The data key: recovering it from age `enc` blobs (one group, or Shamir shares of several) and
//! wrapping it for new recipients.

use std::fmt;
use std::io::Read as _;

use hostage_recipients::{IdentitySet, PassphraseProvider, RecipientString};
use zeroize::Zeroizing;

use crate::metadata::Metadata;
use crate::{shamir, SopsError};

/// The 32-byte data key of a sops file (and, for several key groups, every group's share).
/// Wiped when dropped; `Debug` never shows it.
#[derive(Clone)]
pub struct DataKey {
    key: Zeroizing<[u8; 32]>,
    /// One share per key group (`y… x`), when the file has several groups.
    shares: Option<Vec<Zeroizing<Vec<u8>>>>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

impl DataKey {
    /// The raw key (AES-256).
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// A fresh random key, split for `groups` groups with `threshold`.
    pub(crate) fn generate(groups: usize, threshold: usize) -> Result<Self, SopsError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, key.as_mut());
        Self::from_key(key, groups, threshold)
    }

    fn from_key(
        key: Zeroizing<[u8; 32]>,
        groups: usize,
        threshold: usize,
    ) -> Result<Self, SopsError> {
        let shares = if groups > 1 {
            let parts = u8::try_from(groups).map_err(|_| too_many_groups())?;
            let threshold = u8::try_from(threshold).map_err(|_| too_many_groups())?;
            Some(shamir::split(key.as_ref(), parts, threshold))
        } else {
            None
        };
        Ok(Self { key, shares })
    }

    /// The bytes that group `index`'s `enc` blobs hold: the key itself, or that group's share.
    pub(crate) fn payload_for_group(&self, index: usize) -> Result<&[u8], SopsError> {
        match &self.shares {
            None if index == 0 => Ok(self.key.as_ref()),
            None => Err(SopsError::Unsupported {
                action: "re-wrap".into(),
                reason: "the data key was recovered for a single key group".into(),
            }),
            Some(shares) => {
                shares
                    .get(index)
                    .map(|s| s.as_slice())
                    .ok_or_else(|| SopsError::Unsupported {
                        action: "re-wrap".into(),
                        reason: format!("the file has no key group {}", index + 1),
                    })
            }
        }
    }

    /// Number of groups this key was split for (1 when not split).
    pub(crate) fn group_count(&self) -> usize {
        self.shares.as_ref().map_or(1, Vec::len)
    }
}

fn too_many_groups() -> SopsError {
    SopsError::Unsupported {
        action: "split the data key".into(),
        reason: "more than 255 key groups".into(),
    }
}

/// Decrypts an armored age file with one identity.
fn open_enc(identity: &age::x25519::Identity, enc: &str) -> Option<Zeroizing<Vec<u8>>> {
    let decryptor =
        age::Decryptor::new_buffered(age::armor::ArmoredReader::new(enc.as_bytes())).ok()?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .ok()?;
    let mut out = Zeroizing::new(Vec::new());
    reader.read_to_end(&mut out).ok()?;
    Some(out)
}

/// Encrypts `payload` to one X25519 recipient as sops does (armored, one stanza).
pub(crate) fn wrap_for(recipient: &str, payload: &[u8]) -> Result<String, SopsError> {
    let unsupported = |reason: String| SopsError::Unsupported {
        action: format!("encrypt the data key to `{recipient}`"),
        reason,
    };
    match RecipientString::parse(recipient) {
        Ok(RecipientString::X25519(_)) => {}
        Ok(_) => {
            return Err(unsupported(
                "only age X25519 (`age1…`) recipients can be added; SSH, plugin and post-quantum recipients are kept but not created".into(),
            ))
        }
        Err(e) => return Err(unsupported(e.to_string())),
    }
    let parsed: age::x25519::Recipient = recipient
        .trim()
        .parse()
        .map_err(|e: &str| unsupported(e.to_owned()))?;
    let text = crate::age_file::encrypt_armored(&parsed, payload).map_err(unsupported)?;
    Ok(text)
}

/// Recovers the data key of a file with `identities`.
pub(crate) fn recover(
    meta: &Metadata,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
) -> Result<DataKey, SopsError> {
    let mut tried: Vec<String> = Vec::new();
    let mut shares: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let needed = if meta.groups.len() > 1 {
        meta.threshold.max(1)
    } else {
        1
    };
    'groups: for group in &meta.groups {
        for entry in &group.age {
            let Ok(RecipientString::X25519(recipient)) = RecipientString::parse(&entry.recipient)
            else {
                continue;
            };
            let Some(candidate) = identities.find(&recipient) else {
                continue;
            };
            let identity = match candidate.identity(passphrases) {
                Ok(identity) => identity,
                Err(e) => {
                    tried.push(format!(
                        "{} ({}): {e}",
                        candidate.recipient, candidate.source
                    ));
                    continue;
                }
            };
            if let Some(payload) = open_enc(&identity.to_age(), &entry.enc) {
                shares.push(payload);
                if shares.len() >= needed {
                    break 'groups;
                }
                continue 'groups;
            }
            tried.push(format!(
                "{} ({}): its stanza did not decrypt",
                candidate.recipient, candidate.source
            ));
        }
    }
    if shares.len() < needed {
        let mut all_tried: Vec<String> = identities
            .candidates
            .iter()
            .map(|c| format!("{} ({})", c.recipient, c.source))
            .collect();
        all_tried.extend(tried);
        return Err(SopsError::NoIdentity {
            opened: shares.len(),
            needed,
            recipients: meta.describe_keys(),
            tried: all_tried,
            problems: identities
                .problems
                .iter()
                .map(ToString::to_string)
                .collect(),
        });
    }
    if meta.groups.len() == 1 {
        let payload = &shares[0];
        let key: [u8; 32] = payload
            .as_slice()
            .try_into()
            .map_err(|_| SopsError::Malformed {
                what: format!("the data key is {} bytes, expected 32", payload.len()),
            })?;
        return Ok(DataKey {
            key: Zeroizing::new(key),
            shares: None,
        });
    }
    let points: Vec<&[u8]> = shares.iter().map(|s| s.as_slice()).collect();
    let bad_shares = || SopsError::Malformed {
        what: "the Shamir shares do not combine (different lengths or repeated groups)".into(),
    };
    let secret = shamir::interpolate(&points, 0).ok_or_else(bad_shares)?;
    let key: [u8; 32] = secret.as_slice().try_into().map_err(|_| bad_shares())?;
    let mut all = Vec::with_capacity(meta.groups.len());
    for index in 0..meta.groups.len() {
        let x = u8::try_from(index + 1).map_err(|_| too_many_groups())?;
        let mut share = shamir::interpolate(&points, x).ok_or_else(bad_shares)?;
        share.push(x);
        all.push(share);
    }
    Ok(DataKey {
        key: Zeroizing::new(key),
        shares: Some(all),
    })
}
