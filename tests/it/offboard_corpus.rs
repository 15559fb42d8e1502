//! Onboard then offboard, as `.sops.yaml` edits only (`onboard::plan_rules`, then
//! `offboard::plan_rules`), over every corpus file: each gives back the original bytes, or one of
//! the two edits is refused with a reason. Two shapes of host: one whose secrets path no rule
//! names (onboarding makes a rule for it) and, for every rule of the file, one whose secrets path
//! is that rule's (onboarding adds the host to it). No sshd or sops needed: the edits are pure.

use std::path::Path;

use hostage_recipients::AgeRecipient;
use hostage_sops::rules::{RulesError, SopsConfig};
use hostage_workflows::WorkflowError;

/// An inventory whose one host `hostage-test` has the `secrets:` path `secret`.
fn inventory(dir: &Path, secret: &str) -> Result<hostage_workflows::FleetInventory, String> {
    let path = dir.join("fleet.yaml");
    let text = format!(
        "secrets_repo: secrets\nrecipients:\n  workstation:\n    recipient: {}\nhosts:\n  hostage-test:\n    address: 10.0.0.7\n    secrets: ['{}']\n",
        AgeRecipient::from_bytes([1; 32]),
        secret.replace('\'', "''")
    );
    fs_err::write(&path, &text).unwrap();
    hostage_workflows::FleetInventory::load(&path).map_err(|e| e.to_string())
}

fn secrets_of(fleet: &hostage_workflows::FleetInventory) -> Vec<String> {
    let host = fleet.inventory.host("hostage-test").unwrap();
    host.secrets.iter().map(|s| s.as_str().to_owned()).collect()
}

/// The `secrets:` path an operator of this repo would give a new host that no rule names yet,
/// next to an existing rule's files. For each rule in order, from a path it matches
/// (`hosts/web01/secrets.yaml`): a sibling directory in the same pattern
/// (`hosts/hostage-test/.*`, the host-directory convention), else a directory under the file's
/// (`secrets/hostage-test/.*`), else the host's own file beside it (`hosts/web01/hostage-test.yaml$`,
/// the file-per-host convention); the first one some rule catches today (so onboarding has keys
/// to start the new rule from). None does (every rule names exact files): the repo has no place
/// for a new host's secrets, and `secrets/hostage-test/.*` shows the refusal that says so.
fn new_host_secrets(config: &SopsConfig) -> String {
    for rule in config.rules() {
        let Some(example) = rule
            .path_regex
            .as_deref()
            .and_then(hostage_sops::rules::example_path)
        else {
            continue;
        };
        let dir = example.rsplit_once('/').map_or("", |(dir, _)| dir);
        let sibling = dir
            .rsplit_once('/')
            .map(|(parent, _)| format!("{parent}/hostage-test"));
        let nested = if dir.is_empty() {
            "hostage-test".to_owned()
        } else {
            format!("{dir}/hostage-test")
        };
        // One file per host (`secrets/hosts/web01.yaml`): the host's file, named the same way.
        let file = example.rsplit('/').next().unwrap_or(&example);
        let extension = file.find('.').map_or("", |dot| &file[dot..]);
        let own_file = if dir.is_empty() {
            format!("hostage-test{extension}")
        } else {
            format!("{dir}/hostage-test{extension}")
        };
        // Escaped as an operator writes it: `.` and other metacharacters, not `-`.
        let escape = |path: &str| regex::escape(path).replace("\\-", "-");
        let directories = sibling
            .into_iter()
            .chain([nested])
            .map(|dir| format!("{}/.*", escape(&dir)));
        for regex in directories.chain([format!("{}$", escape(&own_file))]) {
            if regex.starts_with('/') {
                continue;
            }
            // Caught by a rule, even one onboarding then refuses to copy (its refusal is the
            // result to record).
            let caught = config.new_rule_example(&regex).is_some_and(|path| {
                !matches!(
                    config.rule_for_sops_path(&path),
                    Err(RulesError::NoMatchingRule { .. } | RulesError::NoCreationRules { .. })
                )
            });
            if caught {
                return regex;
            }
        }
    }
    "secrets/hostage-test/.*".to_owned()
}

