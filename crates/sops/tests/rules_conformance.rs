//! Conformance of the `.sops.yaml` rules engine against real-world files (the corpus, see
//! `hostage_tests::corpus_dir`; its tests are named `corpus_…` and run by `cargo xtask test` when the
//! corpus is present) and golden edits (`tests/rules/`).
//!
//! Refresh the golden files with `UPDATE_GOLDEN=1 cargo test -p hostage-sops --test rules_conformance`.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure

use std::path::{Path, PathBuf};

use hostage_recipients::AgeRecipient;
use hostage_sops::rules::{RecipientRef, RuleSelector, SopsConfig};

fn corpus() -> Vec<(PathBuf, String)> {
    hostage_tests::corpus_sops_yaml_files()
        .into_iter()
        .map(|p| {
            let text = fs_err::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

fn new_recipient() -> AgeRecipient {
    AgeRecipient::from_bytes([7; 32])
}

#[test]
#[ignore = "needs the real-world corpus: cargo xtask test runs it when present"]
fn corpus_every_file_parses() {
    for (path, text) in corpus() {
        let config =
            SopsConfig::parse(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!config.rules().is_empty(), "{}: no rules", path.display());
    }
}

#[test]
#[ignore = "needs the real-world corpus: cargo xtask test runs it when present"]
fn corpus_adding_then_removing_a_recipient_in_every_rule_gives_back_the_original_bytes() {
    let recipient = new_recipient();
    let reference = RecipientRef::literal(&recipient);
    for (path, text) in corpus() {
        let config = SopsConfig::parse(&path, &text).unwrap();
        let added = config
            .add_recipient(&RuleSelector::All, &reference)
            .unwrap_or_else(|e| panic!("{}: add: {e}", path.display()));
        let after = SopsConfig::parse(&path, &added)
            .unwrap_or_else(|e| panic!("{}: reparse: {e}\n{added}", path.display()));
        for rule in after.rules() {
            for group in &rule.key_groups {
                assert!(
                    group.iter().any(|e| e.recipient == reference.recipient),
                    "{}: rule {} lacks the new recipient:\n{added}",
                    path.display(),
                    rule.index
                );
            }
        }
        // Everything else is unchanged: the old rules' recipients are still there, in order.
        for (old, new) in config.rules().iter().zip(after.rules()) {
            for (g_old, g_new) in old.key_groups.iter().zip(&new.key_groups) {
                let kept: Vec<_> = g_new
                    .iter()
                    .filter(|e| e.recipient != reference.recipient)
                    .map(|e| &e.recipient)
                    .collect();
                let before: Vec<_> = g_old.iter().map(|e| &e.recipient).collect();
                assert_eq!(kept, before, "{}: rule {}", path.display(), old.index);
            }
            assert_eq!(old.other_keys, new.other_keys);
        }
        let removed = after
            .remove_recipient(&RuleSelector::All, &reference.recipient)
            .unwrap_or_else(|e| panic!("{}: remove: {e}\n{added}", path.display()));
        assert_eq!(
            removed,
            text,
            "{}: round trip changed bytes",
            path.display()
        );
    }
}

#[test]
#[ignore = "needs the real-world corpus: cargo xtask test runs it when present"]
fn corpus_adding_a_named_recipient_then_removing_it_gives_back_the_original_bytes() {
    let recipient = new_recipient();
    for (path, text) in corpus() {
        let config = SopsConfig::parse(&path, &text).unwrap();
        let named = config
            .add_named_recipient("hostage-test", &recipient)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let with_key = SopsConfig::parse(&path, &named.text).unwrap();
        let added = with_key
            .add_recipient(&RuleSelector::All, &named.reference)
            .unwrap_or_else(|e| panic!("{}: add: {e}", path.display()));
        let after = SopsConfig::parse(&path, &added).unwrap();
        for rule in after.rules() {
            for group in &rule.key_groups {
                assert!(group
                    .iter()
                    .any(|e| e.recipient == named.reference.recipient));
            }
        }
        let removed = after
            .remove_recipient(&RuleSelector::All, &named.reference.recipient)
            .unwrap_or_else(|e| panic!("{}: remove: {e}\n{added}", path.display()));
        let back = if named.reference.anchor.is_some() {
            SopsConfig::parse(&path, &removed)
                .unwrap()
                .remove_named_recipient("hostage-test")
                .unwrap_or_else(|e| panic!("{}: {e}\n{removed}", path.display()))
        } else {
            removed
        };
        assert_eq!(back, text, "{}: round trip changed bytes", path.display());
    }
}

// ----- golden edits ------------------------------------------------------------------------------

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules")
}

/// Compares `actual` with the golden file `name`, or rewrites it under `UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs_err::write(&path, actual).unwrap();
        return;
    }
    let expected = fs_err::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{e} (run with UPDATE_GOLDEN=1 to create it)"));
    assert_eq!(
        actual, expected,
        "golden file {name} differs (UPDATE_GOLDEN=1 refreshes it)"
    );
}

