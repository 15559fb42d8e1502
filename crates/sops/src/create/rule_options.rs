//! A creation rule's crypt options (`unencrypted_suffix`, `encrypted_regex`, …,
//! `mac_only_encrypted`), read from the `.sops.yaml` text with sops' semantics (anchors, aliases
//! and merge keys resolved; at most one crypt rule). The rules engine reads key groups; these
//! options are read here so that new files get them.

use super::EncryptionRule;
use crate::rules::{CreationRule, SopsConfig};
use crate::SopsError;

/// The crypt options of one rule.
pub(crate) struct RuleCryptOptions {
    pub encryption: EncryptionRule,
    pub mac_only_encrypted: bool,
}

const CRYPT_KEYS: &[&str] = &[
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
];

pub(crate) fn read(
    config: &SopsConfig,
    rule: &CreationRule,
) -> Result<RuleCryptOptions, SopsError> {
    let bad = |reason: String| SopsError::Unsupported {
        action: format!(
            "use creation rule {} (line {}) of {}",
            rule.index + 1,
            rule.line,
            config.path().display()
        ),
        reason,
    };
    let mut root: yaml_serde::Value = yaml_serde::from_str(config.text())
        .map_err(|e| bad(format!("the file does not parse as YAML: {e}")))?;
    root.apply_merge()
        .map_err(|e| bad(format!("a merge key cannot be resolved: {e}")))?;
    let entry = root
        .get("creation_rules")
        .and_then(|rules| rules.get(rule.index))
        .ok_or_else(|| bad("the rule is not in `creation_rules`".into()))?;
    let mut found: Vec<(&str, String)> = Vec::new();
    for key in CRYPT_KEYS {
        match entry.get(*key) {
            None | Some(yaml_serde::Value::Null) => {}
            Some(yaml_serde::Value::String(s)) if s.is_empty() => {}
            Some(yaml_serde::Value::String(s)) => found.push((key, s.clone())),
            Some(_) => return Err(bad(format!("`{key}` is not a string"))),
        }
    }
    let encryption = match found.as_slice() {
        [] => EncryptionRule::default(),
        [(key, value)] => match *key {
            "unencrypted_suffix" => EncryptionRule::UnencryptedSuffix(value.clone()),
            "encrypted_suffix" => EncryptionRule::EncryptedSuffix(value.clone()),
            "unencrypted_regex" => EncryptionRule::UnencryptedRegex(value.clone()),
            "encrypted_regex" => EncryptionRule::EncryptedRegex(value.clone()),
            other => {
                return Err(bad(format!(
                    "`{other}` (comment-based encryption) is not supported for new files yet"
                )))
            }
        },
        several => {
            let names: Vec<&str> = several.iter().map(|(k, _)| *k).collect();
            return Err(bad(format!(
                "it sets {}; sops allows only one of them (remove all but one)",
                names.join(" and ")
            )));
        }
    };
    let mac_only_encrypted = match entry.get("mac_only_encrypted") {
        None | Some(yaml_serde::Value::Null) => false,
        Some(yaml_serde::Value::Bool(b)) => *b,
        Some(_) => return Err(bad("`mac_only_encrypted` is not true or false".into())),
    };
    Ok(RuleCryptOptions {
        encryption,
        mac_only_encrypted,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::rules::SopsConfig;
    use crate::{EncryptionRule, NewFileOptions};

    const ALICE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    const BOB: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

    fn options(text: &str, file: &str) -> Result<NewFileOptions, crate::SopsError> {
        let config = SopsConfig::parse(Path::new("/repo/.sops.yaml"), text).unwrap();
        let (_, rule) = config.rule_for(Path::new(file)).unwrap();
        NewFileOptions::from_rule(&config, rule)
    }

    #[test]
    fn a_rule_gives_its_groups_threshold_and_crypt_options() {
        let text = format!(
            "keys:\n  - &alice {ALICE}\ncommon: &common\n  encrypted_regex: ^(data|pw)$\n  mac_only_encrypted: true\ncreation_rules:\n  - path_regex: kg/.*\n    <<: *common\n    shamir_threshold: 2\n    key_groups:\n      - age: [*alice]\n      - age: [{BOB}]\n  - age: {ALICE},{BOB}\n"
        );
        let kg = options(&text, "/repo/kg/x.yaml").unwrap();
        assert_eq!(
            kg.key_groups,
            vec![vec![ALICE.to_owned()], vec![BOB.to_owned()]]
        );
        assert_eq!(kg.shamir_threshold, Some(2));
        assert_eq!(
            kg.encryption,
            EncryptionRule::EncryptedRegex("^(data|pw)$".into())
        );
        assert!(kg.mac_only_encrypted);
        let flat = options(&text, "/repo/other.yaml").unwrap();
        assert_eq!(
            flat.key_groups,
            vec![vec![ALICE.to_owned(), BOB.to_owned()]]
        );
        assert_eq!(flat.encryption, EncryptionRule::default());
        assert!(!flat.mac_only_encrypted);
    }

    #[test]
    fn two_crypt_rules_are_refused_like_sops_does() {
        let text = format!(
            "creation_rules:\n  - age: {ALICE}\n    encrypted_regex: a\n    unencrypted_suffix: _x\n"
        );
        let err = options(&text, "/repo/x.yaml").unwrap_err().to_string();
        assert!(
            err.contains("unencrypted_suffix and encrypted_regex"),
            "{err}"
        );
        assert!(err.contains("rule 1 (line 2)"), "{err}");
    }
}
