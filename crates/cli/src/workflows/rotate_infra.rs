//! `rotate-infra`: a new infrastructure key with no moment where a host cannot decrypt.
//!
//! 1. the new recipient is added next to the old one in `.sops.yaml` and the files re-keyed
//!    (they gain it; same data keys);
//! 2. the new key is deployed to every infrastructure host and verified there;
//! 3. the old recipient is removed and every file it was on gets a new data key;
//! 4. the inventory names the new key; the old one is retired (the operator destroys it).
//!
//! Progress is saved after each phase (`rotate-infra.json` in the repo's state directory), so an
//! interrupted run resumes where it stopped; phase 3 never starts while some host lacks the new
//! key. Runs hold the repo lock, so two cannot interleave.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use hostage_recipients::{IdentitySet, PassphraseProvider};
use hostage_rekey::{Action, Exposure, Journal, PlanOptions, RepoLock};
use hostage_remote::{DeployOptions, FleetOptions, InfrastructureKey};
use hostage_sops::rules::{RuleSelector, SopsConfig};
use serde::{Deserialize, Serialize};

use super::fleet_inventory::NoPins;
use super::onboard::rule_changed;
use super::FleetInventory;

/// The temporary anchor of the new key while both are on the files.
const NEXT_ANCHOR: &str = "infrastructure_next";
/// Where progress is kept, in the repo's state directory.
const STATE_FILE: &str = "rotate-infra.json";

/// How to run.
#[derive(Clone, Debug)]
pub struct RotateInfraOptions {
    /// The new private key (OpenSSH ed25519, unencrypted).
    pub new_key: PathBuf,
    /// ssh config instead of the user's.
    pub ssh_config: Option<PathBuf>,
    /// known_hosts instead of ssh's defaults.
    pub known_hosts: Option<PathBuf>,
    /// Time allowed per host.
    pub timeout: Duration,
    /// Extra identities to open the files with.
    pub identities: Vec<PathBuf>,
}

/// Saved progress.
#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    old_recipient: String,
    new_recipient: String,
    new_key: PathBuf,
    /// The last phase finished (0: none).
    done: u8,
}

/// What happened, phase by phase.
#[derive(Debug, Default, Serialize)]
pub struct RotateInfraReport {
    /// Phase → what it did (or why it stopped).
    pub phases: Vec<(u8, String)>,
    /// What the old key could read (rotated in phase 3).
    pub exposure: Vec<Exposure>,
    /// Hosts that did not get the new key (phase 2 stopped).
    pub failed_hosts: Vec<String>,
    /// Whether every phase is done.
    pub complete: bool,
}

