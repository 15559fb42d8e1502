//! `hostage offboard HOST`: a decommissioned host leaves the secrets repo. [`plan_rules`] is the
//! pure part, the `.sops.yaml` edits computed from the text alone (facts in, edit out), so onboard
//! then offboard gives back the original bytes; [`plan`] adds the files that lose the host's
//! recipient (new data keys, the exposure report), the files to delete and the inventory without
//! the host; [`apply`] writes them in the repository session, the inventory last.
//!
//! The edits, in order:
//! 1. a rule whose every key group holds only the host is removed (its files fall to the rule that
//!    catches them next; with none, the plan is refused, naming the rule), unless the host can
//!    leave it the way onboarding added it (a key group made in a rule that had none);
//! 2. the host is removed from every other rule and key group (`remove_from_rules`, in the file's
//!    own convention: alias, header-labelled literal, comma string…);
//! 3. a rule for the host's own paths (its path_regex names the host as a word,
//!    `secrets/hosts/web/.*`) that, without the host, is what onboarding makes (the recipients of the rule catching its files next, maybe without the
//!    infrastructure key) existed only for the host: it is removed, and its files fall to that
//!    rule. Any other rule stays, even when it is redundant: offboarding changes nothing that was
//!    not the host's;
//! 4. the host's name goes: its `keys:` anchor or its header label (`unname_recipient`).

use std::collections::BTreeSet;

use hostage_sops::rules::{ConfigChange, CreationRule, RuleSelector, SopsConfig};

use crate::WorkflowError;

/// The `.sops.yaml` edits offboarding a host makes.
#[derive(Debug)]
pub struct OffboardRulesEdit {
    /// What was done, in the file's terms ("remove gnomeregan from rule …", "remove rule …").
    pub changes: Vec<ConfigChange>,
    /// `.sops.yaml` with every edit made (the original text when the host is not in it).
    pub config: SopsConfig,
}

/// Plans the edits that take `name` (whose recipient is `recipient`, `age1…`) out of
/// `original`; `infra` is the infrastructure recipient, which onboarding leaves out of a host's
/// own rule. Pure; a re-run on the result changes nothing.
pub fn plan_rules(
    original: &SopsConfig,
    name: &str,
    recipient: &str,
    infra: Option<&str>,
) -> crate::Result<OffboardRulesEdit> {
    let path = original.path().to_owned();
    let mut config = SopsConfig::parse(&path, original.text())?;
    let mut changes = Vec::new();
    // The name the file knows the host by (anchor or header label), else the literal key.
    let reference = config
        .name_of(recipient)
        .unwrap_or_else(|| recipient.to_owned());

    // 1. Rules that exist for the host alone.
    let only_host: Vec<String> = config
        .rules()
        .iter()
        .filter(|rule| holds_only(rule, recipient))
        .filter_map(|rule| rule.path_regex.clone())
        .collect();
    for regex in &only_host {
        // A key group onboarding made in a rule that had none comes out as it went in; only
        // where the host cannot leave the rule's keys (its last age key) does the rule go.
        let index = config
            .rules()
            .iter()
            .position(|r| r.path_regex.as_deref() == Some(regex.as_str()));
        if let Some(index) = index {
            if let Ok(edit) =
                config.remove_from_rules(&RuleSelector::Indices(vec![index]), &reference)
            {
                changes.extend(edit.changes);
                config = SopsConfig::parse(&path, &edit.text)?;
                continue;
            }
        }
        let edit = config.remove_rule(regex)?;
        let next = SopsConfig::parse(&path, &edit.text)?;
        if let Some(example) = next.new_rule_example(regex) {
            if next.rule_for_sops_path(&example).is_err() {
                return Err(unreadable(name, regex));
            }
        }
        changes.extend(edit.changes);
        config = next;
    }

    // 2. The host out of every other rule.
    let holding: Vec<usize> = config
        .rules()
        .iter()
        .filter(|rule| holds(rule, recipient))
        .map(|rule| rule.index)
        .collect();
    let touched: Vec<String> = holding
        .iter()
        .filter_map(|i| config.rules()[*i].path_regex.clone())
        .collect();
    if !holding.is_empty() {
        let edit = config.remove_from_rules(&RuleSelector::Indices(holding), &reference)?;
        changes.extend(edit.changes);
        config = SopsConfig::parse(&path, &edit.text)?;
    }

    // 3. Rules that the host's removal left redundant.
    for regex in &touched {
        let Some(rule) = config
            .rules()
            .iter()
            .find(|r| r.path_regex.as_deref() == Some(regex.as_str()))
        else {
            continue;
        };
        let left = recipients(rule);
        let edit = config.remove_rule(regex)?;
        let next = SopsConfig::parse(&path, &edit.text)?;
        // Where onboarding placed the rule from (`add_rule`'s example): the same path now.
        let Some(example) = next.new_rule_example(regex) else {
            continue;
        };
        let Ok((_, catching)) = next.rule_for_sops_path(&example) else {
            continue;
        };
        // Only a rule for the host's own paths that is what onboarding makes (a copy of the rule
        // that catches them, maybe without the infrastructure key); any other rule stays, even
        // when redundant.
        // (A rule for a `secrets:` path that does not name the host cannot be told from one the
        // operator wrote, so it stays.)
        let for_host = names_host(regex, name);
        let mut gives = recipients(catching);
        let copy = left == gives || infra.is_some_and(|i| gives.remove(i) && left == gives);
        if for_host && copy && rule.key_groups.len() <= 1 {
            changes.extend(edit.changes);
            config = next;
        }
    }

    // 4. The host's name.
    if reference != recipient {
        let edit = config.unname_recipient(&reference)?;
        if !edit.is_noop() {
            changes.extend(edit.changes);
            config = SopsConfig::parse(&path, &edit.text)?;
        }
    }
    Ok(OffboardRulesEdit { changes, config })
}

