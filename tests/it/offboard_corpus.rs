//! Onboard then offboard, as `.sops.yaml` edits only (`onboard::plan_rules`, then
//! `offboard::plan_rules`), over every corpus file: each gives back the original bytes, or one of
//! the two edits is refused with a reason. Two shapes of host: one whose secrets path no rule
//! names (onboarding makes a rule for it) and, for every rule of the file, one whose secrets path
//! is that rule's (onboarding adds the host to it). No sshd or sops needed: the edits are pure.

use std::path::Path;

use hostage_recipients::AgeRecipient;
use hostage_sops::rules::SopsConfig;
use hostage_workflows::WorkflowError;

/// An inventory whose one host `hostage-test` has the `secrets:` path `secret`.
fn inventory(dir: &Path, secret: &str) -> Option<hostage_workflows::FleetInventory> {
    let path = dir.join("fleet.yaml");
    let text = format!(
        "secrets_repo: secrets\nrecipients:\n  workstation:\n    recipient: {}\nhosts:\n  hostage-test:\n    address: 10.0.0.7\n    secrets: ['{}']\n",
        AgeRecipient::from_bytes([1; 32]),
        secret.replace('\'', "''")
    );
    fs_err::write(&path, &text).unwrap();
    hostage_workflows::FleetInventory::load(&path).ok()
}

fn secrets_of(fleet: &hostage_workflows::FleetInventory) -> Vec<String> {
    let host = fleet.inventory.host("hostage-test").unwrap();
    host.secrets.iter().map(|s| s.as_str().to_owned()).collect()
}

enum Verdict {
    Identical,
    Refused(String),
    Failed(String),
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
        Err(e) if refusal(&e) => return Verdict::Refused(format!("onboard: {e}")),
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
        Err(e) if refusal(&e) => Verdict::Refused(format!("offboard: {e}")),
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
        let mut secrets = vec!["secrets/hostage-test/.*".to_owned()];
        secrets.extend(config.rules().iter().filter_map(|r| r.path_regex.clone()));
        for secret in secrets {
            let Some(fleet) = inventory(dir.path(), &secret) else {
                refused.push(format!(
                    "{name} [{secret}]: not a valid inventory secrets path"
                ));
                continue;
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