/// Runs (or resumes) the rotation; `progress` hears each phase as it starts.
pub fn run(
    inventory: &mut FleetInventory,
    options: &RotateInfraOptions,
    passphrases: &mut dyn PassphraseProvider,
    progress: &dyn Fn(u8, &str),
) -> anyhow::Result<RotateInfraReport> {
    let (infra, new_key, new_recipient) = current_and_new_key(inventory, options)?;
    let repo = inventory.inventory.secrets_repo.clone();
    let config_path = repo.join(".sops.yaml");
    let state = hostage_rekey::state_dir(&repo);
    let _lock = RepoLock::acquire(&state)?;
    let state_file = state.join(STATE_FILE);
    let mut saved: Progress = match fs_err::read_to_string(&state_file) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a rotation record", state_file.display()))?,
        Err(_) => {
            if infra.recipient.to_string() == new_recipient {
                bail!("the inventory already names this key as the infrastructure key: nothing to rotate");
            }
            Progress {
                old_recipient: infra.recipient.to_string(),
                new_recipient: new_recipient.clone(),
                new_key: options.new_key.clone(),
                done: 0,
            }
        }
    };
    if saved.new_recipient != new_recipient {
        bail!(
            "a rotation to {} is under way (recorded in {}): finish it with that key",
            saved.new_recipient,
            state_file.display()
        );
    }
    // Tests stop a run after a phase (`phase-N`) to check that the next run resumes there.
    let stop_after = std::env::var("HOSTAGE_WORKFLOW_STOP_AFTER").ok();
    let save = |saved: &Progress| -> anyhow::Result<()> {
        hostage_atomic::write(&state_file, serde_json::to_string_pretty(saved)?.as_bytes())?;
        if stop_after.as_deref() == Some(format!("phase-{}", saved.done).as_str()) {
            bail!(
                "stopped after phase {} (HOSTAGE_WORKFLOW_STOP_AFTER)",
                saved.done
            );
        }
        Ok(())
    };
    let mut report = RotateInfraReport::default();
    let old = saved.old_recipient.clone();
    let identities = inventory.repo_identities(&options.identities);

    if saved.done < 1 {
        progress(1, "add the new recipient next to the old one, re-key");
        let original = SopsConfig::load(&config_path)?;
        let text = phase1_text(&original, &old, &new_recipient)?;
        let n = rekey(
            &old,
            &repo,
            &original,
            &text,
            &identities,
            passphrases,
            &state,
        )?
        .0;
        report
            .phases
            .push((1, format!("{n} file(s) gained the new key")));
        saved.done = 1;
        save(&saved)?;
    }

    if saved.done < 2 {
        progress(
            2,
            "deploy the new key to every infrastructure host and verify it",
        );
        let deployed =
            deploy_to_infrastructure_hosts(inventory, options, &infra, &new_key, DryRun::No)?;
        for (name, result) in &deployed {
            if let Err(e) = &result.outcome {
                report.failed_hosts.push(format!("{name}: {e}"));
            }
        }
        if !report.failed_hosts.is_empty() {
            report.phases.push((
                2,
                format!(
                    "stopped: {} host(s) did not get the new key; the old key stays on every file, so every host still decrypts. Run again to resume",
                    report.failed_hosts.len()
                ),
            ));
            return Ok(report);
        }
        report
            .phases
            .push((2, format!("{} host(s) hold the new key", deployed.len())));
        saved.done = 2;
        save(&saved)?;
    }

    if saved.done < 3 {
        progress(3, "remove the old recipient, rotate the data keys");
        let original = SopsConfig::load(&config_path)?;
        let text = phase3_text(&original, &old, &new_recipient)?;
        let (n, exposure) = rekey(
            &old,
            &repo,
            &original,
            &text,
            &identities,
            passphrases,
            &state,
        )?;
        report.exposure = exposure;
        report.phases.push((
            3,
            format!("{n} file(s) lost the old key and got new data keys"),
        ));
        saved.done = 3;
        save(&saved)?;
    }

    if saved.done < 4 {
        progress(4, "retire the old key: the inventory names the new one");
        let text = fs_err::read_to_string(&inventory.inventory.path)?;
        let mut edited = text.replace(&old, &new_recipient);
        if let hostage_inventory::PrivateKeySource::File(path) = &infra.private_key {
            let old_line = format!("private_key_file: {}", path.display());
            let new_line = format!("private_key_file: {}", saved.new_key.display());
            edited = edited.replacen(&old_line, &new_line, 1);
        }
        hostage_inventory::Inventory::parse(&inventory.inventory.path, &edited)?;
        hostage_atomic::ConfinedDir::of_parent(&inventory.inventory.path)?
            .write(&inventory.inventory.path, edited.as_bytes())?;
        *inventory = FleetInventory::load(&inventory.inventory.path)?;
        report.phases.push((
            4,
            format!("the inventory names {new_recipient}; destroy the old private key"),
        ));
        saved.done = 4;
        save(&saved)?;
    }
    fs_err::remove_file(&state_file)?;
    report.complete = true;
    Ok(report)
}

/// `.sops.yaml` with the new key next to the old one wherever the old one is (under a temporary
/// anchor).
fn phase1_text(original: &SopsConfig, old: &str, new: &str) -> anyhow::Result<String> {
    let rules: Vec<usize> = original
        .rules()
        .iter()
        .filter(|r| r.key_groups.iter().flatten().any(|e| e.recipient == old))
        .map(|r| r.index)
        .collect();
    let recipient = hostage_recipients::AgeRecipient::parse(new)?;
    let named = original.add_named_recipient(NEXT_ANCHOR, &recipient)?;
    let with_anchor = SopsConfig::parse(original.path(), &named.text)?;
    Ok(with_anchor.add_recipient(&RuleSelector::Indices(rules), &named.reference)?)
}

