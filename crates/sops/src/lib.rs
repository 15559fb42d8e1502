//! The native sops engine: reads sops-encrypted files in every format, recovers and verifies the
//! data key, re-wraps it for a new set of recipients and rotates it, writing bytes sops accepts.
//! Also the `.sops.yaml` creation rules: finding, parsing, matching and lossless editing.
//!
//! Entry point: [`SopsFile::parse`], then [`SopsFile::data_key`], [`SopsFile::verify_mac`],
//! [`SopsFile::decrypt`], [`SopsFile::rewrap`] and [`SopsFile::rotate`]. Output is always edited
//! text: bytes the operation does not change stay identical. Writing files is the caller's job
//! (through `hostage-atomic`). New files ([`create`], [`create_from_tree`]) and single values
//! ([`SopsFile::set`]) are written natively in sops 3.11's layout, so nothing runs `sops`.
//!
//! It does no network and no printing; plaintext only ever lives in memory.

mod age_file;
mod cipher;
mod create;
#[cfg(test)]
mod create_properties;
mod error;
mod format;
#[cfg(test)]
mod fuzz_tests;
mod keys;
mod metadata;
pub mod rules;
mod set;
mod shamir;
mod timefmt;
mod tree;

use hostage_recipients::{IdentitySet, PassphraseProvider};
use sha2::{Digest as _, Sha512};
use zeroize::Zeroizing;

pub use create::{
    create, create_from_tree, data_block_tree, format_for_new_file, single_value_tree,
    EncryptionRule, NewFileOptions, DEFAULT_UNENCRYPTED_SUFFIX, SOPS_VERSION,
};
pub use error::SopsError;
pub use format::Format;
pub use keys::DataKey;
pub use metadata::{AgeEntry, KeyGroup, MasterKey, Metadata};
pub use set::SetOutcome;
pub use timefmt::now_rfc3339;
pub use tree::{Tree, Value};

use cipher::{aad_for, EncValue};
use error::malformed;
use format::{Edit, Slot};

/// SHA-256("sops"): fed first into the MAC when `mac_only_encrypted` is set.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// Whether a MAC mismatch stops an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacCheck {
    /// Refuse files whose MAC does not match (the default everywhere).
    Verify,
    /// Go on anyway (the user's explicit override, like sops' `--ignore-mac`).
    Ignore,
}

/// What a re-wrap would change in one key group (age recipients only), for plans and dry runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupDiff {
    /// Recipients that stay (their `enc` is kept byte-for-byte).
    pub kept: Vec<String>,
    /// Recipients that would be added (a new `enc` each).
    pub added: Vec<String>,
    /// Recipients that would be removed.
    pub removed: Vec<String>,
}

impl GroupDiff {
    /// Whether nothing changes in this group.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// A parsed sops file: its text, format, documents (values still encrypted) and metadata.
#[derive(Debug)]
pub struct SopsFile {
    text: String,
    format: Format,
    documents: Vec<Value>,
    metadata: Metadata,
    meta_ranges: Vec<std::ops::Range<usize>>,
}

/// One leaf to hash or decrypt: its AAD and either an `ENC[…]` token or a plain value.
struct Leaf<'a> {
    aad: String,
    value: &'a Value,
    enc: Option<EncValue>,
}

