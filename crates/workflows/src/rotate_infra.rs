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

use crate::error::{bail, Context as _};
use hostage_inventory::PrivateKeySource;
use hostage_recipients::{IdentitySet, PassphraseProvider};
use hostage_rekey::{Action, Exposure, PlanOptions};
use hostage_remote::{DeployOptions, FleetOptions, InfrastructureKey};
use hostage_sops::rules::{RuleSelector, SopsConfig};
use serde::{Deserialize, Serialize};

use super::fleet_inventory::NoPins;
use super::onboard::rule_changed;
use super::FleetInventory;
use crate::session::{ApplyOptions, FileSnapshot, RepoSession};

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
    /// Hosts that did not get the new key (phase 2 stopped), as `name: error`.
    pub failed_hosts: Vec<String>,
    /// The same hosts with the kind of their failure, so a report on many hosts can say each
    /// cause once with its hosts.
    pub failures: Vec<HostFailure>,
    /// Whether every phase is done.
    pub complete: bool,
}

/// One host a fleet step failed on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostFailure {
    /// The inventory's name for the host.
    pub host: String,
    /// The failure's stable machine name ([`hostage_remote::HostError::kind`]).
    pub kind: &'static str,
    /// Whether the host's key was refused (as opposed to a failure to reach or write).
    pub refused: bool,
    /// The error's text.
    pub message: String,
}

