//! The `sops` metadata block, read from its parsed form (any format, either key order).

use crate::error::malformed;
use crate::tree::Value;
use crate::SopsError;

/// Master key kinds other than age, kept verbatim in the file.
pub(crate) const OTHER_KINDS: &[&str] = &["pgp", "kms", "gcp_kms", "hckms", "azure_kv", "hc_vault"];

/// One age master key: the recipient string and its armored `enc` blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgeEntry {
    /// The recipient exactly as stored (`age1…`, `ssh-ed25519 AAAA… comment`, …).
    pub recipient: String,
    /// The ASCII-armored age file holding the data key (or this group's Shamir share).
    pub enc: String,
}

/// A master key of any kind, for listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterKey {
    /// `age`, `pgp`, `kms`, `gcp_kms`, `azure_kv`, `hc_vault`, `hckms` (as the file names them).
    pub kind: String,
    /// The recipient, fingerprint, ARN, URL, … that names the key: what sops' `ToString()` gives,
    /// so it compares with the keys of a `.sops.yaml` rule.
    pub id: String,
}

impl MasterKey {
    /// Whether this key is the rule key `kind: value` of `.sops.yaml` (`pgp`, `kms`,
    /// `azure_keyvault`, `hc_vault_transit_uri`, …), compared as sops' `updatekeys` does: by
    /// `ToString()` (a pgp fingerprint without spaces and in any case; a KMS ARN without its
    /// `+role`).
    pub fn is_rule_key(&self, kind: &str, value: &str) -> bool {
        let file_kind = match kind {
            "azure_keyvault" => "azure_kv",
            "hc_vault_transit_uri" => "hc_vault",
            other => other,
        };
        if self.kind != file_kind {
            return false;
        }
        let value = rule_key_id(file_kind, value.trim());
        match file_kind {
            "pgp" => {
                let normal = |s: &str| s.replace(' ', "").to_ascii_uppercase();
                normal(&self.id) == normal(&value)
            }
            "kms" => self.id == value.split('+').next().unwrap_or(&value),
            _ => self.id == value,
        }
    }
}

/// The `ToString()` of a rule key: the string itself, or for the mappings `key_groups` uses
/// (`{arn: …, role: …}`, `{resource_id: …}`, `{vaultUrl: …, key: …, version: …}`,
/// `{key_id: …}`) the fields sops builds it from.
fn rule_key_id(file_kind: &str, value: &str) -> String {
    let Some(map) = yaml_mapping(value) else {
        return value.to_owned();
    };
    let field = |name: &str| {
        map.get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    match file_kind {
        "kms" => field("arn"),
        "gcp_kms" => field("resource_id"),
        "hckms" => field("key_id"),
        "azure_kv" => format!(
            "{}/keys/{}/{}",
            field("vaultUrl").trim_end_matches('/'),
            field("key"),
            field("version")
        ),
        _ => value.to_owned(),
    }
}

/// `text` read as a YAML mapping: a flow mapping, or the source of a block mapping whose lines
/// after the first keep their original indentation.
fn yaml_mapping(text: &str) -> Option<yaml_serde::Mapping> {
    if !text.contains(':') {
        return None;
    }
    let parse = |t: &str| match yaml_serde::from_str::<yaml_serde::Value>(t) {
        Ok(yaml_serde::Value::Mapping(map)) => Some(map),
        _ => None,
    };
    parse(text).or_else(|| {
        let mut lines = text.lines();
        let first = lines.next()?;
        let rest: Vec<&str> = lines.collect();
        let indent = rest
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        let mut out = String::from(first);
        for line in rest {
            out.push('\n');
            out.push_str(line.get(indent..).unwrap_or(line.trim_start()));
        }
        parse(&out)
    })
}

impl std::fmt::Display for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.id)
    }
}

/// One key group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyGroup {
    /// Its age keys, in file order.
    pub age: Vec<AgeEntry>,
    /// Its other master keys (kept verbatim; we cannot encrypt to them).
    pub others: Vec<MasterKey>,
}