impl SopsFile {
    /// Parses a sops file. The format is detected from the content unless `format` forces one.
    pub fn parse(bytes: &[u8], format: Option<Format>) -> Result<Self, SopsError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| SopsError::NotSops {
                reason: "the file is not UTF-8 text (sops files always are)".into(),
            })?
            .to_owned();
        let format = match format {
            Some(format) => format,
            None => Format::detect(&text)?,
        };
        let parsed = format::parse(&text, format)?;
        let metadata = Metadata::from_value(&parsed.sops)?;
        Ok(Self {
            text,
            format,
            documents: parsed.documents,
            metadata,
            meta_ranges: parsed.meta_ranges,
        })
    }

    /// The store format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The metadata (key groups, threshold, lastmodified, …).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The master keys of each key group.
    pub fn recipients(&self) -> Vec<Vec<MasterKey>> {
        self.metadata
            .groups
            .iter()
            .map(|g| {
                g.age
                    .iter()
                    .map(|a| MasterKey {
                        kind: "age".into(),
                        id: a.recipient.clone(),
                    })
                    .chain(g.others.iter().cloned())
                    .collect()
            })
            .collect()
    }

    /// The paths of the encrypted values, in file order, readable without any key (e.g. to say
    /// what a removed recipient could read). Each path lists the mapping keys from the document
    /// root; a list element is named by its index on the component that holds the list
    /// (`["a_list[0]"]`, `["a_list[1]", "three"]`), so two elements never read alike.
    pub fn encrypted_paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for document in &self.documents {
            named_encrypted_paths(document, &mut Vec::new(), &mut out);
        }
        out
    }

    /// What [`rewrap`](Self::rewrap) with `groups` would change, group by group (recipients are
    /// compared as trimmed strings, like sops; order-only changes are no change).
    pub fn diff(&self, groups: &[Vec<String>]) -> Vec<GroupDiff> {
        let empty = KeyGroup::default();
        let count = groups.len().max(self.metadata.groups.len());
        (0..count)
            .map(|i| {
                let old = self.metadata.groups.get(i).unwrap_or(&empty);
                let new: Vec<&str> = groups
                    .get(i)
                    .map(|g| g.iter().map(|r| r.trim()).collect())
                    .unwrap_or_default();
                let mut diff = GroupDiff::default();
                for entry in &old.age {
                    let list = if new.contains(&entry.recipient.as_str()) {
                        &mut diff.kept
                    } else {
                        &mut diff.removed
                    };
                    if !list.contains(&entry.recipient) {
                        list.push(entry.recipient.clone());
                    }
                }
                for recipient in new {
                    let known = old.age.iter().any(|e| e.recipient == recipient);
                    if !known && !diff.added.iter().any(|a| a == recipient) {
                        diff.added.push(recipient.to_owned());
                    }
                }
                diff
            })
            .collect()
    }

    /// Recovers the data key with the first identities that open enough key groups. The error
    /// lists the file's recipients and every identity tried.
    pub fn data_key(
        &self,
        identities: &IdentitySet,
        passphrases: &mut dyn PassphraseProvider,
    ) -> Result<DataKey, SopsError> {
        keys::recover(&self.metadata, identities, passphrases)
    }

    fn leaves(&self) -> Result<Vec<Leaf<'_>>, SopsError> {
        let mut out = Vec::new();
        for document in &self.documents {
            tree::walk_leaves(document, &mut Vec::new(), &mut |path, value| {
                let enc = match value {
                    Value::Str(s) if s.starts_with(cipher::ENC_PREFIX) => {
                        Some(EncValue::parse(s).ok_or_else(|| {
                            malformed(format!("unreadable ENC value at `{}`", aad_for(path)))
                        })?)
                    }
                    _ => None,
                };
                out.push(Leaf {
                    aad: aad_for(path),
                    value,
                    enc,
                });
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// The MAC of the content (128 uppercase hex characters).
    fn compute_mac(&self, key: &DataKey) -> Result<String, SopsError> {
        let mut hash = Sha512::new();
        if self.metadata.mac_only_encrypted {
            hash.update(MAC_ONLY_ENCRYPTED_INIT);
        }
        for leaf in self.leaves()? {
            match &leaf.enc {
                Some(enc) => {
                    let plain = enc
                        .decrypt(key.bytes(), leaf.aad.as_bytes())
                        .ok_or_else(|| SopsError::ValueDecrypt {
                            path: leaf.aad.clone(),
                        })?;
                    if !enc.is_comment() {
                        hash.update(plain.as_slice());
                    }
                }
                None if self.metadata.mac_only_encrypted => {}
                None => {
                    if let Some(bytes) = tree::plain_bytes(leaf.value) {
                        hash.update(&bytes);
                    }
                }
            }
        }
        Ok(hex::encode_upper(hash.finalize()))
    }

    /// The MAC's AAD: `lastmodified` re-formatted as Go's RFC 3339.
    fn mac_aad(&self) -> Result<String, SopsError> {
        timefmt::normalize_rfc3339(&self.metadata.lastmodified).ok_or_else(|| {
            malformed(format!(
                "`lastmodified` is not RFC 3339: {}",
                self.metadata.lastmodified
            ))
        })
    }

    fn stored_mac(&self, key: &DataKey) -> Result<Zeroizing<Vec<u8>>, SopsError> {
        let mac = EncValue::parse(&self.metadata.mac)
            .ok_or_else(|| malformed("`mac` is not an ENC[…] value"))?;
        mac.decrypt(key.bytes(), self.mac_aad()?.as_bytes())
            .ok_or(SopsError::MacMismatch)
    }

    /// Decrypts every value and checks the MAC against the content.
    pub fn verify_mac(&self, key: &DataKey) -> Result<(), SopsError> {
        let stored = self.stored_mac(key)?;
        let computed = self.compute_mac(key)?;
        if stored.as_slice() == computed.as_bytes() {
            Ok(())
        } else {
            Err(SopsError::MacMismatch)
        }
    }

    /// Decrypts the whole file into memory (comments are left out). Does not check the MAC: call
    /// [`verify_mac`](Self::verify_mac) for that.
    pub fn decrypt(&self, key: &DataKey) -> Result<Tree, SopsError> {
        let documents = self
            .documents
            .iter()
            .map(|d| decrypt_value(d, &mut Vec::new(), key))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tree {
            documents: documents.into_iter().flatten().collect(),
        })
    }

    fn check_mac(&self, key: &DataKey, mac_check: MacCheck) -> Result<(), SopsError> {
        match mac_check {
            MacCheck::Verify => self.verify_mac(key),
            MacCheck::Ignore => Ok(()),
        }
    }

    /// Plans each group's age entries: existing ones kept (or re-encrypted when `fresh`), new
    /// ones wrapped for `key`.
    fn plan(
        &self,
        key: &DataKey,
        groups: &[Vec<String>],
        fresh: bool,
    ) -> Result<Vec<Vec<Slot>>, SopsError> {
        if groups.len() != self.metadata.groups.len() {
            return Err(SopsError::Unsupported {
                action: "re-wrap".into(),
                reason: format!(
                    "the file has {} key group(s) but {} were given; changing the number of groups needs a new Shamir split",
                    self.metadata.groups.len(),
                    groups.len()
                ),
            });
        }
        if key.group_count() != self.metadata.groups.len() {
            return Err(SopsError::Unsupported {
                action: "re-wrap".into(),
                reason: "the data key does not belong to this file's key groups".into(),
            });
        }
        let mut plan = Vec::new();
        for (index, (group, wanted)) in self.metadata.groups.iter().zip(groups).enumerate() {
            let mut slots = Vec::new();
            let mut kept = vec![false; group.age.len()];
            for (i, entry) in group.age.iter().enumerate() {
                if wanted.iter().any(|w| w.trim() == entry.recipient) && !kept[i] {
                    kept[i] = true;
                    slots.push(if fresh {
                        Slot::New {
                            recipient: entry.recipient.clone(),
                            enc: keys::wrap_for(&entry.recipient, key.payload_for_group(index)?)?,
                        }
                    } else {
                        Slot::Keep(i)
                    });
                }
            }
            let mut added: Vec<&str> = Vec::new();
            for recipient in wanted {
                let recipient = recipient.trim();
                if group.age.iter().any(|e| e.recipient == recipient) || added.contains(&recipient)
                {
                    continue;
                }
                added.push(recipient);
                slots.push(Slot::New {
                    recipient: recipient.to_owned(),
                    enc: keys::wrap_for(recipient, key.payload_for_group(index)?)?,
                });
            }
            if slots.is_empty() && group.others.is_empty() {
                return Err(SopsError::Unsupported {
                    action: "re-wrap".into(),
                    reason: format!("key group {} would have no recipients left", index + 1),
                });
            }
            plan.push(slots);
        }
        Ok(plan)
    }

    /// Sets the age recipients of each key group (same data key). Recipients that stay keep
    /// their `enc` byte-for-byte, added ones get a new `enc`, removed ones disappear; every other
    /// byte of the file stays identical. Returns the new file content.
    pub fn rewrap(
        &self,
        key: &DataKey,
        groups: &[Vec<String>],
        mac_check: MacCheck,
    ) -> Result<Vec<u8>, SopsError> {
        self.check_mac(key, mac_check)?;
        let plan = self.plan(key, groups, false)?;
        let edits = format::age_edits(&self.text, self.format, &self.metadata, &plan)?;
        Ok(format::apply(&self.text, edits)?.into_bytes())
    }

    /// The file without the non-age master keys of `leaving` (per key group, as listed by
    /// [`recipients`](Self::recipients)): their entries go from the metadata as sops writes a
    /// file without them (a kind left with no entry loses its key); nothing else changes and no
    /// key is needed. Meant to be followed by [`rotate`](Self::rotate) (whoever held a leaving
    /// key may have kept the data key) or, when the user chose so, [`rewrap`](Self::rewrap).
    /// Nothing is written: the result lives in memory.
    pub fn without_master_keys(&self, leaving: &[Vec<MasterKey>]) -> Result<SopsFile, SopsError> {
        let mut removals = Vec::new();
        for (group_index, keys) in leaving.iter().enumerate() {
            let group =
                self.metadata
                    .groups
                    .get(group_index)
                    .ok_or_else(|| SopsError::Unsupported {
                        action: "remove master keys".into(),
                        reason: format!("the file has no key group {}", group_index + 1),
                    })?;
            for key in keys {
                let mut found = false;
                let same_kind = group.others.iter().filter(|o| o.kind == key.kind);
                for (index, other) in same_kind.enumerate() {
                    if other.id == key.id {
                        found = true;
                        removals.push(format::Removal {
                            group: group_index,
                            kind: key.kind.clone(),
                            index,
                        });
                    }
                }
                if !found {
                    return Err(SopsError::Unsupported {
                        action: format!("remove the {key} master key"),
                        reason: format!("key group {} has no such key", group_index + 1),
                    });
                }
            }
        }
        let edits =
            format::master_key_removals(&self.text, self.format, &self.metadata, &removals)?;
        Self::parse(
            format::apply(&self.text, edits)?.as_bytes(),
            Some(self.format),
        )
    }

    /// Rotates the data key: a new random key, every value and encrypted comment re-encrypted
    /// with its old IV, the MAC re-encrypted, `lastmodified` set to now, a new `enc` for every
    /// recipient of `groups`. Refuses files that keep a non-age master key (hostage cannot
    /// encrypt the new key to it); take leaving ones out first with
    /// [`without_master_keys`](Self::without_master_keys).
    pub fn rotate(
        &self,
        key: &DataKey,
        groups: &[Vec<String>],
        mac_check: MacCheck,
    ) -> Result<Vec<u8>, SopsError> {
        self.check_mac(key, mac_check)?;
        let staying = self
            .metadata
            .groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.others.iter().map(move |o| (i, o)))
            .next();
        if let Some((group, other)) = staying {
            return Err(SopsError::Unsupported {
                action: "rotate the data key".into(),
                reason: format!(
                    "the {} key {} stays in key group {} and hostage can encrypt the new data key only to age keys; rotate this file with sops (`sops rotate -i FILE`, which uses that key's tooling), or remove the key from the file's creation rule",
                    other.kind,
                    other.id,
                    group + 1
                ),
            });
        }
        let new_key = DataKey::generate(self.metadata.groups.len(), self.metadata.threshold)?;
        let mut edits = self.reencrypt_tokens(key, &new_key)?;
        // The MAC: same plaintext, new key, AAD = the new lastmodified.
        let mac_plain = self.stored_mac(key)?;
        let now = timefmt::now_rfc3339();
        let mac =
            EncValue::encrypt_fresh(new_key.bytes(), now.as_bytes(), &mac_plain, "str")?.to_text();
        for range in &self.meta_ranges {
            let block = &self.text[range.clone()];
            for (found, _) in block.match_indices(&self.metadata.mac) {
                let start = range.start + found;
                edits.push(Edit {
                    range: start..start + self.metadata.mac.len(),
                    replacement: mac.clone(),
                });
            }
            let stored = &self.metadata.lastmodified;
            if let Some(found) = block.find(stored.as_str()) {
                let start = range.start + found;
                edits.push(Edit {
                    range: start..start + stored.len(),
                    replacement: now.clone(),
                });
            } else {
                return Err(malformed(
                    "cannot locate `lastmodified` in the metadata text",
                ));
            }
        }
        // YAML and JSON: the new key groups are byte-range edits of the original text that
        // touch neither a value nor `mac`/`lastmodified`, so everything goes in one splice (a
        // second parse of the file was a third of a rotation's parsing time).
        if matches!(self.format, Format::Yaml | Format::Json | Format::Binary) {
            let plan = self.plan(&new_key, groups, true)?;
            let mut all = format::age_edits(&self.text, self.format, &self.metadata, &plan)?;
            if !overlapping(&edits, &all) {
                all.extend(edits);
                return Ok(format::apply(&self.text, all)?.into_bytes());
            }
        }
        // Otherwise the key groups go on the edited text (dotenv rewrites its metadata lines as
        // a whole).
        let stage = Self::parse(
            format::apply(&self.text, edits)?.as_bytes(),
            Some(self.format),
        )?;
        let plan = stage.plan(&new_key, groups, true)?;
        let edits = format::age_edits(&stage.text, stage.format, &stage.metadata, &plan)?;
        Ok(format::apply(&stage.text, edits)?.into_bytes())
    }

    /// Re-encrypts every `ENC[…]` token of the data (values and comments) under `new_key`,
    /// keeping each IV. Comments carry no path in the text, so their AAD is found by trying the
    /// paths of the containers (GCM authenticates the right one).
    fn reencrypt_tokens(&self, old: &DataKey, new_key: &DataKey) -> Result<Vec<Edit>, SopsError> {
        let leaves = self.leaves()?;
        let value_tokens: Vec<(&str, &str)> = leaves
            .iter()
            .filter(|l| l.enc.is_some())
            .filter_map(|l| l.value.as_str().map(|s| (s, l.aad.as_str())))
            .collect();
        let mut containers: Vec<String> = Vec::new();
        for document in &self.documents {
            tree::walk_containers(document, &mut Vec::new(), &mut |path| {
                let aad = aad_for(path);
                if !containers.contains(&aad) {
                    containers.push(aad);
                }
            });
        }
        if !containers.contains(&":".to_owned()) {
            containers.push(":".into());
        }
        let mut next = 0;
        let mut edits = Vec::new();
        for range in cipher::find_tokens(&self.text) {
            if self.meta_ranges.iter().any(|m| m.contains(&range.start)) {
                continue;
            }
            let token = &self.text[range.clone()];
            let enc = EncValue::parse(token).ok_or_else(|| malformed("unreadable ENC token"))?;
            let (plain, aad) = match value_tokens.get(next) {
                Some((value, aad)) if *value == token => {
                    next += 1;
                    let plain = enc.decrypt(old.bytes(), aad.as_bytes()).ok_or_else(|| {
                        SopsError::ValueDecrypt {
                            path: (*aad).to_owned(),
                        }
                    })?;
                    (plain, (*aad).to_owned())
                }
                _ => {
                    // A comment: the AAD is the path of the mapping (or list) that holds it.
                    let hint = value_tokens.get(next).map(|(_, aad)| *aad).unwrap_or(":");
                    let mut order: Vec<&String> = containers
                        .iter()
                        .filter(|c| hint.starts_with(c.as_str()))
                        .collect();
                    order.sort_by_key(|c| std::cmp::Reverse(c.len()));
                    order.extend(containers.iter().filter(|c| !hint.starts_with(c.as_str())));
                    order
                        .into_iter()
                        .find_map(|aad| {
                            enc.decrypt(old.bytes(), aad.as_bytes())
                                .map(|p| (p, aad.clone()))
                        })
                        .ok_or_else(|| SopsError::ValueDecrypt {
                            path: format!("encrypted comment at byte {}", range.start),
                        })?
                }
            };
            let fresh =
                EncValue::encrypt(new_key.bytes(), &enc.iv, aad.as_bytes(), &plain, &enc.kind)?;
            edits.push(Edit {
                range,
                replacement: fresh.to_text(),
            });
        }
        if next != value_tokens.len() {
            return Err(malformed(
                "could not match every encrypted value to its text",
            ));
        }
        Ok(edits)
    }
}

