//! Conformance of the `.sops.yaml` rules engine against real-world files (the corpus, see
//! `hostage_tests::corpus_dir`; its tests are named `corpus_…` and run by `cargo xtask test` when the
//! corpus is present) and golden edits (`tests/rules/`).
//!
//! Refresh the golden files with `UPDATE_GOLDEN=1 cargo test -p hostage-sops --test rules_conformance`.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure

use std::path::{Path, PathBuf};

use hostage_recipients::AgeRecipient;
use hostage_sops::rules::{
    example_path, ConfigChange, ConfigEdit, NameSource, NewRuleOptions, RecipientKind,
    RecipientRef, RuleSelector, RulesError, SopsConfig,
};

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

// ----- corpus: every edit passes with an exact round trip, or is refused with a reason -----------

/// How one edit scenario on one corpus file ended.
enum Verdict {
    /// Done, checked, and undone to the original bytes; a re-run changed nothing.
    Pass,
    /// A typed refusal ([`RulesError::Edit`]): nothing changed, here is why.
    Refused(String),
    /// Anything else: a panic, an unexpected error, output that does not read back or that
    /// changed bytes it should not have. Always a bug.
    Failed(String),
    /// The test could not build the scenario (reported, not counted either way).
    NotTried(String),
}

/// Why a scenario stopped early.
enum Stop {
    Refused(String),
    Failed(String),
    /// The test could not set the scenario up (no example path for a regex): not a verdict.
    NotTried(String),
}

impl From<RulesError> for Stop {
    fn from(e: RulesError) -> Self {
        match e {
            RulesError::Edit { .. } => Stop::Refused(e.to_string()),
            other => Stop::Failed(other.to_string()),
        }
    }
}

/// `Failed(message)` unless `ok`.
fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), Stop> {
    if ok {
        Ok(())
    } else {
        Err(Stop::Failed(message()))
    }
}

fn reparse(path: &Path, text: &str) -> Result<SopsConfig, Stop> {
    SopsConfig::parse(path, text)
        .map_err(|e| Stop::Failed(format!("our own output does not parse: {e}\n{text}")))
}

/// The recipients of every group of every rule.
fn recipients(config: &SopsConfig) -> Vec<Vec<Vec<String>>> {
    config
        .rules()
        .iter()
        .map(|r| {
            r.key_groups
                .iter()
                .map(|g| g.iter().map(|e| e.recipient.clone()).collect())
                .collect()
        })
        .collect()
}

/// The new recipient goes to every group of every rule, in each list's style; a re-run changes
/// nothing; removing it gives back the original bytes. `name`: through add_named_recipient.
fn scenario_add_to_every_rule(path: &Path, text: &str, name: Option<&str>) -> Result<(), Stop> {
    let new = new_recipient();
    let config = reparse(path, text)?;
    let (config, reference) = match name {
        Some(name) => {
            let named = config.add_named_recipient(name, &new)?;
            let again = reparse(path, &named.text)?.add_named_recipient(name, &new)?;
            // An inline anchor (no `keys:` list) is written with the first rule: until then a
            // second naming reports it again, with the same text.
            check(
                again.text == named.text
                    && (again.changes.is_empty() || named.reference.define_anchor),
                || format!("naming twice changed the file: {:?}", again.changes),
            )?;
            (reparse(path, &named.text)?, named.reference)
        }
        None => (config, RecipientRef::literal(&new)),
    };
    let added = config.add_to_rules(&RuleSelector::All, &reference)?;
    let after = reparse(path, &added.text)?;
    for (old, new_groups) in recipients(&config).iter().zip(recipients(&after)) {
        for (g_old, g_new) in old.iter().zip(&new_groups) {
            let mut expected = g_old.clone();
            if !expected.contains(&reference.recipient) {
                expected.push(reference.recipient.clone());
            }
            check(*g_new == expected, || {
                format!(
                    "a group has {g_new:?}, expected {expected:?}:\n{}",
                    added.text
                )
            })?;
        }
    }
    for (old, new_rule) in config.rules().iter().zip(after.rules()) {
        check(old.other_keys == new_rule.other_keys, || {
            format!("rule {}: other keys changed", old.index)
        })?;
    }
    let again = after.add_to_rules(&RuleSelector::All, &reference)?;
    check(again.text == added.text && again.is_noop(), || {
        "adding twice changed the file".into()
    })?;
    if let Some(name) = name.filter(|_| reference.anchor.is_some()) {
        // Named (by anchor) and added: the file names the key so, and naming it again changes nothing.
        check(
            after.name_of(&reference.recipient).as_deref() == Some(name),
            || {
                format!(
                    "{name} does not name the new key after adding:\n{}",
                    added.text
                )
            },
        )?;
        let renamed = after.add_named_recipient(name, &new)?;
        check(
            renamed.text == added.text && renamed.changes.is_empty(),
            || {
                format!(
                    "naming after adding changed the file: {:?}",
                    renamed.changes
                )
            },
        )?;
    }
    let removed = after.remove_from_rules(&RuleSelector::All, &reference.recipient)?;
    let back = match name {
        Some(name) => reparse(path, &removed.text)?.unname_recipient(name)?.text,
        None => removed.text,
    };
    check(back == text, || {
        format!("round trip changed bytes:\n{back}")
    })
}

