//! Setting one value of an existing sops file (`sops set`), as a splice of the file's text: the
//! value is encrypted with the file's data key (fresh IV, AAD = its path, the file's crypt rule
//! deciding whether it is encrypted at all), the MAC is recomputed and re-encrypted under a new
//! `lastmodified`; every other byte (other values' `ENC[…]`, the age `enc` blobs, the layout)
//! stays identical, which is also what `sops set` leaves unchanged.

mod place;

use crate::cipher::find_tokens;
use crate::create::{stamp_mac, EncryptionRule, PathMatcher, Sealer};
use crate::error::malformed;
use crate::format::{self, Edit, Format};
use crate::keys::DataKey;
use crate::tree::Value;
use crate::{MacCheck, SopsError, SopsFile};

/// What [`SopsFile::set`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// The value was already this; the file is unchanged (no new `lastmodified`, so re-runs are
    /// no-ops).
    Unchanged,
    /// The value replaced an existing one; the new file content.
    Replaced(Vec<u8>),
    /// The key was added to its (existing) mapping; the new file content.
    Added(Vec<u8>),
}

fn unsupported(reason: impl Into<String>) -> SopsError {
    SopsError::Unsupported {
        action: "set the value".into(),
        reason: reason.into(),
    }
}

impl SopsFile {
    /// Sets the value at `path` (mapping keys from the document root) to `value` (a string,
    /// number, boolean or null), with the file's data key `key` (from
    /// [`data_key`](Self::data_key)). A missing last key is added at the end of its mapping, as
    /// `sops set` does; the mappings above it must exist.
    pub fn set(
        &self,
        key: &DataKey,
        path: &[String],
        value: &Value,
        mac_check: MacCheck,
    ) -> Result<SetOutcome, SopsError> {
        if path.is_empty() {
            return Err(unsupported("the path is empty; name the key to set"));
        }
        if matches!(value, Value::Map(_) | Value::List(_)) {
            return Err(unsupported(
                "only a single value (string, number, boolean, null) can be set",
            ));
        }
        if self.documents.len() != 1 {
            return Err(unsupported("the file has several YAML documents"));
        }
        if let MacCheck::Verify = mac_check {
            self.verify_mac(key)?;
        }
        let current = self.decrypt(key)?;
        let parent_path = &path[..path.len() - 1];
        let leaf_key = &path[path.len() - 1];
        let parent = lookup(&current.documents[0], parent_path).ok_or_else(|| {
            unsupported(format!(
                "`{}` is not an existing mapping of the file; hostage adds a key only to a mapping that exists",
                shown(parent_path)
            ))
        })?;
        let Value::Map(entries) = parent else {
            return Err(unsupported(format!(
                "`{}` is not a mapping",
                shown(parent_path)
            )));
        };
        let existing = entries.iter().find(|(k, _)| k == leaf_key).map(|(_, v)| v);
        if existing == Some(value) {
            return Ok(SetOutcome::Unchanged);
        }
        if matches!(existing, Some(Value::Map(_) | Value::List(_))) {
            return Err(unsupported(format!(
                "`{}` holds a mapping or list; only a single value can be replaced",
                shown(path)
            )));
        }

        let sealed = self.sealed_leaf(key, path, value)?;
        let edit = match existing {
            Some(_) => self.replace_edit(path, &sealed)?,
            None => place::insert(&self.text, self.format, &self.meta_ranges, path, &sealed)?,
        };
        let staged = Self::parse(
            format::apply(&self.text, vec![edit])?.as_bytes(),
            Some(self.format),
        )?;
        let bytes = staged.restamp(key)?;
        Ok(match existing {
            Some(_) => SetOutcome::Replaced(bytes),
            None => SetOutcome::Added(bytes),
        })
    }

    /// The new leaf as the file stores it: `ENC[…]` when the file's crypt rule encrypts `path`.
    fn sealed_leaf(
        &self,
        key: &DataKey,
        path: &[String],
        value: &Value,
    ) -> Result<Value, SopsError> {
        let matcher = if self.format == Format::Binary {
            PathMatcher::Everything
        } else {
            let sops = format::parse(&self.text, self.format)?.sops;
            // sops defaults a file without a crypt rule to `_unencrypted` on reading.
            EncryptionRule::from_metadata(&sops)
                .unwrap_or_default()
                .matcher()?
        };
        // The MAC is recomputed over the whole new file afterwards.
        Sealer::new(key, matcher, false).seal_leaf(value, path)
    }

    /// The edit that replaces the stored value at `path` with `sealed`.
    fn replace_edit(&self, path: &[String], sealed: &Value) -> Result<Edit, SopsError> {
        let stored = lookup(&self.documents[0], path)
            .ok_or_else(|| malformed(format!("`{}` vanished from the file", shown(path))))?;
        let new_token = match sealed {
            Value::Str(s) if s.starts_with(crate::cipher::ENC_PREFIX) => Some(s),
            _ => None,
        };
        if let (Value::Str(token), Some(new_token)) = (stored, new_token) {
            if let Some(range) = find_tokens(&self.text)
                .into_iter()
                .filter(|r| !self.meta_ranges.iter().any(|m| m.contains(&r.start)))
                .find(|r| &self.text[r.clone()] == token)
            {
                return Ok(Edit {
                    range,
                    replacement: new_token.clone(),
                });
            }
        }
        place::replace_plain(&self.text, self.format, &self.meta_ranges, path, sealed)
    }

    /// This (edited) file with its MAC recomputed and re-encrypted under a new `lastmodified`.
    fn restamp(&self, key: &DataKey) -> Result<Vec<u8>, SopsError> {
        let mac_hex = self.compute_mac(key)?;
        let (lastmodified, mac) = stamp_mac(key, &mac_hex)?;
        let mut edits = Vec::new();
        for range in &self.meta_ranges {
            let block = &self.text[range.clone()];
            for (field, old, new) in [
                ("mac", &self.metadata.mac, &mac),
                ("lastmodified", &self.metadata.lastmodified, &lastmodified),
            ] {
                let found = block
                    .find(old.as_str())
                    .ok_or_else(|| malformed(format!("cannot locate `{field}` in the metadata")))?;
                let start = range.start + found;
                edits.push(Edit {
                    range: start..start + old.len(),
                    replacement: new.clone(),
                });
            }
        }
        Ok(format::apply(&self.text, edits)?.into_bytes())
    }
}

/// The value at `path` (mapping keys only).
fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(root, |node, key| node.get(key))
}

/// A path as the user would write it (`a:b:c`), for messages.
fn shown(path: &[String]) -> String {
    if path.is_empty() {
        "the document root".into()
    } else {
        path.join(":")
    }
}