/// Collects the path of every `ENC[…]` leaf under `value`, list elements named by index.
fn named_encrypted_paths(value: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Map(entries) => {
            for (key, child) in entries {
                path.push(key.clone());
                named_encrypted_paths(child, path, out);
                path.pop();
            }
        }
        Value::List(items) => {
            for (index, child) in items.iter().enumerate() {
                let saved = path.last().cloned();
                match path.last_mut() {
                    Some(last) => last.push_str(&format!("[{index}]")),
                    None => path.push(format!("[{index}]")),
                }
                named_encrypted_paths(child, path, out);
                match saved {
                    Some(previous) => {
                        if let Some(last) = path.last_mut() {
                            *last = previous;
                        }
                    }
                    None => {
                        path.pop();
                    }
                }
            }
        }
        Value::Str(s) if s.starts_with(cipher::ENC_PREFIX) => out.push(path.clone()),
        _ => {}
    }
}

/// Whether an edit of `a` overlaps an edit of `b` (then they cannot be one splice).
fn overlapping(a: &[Edit], b: &[Edit]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            x.range.start < y.range.end.max(y.range.start + 1)
                && y.range.start < x.range.end.max(x.range.start + 1)
        })
    })
}

fn decrypt_value(
    value: &Value,
    path: &mut Vec<String>,
    key: &DataKey,
) -> Result<Option<Value>, SopsError> {
    Ok(Some(match value {
        Value::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                path.push(k.clone());
                if let Some(v) = decrypt_value(v, path, key)? {
                    out.push((k.clone(), v));
                }
                path.pop();
            }
            Value::Map(out)
        }
        Value::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(v) = decrypt_value(item, path, key)? {
                    out.push(v);
                }
            }
            Value::List(out)
        }
        Value::Str(s) if s.starts_with(cipher::ENC_PREFIX) => {
            let aad = aad_for(path);
            let enc = EncValue::parse(s)
                .ok_or_else(|| malformed(format!("unreadable ENC value at `{aad}`")))?;
            let plain = enc
                .decrypt(key.bytes(), aad.as_bytes())
                .ok_or(SopsError::ValueDecrypt { path: aad.clone() })?;
            let text = || String::from_utf8(plain.to_vec());
            let bad = || {
                malformed(format!(
                    "the value at `{aad}` is not a valid `{}`",
                    enc.kind
                ))
            };
            match enc.kind.as_str() {
                "comment" => return Ok(None),
                "str" => match text() {
                    Ok(s) => Value::Str(s),
                    Err(_) => Value::Bytes(plain.to_vec()),
                },
                "bytes" => Value::Bytes(plain.to_vec()),
                "int" => Value::Int(text().ok().and_then(|t| t.parse().ok()).ok_or_else(bad)?),
                "float" => Value::Float(text().ok().and_then(|t| t.parse().ok()).ok_or_else(bad)?),
                "bool" => match plain.as_slice() {
                    b"True" | b"true" => Value::Bool(true),
                    b"False" | b"false" => Value::Bool(false),
                    _ => return Err(bad()),
                },
                "time" => Value::Time(text().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        other => other.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_paths_name_list_elements_by_index() {
        let enc = "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]";
        let text = format!(
            "a_list:\n    - {enc}\n    - {enc}\n    - three: {enc}\n      four: plain\nnested:\n    - - {enc}\nplain: {enc}\nsops:\n    age:\n        - recipient: age1r4kkg3s6xc5md6auca6h4ke02aje60e3hawfxwgyxtqmhw07q4jq6tfs09\n          enc: |\n            x\n    lastmodified: \"2026-01-01T00:00:00Z\"\n    mac: {enc}\n    version: 3.11.0\n"
        );
        let file = SopsFile::parse(text.as_bytes(), None).unwrap();
        let joined: Vec<String> = file.encrypted_paths().iter().map(|p| p.join(".")).collect();
        assert_eq!(
            joined,
            [
                "a_list[0]",
                "a_list[1]",
                "a_list[2].three",
                "nested[0][0]",
                "plain"
            ]
        );
    }

    /// The layout sops 3.7 wrote (sops-nix's own test assets): empty `kms: []` & co., two age
    /// and two pgp keys, lowercase fingerprints, a blank line inside each PGP armor.
    fn sops_37_file() -> String {
        let enc = "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]";
        let pgp = |fp: &str| {
            format!("        - created_at: \"2021-01-01T00:00:00Z\"\n          enc: |\n            -----BEGIN PGP MESSAGE-----\n\n            hQEMA-not-real\n            -----END PGP MESSAGE-----\n          fp: {fp}\n")
        };
        format!(
            "hello: {enc}\nsops:\n    kms: []\n    gcp_kms: []\n    azure_kv: []\n    hc_vault: []\n    age:\n        - recipient: age1r4kkg3s6xc5md6auca6h4ke02aje60e3hawfxwgyxtqmhw07q4jq6tfs09\n          enc: |\n            x\n    lastmodified: \"2021-01-01T00:00:00Z\"\n    mac: {enc}\n    pgp:\n{}{}    unencrypted_suffix: _unencrypted\n    version: 3.7.1\n",
            pgp("2504791468b153b8a3963cc97ba53d1919c5dfd4"),
            pgp("9f89c5f69a10281a835014b09c3b9f4ed0d4b0ba")
        )
    }

    #[test]
    fn pgp_keys_of_a_sops_37_file_leave_one_by_one_and_then_with_their_key() {
        let text = sops_37_file();
        let file = SopsFile::parse(text.as_bytes(), None).unwrap();
        let pgp: Vec<MasterKey> = file.metadata().groups[0].others.clone();
        assert_eq!(pgp.len(), 2);
        assert_eq!(pgp[0].id, "2504791468b153b8a3963cc97ba53d1919c5dfd4");
        assert!(pgp[0].is_rule_key("pgp", "2504791468B153B8A3963CC97BA53D1919C5DFD4"));
        assert!(!pgp[0].is_rule_key("pgp", "9F89C5F69A10281A835014B09C3B9F4ED0D4B0BA"));
        assert!(!pgp[0].is_rule_key("kms", "2504791468b153b8a3963cc97ba53d1919c5dfd4"));

        let one = file.without_master_keys(&[vec![pgp[0].clone()]]).unwrap();
        assert_eq!(one.metadata().groups[0].others, vec![pgp[1].clone()]);
        let one_text = one.text.clone();
        assert!(!one_text.contains(&pgp[0].id));
        assert!(one_text.contains("    pgp:\n        - created_at:"));

        let none = file
            .without_master_keys(std::slice::from_ref(&pgp))
            .unwrap();
        assert!(none.metadata().groups[0].others.is_empty());
        let start = text.find("    pgp:\n").unwrap();
        let end = text.find("    unencrypted_suffix:").unwrap();
        let expected = format!("{}{}", &text[..start], &text[end..]);
        assert_eq!(none.text, expected, "only the pgp key and its entries go");

        let refused = file
            .without_master_keys(&[vec![MasterKey {
                kind: "pgp".into(),
                id: "0000".into(),
            }]])
            .unwrap_err();
        assert!(refused.to_string().contains("pgp 0000"), "{refused}");
    }

    #[test]
    fn one_of_two_pgp_keys_leaves_a_json_file_and_the_other_keeps_its_bytes() {
        let enc = "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]";
        let entry = |fp: &str| {
            format!("\t\t\t{{\n\t\t\t\t\"created_at\": \"2021-01-01T00:00:00Z\",\n\t\t\t\t\"enc\": \"-----BEGIN PGP MESSAGE-----\\n\\nx\\n-----END PGP MESSAGE-----\",\n\t\t\t\t\"fp\": \"{fp}\"\n\t\t\t}}")
        };
        let text = |entries: &[String]| {
            format!(
                "{{\n\t\"a\": \"{enc}\",\n\t\"sops\": {{\n\t\t\"age\": [\n\t\t\t{{\n\t\t\t\t\"recipient\": \"age1r4kkg3s6xc5md6auca6h4ke02aje60e3hawfxwgyxtqmhw07q4jq6tfs09\",\n\t\t\t\t\"enc\": \"x\"\n\t\t\t}}\n\t\t],\n\t\t\"lastmodified\": \"2021-01-01T00:00:00Z\",\n\t\t\"mac\": \"{enc}\",\n\t\t\"pgp\": [\n{}\n\t\t],\n\t\t\"version\": \"3.11.0\"\n\t}}\n}}\n",
                entries.join(",\n")
            )
        };
        let (first, second) = (entry("AAAA"), entry("BBBB"));
        let both = text(&[first.clone(), second.clone()]);
        let file = SopsFile::parse(both.as_bytes(), None).unwrap();
        let keys = file.metadata().groups[0].others.clone();
        assert_eq!(keys.len(), 2);
        let without_first = file.without_master_keys(&[vec![keys[0].clone()]]).unwrap();
        assert_eq!(without_first.text, text(std::slice::from_ref(&second)));
        let without_second = file.without_master_keys(&[vec![keys[1].clone()]]).unwrap();
        assert_eq!(without_second.text, text(std::slice::from_ref(&first)));
    }
}