/// Runs (or resumes) the rotation; `progress` hears each phase as it starts.
pub fn run(
    inventory: &mut FleetInventory,
    options: &RotateInfraOptions,
    apply: &ApplyOptions,
    passphrases: &mut dyn PassphraseProvider,
    progress: &dyn Fn(u8, &str),
) -> crate::Result<RotateInfraReport> {
    let (infra, new_key, new_recipient) = current_and_new_key(inventory, options)?;
    let repo = inventory.inventory.secrets_repo.clone();
    let config_path = repo.join(".sops.yaml");
    let mut session = RepoSession::open(&repo, apply.clone())?;
    // The inventory was read before the lock (phase 4 writes it back compare-and-swap).
    session.revalidate(&[&FileSnapshot::of_text(
        &inventory.inventory.path,
        inventory.text(),
    )])?;
    let state_file = session.state_dir().join(STATE_FILE);
    let mut saved: Progress = match fs_err::read_to_string(&state_file) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a rotation record", state_file.display()))?,
        Err(_) => {
            if infra.recipient.to_string() == new_recipient {
                bail!("the inventory already names this key as the infrastructure key: nothing to rotate");
            }
            check_sops_key_file(&repo, &infra)?;
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
    // Each phase is recorded as done before the next starts, and only then its re-key journal
    // goes: a run killed before the record redoes the phase and still has the journal's
    // exposure report to print. `apply.stop_after` (`phase-N`) ends the run there, as a crash
    // would.
    let save = |saved: &Progress, session: &mut RepoSession| -> crate::Result<()> {
        hostage_atomic::write(&state_file, serde_json::to_string_pretty(saved)?.as_bytes())?;
        session.finish()?;
        session.checkpoint(&format!("phase-{}", saved.done))
    };
    let mut report = RotateInfraReport::default();
    let old = saved.old_recipient.clone();
    let identities = inventory.repo_identities(&options.identities);

    if saved.done < 1 {
        progress(1, "add the new recipient next to the old one, re-key");
        let phase = Phase {
            edit: phase1_text,
            old: &old,
            new: &new_recipient,
        };
        let n = phase
            .rekey(&config_path, &identities, passphrases, &mut session)?
            .0;
        report
            .phases
            .push((1, format!("{n} file(s) gained the new key")));
        saved.done = 1;
        save(&saved, &mut session)?;
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
                report.failures.push(HostFailure {
                    host: name.clone(),
                    kind: e.kind(),
                    refused: e.is_refusal(),
                    message: e.to_string(),
                });
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
        save(&saved, &mut session)?;
    }

    if saved.done < 3 {
        progress(3, "remove the old recipient, rotate the data keys");
        let phase = Phase {
            edit: phase3_text,
            old: &old,
            new: &new_recipient,
        };
        let (n, exposure) = phase.rekey(&config_path, &identities, passphrases, &mut session)?;
        report.exposure = exposure;
        report.phases.push((
            3,
            format!("{n} file(s) lost the old key and got new data keys"),
        ));
        saved.done = 3;
        save(&saved, &mut session)?;
    } else if let Some(killed) = session.resumed() {
        // Killed after recording phase 3, before removing its journal: the report is still owed.
        report.exposure = killed.exposure()?.collect()?;
        session.finish()?;
    }

    if saved.done < 4 {
        progress(4, "retire the old key: the inventory names the new one");
        let text = inventory.text().to_owned();
        let new_key_path = crate::absolute(&options.new_key);
        let renamed = text.replace(&old, &new_recipient);
        let (edited, source) = match &infra.private_key {
            PrivateKeySource::File(_) => (
                point_at_new_key(&renamed, &new_key_path),
                PrivateKeySource::File(new_key_path.clone()),
            ),
            PrivateKeySource::Sops { file, key } => {
                store_new_key_in_sops(
                    &repo,
                    file,
                    key,
                    &new_key_path,
                    &new_recipient,
                    &identities,
                    passphrases,
                    &session,
                )?;
                (renamed, infra.private_key.clone())
            }
        };
        check_names_new_key(
            &hostage_inventory::Inventory::parse(&inventory.inventory.path, &edited)?,
            &new_recipient,
            &source,
        )?;
        // Compare-and-swap against the inventory this run loaded: another edit is not undone.
        session.write_if_unchanged(
            &FileSnapshot::of_text(&inventory.inventory.path, &text),
            edited.as_bytes(),
        )?;
        *inventory = FleetInventory::load(&inventory.inventory.path)?;
        report.phases.push((
            4,
            format!("the inventory names {new_recipient}; destroy the old private key"),
        ));
        saved.done = 4;
        save(&saved, &mut session)?;
    }
    fs_err::remove_file(&state_file)?;
    report.complete = true;
    Ok(report)
}

/// The inventory text with `private_key_file` (plain or quoted) naming `new_key`. The key is
/// matched by name at the start of a line (it occurs only under `recipients.infrastructure`);
/// [`check_names_new_key`] then checks the parsed result, so an inventory this misses is refused
/// instead of left naming the retired key.
fn point_at_new_key(text: &str, new_key: &Path) -> String {
    let path = new_key.display().to_string();
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+~".contains(c));
    let value = if plain {
        path
    } else {
        serde_json::Value::String(path).to_string()
    };
    let mut out = String::with_capacity(text.len());
    let mut replaced = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let names_file = body
            .strip_prefix("private_key_file")
            .is_some_and(|rest| rest.trim_start().starts_with(':'));
        if names_file && !replaced {
            replaced = true;
            let end = if line.ends_with('\n') { "\n" } else { "" };
            out.push_str(&format!("{indent}private_key_file: {value}{end}"));
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Phase 4 for a key kept in the repo (`private_key_sops`): the sops file gets the new key, so
/// the inventory keeps its form and later deploys push the new key, not the retired one. The
/// file is written anew by hostage's own engine (`hostage_sops::create_from_tree`, the key as a
/// one-key YAML `key: |` or JSON document) under its `.sops.yaml` rule; no `sops` runs. Only a
/// YAML or JSON file that holds nothing but that key is rewritten (anything else in it would be lost); other files
/// are refused with what to do by hand. A file that already holds the new key (a resumed run)
/// is left alone.
#[allow(clippy::too_many_arguments)]
fn store_new_key_in_sops(
    repo: &Path,
    file: &Path,
    key: &str,
    new_key: &Path,
    new_recipient: &str,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
    session: &RepoSession,
) -> crate::Result<()> {
    use hostage_sops::{Format, SopsFile, Value};
    let path = repo.join(file);
    let by_hand = |why: &str| {
        crate::WorkflowError::refused_with_hint(
            format!(
                "{} {why}, so hostage cannot put the new infrastructure key into it; the files and hosts are done, the inventory is unchanged",
                path.display()
            ),
            format!(
                "store the new key under `{key}` yourself (`sops set --value-stdin {} '[\"{key}\"]'` with the key as a JSON string on stdin), then run the same command again",
                file.display()
            ),
        )
    };
    let snapshot = FileSnapshot::read(&path)?;
    let bytes = fs_err::read(&path)?;
    let sops = SopsFile::parse(&bytes, None)
        .with_context(|| format!("{} is not a sops file", path.display()))?;
    let data_key = sops
        .data_key(identities, passphrases)
        .with_context(|| format!("cannot decrypt {}", path.display()))?;
    sops.verify_mac(&data_key)?;
    let tree = sops.decrypt(&data_key)?;
    // A file that already holds the new key (a resumed run, or stored by hand) is done.
    let holds_new = tree
        .documents
        .first()
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .and_then(|held| {
            InfrastructureKey::from_openssh(
                zeroize::Zeroizing::new(held.as_bytes().to_vec()),
                &path.display().to_string(),
            )
            .ok()
        })
        .and_then(|k| k.public_key().to_age_recipient().ok())
        .is_some_and(|r| r.to_string() == new_recipient);
    if holds_new {
        return Ok(());
    }
    if let Err(why) = sops_key_layout(&sops, key) {
        return Err(by_hand(&why));
    }
    let format = match sops.format() {
        Format::Yaml => Format::Yaml,
        Format::Json => Format::Json,
        _ => return Err(by_hand("is neither YAML nor JSON")),
    };
    let private = zeroize::Zeroizing::new(fs_err::read_to_string(new_key)?);
    let rel = file.to_str().context("private_key_sops is not UTF-8")?;
    // The tree wipes the key when dropped; the engine returns only ciphertext.
    let tree = crate::new_sops_file::one_key_tree(key, &private);
    let encrypted = crate::new_sops_file::encrypt(repo, rel, &tree, format)?;
    session.write_if_unchanged(&snapshot, &encrypted)
}

/// Whether a sops file is one phase 4 can write the new key into: a YAML or JSON file whose only
/// encrypted value is the top-level `key` (readable without decrypting: sops encrypts values,
/// not keys). Otherwise, why not.
fn sops_key_layout(sops: &hostage_sops::SopsFile, key: &str) -> Result<(), String> {
    use hostage_sops::Format;
    if !matches!(sops.format(), Format::Yaml | Format::Json) {
        return Err("is neither YAML nor JSON".to_owned());
    }
    if sops.encrypted_paths() != [vec![key.to_owned()]] {
        return Err(format!("holds more than the one value `{key}`"));
    }
    Ok(())
}

/// Before a fresh rotation changes anything: refuses an inventory whose `private_key_sops` file
/// phase 4 could not write the new key into, instead of stopping there with the files and hosts
/// done.
fn check_sops_key_file(
    repo: &Path,
    infra: &hostage_inventory::Infrastructure,
) -> crate::Result<()> {
    let PrivateKeySource::Sops { file, key } = &infra.private_key else {
        return Ok(());
    };
    let path = repo.join(file);
    let bytes = fs_err::read(&path)?;
    let sops = hostage_sops::SopsFile::parse(&bytes, None)
        .with_context(|| format!("{} is not a sops file", path.display()))?;
    sops_key_layout(&sops, key).map_err(|why| {
        crate::WorkflowError::refused_with_hint(
            format!(
                "{} {why}: rotate-infra could not put the new infrastructure key into it at the end; nothing was changed",
                path.display()
            ),
            "keep the infrastructure key alone in its own sops file (private_key_sops), or name it with private_key_file, then run this again",
        )
    })
}

/// Refuses to record an inventory whose infrastructure entry does not name the new recipient
/// and `source` for its key: later deploys would push the retired key.
fn check_names_new_key(
    edited: &hostage_inventory::Inventory,
    new_recipient: &str,
    source: &PrivateKeySource,
) -> crate::Result<()> {
    let named = edited.infrastructure.as_ref().is_some_and(|infra| {
        infra.recipient.to_string() == new_recipient && infra.private_key == *source
    });
    if named {
        return Ok(());
    }
    let what = match source {
        PrivateKeySource::File(path) => format!("private_key_file: {}", path.display()),
        PrivateKeySource::Sops { file, .. } => format!("private_key_sops: {}", file.display()),
    };
    Err(crate::WorkflowError::refused_with_hint(
        format!(
            "cannot point {}'s recipients.infrastructure at the new key: its layout is not one hostage edits; the files and hosts are done, the inventory is unchanged",
            edited.path.display()
        ),
        format!(
            "set recipients.infrastructure.recipient: {new_recipient} and {what} by hand, then run the same command again"
        ),
    ))
}

/// `.sops.yaml` with the new key next to the old one wherever the old one is (under a temporary
/// anchor).
fn phase1_text(original: &SopsConfig, old: &str, new: &str) -> crate::Result<String> {
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
fn phase3_text(original: &SopsConfig, old: &str, new: &str) -> crate::Result<String> {
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
) -> crate::Result<RotateInfraPlan> {
    let (infra, new_key, new_recipient) = current_and_new_key(inventory, options)?;
    let repo = &inventory.inventory.secrets_repo;
    let state_file = hostage_rekey::state_dir(repo).join(STATE_FILE);
    let saved: Option<Progress> = match fs_err::read_to_string(&state_file) {
        Ok(text) => Some(serde_json::from_str(&text)?),
        Err(_) => None,
    };
    let done = saved.as_ref().map_or(0, |s| s.done);
    if saved.is_none() {
        check_sops_key_file(repo, &infra)?;
    }
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
    let changed = |from: &SopsConfig, to: &SopsConfig| -> crate::Result<Vec<String>> {
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

/// The inventory's infrastructure key settings, the new key, and the new key's recipient.
fn current_and_new_key(
    inventory: &FleetInventory,
    options: &RotateInfraOptions,
) -> crate::Result<(hostage_inventory::Infrastructure, InfrastructureKey, String)> {
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
        .context("the new key has no age recipient")?;
    // Every infrastructure host would receive it: never the operator's own key.
    inventory.check_not_the_operators_own(
        &new_recipient,
        &format!("--new-key {}", options.new_key.display()),
        &options.identities,
    )?;
    Ok((infra, new_key, new_recipient.to_string()))
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
) -> crate::Result<Vec<NamedDeploy>> {
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
    let results = crate::runtime()?.block_on(hostage_remote::deploy(
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

/// A phase that edits `.sops.yaml` (1: add the new key, 3: remove the old one) and re-keys.
struct Phase<'a> {
    /// The edit: `.sops.yaml` as it is, the old and the new recipient → the new text.
    edit: fn(&SopsConfig, &str, &str) -> crate::Result<String>,
    old: &'a str,
    new: &'a str,
}

impl Phase<'_> {
    /// Edits `.sops.yaml` (read under the session's lock) and re-keys the files whose rule
    /// changed (plus those a stopped run journaled), the journal written before `.sops.yaml`;
    /// returns how many files and the exposure.
    fn rekey(
        &self,
        config_path: &Path,
        identities: &IdentitySet,
        passphrases: &mut dyn PassphraseProvider,
        session: &mut RepoSession,
    ) -> crate::Result<(usize, Vec<Exposure>)> {
        let original = SopsConfig::load(config_path)?;
        let text = (self.edit)(&original, self.old, self.new)?;
        let repo = session.repo().to_path_buf();
        rekey(
            self.old,
            &repo,
            &original,
            &text,
            identities,
            passphrases,
            session,
        )
    }
}

/// Re-keys the files whose rule changed between `original` and `text` (plus those a stopped run
/// journaled), writing `.sops.yaml` (compare-and-swap) after the journal; returns how many and
/// the exposure.
fn rekey(
    old: &str,
    repo: &Path,
    original: &SopsConfig,
    text: &str,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
    session: &mut RepoSession,
) -> crate::Result<(usize, Vec<Exposure>)> {
    let config = SopsConfig::parse(original.path(), text)?;
    let pending = session.pending_files()?;
    let (_, mut plan) =
        super::onboard::plan_repo(&config, repo, "; nothing was changed in this phase")?;
    plan.retain(|f| {
        f.action != Action::Unchanged
            && (pending.contains(&f.path) || rule_changed(original, &config, &f.path))
    })?;
    // The old key loses its anchor in phase 3: name it for the exposure report.
    plan.name_recipient(old, "the old infrastructure key");
    // A killed run's journal (this phase's, redone) is merged, and its exposure reported.
    let exposure = session.begin_rekey(&plan)?;
    session.write_if_unchanged(
        &FileSnapshot::of_text(original.path(), original.text()),
        text.as_bytes(),
    )?;
    let unlocked =
        hostage_rekey::unlock_identities(identities, &plan.recipients_to_open()?, passphrases);
    let written = super::onboard::apply_rekey(&mut plan, &unlocked, "rotate-infra")?;
    // The journal goes once the phase is recorded (`save`).
    Ok((written.len(), exposure))
}

#[cfg(test)]
mod tests {
    //! The `.sops.yaml` edits of phases 1 and 3 on fixture text (pure, no repository, no sshd).

    // Fixtures: a panic with the value is the right failure.
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use hostage_recipients::AgeRecipient;
    use hostage_sops::rules::SopsConfig;

    use super::{phase1_text, phase3_text, point_at_new_key, NEXT_ANCHOR};

    fn recipient(n: u8) -> String {
        AgeRecipient::from_bytes([n; 32]).to_string()
    }

    #[test]
    fn phase_one_adds_the_new_key_beside_the_old_and_phase_three_leaves_only_the_new_under_the_old_anchor(
    ) {
        let (ws, old, new) = (recipient(1), recipient(2), recipient(3));
        let text = format!(
            "keys:\n  - &workstation {ws}\n  - &infrastructure {old}\ncreation_rules:\n  - path_regex: secrets/only-me$\n    key_groups:\n      - age:\n          - *workstation\n  - path_regex: .*\n    key_groups:\n      - age:\n          - *workstation\n          - *infrastructure\n"
        );
        let path = Path::new("/repo/.sops.yaml");
        let original = SopsConfig::parse(path, &text).unwrap();
        let both = SopsConfig::parse(path, &phase1_text(&original, &old, &new).unwrap()).unwrap();
        let readers = |config: &SopsConfig, file: &str| -> Vec<String> {
            let (_, rule) = config.rule_for_sops_path(file).unwrap();
            rule.key_groups
                .iter()
                .flatten()
                .map(|e| e.recipient.clone())
                .collect()
        };
        assert_eq!(
            readers(&both, "secrets/x.yaml"),
            [ws.clone(), old.clone(), new.clone()]
        );
        assert_eq!(readers(&both, "secrets/only-me"), std::slice::from_ref(&ws));
        assert!(both.text().contains(NEXT_ANCHOR), "{}", both.text());

        let after = SopsConfig::parse(path, &phase3_text(&both, &old, &new).unwrap()).unwrap();
        assert_eq!(readers(&after, "secrets/x.yaml"), [ws.clone(), new.clone()]);
        assert_eq!(after.text(), text.replace(&old, &new));
    }

    #[test]
    fn the_private_key_file_is_pointed_at_the_new_key_in_every_quoting() {
        let new = Path::new("/keys/id_infrastructure.new");
        for line in [
            "private_key_file: ~/.ssh/id_infrastructure",
            "private_key_file: \"~/.ssh/id_infrastructure\"",
            "private_key_file: '~/.ssh/id_infrastructure'",
            "private_key_file : ~/.ssh/id_infrastructure # the old one",
        ] {
            let text =
                format!("recipients:\n  infrastructure:\n    {line}\n    deploy_path: /root/k\n");
            assert_eq!(
                point_at_new_key(&text, new),
                "recipients:\n  infrastructure:\n    private_key_file: /keys/id_infrastructure.new\n    deploy_path: /root/k\n",
                "{line}"
            );
        }
    }

    #[test]
    fn a_new_key_path_that_yaml_would_misread_is_quoted() {
        let text = "    private_key_file: old\n";
        assert_eq!(
            point_at_new_key(text, Path::new("/keys/a key: #1")),
            "    private_key_file: \"/keys/a key: #1\"\n"
        );
    }
}
