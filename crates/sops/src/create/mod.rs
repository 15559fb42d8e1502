//! New sops files, written natively the way `sops -e` (3.11) writes them, so hostage never runs
//! a `sops` binary: a fresh data key (split with Shamir for several key groups), every selected
//! value encrypted (AES-256-GCM, AAD = path), the MAC over the plaintext values, an age `enc` per
//! recipient, and the metadata block in sops 3.11's key order and layout.
//!
//! Plaintext only ever lives in memory: it is read from a caller's buffer, the encrypted tree
//! holds ciphertext (and the values a crypt rule leaves in plaintext), and errors never quote it.

mod crypt_rule;
mod dotenv_out;
mod go_number;
pub(crate) mod json_out;
mod plaintext;
mod rule_options;
pub(crate) mod yaml_out;

use sha2::{Digest as _, Sha512};

use crate::cipher::{aad_for, EncValue};
use crate::format::Format;
use crate::keys::{self, DataKey};
use crate::tree::{plain_bytes, Tree, Value};
use crate::{timefmt, SopsError, MAC_ONLY_ENCRYPTED_INIT};

pub(crate) use crypt_rule::PathMatcher;
pub use crypt_rule::{EncryptionRule, DEFAULT_UNENCRYPTED_SUFFIX};
pub(crate) use plaintext::Plaintext;

/// The `version` written into new files: the sops release whose layout we reproduce.
pub const SOPS_VERSION: &str = "3.11.0";

/// Who can read a new file and which of its values are encrypted: what a creation rule says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFileOptions {
    /// The age recipients (`age1…`) of each key group; one group is written flat (`age:`).
    pub key_groups: Vec<Vec<String>>,
    /// Shares needed with several groups; `None` means all of them (as sops does for 0).
    pub shamir_threshold: Option<usize>,
    /// Which values stay in plaintext (sops' default: the `_unencrypted` suffix).
    pub encryption: EncryptionRule,
    /// Whether the MAC covers only the encrypted values (`mac_only_encrypted`).
    pub mac_only_encrypted: bool,
}

impl NewFileOptions {
    /// One key group of `recipients` with sops' defaults.
    pub fn for_recipients(recipients: Vec<String>) -> Self {
        Self {
            key_groups: vec![recipients],
            shamir_threshold: None,
            encryption: EncryptionRule::default(),
            mac_only_encrypted: false,
        }
    }

    /// What the creation rule `rule` of `config` (from [`SopsConfig::rule_for`]) gives a new
    /// file: its age key groups, `shamir_threshold`, crypt rule (`encrypted_regex`, …; sops'
    /// `_unencrypted` default when it has none) and `mac_only_encrypted`.
    ///
    /// [`SopsConfig::rule_for`]: crate::rules::SopsConfig::rule_for
    pub fn from_rule(
        config: &crate::rules::SopsConfig,
        rule: &crate::rules::CreationRule,
    ) -> Result<Self, SopsError> {
        if let Some(other) = rule.other_keys.iter().flatten().next() {
            return Err(SopsError::Unsupported {
                action: format!("create a file for creation rule {}", rule.index + 1),
                reason: format!(
                    "the rule has a {} key ({}) and hostage encrypts to age recipients only",
                    other.kind, other.value
                ),
            });
        }
        let crypt = rule_options::read(config, rule)?;
        Ok(Self {
            key_groups: rule
                .key_groups
                .iter()
                .map(|g| g.iter().map(|r| r.recipient.clone()).collect())
                .collect(),
            shamir_threshold: rule
                .shamir_threshold
                .map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
            encryption: crypt.encryption,
            mac_only_encrypted: crypt.mac_only_encrypted,
        })
    }

    /// The threshold sops would use, checked against the number of groups.
    fn threshold(&self) -> Result<usize, SopsError> {
        let groups = self.key_groups.len();
        let unsupported = |reason: String| SopsError::Unsupported {
            action: "create the file".into(),
            reason,
        };
        if groups == 0 {
            return Err(unsupported(
                "no key groups were given; a creation rule needs at least one age recipient".into(),
            ));
        }
        if let Some(index) = self.key_groups.iter().position(Vec::is_empty) {
            return Err(unsupported(format!(
                "key group {} has no age recipient",
                index + 1
            )));
        }
        if groups == 1 {
            return Ok(1);
        }
        match self.shamir_threshold.filter(|t| *t > 0) {
            None => Ok(groups),
            Some(t) if (2..=groups).contains(&t) => Ok(t),
            Some(t) => Err(unsupported(format!(
                "shamir_threshold {t} must be between 2 and the number of key groups ({groups})"
            ))),
        }
    }
}