/// Whether `regex` names the host: `name` as a whole word (`secrets/hosts/web/.*` names `web`,
/// `secrets/webapp/.*` does not). A host name's `-` and `_` may be written escaped (`web\-01`:
/// what `regex::escape` and some operators write), and still name the host.
fn names_host(regex: &str, name: &str) -> bool {
    let regex = regex.replace("\\-", "-").replace("\\_", "_");
    let regex = regex.as_str();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    regex.match_indices(name).any(|(at, _)| {
        let before = regex[..at].chars().next_back();
        let after = regex[at + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

fn holds(rule: &CreationRule, recipient: &str) -> bool {
    rule.key_groups
        .iter()
        .any(|g| g.iter().any(|e| e.recipient == recipient))
}

fn holds_only(rule: &CreationRule, recipient: &str) -> bool {
    !rule.key_groups.is_empty()
        && rule.other_keys.iter().flatten().next().is_none()
        && rule
            .key_groups
            .iter()
            .all(|g| !g.is_empty() && g.iter().all(|e| e.recipient == recipient))
}

fn recipients(rule: &CreationRule) -> BTreeSet<String> {
    rule.key_groups
        .iter()
        .flatten()
        .map(|e| e.recipient.clone())
        .collect()
}

fn unreadable(name: &str, regex: &str) -> WorkflowError {
    WorkflowError::refused_with_hint(
        format!(
            "rule {regex} of .sops.yaml exists only for {name}, and no other rule catches its files: without {name} they would be readable by no one; nothing was changed"
        ),
        format!(
            "add a rule for {regex} with the recipients that should keep reading those files (the workstation), or delete the files, then offboard {name} again"
        ),
    )
}

/// How `offboard` runs.
#[derive(Clone, Debug, Default)]
pub struct OffboardOptions {
    /// Keep the host-key backup (at the host's `backup_path`).
    pub keep_backup: bool,
    /// Extra identities to open the files to re-key with.
    pub identities: Vec<std::path::PathBuf>,
    /// The caller runs the infrastructure-key rotation right after (`--rotate-infra`), so a
    /// host holding that key may be offboarded.
    pub rotate_infra: bool,
    /// Delete the infrastructure key deployed on the host when it is reachable and verified by
    /// its pin (`--wipe-remote`); an unreachable host is a warning, not a failure.
    pub wipe_remote: bool,
    /// How hosts are reached (for `wipe_remote`).
    pub remote: crate::onboard::OnboardOptions,
}

/// What `offboard` did or would do (`--dry-run`). Holds no secret.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OffboardReport {
    /// The host's inventory name.
    pub host: String,
    /// Its recipient (from the pin, else its `.sops.yaml` name), when it had one.
    pub recipient: Option<String>,
    /// The `.sops.yaml` changes, as the file's terms say them.
    pub changes: Vec<String>,
    /// The files re-keyed with a new data key (planned, in a dry run).
    pub rekeyed: Vec<String>,
    /// Files of the secrets repo removed (`pubkeys/<host>.pub`, the host-key backup).
    pub removed: Vec<String>,
    /// Whether the host's inventory entry (and pin) is removed.
    pub inventory_entry_removed: bool,
    /// `--wipe-remote`: the deployed infrastructure key's path on the host and what happened to
    /// it (`would-remove` in a dry run, `removed`, `absent`, `failed`).
    pub wiped: Option<(String, String)>,
    /// What the host's key could read: change those credentials.
    pub exposure: Vec<hostage_rekey::Exposure>,
    /// Problems that did not stop the run.
    pub warnings: Vec<String>,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
}

/// A planned offboarding: the report, and what applying writes.
#[derive(Debug)]
pub struct OffboardPlan {
    /// What the run does.
    pub report: OffboardReport,
    repo: std::path::PathBuf,
    config: crate::session::FileSnapshot,
    new_config: Option<String>,
    inventory: crate::session::FileSnapshot,
    new_inventory: Option<String>,
    rekey: hostage_rekey::Plan,
    removals: Vec<std::path::PathBuf>,
    identities: Vec<std::path::PathBuf>,
    wipe: Option<(hostage_remote::HostTarget, String)>,
    remote: crate::onboard::OnboardOptions,
    /// A killed run's journal is there: applying finishes it (its exposure report is still
    /// owed, then it goes), even when nothing else is left to do.
    resume: bool,
}

impl OffboardPlan {
    /// Whether applying would change nothing (a re-run after a finished offboarding).
    pub fn is_noop(&self) -> bool {
        self.new_config.is_none()
            && self.new_inventory.is_none()
            && self.wipe.is_none()
            && self.rekey.is_empty()
            && self.removals.is_empty()
            && !self.resume
    }
}

/// Plans offboarding `name`: the `.sops.yaml` edits, the files that lose its recipient (their
/// data keys rotated, the exposure report), the files to remove and the inventory without it.
/// Refuses a host that holds the infrastructure key. Writes nothing; needs no SSH.
pub fn plan(
    inventory: &crate::FleetInventory,
    name: &str,
    options: &OffboardOptions,
) -> crate::Result<OffboardPlan> {
    use crate::session::FileSnapshot;
    let repo = inventory.inventory.secrets_repo.clone();
    let config_path = repo.join(".sops.yaml");
    let config = FileSnapshot::read(&config_path)?;
    let original = SopsConfig::parse(&config_path, config.text()?)?;
    let host = inventory.inventory.host(name).cloned();
    if let Some(host) = &host {
        if host.infrastructure_key && !options.rotate_infra {
            return Err(WorkflowError::refused_with_hint(
                format!(
                    "{name} holds the infrastructure key: its copy can read every file the infrastructure key can, so removing {name} alone would leave them readable to it; nothing was changed"
                ),
                format!(
                    "run `hostage offboard {name} --rotate-infra --new-key NEW_KEY` (after {name} is gone, the other hosts get the new key and {name}'s copy stops opening anything)"
                ),
            ));
        }
    }
    // Without a pin (a resumed run after the inventory entry went, or a host removed from the
    // inventory by hand) the key comes from the one naming model: `.sops.yaml`'s own names (the
    // latest one), else `pubkeys/<name>.pub` (a repo that names hosts nowhere else).
    let names = original.recipient_names(&crate::names::public_key_names(&repo));
    let named = original
        .named_recipients()
        .into_iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, recipient)| recipient)
        .or_else(|| names.recipient_of(name).map(str::to_owned));
    let recipient = host
        .as_ref()
        .and_then(|h| h.pin.as_ref())
        .map(|p| p.recipient.to_string())
        .or(named);

    let infra_recipient = inventory
        .inventory
        .infrastructure
        .as_ref()
        .map(|i| i.recipient.to_string());
    let mut warnings = Vec::new();
    let (edit, new_config) = match &recipient {
        Some(recipient) => {
            let edit = plan_rules(&original, name, recipient, infra_recipient.as_deref())?;
            let changed = edit.config.text() != original.text();
            let text = changed.then(|| edit.config.text().to_owned());
            (Some(edit), text)
        }
        None => (None, None),
    };
    let new = edit.as_ref().map_or(&original, |e| &e.config);
    let pending = crate::onboard::pending_files(&hostage_rekey::state_dir(&repo))?;
    let (_, mut rekey) = crate::onboard::affected_files(new, &repo, name, &mut warnings, |file| {
        recipient
            .as_ref()
            .is_some_and(|r| file.current_recipients().any(|c| &c.recipient == r))
            || pending.contains(&file.path)
            || crate::onboard::rule_changed(&original, new, &file.path)
    })?;
    let mut removals = Vec::new();
    let mut removed = Vec::new();
    let mut candidates = vec![format!("pubkeys/{name}.pub")];
    if !options.keep_backup {
        // Where the inventory (or the repo's layout) keeps this host's backup; once the host is
        // gone from the inventory (a resumed run), every place a backup of it can be.
        match &host {
            Some(host) => candidates.push(crate::host_key::backup_path(&repo, host)),
            None => candidates.extend(crate::host_key::default_backup_paths(name)),
        }
    }
    for rel in candidates {
        let path = repo.join(&rel);
        if fs_err::symlink_metadata(&path).is_ok() {
            removals.push(path);
            removed.push(rel);
        }
    }
    // Files about to be removed are not re-keyed first (nor reported as exposed).
    rekey.retain(|file| !removed.contains(&file.display))?;
    if let Some(recipient) = &recipient {
        rekey.name_recipient(recipient, name);
    }
    let rekeyed = rekey
        .files()
        .map(|f| f.map(|f| f.display))
        .collect::<Result<Vec<_>, _>>()?;
    let exposure: Vec<hostage_rekey::Exposure> = rekey.exposure()?.collect()?;

    let mut wipe = None;
    if options.wipe_remote {
        match (&host, &inventory.inventory.infrastructure) {
            (Some(host), Some(infra)) if host.infrastructure_key => {
                wipe = Some((crate::FleetInventory::target(host), infra.deploy_path.clone()));
            }
            (Some(_), _) => warnings.push(format!(
                "--wipe-remote: {name} does not get the infrastructure key, so there is nothing deployed to delete"
            )),
            (None, _) => {}
        }
    }
    let inventory_snapshot = FileSnapshot::of_text(&inventory.inventory.path, inventory.text());
    let new_inventory = match &host {
        Some(_) => Some(inventory.inventory.without_host(inventory.text(), name)?),
        None => None,
    };
    if host.is_none() && recipient.is_none() && removals.is_empty() && rekey.is_empty() {
        warnings.push(format!(
            "{name} is neither in the inventory nor in .sops.yaml: nothing to do"
        ));
    }
    Ok(OffboardPlan {
        report: OffboardReport {
            host: name.to_owned(),
            recipient,
            changes: edit
                .iter()
                .flat_map(|e| e.changes.iter().map(ToString::to_string))
                .collect(),
            rekeyed,
            removed,
            inventory_entry_removed: new_inventory.is_some(),
            wiped: wipe
                .as_ref()
                .map(|(_, path)| (path.clone(), "would-remove".to_owned())),
            exposure,
            warnings,
            dry_run: true,
        },
        repo,
        config,
        new_config,
        inventory: inventory_snapshot,
        new_inventory,
        rekey,
        removals,
        identities: options.identities.clone(),
        wipe,
        remote: options.remote.clone(),
        resume: !pending.is_empty(),
    })
}

/// Applies the plan in the repository session: the journal (files to re-key) before
/// `.sops.yaml`, then `.sops.yaml` (compare-and-swap), the re-key with new data keys, the
/// removals, and the inventory (compare-and-swap), so a run stopped anywhere is finished by
/// the next (the host is still in the inventory until everything else is done). The journal
/// goes last: a run killed after the re-key still leaves the next one what the host could read,
/// so its exposure report is not lost.
pub fn apply(
    inventory: &crate::FleetInventory,
    mut plan: OffboardPlan,
    passphrases: &mut dyn hostage_recipients::PassphraseProvider,
    options: &crate::session::ApplyOptions,
) -> crate::Result<OffboardReport> {
    let mut report = plan.report.clone();
    report.dry_run = false;
    if plan.is_noop() {
        return Ok(report);
    }
    let mut session = crate::session::RepoSession::open(&plan.repo, options.clone())?;
    session.revalidate(&[&plan.config, &plan.inventory])?;
    // What the host could read: this run's journal (which holds a killed run's entries too),
    // else a killed run's (its files are re-keyed already), else the plan's.
    let resumed = session.resumed().is_some();
    if !plan.rekey.is_empty() {
        let journal = session.write_journal(&plan.rekey)?;
        report.exposure = journal.exposure()?.collect()?;
    } else if let Some(previous) = session.resumed() {
        report.exposure = previous.exposure()?.collect()?;
    }
    if let Some(text) = &plan.new_config {
        session.write_if_unchanged(&plan.config, text.as_bytes())?;
    }
    session.checkpoint("edit-rules")?;
    if !plan.rekey.is_empty() {
        let identities = inventory.repo_identities(&plan.identities);
        let identities = hostage_rekey::unlock_identities(
            &identities,
            &plan.rekey.recipients_to_open()?,
            passphrases,
        );
        crate::onboard::apply_rekey(&mut plan.rekey, &identities, "offboard")?;
    }
    session.checkpoint("rekey")?;
    for path in &plan.removals {
        match fs_err::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    session.checkpoint("remove-files")?;
    // Before the inventory entry goes: the pin is what verifies the host.
    if let Some((target, path)) = &plan.wipe {
        let result = crate::onboard::on_one_host(
            hostage_remote::wipe_file(
                vec![target.clone()],
                &crate::onboard::fleet_options(&plan.remote, false),
                &mut crate::fleet_inventory::NoPins,
                path,
                &|_| {},
            ),
            || format!("cannot reach {} to delete {path}", target.spec),
        );
        let what = match result {
            Ok(done) if done.removed => "removed",
            Ok(_) => "absent",
            Err(e) => {
                report.warnings.push(format!(
                    "--wipe-remote: {e}; delete {path} on {} yourself if it comes back",
                    report.host
                ));
                "failed"
            }
        };
        report.wiped = Some((path.clone(), what.to_owned()));
    }
    if let Some(text) = &plan.new_inventory {
        session.write_if_unchanged(&plan.inventory, text.as_bytes())?;
    }
    if resumed || !plan.rekey.is_empty() {
        session.finish_rekey()?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    //! On fixture text: the seed layout of `crates/sops/tests/rules/` and the shapes onboarding
    //! writes; no repository, no sshd.

    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use hostage_sops::rules::SopsConfig;

    use super::plan_rules;

    const GNOMEREGAN: &str = "age1qvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsxqcrqvpsewmjt2";

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sops/tests/rules")
            .join(name);
        fs_err::read_to_string(path).unwrap()
    }

    fn parse(text: &str) -> SopsConfig {
        SopsConfig::parse(Path::new("/repo/.sops.yaml"), text).unwrap()
    }

    #[test]
    fn offboarding_gnomeregan_from_the_seed_gives_back_the_file_before_it_was_onboarded() {
        let seed = parse(&fixture("seed.sops.yaml"));
        let edit = plan_rules(&seed, "gnomeregan", GNOMEREGAN, None).unwrap();
        assert_eq!(
            edit.config.text(),
            fixture("seed.before-gnomeregan.sops.yaml")
        );
        let said: Vec<String> = edit.changes.iter().map(ToString::to_string).collect();
        assert!(
            said.iter().any(|c| c.contains("header label gnomeregan")),
            "{said:?}"
        );
        // Again: nothing left to do, no byte changes.
        let again = plan_rules(&edit.config, "gnomeregan", GNOMEREGAN, None).unwrap();
        assert!(again.changes.is_empty(), "{:?}", again.changes);
        assert_eq!(again.config.text(), edit.config.text());
    }

    #[test]
    fn onboard_then_offboard_gives_back_the_original_bytes() {
        use hostage_recipients::AgeRecipient;
        let r = |n: u8| AgeRecipient::from_bytes([n; 32]);
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("secrets")).unwrap();
        let inventory_text = format!(
            "secrets_repo: secrets\nrecipients:\n  workstation:\n    recipient: {}\n  infrastructure:\n    recipient: {}\n    private_key_file: ~/.ssh/id_infrastructure\nhosts:\n  web:\n    address: 10.0.0.7\n    secrets: ['secrets/hosts/web/.*']\n  db:\n    address: 10.0.0.8\n    infrastructure_key: true\n    secrets: ['secrets/db/.*']\n",
            r(1),
            r(2)
        );
        let path = dir.path().join("fleet.yaml");
        fs_err::write(&path, &inventory_text).unwrap();
        let inventory = hostage_inventory::Inventory::parse(&path, &inventory_text).unwrap();
        let originals = [
            // Anchors and a catch-all (the test world's shape): web gets a rule of its own.
            format!(
                "keys:\n  - &workstation {}\n  - &infrastructure {}\ncreation_rules:\n  - path_regex: .*\n    key_groups:\n      - age:\n          - *workstation\n          - *infrastructure\n",
                r(1),
                r(2)
            ),
            fixture("seed.before-gnomeregan.sops.yaml"),
        ];
        for original in &originals {
            for (name, n) in [("web", 3), ("db", 4)] {
                let host = inventory.host(name).unwrap();
                let onboarded = crate::onboard::plan_rules(
                    &parse(original),
                    host,
                    &r(n),
                    inventory.infrastructure.as_ref(),
                )
                .unwrap();
                assert_ne!(onboarded.config.text(), original.as_str(), "{name}");
                let edit = plan_rules(
                    &onboarded.config,
                    name,
                    &r(n).to_string(),
                    Some(&r(2).to_string()),
                )
                .unwrap();
                assert_eq!(
                    edit.config.text(),
                    original.as_str(),
                    "{name}: {:?}",
                    edit.changes
                );
            }
        }
    }

    #[test]
    fn a_rule_not_named_for_the_host_is_kept_when_its_files_would_reach_more_readers() {
        let text = format!(
            "keys:\n  - &ws {w}\n  - &infra {i}\n  - &web {GNOMEREGAN}\ncreation_rules:\n  - path_regex: secrets/shared/.*\n    age: [*ws, *web]\n  - path_regex: secrets/hosts/web/.*\n    age: [*ws, *web]\n  - path_regex: .*\n    age: [*ws, *infra]\n",
            w = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
            i = "age1qgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpquuzgag",
        );
        let edit = plan_rules(
            &parse(&text),
            "web",
            GNOMEREGAN,
            Some("age1qgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpquuzgag"),
        )
        .unwrap();
        let out = edit.config.text();
        assert!(out.contains("secrets/shared/.*\n    age: *ws\n"), "{out}");
        assert!(!out.contains("secrets/hosts/web/"), "{out}");
        assert!(!out.contains("&web"), "{out}");
    }

    #[test]
    fn host_names_are_matched_as_whole_words_in_rules() {
        assert!(super::names_host("secrets/hosts/web/.*", "web"));
        assert!(super::names_host("secrets/host/web\\.yaml", "web"));
        assert!(!super::names_host("secrets/web-prod/.*", "web"));
        assert!(!super::names_host("secrets/webapp/.*", "web"));
        assert!(!super::names_host("secrets/my_web/.*", "web"));
        assert!(super::names_host("hosts/web\\-01/.*", "web-01"));
        assert!(super::names_host("hosts/web\\_01/.*", "web_01"));
        assert!(!super::names_host("hosts/web\\-01/.*", "web"));
    }

    #[test]
    fn a_rule_only_for_the_host_whose_files_no_other_rule_catches_is_refused() {
        let text = format!(
            "creation_rules:\n  - path_regex: secrets/web/.*\n    age: {GNOMEREGAN}\n  - path_regex: other/.*\n    age: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n"
        );
        let error = plan_rules(&parse(&text), "gnomeregan", GNOMEREGAN, None).unwrap_err();
        assert!(error.to_string().contains("secrets/web/.*"), "{error}");
        assert!(error.hint().is_some());
    }
}
