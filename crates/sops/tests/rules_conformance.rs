//! Conformance of the `.sops.yaml` rules engine against real-world files
//! (`../shared/corpus/sops-yaml/`) and golden edits (`tests/rules/`).
//!
//! Refresh the golden files with `UPDATE_GOLDEN=1 cargo test -p hostage-sops --test rules_conformance`.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure

use std::path::{Path, PathBuf};

use hostage_recipients::AgeRecipient;
use hostage_sops::rules::{RecipientRef, RuleSelector, SopsConfig};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/sops-yaml")
}

fn corpus() -> Vec<(PathBuf, String)> {
    let dir = corpus_dir();
    let mut files: Vec<(PathBuf, String)> = fs_err::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus must be present at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| {
            let text = fs_err::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    files
}

fn new_recipient() -> AgeRecipient {
    AgeRecipient::from_bytes([7; 32])
}

#[test]
fn every_corpus_file_parses() {
    for (path, text) in corpus() {
        let config =
            SopsConfig::parse(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!config.rules().is_empty(), "{}: no rules", path.display());
    }
}

#[test]
fn adding_then_removing_a_recipient_in_every_rule_gives_back_the_original_bytes() {
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
fn adding_a_named_recipient_then_removing_it_gives_back_the_original_bytes() {
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