/// For each rule a file can reach: a new rule for one path it catches goes right above it with
/// its recipients plus the new one; a re-run changes nothing; removing the rule gives back the
/// original bytes.
fn scenario_new_rule_above(path: &Path, text: &str, rule: usize) -> Result<(), Stop> {
    let config = reparse(path, text)?;
    let example = match config.rules()[rule].path_regex.as_deref() {
        None => Some("hostage-test/secret.yaml".to_owned()),
        Some(regex) => example_path(regex),
    };
    let Some(example) = example else {
        return Err(Stop::NotTried(format!(
            "no example path for rule {rule}'s regex"
        )));
    };
    match config.rule_for_sops_path(&example) {
        Ok((picked, _)) if picked == rule => {}
        // Shadowed, or the path is caught by a rule sops stops at with an error: not this rule's.
        _ => return Ok(()),
    }
    let mut regex = format!("^{}$", regex::escape(&example));
    if config
        .rules()
        .iter()
        .any(|r| r.path_regex.as_deref() == Some(regex.as_str()))
    {
        // The rule is for exactly this path already: say the same differently.
        regex = format!("^(?:{})$", regex::escape(&example));
    }
    let reference = RecipientRef::literal(&new_recipient());
    let options = NewRuleOptions {
        example_path: Some(example.clone()),
        drop: Vec::new(),
    };
    let added = config.add_rule(&regex, &reference, &options)?;
    let after = reparse(path, &added.text)?;
    let (picked, new_rule) = after
        .rule_for_sops_path(&example)
        .map_err(|e| Stop::Failed(format!("the new rule is not picked: {e}")))?;
    check(picked == rule, || {
        format!("sops picks rule {picked} for {example}, not the new rule {rule}")
    })?;
    check(
        new_rule.path_regex.as_deref() == Some(regex.as_str()),
        || format!("rule {rule} is not the new one:\n{}", added.text),
    )?;
    let old = &recipients(&config)[rule];
    let got = &recipients(&after)[rule];
    for (g_old, g_new) in old.iter().zip(got) {
        let mut expected = g_old.clone();
        if !expected.contains(&reference.recipient) {
            expected.push(reference.recipient.clone());
        }
        check(*g_new == expected, || {
            format!(
                "the new rule has {g_new:?}, expected {expected:?}:\n{}",
                added.text
            )
        })?;
    }
    let again = after.add_rule(&regex, &reference, &options)?;
    check(again.text == added.text && again.is_noop(), || {
        "adding the rule twice changed the file".into()
    })?;
    let back = after.remove_rule(&regex)?;
    check(back.text == text, || {
        format!(
            "removing the new rule did not give back the original bytes:\n{}",
            back.text
        )
    })
}