/// `.sops.yaml` back in its own shape with the new key only: the temporary anchor goes, the old
/// key's anchor takes the new value.
fn phase3_text(original: &SopsConfig, old: &str, new: &str) -> anyhow::Result<String> {
    let path = original.path();
    let rules = RuleSelector::Indices(original.rules().iter().map(|r| r.index).collect());
    let mut text = original.text().to_owned();
    if original
        .named_recipients()
        .iter()
        .any(|(n, _)| n == NEXT_ANCHOR)
    {
        text = original.remove_recipient(&rules, NEXT_ANCHOR)?;
        text = SopsConfig::parse(path, &text)?.remove_named_recipient(NEXT_ANCHOR)?;
    }
    if text.contains(old) {
        let recipient = hostage_recipients::AgeRecipient::parse(new)?;
        text = SopsConfig::parse(path, &text)?.replace_recipient(old, &recipient)?;
    }
    Ok(text)
}

/// What a rotation would do, for `--dry-run`.
#[derive(Debug, Serialize)]
pub struct RotateInfraPlan {
    /// The last phase a previous run finished (0: a fresh rotation).
    pub done: u8,
    /// The recipient being retired.
    pub old_recipient: String,
    /// Its replacement.
    pub new_recipient: String,
    /// Phase 1: files that gain the new key.
    pub phase1_files: Vec<String>,
    /// Phase 2: infrastructure host → what deploying would do there, or why it cannot.
    pub hosts: Vec<(String, String)>,
    /// Phase 3: files that lose the old key (new data keys).
    pub phase3_files: Vec<String>,
}

/// Computes what [`run`] would do, writing nothing (hosts are reached and verified, and asked
/// what a deploy would change).
pub fn plan(
    inventory: &FleetInventory,
    options: &RotateInfraOptions,
) -> anyhow::Result<RotateInfraPlan> {
    let (infra, new_key, new_recipient) = current_and_new_key(inventory, options)?;
    let repo = &inventory.inventory.secrets_repo;
    let state_file = hostage_rekey::state_dir(repo).join(STATE_FILE);
    let saved: Option<Progress> = match fs_err::read_to_string(&state_file) {
        Ok(text) => Some(serde_json::from_str(&text)?),
        Err(_) => None,
    };
    let done = saved.as_ref().map_or(0, |s| s.done);
    let old = saved
        .as_ref()
        .map_or_else(|| infra.recipient.to_string(), |s| s.old_recipient.clone());
    let original = SopsConfig::load(&repo.join(".sops.yaml"))?;
    let t1 = if done < 1 {
        phase1_text(&original, &old, &new_recipient)?
    } else {
        original.text().to_owned()
    };
    let c1 = SopsConfig::parse(original.path(), &t1)?;
    let t3 = phase3_text(&c1, &old, &new_recipient)?;
    let c3 = SopsConfig::parse(original.path(), &t3)?;
    let candidates = hostage_rekey::walk(std::slice::from_ref(repo))?;
    let changed = |from: &SopsConfig, to: &SopsConfig| -> anyhow::Result<Vec<String>> {
        let plan = hostage_rekey::plan(to, &candidates, &PlanOptions::default(), &|| {})?;
        let mut changed = Vec::new();
        for file in plan.files() {
            let file = file?;
            if file.action != Action::Unchanged && rule_changed(from, to, &file.path) {
                changed.push(file.display);
            }
        }
        Ok(changed)
    };
    let phase1_files = if done < 1 {
        changed(&original, &c1)?
    } else {
        Vec::new()
    };
    let phase3_files = if done < 3 {
        changed(&c1, &c3)?
    } else {
        Vec::new()
    };
    let mut hosts = Vec::new();
    if done < 2 {
        let deployed =
            deploy_to_infrastructure_hosts(inventory, options, &infra, &new_key, DryRun::Yes)?;
        for (name, result) in &deployed {
            let what = match &result.outcome {
                Ok(done) => done.action.as_str().to_owned(),
                Err(e) => format!("unreachable or refused: {e}"),
            };
            hosts.push((name.clone(), what));
        }
    }
    Ok(RotateInfraPlan {
        done,
        old_recipient: old,
        new_recipient,
        phase1_files,
        hosts,
        phase3_files,
    })
}

