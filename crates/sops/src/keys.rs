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
    /// When the file has several key groups: per group, its Shamir share (`y… x`) if known. A
    /// share is known when an identity opened it (or the key was just split); it is never
    /// computed for a group that was not opened, because that group's x is unknown (sops before
    /// 3.10 chose x at random) and a second point of the polynomial in one group would let its
    /// members reach the threshold together.
    shares: Option<Vec<Option<Zeroizing<Vec<u8>>>>>,
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
            Some(
                shamir::split(key.as_ref(), parts, threshold)
                    .into_iter()
                    .map(Some)
                    .collect(),
            )
        } else {
            None
        };
        Ok(Self { key, shares })
    }

    /// The bytes that group `index`'s `enc` blobs hold: the key itself, or exactly the share
    /// the group already holds (its own x), so a new member never gets a second point.
    pub(crate) fn payload_for_group(&self, index: usize) -> Result<&[u8], SopsError> {
        match &self.shares {
            None if index == 0 => Ok(self.key.as_ref()),
            None => Err(SopsError::Unsupported {
                action: "re-wrap".into(),
                reason: "the data key was recovered for a single key group".into(),
            }),
            Some(shares) => match shares.get(index) {
                Some(Some(share)) => Ok(share.as_slice()),
                Some(None) => Err(SopsError::Unsupported {
                    action: format!("add a recipient to key group {}", index + 1),
                    reason: format!(
                        "no identity given opens key group {0}, so its Shamir share is unknown (its x coordinate may be any value: sops before 3.10 chose it at random) and a second share would let that group's members reach the threshold together; run with an identity of key group {0}, or rotate the file's data key with `sops rotate -i` first",
                        index + 1
                    ),
                }),
                None => Err(SopsError::Unsupported {
                    action: "re-wrap".into(),
                    reason: format!("the file has no key group {}", index + 1),
                }),
            },
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
    // (group index, payload) of every group an identity opens: all of them, not just
    // `threshold`, so that any opened group can be given new members with its own share.
    let mut shares: Vec<(usize, Zeroizing<Vec<u8>>)> = Vec::new();
    let needed = if meta.groups.len() > 1 {
        meta.threshold.max(1)
    } else {
        1
    };
    'groups: for (index, group) in meta.groups.iter().enumerate() {
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
                shares.push((index, payload));
                if meta.groups.len() == 1 {
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
        let payload = &shares[0].1;
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
    // The key from the first `needed` shares (a bad share in some further group does not spoil
    // it; that group's members keep exactly what they hold).
    let points: Vec<&[u8]> = shares
        .iter()
        .take(needed)
        .map(|(_, s)| s.as_slice())
        .collect();
    let bad_shares = || SopsError::Malformed {
        what: "the Shamir shares do not combine (different lengths or repeated groups)".into(),
    };
    let secret = shamir::interpolate(&points, 0).ok_or_else(bad_shares)?;
    let key: [u8; 32] = secret.as_slice().try_into().map_err(|_| bad_shares())?;
    let mut all: Vec<Option<Zeroizing<Vec<u8>>>> = vec![None; meta.groups.len()];
    for (index, share) in shares {
        if let Some(slot) = all.get_mut(index) {
            *slot = Some(share);
        }
    }
    Ok(DataKey {
        key: Zeroizing::new(key),
        shares: Some(all),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{AgeEntry, KeyGroup};
    use hostage_recipients::{AgeIdentity, IdentitySource};

    fn member(share: &[u8]) -> (AgeIdentity, AgeEntry) {
        let secret = age::x25519::Identity::generate();
        let recipient = secret.to_public().to_string();
        let identity = AgeIdentity::parse(secret.to_string().expose_secret()).unwrap();
        let enc = wrap_for(&recipient, share).unwrap();
        (identity, AgeEntry { recipient, enc })
    }

    fn meta(groups: Vec<KeyGroup>, threshold: usize) -> Metadata {
        Metadata {
            groups,
            flat: false,
            threshold,
            lastmodified: "2026-01-01T00:00:00Z".into(),
            mac: String::new(),
            mac_only_encrypted: false,
            version: None,
        }
    }

    /// Shares of `secret` at the given x coordinates (a line: threshold 2).
    fn shares_at(secret: &[u8; 32], xs: &[u8]) -> Vec<Vec<u8>> {
        let base = shamir::split(secret, 2, 2);
        let points: Vec<&[u8]> = base.iter().map(|s| s.as_slice()).collect();
        xs.iter()
            .map(|x| {
                let mut share = shamir::interpolate(&points, *x).unwrap().to_vec();
                share.push(*x);
                share
            })
            .collect()
    }

    use age::secrecy::ExposeSecret as _;

    #[test]
    fn new_members_get_the_share_their_group_holds_at_its_own_x() {
        let secret = [7u8; 32];
        let shares = shares_at(&secret, &[37, 200]);
        let (alice, alice_entry) = member(&shares[0]);
        let (bob, bob_entry) = member(&shares[1]);
        let groups = vec![
            KeyGroup {
                age: vec![alice_entry],
                others: Vec::new(),
            },
            KeyGroup {
                age: vec![bob_entry],
                others: Vec::new(),
            },
        ];
        let identities =
            IdentitySet::from_identities(IdentitySource::KeyVariable, vec![alice, bob]);
        let key = recover(&meta(groups, 2), &identities, &mut ()).unwrap();
        assert_eq!(key.bytes(), &secret);
        assert_eq!(key.payload_for_group(0).unwrap(), shares[0].as_slice());
        assert_eq!(key.payload_for_group(1).unwrap(), shares[1].as_slice());
    }

    #[test]
    fn a_group_no_identity_opened_gets_no_new_share() {
        let secret = [9u8; 32];
        let shares = shares_at(&secret, &[1, 2, 3]);
        let members: Vec<(AgeIdentity, AgeEntry)> = shares.iter().map(|s| member(s)).collect();
        let groups = members
            .iter()
            .map(|(_, entry)| KeyGroup {
                age: vec![entry.clone()],
                others: Vec::new(),
            })
            .collect();
        let identities = IdentitySet::from_identities(
            IdentitySource::KeyVariable,
            vec![members[0].0.clone(), members[1].0.clone()],
        );
        let key = recover(&meta(groups, 2), &identities, &mut ()).unwrap();
        assert_eq!(key.bytes(), &secret);
        let refused = key.payload_for_group(2).unwrap_err().to_string();
        assert!(refused.contains("key group 3"), "{refused}");
        assert!(refused.contains("identity of key group 3"), "{refused}");
    }
}