enum Verdict {
    Identical,
    Refused(String),
    Failed(String),
}

/// An error and every cause under it, as the binary prints them (`: ` between), so a refusal
/// recorded by the suite carries its reason, not only what the workflow was doing.
fn chain(error: &WorkflowError) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    text
}

fn round_trip(text: &str, path: &Path, fleet: &hostage_workflows::FleetInventory) -> Verdict {
    let recipient = AgeRecipient::from_bytes([7; 32]);
    let host = fleet.inventory.host("hostage-test").unwrap();
    let original = SopsConfig::parse(path, text).unwrap();
    let refusal = |e: &WorkflowError| {
        matches!(e, WorkflowError::Refused { .. })
            || matches!(
                e,
                WorkflowError::Rules(hostage_sops::rules::RulesError::Edit { .. })
            )
            || matches!(e, WorkflowError::Context { .. })
    };
    let onboarded = match hostage_workflows::onboard::plan_rules(&original, host, &recipient, None)
    {
        Ok(edit) => edit,
        Err(e) if refusal(&e) => return Verdict::Refused(format!("onboard: {}", chain(&e))),
        Err(e) => return Verdict::Failed(format!("onboard: {e}")),
    };
    if onboarded.config.text() == text {
        return Verdict::Refused("onboarding changed nothing".into());
    }
    match hostage_workflows::offboard::plan_rules(
        &onboarded.config,
        "hostage-test",
        &recipient.to_string(),
        None,
    ) {
        Ok(edit) if edit.config.text() == text => Verdict::Identical,
        // A rule without any key (sops' own test config has them): the host was its only
        // reader, so offboarding removes the rule, as documented, instead of leaving it keyless.
        Ok(edit)
            if original.rules().iter().any(|r| {
                r.key_groups.iter().all(Vec::is_empty)
                    && r.path_regex.as_deref() == secrets_of(fleet).first().map(String::as_str)
            }) && matches!(
                edit.changes.as_slice(),
                [hostage_sops::rules::ConfigChange::RemoveRule { .. }]
            ) =>
        {
            Verdict::Refused("the keyless rule the host was added to is removed".into())
        }
        Ok(edit) => Verdict::Failed(format!(
            "offboard did not give back the original: {:?}",
            edit.changes
        )),
        Err(e) if refusal(&e) => Verdict::Refused(format!("offboard: {}", chain(&e))),
        Err(e) => Verdict::Failed(format!("offboard: {e}")),
    }
}

#[test]
#[ignore = "needs the real-world corpus: cargo xtask test runs it when present"]
fn corpus_onboard_then_offboard_gives_back_every_file_byte_for_byte_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir(dir.path().join("secrets")).unwrap();
    let (mut identical, mut refused, mut failed) = (0, Vec::new(), Vec::new());
    let files = hostage_tests::corpus_sops_yaml_files();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs_err::read_to_string(path).unwrap();
        let config = SopsConfig::parse(path, &text).unwrap();
        let mut secrets = vec![new_host_secrets(&config)];
        secrets.extend(config.rules().iter().filter_map(|r| r.path_regex.clone()));
        for secret in secrets {
            let fleet = match inventory(dir.path(), &secret) {
                Ok(fleet) => fleet,
                Err(why) => {
                    refused.push(format!("{name} [{secret}]: inventory: {why}"));
                    continue;
                }
            };
            match round_trip(&text, path, &fleet) {
                Verdict::Identical => identical += 1,
                Verdict::Refused(why) => refused.push(format!("{name} [{secret}]: {why}")),
                Verdict::Failed(why) => failed.push(format!("{name} [{secret}]: {why}")),
            }
        }
    }
    println!(
        "corpus onboard→offboard: {} files, {identical} byte-identical, {} refused, {} failed",
        files.len(),
        refused.len(),
        failed.len()
    );
    for line in &refused {
        println!("  refused: {line}");
    }
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(identical > 0);
}