/// Re-keys the files whose rule changed between `original` and `text` (plus those a stopped run
/// journaled), writing `.sops.yaml` after the journal; returns how many and the exposure.
/// The inventory's infrastructure key settings, the new key, and the new key's recipient.
fn current_and_new_key(
    inventory: &FleetInventory,
    options: &RotateInfraOptions,
) -> anyhow::Result<(hostage_inventory::Infrastructure, InfrastructureKey, String)> {
    let infra = inventory
        .inventory
        .infrastructure
        .clone()
        .context("the inventory has no recipients.infrastructure")?;
    let new_key = InfrastructureKey::load(&options.new_key).with_context(|| {
        format!(
            "cannot use {} as the new infrastructure key",
            options.new_key.display()
        )
    })?;
    let new_recipient = new_key
        .public_key()
        .to_age_recipient()
        .context("the new key has no age recipient")?
        .to_string();
    Ok((infra, new_key, new_recipient))
}

/// Whether phase 2 only looks (`--dry-run`) or really deploys.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DryRun {
    Yes,
    No,
}

/// One host's name and what the deploy did there.
type NamedDeploy = (
    String,
    hostage_remote::HostResult<hostage_remote::DeployedHost>,
);

/// Phase 2: the new key to every infrastructure host (or, dry, what that would do), with each
/// host's name beside its result.
fn deploy_to_infrastructure_hosts(
    inventory: &FleetInventory,
    options: &RotateInfraOptions,
    infra: &hostage_inventory::Infrastructure,
    new_key: &InfrastructureKey,
    dry_run: DryRun,
) -> anyhow::Result<Vec<NamedDeploy>> {
    let targets: Vec<_> = inventory
        .inventory
        .hosts
        .iter()
        .filter(|h| h.infrastructure_key)
        .map(|h| (h.name.as_str().to_owned(), FleetInventory::target(h)))
        .collect();
    let fleet = FleetOptions {
        ssh_config: options.ssh_config.clone(),
        known_hosts: options.known_hosts.clone(),
        trust_new: false,
        jobs: hostage_remote::DEFAULT_JOBS,
        timeout: options.timeout,
        dry_run: dry_run == DryRun::Yes,
    };
    let deploy = DeployOptions {
        target: infra.deploy_path.clone(),
        owner: None,
        replace: true,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(hostage_remote::deploy(
        targets.iter().map(|(_, t)| t.clone()).collect(),
        &fleet,
        &mut NoPins,
        new_key,
        &deploy,
        &|_| {},
    ))?;
    Ok(targets
        .into_iter()
        .map(|(name, _)| name)
        .zip(results)
        .collect())
}

fn rekey(
    old: &str,
    repo: &Path,
    original: &SopsConfig,
    text: &str,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
    state: &Path,
) -> anyhow::Result<(usize, Vec<Exposure>)> {
    let config = SopsConfig::parse(original.path(), text)?;
    let pending = super::onboard::pending_files(state)?;
    let (_, mut plan) =
        super::onboard::plan_repo(&config, repo, "; nothing was changed in this phase")?;
    plan.retain(|f| {
        f.action != Action::Unchanged
            && (pending.contains(&f.path) || rule_changed(original, &config, &f.path))
    })?;
    // The old key loses its anchor in phase 3: name it for the exposure report.
    plan.name_recipient(old, "the old infrastructure key");
    let exposure = plan.exposure()?.collect()?;
    if !plan.is_empty() {
        let previous = Journal::load(state)?;
        Journal::write(state, &plan, previous.as_ref())?;
    }
    if text != original.text() {
        hostage_atomic::ConfinedDir::of_parent(original.path())?
            .write(original.path(), text.as_bytes())?;
    }
    let unlocked =
        hostage_rekey::unlock_identities(identities, &plan.recipients_to_open()?, passphrases);
    let written = super::onboard::apply_rekey(&mut plan, &unlocked, "rotate-infra")?;
    Journal::remove(state)?;
    Ok((written.len(), exposure))
}