fn fixture(name: &str) -> (PathBuf, String) {
    let path = golden_dir().join(name);
    let text = fs_err::read_to_string(&path).unwrap();
    (path, text)
}

fn host_recipient() -> AgeRecipient {
    AgeRecipient::from_bytes([42; 32])
}

#[test]
fn golden_new_host_in_anchored_file_gets_an_anchor_and_aliases() {
    let (path, text) = fixture("anchors.sops.yaml");
    let config = SopsConfig::parse(&path, &text).unwrap();
    let named = config
        .add_named_recipient("server_app01", &host_recipient())
        .unwrap();
    let config = SopsConfig::parse(&path, &named.text).unwrap();
    let out = config
        .add_recipient(&RuleSelector::All, &named.reference)
        .unwrap();
    golden("anchors.add-host.expected.yaml", &out);
}

#[test]
fn golden_every_flat_style_gets_the_recipient_in_its_own_style() {
    let (path, text) = fixture("styles.sops.yaml");
    let config = SopsConfig::parse(&path, &text).unwrap();
    let out = config
        .add_recipient(
            &RuleSelector::All,
            &RecipientRef::literal(&host_recipient()),
        )
        .unwrap();
    golden("styles.add.expected.yaml", &out);
    let back = SopsConfig::parse(&path, &out)
        .unwrap()
        .remove_recipient(&RuleSelector::All, &host_recipient().to_string())
        .unwrap();
    assert_eq!(back, text);
}

#[test]
fn golden_crlf_file_without_final_newline_keeps_both() {
    let (path, text) = fixture("crlf-no-final-newline.sops.yaml");
    assert!(text.contains("\r\n") && !text.ends_with('\n'));
    let config = SopsConfig::parse(&path, &text).unwrap();
    let named = config
        .add_named_recipient("web02", &host_recipient())
        .unwrap();
    let out = SopsConfig::parse(&path, &named.text)
        .unwrap()
        .add_recipient(&RuleSelector::All, &named.reference)
        .unwrap();
    assert!(
        !out.replace("\r\n", "").contains('\n'),
        "a bare LF crept in"
    );
    assert!(!out.ends_with('\n'));
    golden("crlf-no-final-newline.add.expected.yaml", &out);
}

#[test]
fn golden_per_host_rule_goes_above_the_catch_all_with_its_keys() {
    let (path, text) = fixture("anchors.sops.yaml");
    let config = SopsConfig::parse(&path, &text).unwrap();
    let named = config
        .add_named_recipient("server_app01", &host_recipient())
        .unwrap();
    let config = SopsConfig::parse(&path, &named.text).unwrap();
    let out = config
        .add_path_rule("secrets/hosts/app01/.*", &named.reference)
        .unwrap();
    golden("anchors.path-rule.expected.yaml", &out);
    let after = SopsConfig::parse(&path, &out).unwrap();
    let (_, rule) = after
        .rule_for_sops_path("secrets/hosts/app01/x.yaml")
        .unwrap();
    assert_eq!(rule.path_regex.as_deref(), Some("secrets/hosts/app01/.*"));
    let names: Vec<_> = rule.key_groups[0]
        .iter()
        .map(|e| e.anchor.clone())
        .collect();
    assert_eq!(
        names.last().cloned().flatten().as_deref(),
        Some("server_app01")
    );
}

#[test]
fn golden_replacing_an_anchored_key_changes_only_the_anchor_value() {
    let (path, text) = fixture("anchors.sops.yaml");
    let config = SopsConfig::parse(&path, &text).unwrap();
    let old = config
        .named_recipients()
        .into_iter()
        .find(|(n, _)| n == "server_web01")
        .unwrap()
        .1;
    let out = config.replace_recipient(&old, &host_recipient()).unwrap();
    golden("anchors.replace.expected.yaml", &out);
    let after = SopsConfig::parse(&path, &out).unwrap();
    assert_eq!(
        after.name_of(&host_recipient().to_string()).as_deref(),
        Some("server_web01")
    );
}

#[test]
fn golden_header_comment_style_gets_a_label_and_an_inline_key() {
    let (path, text) = fixture("header-comments.sops.yaml");
    let config = SopsConfig::parse(&path, &text).unwrap();
    let named = config
        .add_named_recipient("web02", &host_recipient())
        .unwrap();
    assert_eq!(named.reference.anchor, None);
    let out = SopsConfig::parse(&path, &named.text)
        .unwrap()
        .add_recipient(&RuleSelector::All, &named.reference)
        .unwrap();
    golden("header-comments.add.expected.yaml", &out);
}