/// Encrypts `plaintext` (a YAML, JSON or dotenv document, or any bytes for [`Format::Binary`])
/// into a new sops file laid out as sops 3.11 writes it. Returns the file's bytes; the caller
/// writes them (through `hostage-atomic`).
pub fn create(
    plaintext: &[u8],
    format: Format,
    options: &NewFileOptions,
) -> Result<Vec<u8>, SopsError> {
    let plain = Plaintext::read(plaintext, format)?;
    seal(&plain, format, options)
}

/// Like [`create`], from a tree already in memory (e.g. `{data: <OpenSSH private key>}` for a
/// host-key backup), so the plaintext never exists as document text at all. Dotenv trees are one
/// mapping of strings; binary trees are `{data: <string or bytes>}`.
pub fn create_from_tree(
    tree: &Tree,
    format: Format,
    options: &NewFileOptions,
) -> Result<Vec<u8>, SopsError> {
    let plain = Plaintext::from_tree(tree, format)?;
    seal(&plain, format, options)
}

/// The one-key `data: |` YAML document the seed uses for host-key backups: `secret` (an OpenSSH
/// private key, or any text) as a literal block. Encrypt it with [`create_from_tree`] and
/// [`Format::Yaml`].
pub fn data_block_tree(secret: &str) -> Tree {
    Tree {
        documents: vec![Value::Map(vec![(
            "data".to_owned(),
            Value::Str(secret.to_owned()),
        )])],
    }
}

/// A one-value document: `value` at `path` (mapping keys, nested mappings made for the keys
/// above it). What `hostage set` encrypts with [`create_from_tree`] when the file is absent.
pub fn single_value_tree(path: &[String], value: Value) -> Tree {
    let leaf = path
        .iter()
        .rev()
        .fold(value, |inner, key| Value::Map(vec![(key.clone(), inner)]));
    Tree {
        documents: vec![leaf],
    }
}

/// The format sops gives a new file from its name (`cmd/sops/formats`): `.yaml`/`.yml`, `.json`,
/// `.env`, `.ini`, anything else binary. The seed's `*.sops` files are YAML inside, which sops
/// only learns from `--input-type yaml`: a caller that knows better passes the format itself.
pub fn format_for_new_file(path: &std::path::Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => Format::Yaml,
        Some("json") => Format::Json,
        Some("env") => Format::Dotenv,
        Some("ini") => Format::Ini,
        _ => Format::Binary,
    }
}

/// What encrypting the leaves needs, and the MAC being computed.
pub(crate) struct Sealer<'a> {
    key: &'a DataKey,
    matcher: PathMatcher,
    mac_only_encrypted: bool,
    mac: Sha512,
}

impl<'a> Sealer<'a> {
    pub(crate) fn new(key: &'a DataKey, matcher: PathMatcher, mac_only_encrypted: bool) -> Self {
        let mut mac = Sha512::new();
        if mac_only_encrypted {
            mac.update(MAC_ONLY_ENCRYPTED_INIT);
        }
        Self {
            key,
            matcher,
            mac_only_encrypted,
            mac,
        }
    }

    /// The encrypted form of a whole value (mappings and lists walked in document order).
    pub(crate) fn seal_value(
        &mut self,
        value: &Value,
        path: &mut Vec<String>,
    ) -> Result<Value, SopsError> {
        Ok(match value {
            Value::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    path.push(k.clone());
                    let sealed = self.seal_value(v, path);
                    path.pop();
                    out.push((k.clone(), sealed?));
                }
                Value::Map(out)
            }
            Value::List(items) => Value::List(
                items
                    .iter()
                    .map(|item| self.seal_value(item, path))
                    .collect::<Result<_, _>>()?,
            ),
            leaf => self.seal_leaf(leaf, path)?,
        })
    }

    /// One leaf: hashed into the MAC, and encrypted when the crypt rule selects it (null and the
    /// empty string never are, as in sops).
    pub(crate) fn seal_leaf(&mut self, leaf: &Value, path: &[String]) -> Result<Value, SopsError> {
        let Some(bytes) = plain_bytes(leaf).map(zeroize::Zeroizing::new) else {
            return Ok(leaf.clone());
        };
        let encrypted = self.matcher.encrypts(path);
        if encrypted || !self.mac_only_encrypted {
            self.mac.update(bytes.as_slice());
        }
        if !encrypted || matches!(leaf, Value::Str(s) if s.is_empty()) {
            return Ok(leaf.clone());
        }
        let kind = match leaf {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Time(_) => "time",
            _ => "str",
        };
        let enc = EncValue::encrypt_fresh(
            self.key.bytes(),
            aad_for(path).as_bytes(),
            bytes.as_slice(),
            kind,
        )?;
        Ok(Value::Str(enc.to_text()))
    }

    /// Encrypts a comment (never part of the MAC; AAD = the path of its container) when the
    /// crypt rule selects that path, as sops does: with `encrypted_regex` top-level comments
    /// stay plaintext.
    pub(crate) fn seal_comment(&self, text: &str, path: &[String]) -> Result<String, SopsError> {
        if text.is_empty() || !self.matcher.encrypts(path) {
            return Ok(text.to_owned());
        }
        Ok(EncValue::encrypt_fresh(
            self.key.bytes(),
            aad_for(path).as_bytes(),
            text.as_bytes(),
            "comment",
        )?
        .to_text())
    }

    /// The MAC's plaintext: 128 uppercase hex characters.
    pub(crate) fn finish_mac(self) -> String {
        hex::encode_upper(self.mac.finalize())
    }
}