/// The first age recipient is replaced: it is left nowhere, and replacing back gives the
/// original bytes.
fn scenario_replace(path: &Path, text: &str) -> Result<(), Stop> {
    let config = reparse(path, text)?;
    let Some(old) = config
        .rules()
        .iter()
        .flat_map(|r| r.key_groups.iter().flatten())
        .find(|e| e.kind == RecipientKind::X25519)
        .map(|e| e.recipient.clone())
    else {
        return Ok(());
    };
    let new = new_recipient();
    let replaced = config.replace(&old, &new)?;
    check(!replaced.text.contains(&old), || {
        "the old recipient is still there".into()
    })?;
    let old_key = AgeRecipient::parse(&old).map_err(|e| Stop::Failed(e.to_string()))?;
    let back = reparse(path, &replaced.text)?.replace(&new.to_string(), &old_key)?;
    check(back.text == text, || "replacing back changed bytes".into())
}

/// Runs a scenario, turning a panic into a failure.
fn judge(f: impl FnOnce() -> Result<(), Stop>) -> Verdict {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => Verdict::Pass,
        Ok(Err(Stop::Refused(reason))) => Verdict::Refused(reason),
        Ok(Err(Stop::Failed(message))) => Verdict::Failed(message),
        Ok(Err(Stop::NotTried(why))) => Verdict::NotTried(why),
        Err(panic) => Verdict::Failed(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        )),
    }
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