#[test]
fn golden_lints_of_a_file_with_every_mistake() {
    let (path, text) = fixture("mistakes.sops.yaml");
    let config = SopsConfig::parse(&path, &text).unwrap();
    let json = serde_json::to_string_pretty(config.lints()).unwrap();
    golden("mistakes.lints.expected.json", &format!("{json}\n"));
}

// ----- property: add then remove is the identity, in every style and layout ----------------------

mod roundtrip {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "age1r4kkg3s6xc5md6auca6h4ke02aje60e3hawfxwgyxtqmhw07q4jq6tfs09";
    const B: &str = "age1uxww5u66u3hha25dwvwqjgmrsxvd6mmspv9yqfx37w24w0a8tvaqe4nq5p";

    /// One rule's body lines (after `- path_regex: …`), indented by `i` per level.
    fn rule_body(style: u8, i: &str) -> Vec<String> {
        match style {
            0 => vec![format!("age: {A},{B}")],
            1 => vec![format!("age: \"{A}, {B}\"  # quoted")],
            2 => vec!["age: >-".to_owned(), format!("{i}{A},"), format!("{i}{B}")],
            3 => vec![
                "age:".to_owned(),
                format!("{i}- {A}"),
                format!("{i}# trailing"),
            ],
            4 => vec![format!("age: [*alice, {B}]")],
            5 => vec!["age: *alice".to_owned()],
            6 => vec![
                "key_groups:".to_owned(),
                format!("{i}- age:"),
                format!("{i}{i}{i}- *alice"),
                format!("{i}{i}{i}- {B}   # aligned"),
            ],
            7 => vec![
                "key_groups:".to_owned(),
                "- age: [*alice]".to_owned(),
                "  pgp: [85D77543B3D624B63CEA9E6DBC17301B491B3F21]".to_owned(),
            ],
            _ => vec![
                "pgp: 85D77543B3D624B63CEA9E6DBC17301B491B3F21".to_owned(),
                format!("age: {A}"),
            ],
        }
    }

    fn config_text(styles: &[u8], wide: bool, crlf: bool, final_newline: bool) -> String {
        let i = if wide { "    " } else { "  " };
        let new = AgeRecipient::from_bytes([5; 32]);
        let mut lines = vec![
            "# fleet".to_owned(),
            "keys:".to_owned(),
            format!("{i}- &alice {A}"),
            format!("{i}- &newhost {new}  # not used yet"),
        ];
        lines.push("creation_rules:".to_owned());
        for (n, style) in styles.iter().enumerate() {
            lines.push(format!("{i}# rule {n}"));
            lines.push(format!("{i}- path_regex: dir{n}/.*"));
            for line in rule_body(*style, i) {
                lines.push(format!("{i}  {line}"));
            }
        }
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = lines.join(eol);
        if final_newline {
            text.push_str(eol);
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn adding_then_removing_in_any_subset_of_rules_is_the_identity(
            styles in proptest::collection::vec(0u8..9, 1..6),
            wide: bool,
            crlf: bool,
            final_newline: bool,
            subset in proptest::collection::vec(any::<bool>(), 6),
            named: bool,
        ) {
            let text = config_text(&styles, wide, crlf, final_newline);
            let path = Path::new("/repo/.sops.yaml");
            let config = SopsConfig::parse(path, &text).unwrap();
            let selected: Vec<usize> = (0..styles.len()).filter(|i| subset[*i]).collect();
            let selector = RuleSelector::Indices(selected.clone());
            let recipient = AgeRecipient::from_bytes([5; 32]);
            let reference = RecipientRef {
                recipient: recipient.to_string(),
                anchor: named.then(|| "newhost".to_owned()),
            };
            let added = config.add_recipient(&selector, &reference).unwrap();
            if crlf {
                prop_assert!(!added.replace("\r\n", "").contains('\n'));
            }
            prop_assert_eq!(added.ends_with('\n'), final_newline);
            let after = SopsConfig::parse(path, &added).unwrap();
            for (old, new) in config.rules().iter().zip(after.rules()) {
                for (g_old, g_new) in old.key_groups.iter().zip(&new.key_groups) {
                    let mut expected: Vec<&String> = g_old.iter().map(|e| &e.recipient).collect();
                    if selected.contains(&old.index) {
                        expected.push(&reference.recipient);
                    }
                    let got: Vec<&String> = g_new.iter().map(|e| &e.recipient).collect();
                    prop_assert_eq!(got, expected, "rule {}:\n{}", old.index, added);
                }
                prop_assert_eq!(&old.other_keys, &new.other_keys);
            }
            let removed = after.remove_recipient(&selector, &reference.recipient).unwrap();
            prop_assert_eq!(removed, text);
        }
    }
}