/// The parts of the `sops` block the engine needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Key groups: one for the flat layout, several with Shamir.
    pub groups: Vec<KeyGroup>,
    /// Whether the keys are stored flat (`age:` directly under `sops`).
    pub flat: bool,
    /// Shares needed (1 for a single group).
    pub threshold: usize,
    /// `lastmodified` exactly as stored.
    pub lastmodified: String,
    /// `mac` exactly as stored (an `ENC[…]` string).
    pub mac: String,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
    /// `version`, if present.
    pub version: Option<String>,
}

fn int_of(value: &Value) -> Option<usize> {
    match value {
        Value::Int(i) => usize::try_from(*i).ok(),
        Value::Float(f) if f.fract() == 0.0 && *f >= 0.0 => Some(*f as usize),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The string sops' `ToString()` gives a stored master key of `kind` (how `updatekeys` compares
/// a file's keys with a rule's): the pgp fingerprint, the KMS ARN, the Azure key URL, the Vault
/// transit URI, … Falls back to the entry's first string for shapes sops does not write.
fn key_id(kind: &str, value: &Value) -> String {
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    let id = match kind {
        "pgp" => field("fp").to_owned(),
        "kms" => field("arn").to_owned(),
        "gcp_kms" => field("resource_id").to_owned(),
        "hckms" => field("key_id").to_owned(),
        "azure_kv" if !field("vault_url").is_empty() => format!(
            "{}/keys/{}/{}",
            field("vault_url"),
            field("name"),
            field("version")
        ),
        "hc_vault" if !field("vault_address").is_empty() => format!(
            "{}/v1/{}/keys/{}",
            field("vault_address"),
            field("engine_path"),
            field("key_name")
        ),
        _ => String::new(),
    };
    if !id.is_empty() {
        return id;
    }
    match value {
        Value::Map(entries) => entries
            .iter()
            .find_map(|(_, v)| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        Value::Str(s) => s.clone(),
        _ => String::new(),
    }
}

fn read_group(group: &Value, where_: &str) -> Result<KeyGroup, SopsError> {
    let mut out = KeyGroup::default();
    if let Some(Value::List(entries)) = group.get("age") {
        for (i, entry) in entries.iter().enumerate() {
            let recipient = entry.get("recipient").and_then(Value::as_str);
            let enc = entry.get("enc").and_then(Value::as_str);
            let (Some(recipient), Some(enc)) = (recipient, enc) else {
                return Err(malformed(format!(
                    "{where_} age entry {} lacks `recipient` or `enc`",
                    i + 1
                )));
            };
            out.age.push(AgeEntry {
                recipient: recipient.trim().to_owned(),
                enc: enc.to_owned(),
            });
        }
    }
    for kind in OTHER_KINDS {
        if let Some(Value::List(keys)) = group.get(kind) {
            out.others.extend(keys.iter().map(|k| MasterKey {
                kind: (*kind).to_owned(),
                id: key_id(kind, k),
            }));
        }
    }
    Ok(out)
}

impl Metadata {
    /// Reads the metadata from the parsed `sops` node.
    pub(crate) fn from_value(sops: &Value) -> Result<Self, SopsError> {
        if !matches!(sops, Value::Map(_)) {
            return Err(malformed("`sops` is not a mapping"));
        }
        let flat_group = read_group(sops, "sops")?;
        let flat = !flat_group.age.is_empty() || !flat_group.others.is_empty();
        let groups = if flat {
            vec![flat_group]
        } else {
            match sops.get("key_groups") {
                Some(Value::List(groups)) => groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| read_group(g, &format!("key group {}", i + 1)))
                    .collect::<Result<Vec<_>, _>>()?,
                _ => Vec::new(),
            }
        };
        if groups.is_empty() {
            return Err(malformed("the sops block names no master keys"));
        }
        let threshold = sops
            .get("shamir_threshold")
            .and_then(int_of)
            .filter(|t| *t > 0)
            .unwrap_or(if groups.len() > 1 { groups.len() } else { 1 });
        let lastmodified = sops
            .get("lastmodified")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("the sops block has no `lastmodified`"))?
            .to_owned();
        let mac = sops
            .get("mac")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("the sops block has no `mac`"))?
            .to_owned();
        let mac_only_encrypted = match sops.get("mac_only_encrypted") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Str(s)) => s == "true",
            _ => false,
        };
        let version = sops.get("version").and_then(|v| match v {
            Value::Str(s) => Some(s.clone()),
            Value::Float(f) => Some(crate::tree::format_float(*f)),
            _ => None,
        });
        Ok(Self {
            groups,
            flat,
            threshold,
            lastmodified,
            mac,
            mac_only_encrypted,
            version,
        })
    }

    /// Every master key, as `group N: kind id` lines for error messages.
    pub(crate) fn describe_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, group) in self.groups.iter().enumerate() {
            let prefix = if self.groups.len() > 1 {
                format!("group {}: ", i + 1)
            } else {
                String::new()
            };
            for entry in &group.age {
                out.push(format!("{prefix}age {}", entry.recipient));
            }
            for other in &group.others {
                out.push(format!("{prefix}{other}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, id: &str) -> MasterKey {
        MasterKey {
            kind: kind.into(),
            id: id.into(),
        }
    }

    #[test]
    fn rule_keys_compare_as_sops_to_string_including_key_group_mappings() {
        let arn = "arn:aws:kms:eu-west-1:123456789012:key/abc";
        assert!(key("kms", arn).is_rule_key("kms", &format!("{arn}+arn:aws:iam::1:role/x")));
        assert!(key("kms", arn).is_rule_key("kms", &format!("arn: {arn}\n          role: r")));
        assert!(key("kms", arn).is_rule_key("kms", &format!("{{arn: {arn}, role: r}}")));
        assert!(!key("kms", arn).is_rule_key("kms", "arn: other"));
        assert!(key("gcp_kms", "projects/p/keys/k")
            .is_rule_key("gcp_kms", "resource_id: projects/p/keys/k"));
        let azure = "https://v.vault.azure.net/keys/name/0123";
        assert!(key("azure_kv", azure).is_rule_key("azure_keyvault", azure));
        assert!(key("azure_kv", azure).is_rule_key(
            "azure_keyvault",
            "vaultUrl: https://v.vault.azure.net\n            key: name\n            version: 0123"
        ));
        let vault = "https://vault:8200/v1/sops/keys/k";
        assert!(key("hc_vault", vault).is_rule_key("hc_vault_transit_uri", vault));
        assert!(key("hc_vault", vault).is_rule_key("hc_vault", vault));
        assert!(!key("hc_vault", vault).is_rule_key("kms", vault));
    }

    #[test]
    fn key_group_mappings_from_a_real_sops_yaml_match_the_files_keys() {
        let arn = "arn:aws:kms:eu-west-1:123456789012:key/abc";
        let text = format!(
            "creation_rules:\n  - key_groups:\n      - kms:\n          - arn: {arn}\n            role: arn:aws:iam::1:role/r\n            context:\n              a: b\n        azure_keyvault:\n          - vaultUrl: https://v.vault.azure.net\n            key: name\n            version: \"0123\"\n        age: [age1r4kkg3s6xc5md6auca6h4ke02aje60e3hawfxwgyxtqmhw07q4jq6tfs09]\n"
        );
        let config =
            crate::rules::SopsConfig::parse(std::path::Path::new("/r/.sops.yaml"), &text).unwrap();
        let others = &config.rules()[0].other_keys[0];
        let kms = others.iter().find(|o| o.kind == "kms").unwrap();
        assert!(
            key("kms", arn).is_rule_key(&kms.kind, &kms.value),
            "{kms:?}"
        );
        let azure = others.iter().find(|o| o.kind == "azure_keyvault").unwrap();
        assert!(
            key("azure_kv", "https://v.vault.azure.net/keys/name/0123")
                .is_rule_key(&azure.kind, &azure.value),
            "{azure:?}"
        );
    }
}