/// Every edit on every corpus file either passes with an exact round trip or is refused with a
/// reason; prints the counts and every refusal (docs/rules.md records them), fails on anything else.
#[test]
#[ignore = "needs the real-world corpus: cargo xtask test runs it when present"]
#[allow(clippy::print_stdout)] // the report is the point: cargo test shows it with --nocapture
fn corpus_every_edit_round_trips_exactly_or_is_refused_with_a_reason() {
    let mut passed = 0;
    let mut refusals = Vec::new();
    let mut failures = Vec::new();
    let mut not_tried = Vec::new();
    let files = corpus();
    for (path, text) in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let rules = SopsConfig::parse(path, text).unwrap().rules().len();
        let mut scenarios: Vec<(String, Verdict)> = vec![
            (
                "add to every rule".into(),
                judge(|| scenario_add_to_every_rule(path, text, None)),
            ),
            (
                "name, then add to every rule".into(),
                judge(|| scenario_add_to_every_rule(path, text, Some("hostage-test"))),
            ),
            ("replace".into(), judge(|| scenario_replace(path, text))),
        ];
        for rule in 0..rules {
            scenarios.push((
                format!("new rule above rule {rule}"),
                judge(|| scenario_new_rule_above(path, text, rule)),
            ));
        }
        for (scenario, verdict) in scenarios {
            match verdict {
                Verdict::Pass => passed += 1,
                Verdict::Refused(reason) => refusals.push(format!("{file}: {scenario}: {reason}")),
                Verdict::Failed(message) => failures.push(format!("{file}: {scenario}: {message}")),
                Verdict::NotTried(why) => not_tried.push(format!("{file}: {scenario}: {why}")),
            }
        }
    }
    println!(
        "corpus: {} files, {} edits passed, {} refused, {} failed, {} not tried",
        files.len(),
        passed,
        refusals.len(),
        failures.len(),
        not_tried.len()
    );
    for why in &not_tried {
        println!("not tried: {why}");
    }
    for refusal in &refusals {
        // The corpus path is machine-specific; the reason after it is what matters.
        println!(
            "refused: {}",
            refusal.replace(&hostage_tests::corpus_dir().display().to_string(), "corpus")
        );
    }
    assert!(
        failures.is_empty(),
        "{} edit(s) neither passed nor were refused:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
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

// ----- the seed layout (docs/rules.md): header labels, flat comma strings, secrets/.* ----------

fn seed_key(n: u8) -> AgeRecipient {
    AgeRecipient::from_bytes([n; 32])
}

/// The fixtures' keys: workstation 1, infrastructure 2, gnomeregan 3, stormwind 4.
const GNOMEREGAN: u8 = 3;
const STORMWIND: u8 = 4;

/// The seed's own onboarding of a host that has rules: its header label and `,age1…` appended to
/// each of its rules, in the seed's order; what the CLI prints comes from the changes.
fn onboard_to_rules(config: &SopsConfig, name: &str, key: &AgeRecipient) -> ConfigEdit {
    let path = config.path();
    let named = config.add_named_recipient(name, key).unwrap();
    let with_name = SopsConfig::parse(path, &named.text).unwrap();
    let rules: Vec<usize> = with_name
        .rules()
        .iter()
        .filter(|r| {
            let regex = r.path_regex.as_deref().unwrap_or_default();
            regex.contains(&format!("/{name}/")) || regex.contains("-storage")
        })
        .map(|r| r.index)
        .collect();
    let added = with_name
        .add_to_rules(&RuleSelector::Indices(rules), &named.reference)
        .unwrap();
    ConfigEdit {
        text: added.text,
        changes: named.changes.into_iter().chain(added.changes).collect(),
    }
}

fn said(edit: &ConfigEdit) -> Vec<String> {
    edit.changes.iter().map(ToString::to_string).collect()
}

#[test]
fn golden_seed_onboarding_a_host_with_rules_is_the_seed_hand_edit_and_a_rerun_changes_nothing() {
    let (path, before) = fixture("seed.before-gnomeregan.sops.yaml");
    let (_, seed) = fixture("seed.sops.yaml");
    let config = SopsConfig::parse(&path, &before).unwrap();
    let edit = onboard_to_rules(&config, "gnomeregan", &seed_key(GNOMEREGAN));
    assert_eq!(edit.text, seed, "not the seed's own edit");
    assert_eq!(
        said(&edit),
        [
            "add header label gnomeregan",
            "add gnomeregan to rule secrets/host/gnomeregan/.*",
            "add gnomeregan to rule secrets/host/ironforge/.*-storage\\.sops\\.yaml",
        ]
    );
    let again = onboard_to_rules(
        &SopsConfig::parse(&path, &edit.text).unwrap(),
        "gnomeregan",
        &seed_key(GNOMEREGAN),
    );
    assert_eq!(again.text, seed, "a re-run changed bytes");
    assert!(again.is_noop(), "a re-run reported {:?}", again.changes);
}

#[test]
fn golden_seed_names_every_recipient_by_its_header_label() {
    let (path, seed) = fixture("seed.sops.yaml");
    let config = SopsConfig::parse(&path, &seed).unwrap();
    let names = config.recipient_names(&[]);
    let got: Vec<_> = names
        .iter()
        .map(|n| (n.name.as_str(), n.recipient.clone(), n.sources.clone()))
        .collect();
    let expected: Vec<_> = [
        ("workstation", 1, 4),
        ("infrastructure", 2, 5),
        ("gnomeregan", 3, 6),
    ]
    .into_iter()
    .map(|(name, key, line)| {
        (
            name,
            seed_key(key).to_string(),
            vec![NameSource::HeaderLabel { line }],
        )
    })
    .collect();
    assert_eq!(got, expected);
    assert!(config.lints().is_empty(), "{:?}", config.lints());
}

#[test]
fn golden_seed_host_without_rules_gets_a_rule_above_the_catch_all() {
    let (path, seed) = fixture("seed.sops.yaml");
    let config = SopsConfig::parse(&path, &seed).unwrap();
    let named = config
        .add_named_recipient("stormwind", &seed_key(STORMWIND))
        .unwrap();
    let with_name = SopsConfig::parse(&path, &named.text).unwrap();
    let rule = with_name
        .add_rule(
            "secrets/host/stormwind/.*",
            &named.reference,
            &NewRuleOptions::default(),
        )
        .unwrap();
    golden("seed.new-rule.expected.yaml", &rule.text);
    let said: Vec<String> = named
        .changes
        .iter()
        .chain(&rule.changes)
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        said,
        [
            "add header label stormwind",
            "add rule secrets/host/stormwind/.* above secrets/.*"
        ]
    );
    // The catch-all's recipients (the workstation) plus the host.
    let after = SopsConfig::parse(&path, &rule.text).unwrap();
    let (_, picked) = after
        .rule_for_sops_path("secrets/host/stormwind/ssh_host_ed25519_key.sops")
        .unwrap();
    let keys: Vec<_> = picked.key_groups[0]
        .iter()
        .map(|e| e.recipient.clone())
        .collect();
    assert_eq!(
        keys,
        [seed_key(1).to_string(), seed_key(STORMWIND).to_string()]
    );
    // A re-run changes nothing.
    let again = after
        .add_named_recipient("stormwind", &seed_key(STORMWIND))
        .unwrap();
    assert!(again.changes.is_empty());
    let again = after
        .add_rule(
            "secrets/host/stormwind/.*",
            &again.reference,
            &NewRuleOptions::default(),
        )
        .unwrap();
    assert_eq!(again.text, rule.text);
    assert!(again.is_noop());
    // Removing the host gives back the original bytes.
    let without_rule = after.remove_rule("secrets/host/stormwind/.*").unwrap();
    let back = SopsConfig::parse(&path, &without_rule.text)
        .unwrap()
        .unname_recipient("stormwind")
        .unwrap();
    assert_eq!(back.text, seed);
}