/// The `mac` and `lastmodified` of a file whose values hash to `mac_hex`, stamped now.
pub(crate) fn stamp_mac(key: &DataKey, mac_hex: &str) -> Result<(String, String), SopsError> {
    let lastmodified = timefmt::now_rfc3339();
    let mac = EncValue::encrypt_fresh(
        key.bytes(),
        lastmodified.as_bytes(),
        mac_hex.as_bytes(),
        "str",
    )?
    .to_text();
    Ok((lastmodified, mac))
}

fn seal(plain: &Plaintext, format: Format, options: &NewFileOptions) -> Result<Vec<u8>, SopsError> {
    let threshold = options.threshold()?;
    let key = DataKey::generate(options.key_groups.len(), threshold)?;
    let binary = format == Format::Binary;
    let matcher = if binary {
        PathMatcher::Everything
    } else {
        options.encryption.matcher()?
    };
    // sops' binary store writes neither a crypt rule nor `mac_only_encrypted`.
    let mac_only = options.mac_only_encrypted && !binary;
    let mut sealer = Sealer::new(&key, matcher, mac_only);
    let sealed = plain.seal(&mut sealer)?;
    let mac_hex = sealer.finish_mac();
    let (lastmodified, mac) = stamp_mac(&key, &mac_hex)?;

    let mut groups = Vec::with_capacity(options.key_groups.len());
    for (index, recipients) in options.key_groups.iter().enumerate() {
        let mut entries = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            let recipient = recipient.trim();
            let enc = keys::wrap_for(recipient, key.payload_for_group(index)?)?;
            entries.push((recipient.to_owned(), enc));
        }
        groups.push(entries);
    }
    let metadata = MetadataText {
        groups,
        threshold,
        lastmodified,
        mac,
        encryption: (!binary).then_some(&options.encryption),
        mac_only_encrypted: mac_only,
    };
    sealed.write(&metadata, format)
}

/// The metadata of a new file, before it takes each format's shape.
pub(crate) struct MetadataText<'a> {
    /// `(recipient, enc)` per group.
    pub groups: Vec<Vec<(String, String)>>,
    pub threshold: usize,
    pub lastmodified: String,
    pub mac: String,
    pub encryption: Option<&'a EncryptionRule>,
    pub mac_only_encrypted: bool,
}

/// How a format writes a nil Go slice (`hc_vault` in key groups): YAML `[]`, JSON `null`,
/// dotenv drops it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NilSlice {
    EmptyList,
    Null,
    Absent,
}

impl MetadataText<'_> {
    /// The `sops` mapping in sops 3.11's struct order (`stores/stores.go` `Metadata`).
    pub(crate) fn to_value(&self, nil: NilSlice) -> Value {
        let age = |entries: &[(String, String)]| {
            Value::List(
                entries
                    .iter()
                    .map(|(recipient, enc)| {
                        Value::Map(vec![
                            ("recipient".into(), Value::Str(recipient.clone())),
                            ("enc".into(), Value::Str(enc.clone())),
                        ])
                    })
                    .collect(),
            )
        };
        let mut out = Vec::new();
        if self.groups.len() == 1 {
            out.push(("age".to_owned(), age(&self.groups[0])));
        } else {
            let threshold = i64::try_from(self.threshold).unwrap_or(i64::MAX);
            out.push(("shamir_threshold".to_owned(), Value::Int(threshold)));
            let groups = self
                .groups
                .iter()
                .map(|g| {
                    let mut group = Vec::new();
                    match nil {
                        NilSlice::EmptyList => group.push(("hc_vault".into(), Value::List(vec![]))),
                        NilSlice::Null => group.push(("hc_vault".into(), Value::Null)),
                        NilSlice::Absent => {}
                    }
                    group.push(("age".into(), age(g)));
                    Value::Map(group)
                })
                .collect();
            out.push(("key_groups".to_owned(), Value::List(groups)));
        }
        out.push(("lastmodified".into(), Value::Str(self.lastmodified.clone())));
        out.push(("mac".into(), Value::Str(self.mac.clone())));
        if let Some(rule) = self.encryption {
            let (name, value) = rule.metadata_entry();
            out.push((name.into(), Value::Str(value.to_owned())));
        }
        if self.mac_only_encrypted {
            out.push(("mac_only_encrypted".into(), Value::Bool(true)));
        }
        out.push(("version".into(), Value::Str(SOPS_VERSION.into())));
        Value::Map(out)
    }
}