#[test]
fn golden_seed_replacing_a_host_key_leaves_the_old_one_nowhere_and_updates_its_label() {
    let (path, seed) = fixture("seed.sops.yaml");
    let config = SopsConfig::parse(&path, &seed).unwrap();
    let old = seed_key(GNOMEREGAN).to_string();
    let edit = config.replace(&old, &seed_key(5)).unwrap();
    golden("seed.replace.expected.yaml", &edit.text);
    assert!(!edit.text.contains(&old));
    assert_eq!(
        edit.text.lines().count(),
        seed.lines().count(),
        "a line was added"
    );
    assert_eq!(
        said(&edit),
        [
            "replace the key of header label gnomeregan",
            "replace the key in rule secrets/host/gnomeregan/.*",
            "replace the key in rule secrets/host/ironforge/.*-storage\\.sops\\.yaml",
        ]
    );
    let after = SopsConfig::parse(&path, &edit.text).unwrap();
    assert_eq!(
        after.recipient_names(&[]).recipient_of("gnomeregan"),
        Some(seed_key(5).to_string().as_str())
    );
}

#[test]
fn golden_seed_removing_a_host_gives_back_the_bytes_before_it_was_added() {
    let (path, seed) = fixture("seed.sops.yaml");
    let (_, before) = fixture("seed.before-gnomeregan.sops.yaml");
    let config = SopsConfig::parse(&path, &seed).unwrap();
    let removed = config
        .remove_from_rules(&RuleSelector::All, "gnomeregan")
        .unwrap();
    let unnamed = SopsConfig::parse(&path, &removed.text)
        .unwrap()
        .unname_recipient("gnomeregan")
        .unwrap();
    assert_eq!(unnamed.text, before);
    let said: Vec<String> = removed
        .changes
        .iter()
        .chain(&unnamed.changes)
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        said,
        [
            "remove gnomeregan from rule secrets/host/gnomeregan/.*",
            "remove gnomeregan from rule secrets/host/ironforge/.*-storage\\.sops\\.yaml",
            "remove header label gnomeregan",
        ]
    );
}

#[test]
fn golden_seed_dropping_infrastructure_from_a_new_rule_is_an_option() {
    let (path, seed) = fixture("seed.sops.yaml");
    // A catch-all that keeps infrastructure too, to see it dropped.
    let seed = seed.replace(
        &format!("  - path_regex: secrets/.*\n    age: {}\n", seed_key(1)),
        &format!(
            "  - path_regex: secrets/.*\n    age: {},{}\n",
            seed_key(1),
            seed_key(2)
        ),
    );
    let config = SopsConfig::parse(&path, &seed).unwrap();
    let reference = RecipientRef::literal(&seed_key(STORMWIND));
    let keys = |options: &NewRuleOptions| {
        let text = config
            .add_rule("secrets/host/stormwind/.*", &reference, options)
            .unwrap()
            .text;
        let after = SopsConfig::parse(&path, &text).unwrap();
        let (_, rule) = after
            .rule_for_sops_path("secrets/host/stormwind/x")
            .unwrap();
        rule.key_groups[0]
            .iter()
            .map(|e| e.recipient.clone())
            .collect::<Vec<_>>()
    };
    let kept = keys(&NewRuleOptions::default());
    assert_eq!(kept, [1, 2, STORMWIND].map(|n| seed_key(n).to_string()));
    let dropped = keys(&NewRuleOptions {
        drop: vec!["infrastructure".into()],
        ..Default::default()
    });
    assert_eq!(dropped, [1, STORMWIND].map(|n| seed_key(n).to_string()));
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
            inline: bool,
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
                // abl030's way: the anchor is defined with the first list item, aliased after.
                define_anchor: named && inline,
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

    /// A file naming its recipients by anchors, header labels, both, or neither.
    fn naming_config(anchors: bool, labels: bool, styles: &[u8], crlf: bool) -> String {
        let mut lines = Vec::new();
        if labels {
            lines.push("# Public AGE keys:".to_owned());
            lines.push(format!("# alice:   {A}"));
            lines.push(format!("#   bob:   {B}"));
        }
        if anchors {
            lines.push("keys:".to_owned());
            lines.push(format!("  - &alice {A}"));
        }
        lines.push("creation_rules:".to_owned());
        for (n, style) in styles.iter().enumerate() {
            lines.push(format!("  - path_regex: dir{n}/.*"));
            let body = match (style, anchors) {
                (0, _) => vec![format!("age: {A},{B}")],
                (1, true) => vec![
                    "age:".to_owned(),
                    "  - *alice".to_owned(),
                    format!("  - {B}"),
                ],
                (1, false) => vec!["age:".to_owned(), format!("  - {A}"), format!("  - {B}")],
                (_, true) => vec!["key_groups:".to_owned(), "  - age: [*alice]".to_owned()],
                (_, false) => vec!["key_groups:".to_owned(), format!("  - age: [{A}]")],
            };
            for line in body {
                lines.push(format!("    {line}"));
            }
        }
        let eol = if crlf { "\r\n" } else { "\n" };
        lines.join(eol) + eol
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        #[test]
        fn naming_then_adding_then_removing_is_the_identity_in_every_naming_convention(
            anchors: bool,
            labels: bool,
            styles in proptest::collection::vec(0u8..3, 1..4),
            crlf: bool,
            subset in proptest::collection::vec(any::<bool>(), 4),
        ) {
            let text = naming_config(anchors, labels, &styles, crlf);
            let path = Path::new("/repo/.sops.yaml");
            let config = SopsConfig::parse(path, &text).unwrap();
            let key = AgeRecipient::from_bytes([6; 32]);
            let named = config.add_named_recipient("carol", &key).unwrap();
            prop_assert_eq!(
                named.changes.iter().any(|c| matches!(c, ConfigChange::AddAnchor { .. })),
                anchors
            );
            prop_assert_eq!(
                named.changes.iter().any(|c| matches!(c, ConfigChange::AddHeaderLabel { .. })),
                labels
            );
            let with_name = SopsConfig::parse(path, &named.text).unwrap();
            let names = with_name.recipient_names(&[]);
            let expected = (anchors || labels).then(|| key.to_string());
            prop_assert_eq!(names.recipient_of("carol"), expected.as_deref());
            let selected: Vec<usize> = (0..styles.len()).filter(|i| subset[*i]).collect();
            let selector = RuleSelector::Indices(selected);
            let added = with_name.add_to_rules(&selector, &named.reference).unwrap();
            let after = SopsConfig::parse(path, &added.text).unwrap();
            // A re-run of both steps changes no byte.
            let renamed = after.add_named_recipient("carol", &key).unwrap();
            prop_assert_eq!(&renamed.text, &added.text);
            let readded = after.add_to_rules(&selector, &renamed.reference).unwrap();
            prop_assert_eq!(&readded.text, &added.text);
            prop_assert!(readded.is_noop());
            let removed = after.remove_from_rules(&selector, &key.to_string()).unwrap();
            let back = SopsConfig::parse(path, &removed.text).unwrap().unname_recipient("carol").unwrap();
            prop_assert_eq!(back.text, text);
        }
    }
}
