//! `rotate-key NAME`: replace any named non-host key, the operator's own included, with the
//! phases every key rotation shares ([`crate::key_rotation`]): add the new key beside the old and
//! re-key; a middle phase; remove the old key and rotate the data keys (exposure report); retire.
//!
//! - `infrastructure` (or the name `.sops.yaml` gives the inventory's infrastructure recipient)
//!   is [`crate::rotate_infra`] itself: the middle phase deploys the new key to every
//!   infrastructure host and verifies it.
//! - `workstation` (or the `.sops.yaml` name of the inventory's workstation recipient): the new
//!   identity is given; the middle phase proves it alone opens the data key of every file the old
//!   key is on (in memory), and phase 4 points `recipients.workstation` at it.
//! - any other name `.sops.yaml` gives a recipient (an anchor or a header label; a colleague's
//!   key, a CI key): the new key is given as an identity (then proved, as for the workstation) or
//!   as a bare `age1…` recipient of a key the operator does not hold (nothing to prove with; the
//!   report says so). The inventory does not know such keys, so phase 4 only reports.
//!
//! Hosts are refused (their identity is rotated with `hostage rotate HOST`). A run whose key is
//! already the new one (a rotation finished before, or the old key given again) changes nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{bail, Context as _};
use hostage_recipients::{AgeRecipient, IdentitySet, PassphraseProvider};
use hostage_rekey::Exposure;
use hostage_sops::rules::SopsConfig;
use serde::Serialize;

pub use super::key_proof::UnprovenFile;
use super::key_proof::{load_identity_set, prove};
use super::key_rotation::{
    self, stale_public_key, update_public_key, KeyRotation, Middle, RotationSteps, SavedProgress,
};
use super::rotate_infra::{self, HostFailure, RotateInfraOptions};
use super::FleetInventory;
use crate::session::{ApplyOptions, FileSnapshot, RepoSession};

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RotateKeyOptions {
    /// The key to rotate: `infrastructure`, `workstation`, or a name `.sops.yaml` gives a
    /// recipient.
    pub name: String,
    /// The new key's private half: an age identity file or an unencrypted OpenSSH ed25519 key
    /// (for `infrastructure`, the OpenSSH key that is deployed).
    pub new_identity: Option<PathBuf>,
    /// The new key as a bare `age1…` recipient (a named key the operator does not hold).
    pub new_recipient: Option<String>,
    /// ssh config instead of the user's (`infrastructure`).
    pub ssh_config: Option<PathBuf>,
    /// known_hosts instead of ssh's defaults (`infrastructure`).
    pub known_hosts: Option<PathBuf>,
    /// Time allowed per host (`infrastructure`).
    pub timeout: Duration,
    /// Extra identities to open the files with.
    pub identities: Vec<PathBuf>,
}

/// Which kind of key a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// The shared infrastructure key (deployed to hosts).
    Infrastructure,
    /// The operator's own key (the inventory's `recipients.workstation`).
    Workstation,
    /// Another recipient `.sops.yaml` names that the inventory does not manage.
    Named,
}

/// What happened, phase by phase.
#[derive(Debug, Serialize)]
pub struct RotateKeyReport {
    /// The name as given.
    pub name: String,
    /// What kind of key it is.
    pub key: KeyKind,
    /// The recipient retired.
    pub old_recipient: String,
    /// Its replacement.
    pub new_recipient: String,
    /// Phase → what it did (or why it stopped); empty when there was nothing to do.
    pub phases: Vec<(u8, String)>,
    /// What the old key could read (rotated in phase 3).
    pub exposure: Vec<Exposure>,
    /// `infrastructure`: hosts that did not get the new key (phase 2 stopped).
    pub failures: Vec<HostFailure>,
    /// `workstation`, named: files the new identity did not open (phase 2 stopped).
    pub unproven: Vec<UnprovenFile>,
    /// Whether every phase is done (also when there was nothing to do).
    pub complete: bool,
    /// Whether the key already was the new one: nothing was changed.
    pub nothing_to_do: bool,
}

/// What a rotation would do, for `--dry-run`.
#[derive(Debug, Serialize)]
pub struct RotateKeyPlan {
    /// The name as given.
    pub name: String,
    /// What kind of key it is.
    pub key: KeyKind,
    /// The last phase a previous run finished (0: a fresh rotation).
    pub done: u8,
    /// The recipient being retired.
    pub old_recipient: String,
    /// Its replacement.
    pub new_recipient: String,
    /// Whether the key already is the new one (the rest is empty).
    pub nothing_to_do: bool,
    /// Phase 1: files that gain the new key.
    pub phase1_files: Vec<String>,
    /// Phase 2 (`infrastructure`): host → what deploying would do there, or why it cannot.
    pub hosts: Vec<(String, String)>,
    /// Phase 2 (`workstation`, named): what proves the new key (`the new identity opens every
    /// file the old key is on`, or that nothing can without an identity).
    pub prove: String,
    /// Phase 3: files that lose the old key (new data keys).
    pub phase3_files: Vec<String>,
    /// Phase 4: what retiring the old key changes.
    pub retire: String,
}

/// The key NAME is, resolved against the inventory and `.sops.yaml`.
struct Target {
    kind: KeyKind,
    /// Its name in `.sops.yaml` (else NAME): also the name of its `pubkeys/<name>.pub`.
    sops_name: String,
    /// Its current recipient (the old one; after phase 3 of a resumed run, already the new one).
    recipient: String,
    /// The shared phases' settings.
    rotation: KeyRotation,
}

/// The new key: its recipient, and the identity that opens it when one was given.
struct NewKey {
    recipient: String,
    identity: Option<(PathBuf, IdentitySet)>,
    /// The new key's OpenSSH public key, when it was given as an OpenSSH private key.
    ssh_public: Option<hostage_recipients::Ed25519PublicKey>,
}

/// Computes what [`run`] would do, writing nothing (`infrastructure`: hosts are reached and
/// verified, and asked what a deploy would change).
pub fn plan(
    inventory: &FleetInventory,
    options: &RotateKeyOptions,
) -> crate::Result<RotateKeyPlan> {
    let repo = inventory.inventory.secrets_repo.clone();
    let config = SopsConfig::load(&repo.join(".sops.yaml"))?;
    let target = resolve(inventory, &config, &options.name)?;
    let new = new_key(&target, options)?;
    let state_file = hostage_rekey::state_dir(&repo).join(&target.rotation.state_file);
    let saved = SavedProgress::load(&state_file)?;
    let mut plan = RotateKeyPlan {
        name: options.name.clone(),
        key: target.kind,
        done: saved.as_ref().map_or(0, |s| s.done),
        old_recipient: saved
            .as_ref()
            .map_or_else(|| target.recipient.clone(), |s| s.old_recipient.clone()),
        new_recipient: new.recipient.clone(),
        nothing_to_do: false,
        phase1_files: Vec::new(),
        hosts: Vec::new(),
        prove: String::new(),
        phase3_files: Vec::new(),
        retire: retire_summary(target.kind),
    };
    if saved.is_none() && target.recipient == new.recipient {
        plan.nothing_to_do = true;
        plan.retire = String::new();
        return Ok(plan);
    }
    if saved.is_none() {
        check_fresh(inventory, &config, &target, &new)?;
    }
    if target.kind == KeyKind::Infrastructure {
        let infra = rotate_infra::plan(inventory, &infra_options(options, &new)?)?;
        plan.phase1_files = infra.phase1_files;
        plan.hosts = infra.hosts;
        plan.phase3_files = infra.phase3_files;
        plan.prove = "deploy the new key to every infrastructure host and verify it".to_owned();
        return Ok(plan);
    }
    let (phase1_files, phase3_files) = key_rotation::planned_files(
        &repo,
        &target.rotation,
        &plan.old_recipient,
        &new.recipient,
        plan.done,
    )?;
    plan.phase1_files = phase1_files;
    plan.phase3_files = phase3_files;
    plan.prove = if new.identity.is_some() {
        "the new identity alone must open the data key of every file the old key is on".to_owned()
    } else {
        "nothing: only the new recipient was given, its holder should check they can decrypt"
            .to_owned()
    };
    Ok(plan)
}

/// Runs (or resumes) the rotation of NAME; `progress` hears each phase as it starts.
pub fn run(
    inventory: &mut FleetInventory,
    options: &RotateKeyOptions,
    apply: &ApplyOptions,
    passphrases: &mut dyn PassphraseProvider,
    progress: &dyn Fn(u8, &str),
) -> crate::Result<RotateKeyReport> {
    let repo = inventory.inventory.secrets_repo.clone();
    let config = SopsConfig::load(&repo.join(".sops.yaml"))?;
    let target = resolve(inventory, &config, &options.name)?;
    let new = new_key(&target, options)?;
    let state_file = hostage_rekey::state_dir(&repo).join(&target.rotation.state_file);
    let resuming = SavedProgress::load(&state_file)?.is_some();
    let mut report = RotateKeyReport {
        name: options.name.clone(),
        key: target.kind,
        old_recipient: target.recipient.clone(),
        new_recipient: new.recipient.clone(),
        phases: Vec::new(),
        exposure: Vec::new(),
        failures: Vec::new(),
        unproven: Vec::new(),
        complete: false,
        nothing_to_do: false,
    };
    // A finished rotation run again (or the current key given as the new one): no byte changes.
    if !resuming && target.recipient == new.recipient {
        report.complete = true;
        report.nothing_to_do = true;
        return Ok(report);
    }
    if !resuming {
        check_fresh(inventory, &config, &target, &new)?;
    }
    if target.kind == KeyKind::Infrastructure {
        // The infrastructure key is rotate-infra's case: the same code path, its own report.
        let infra = rotate_infra::run(
            inventory,
            &infra_options(options, &new)?,
            apply,
            passphrases,
            progress,
        )?;
        report.phases = infra.phases;
        report.exposure = infra.exposure;
        report.failures = infra.failures;
        report.complete = infra.complete;
        return Ok(report);
    }

    let mut session = RepoSession::open(&repo, apply.clone())?;
    // The inventory was read before the lock (phase 4 writes it back compare-and-swap); each
    // phase reads `.sops.yaml` again under the lock.
    session.revalidate(&[&FileSnapshot::of_text(
        &inventory.inventory.path,
        inventory.text(),
    )])?;
    let mut saved = match SavedProgress::load(&state_file)? {
        Some(saved) => saved,
        None => SavedProgress {
            old_recipient: target.recipient.clone(),
            new_recipient: new.recipient.clone(),
            new_key: new.identity.as_ref().map(|(path, _)| path.clone()),
            done: 0,
        },
    };
    if saved.new_recipient != new.recipient {
        bail!(
            "a rotation of {} to {} is under way (recorded in {}): finish it with that key",
            options.name,
            saved.new_recipient,
            state_file.display()
        );
    }
    report.old_recipient = saved.old_recipient.clone();
    let mut identities = inventory.repo_identities(&options.identities);
    // A run stopped inside phase 3 left files only the new key opens.
    if let Some((path, _)) = &new.identity {
        identities
            .candidates
            .extend(load_identity_set(path)?.candidates);
    }
    let mut steps = KeySteps {
        kind: target.kind,
        extra_identities: options.identities.clone(),
        name: options.name.clone(),
        sops_name: target.sops_name.clone(),
        inventory,
        old: saved.old_recipient.clone(),
        new: &new,
        unproven: Vec::new(),
    };
    let outcome = key_rotation::run_phases(
        &target.rotation,
        &mut saved,
        &mut steps,
        &mut session,
        &identities,
        passphrases,
        progress,
    )?;
    report.unproven = steps.unproven;
    report.phases = outcome.phases;
    report.exposure = outcome.exposure;
    report.complete = outcome.complete;
    Ok(report)
}

/// What phase 4 changes, per kind.
fn retire_summary(kind: KeyKind) -> String {
    match kind {
        KeyKind::Infrastructure => "the inventory would name the new key",
        KeyKind::Workstation => {
            "the inventory's recipients.workstation would name the new recipient and identity"
        }
        KeyKind::Named => "nothing: the inventory does not manage this key",
    }
    .to_owned()
}

/// rotate-infra's options for the infrastructure case.
fn infra_options(options: &RotateKeyOptions, new: &NewKey) -> crate::Result<RotateInfraOptions> {
    let Some((path, _)) = &new.identity else {
        bail!("the infrastructure key needs --new-identity (the new OpenSSH private key)");
    };
    Ok(RotateInfraOptions {
        new_key: path.clone(),
        ssh_config: options.ssh_config.clone(),
        known_hosts: options.known_hosts.clone(),
        timeout: options.timeout,
        identities: options.identities.clone(),
    })
}

/// The names a rotate-key NAME may be, for the refusal of an unknown one.
fn rotatable_names(inventory: &FleetInventory, config: &SopsConfig) -> Vec<String> {
    let mut names = Vec::new();
    if inventory.inventory.infrastructure.is_some() {
        names.push("infrastructure".to_owned());
    }
    if inventory.inventory.workstation.is_some() {
        names.push("workstation".to_owned());
    }
    for named in config.recipient_names(&[]).iter() {
        if is_host(inventory, &named.name, &named.recipient) || names.contains(&named.name) {
            continue;
        }
        names.push(named.name.clone());
    }
    names
}

/// Whether `name` or `recipient` is an inventory host's.
fn is_host(inventory: &FleetInventory, name: &str, recipient: &str) -> bool {
    inventory.inventory.hosts.iter().any(|h| {
        h.name.as_str() == name
            || h.pin
                .as_ref()
                .is_some_and(|p| p.recipient.to_string() == recipient)
    })
}

/// NAME as a key: the infrastructure key, the workstation's, or another named recipient.
fn resolve(inventory: &FleetInventory, config: &SopsConfig, name: &str) -> crate::Result<Target> {
    let names = config.recipient_names(&[]);
    let named = names.recipient_of(name).map(str::to_owned);
    let repo = &inventory.inventory.secrets_repo;
    let saved = |file: &str| -> crate::Result<Option<SavedProgress>> {
        SavedProgress::load(&hostage_rekey::state_dir(repo).join(file))
    };
    // A name .sops.yaml gives the key, before or after a resumed rotation replaced it there.
    let names_key = |current: &str, file: &str| -> crate::Result<bool> {
        let Some(named) = &named else {
            return Ok(false);
        };
        Ok(named == current
            || saved(file)?.is_some_and(|s| &s.new_recipient == named || &s.old_recipient == named))
    };
    if let Some(infra) = &inventory.inventory.infrastructure {
        let current = infra.recipient.to_string();
        if name == "infrastructure" || names_key(&current, INFRA_STATE)? {
            return Ok(Target {
                kind: KeyKind::Infrastructure,
                sops_name: names
                    .name_of(&current)
                    .unwrap_or("infrastructure")
                    .to_owned(),
                recipient: current,
                rotation: rotation("infrastructure", "the old infrastructure key", INFRA_STATE),
            });
        }
    }
    if let Some(ws) = &inventory.inventory.workstation {
        let current = ws.recipient.to_string();
        let file = state_file_of("workstation");
        if name == "workstation" || names_key(&current, &file)? {
            return Ok(Target {
                kind: KeyKind::Workstation,
                sops_name: names.name_of(&current).unwrap_or("workstation").to_owned(),
                recipient: current,
                rotation: rotation("workstation", "the old workstation key", &file),
            });
        }
    }
    if is_host(inventory, name, named.as_deref().unwrap_or("")) {
        return Err(crate::WorkflowError::refused_with_hint(
            format!("{name} is a host: its recipient is its SSH host key"),
            format!("rotate a host's identity with `hostage rotate {name}`"),
        ));
    }
    let Some(recipient) = named else {
        return Err(crate::WorkflowError::refused_with_hint(
            format!(
                "no key is named {name}: neither the inventory nor {} (anchors, header labels) names one so",
                config.path().display()
            ),
            format!(
                "rotate one of: {}",
                rotatable_names(inventory, config).join(", ")
            ),
        ));
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{name:?} cannot be rotated by name: use letters, digits, '-' and '_' only");
    }
    Ok(Target {
        kind: KeyKind::Named,
        sops_name: name.to_owned(),
        recipient,
        rotation: rotation(
            name,
            &format!("the old key of {name}"),
            &state_file_of(name),
        ),
    })
}

/// rotate-infra's progress record: a rotation started by either verb is resumed by the other.
const INFRA_STATE: &str = "rotate-infra.json";

/// The progress record of NAME's rotation.
fn state_file_of(name: &str) -> String {
    format!("rotate-key-{name}.json")
}

/// The shared phases' settings for a key called `name`.
fn rotation(name: &str, old_key_called: &str, state_file: &str) -> KeyRotation {
    KeyRotation {
        temporary_name: format!("{name}_next"),
        old_key_called: old_key_called.to_owned(),
        verb: "rotate-key",
        state_file: state_file.to_owned(),
    }
}

/// The new key from the options: derived from `--new-identity` (never trusted from a separate
/// flag when an identity is given), or `--new-recipient` for a named key the operator does not
/// hold.
fn new_key(target: &Target, options: &RotateKeyOptions) -> crate::Result<NewKey> {
    match (&options.new_identity, &options.new_recipient) {
        (Some(_), Some(_)) => bail!(
            "give the new key once: --new-identity (its recipient is derived) or --new-recipient"
        ),
        (None, None) => Err(crate::WorkflowError::refused_with_hint(
            format!("rotating {} needs the new key", options.name),
            match target.kind {
                KeyKind::Named => "give --new-identity FILE (an age identity or OpenSSH ed25519 key you hold) or --new-recipient age1… (a key its holder keeps)",
                _ => "give --new-identity FILE (an age identity file or an unencrypted OpenSSH ed25519 private key)",
            },
        )),
        (None, Some(recipient)) => {
            if target.kind != KeyKind::Named {
                return Err(crate::WorkflowError::refused_with_hint(
                    format!("--new-recipient cannot rotate the {} key: hostage must hold the new key to {}", options.name, if target.kind == KeyKind::Infrastructure { "deploy it" } else { "prove it opens every file before the old key goes" }),
                    "give --new-identity FILE instead",
                ));
            }
            let parsed = AgeRecipient::parse(recipient.trim())
                .with_context(|| format!("--new-recipient {recipient} is not an age recipient"))?;
            Ok(NewKey {
                recipient: parsed.to_string(),
                identity: None,
                ssh_public: None,
            })
        }
        (Some(path), None) => {
            let path = crate::absolute(&crate::expand_home(path));
            if target.kind == KeyKind::Infrastructure {
                // Deployed to hosts as an SSH key: rotate-infra loads and checks it.
                let key = hostage_remote::InfrastructureKey::load(&path).with_context(|| {
                    format!("cannot use {} as the new infrastructure key", path.display())
                })?;
                let recipient = key
                    .public_key()
                    .to_age_recipient()
                    .context("the new key has no age recipient")?;
                return Ok(NewKey {
                    recipient: recipient.to_string(),
                    identity: Some((path, IdentitySet::default())),
                    ssh_public: Some(key.public_key()),
                });
            }
            let set = load_identity_set(&path)?;
            let recipient = set.candidates[0].recipient.to_string();
            let ssh_public = set.candidates[0].converted_from;
            Ok(NewKey {
                recipient,
                identity: Some((path, set)),
                ssh_public,
            })
        }
    }
}

/// Refusals before a fresh rotation changes anything: the new key already a recipient (under
/// another name, or of a rule, or known to the inventory).
fn check_fresh(
    inventory: &FleetInventory,
    config: &SopsConfig,
    target: &Target,
    new: &NewKey,
) -> crate::Result<()> {
    let names = config.recipient_names(&[]);
    if let Some(other) = names.name_of(&new.recipient) {
        return Err(crate::WorkflowError::refused_with_hint(
            format!(
                "the new key {} is already a recipient, named {other} in {}; one key gets one name",
                new.recipient,
                config.path().display()
            ),
            format!("generate a fresh key for {}", target.sops_name),
        ));
    }
    if config.text().contains(&new.recipient) {
        return Err(crate::WorkflowError::refused_with_hint(
            format!(
                "the new key {} is already a recipient in {}",
                new.recipient,
                config.path().display()
            ),
            format!("generate a fresh key for {}", target.sops_name),
        ));
    }
    let repo = &inventory.inventory.secrets_repo;
    let rel = format!("pubkeys/{}.pub", target.sops_name);
    let linked = [repo.join("pubkeys"), repo.join(&rel)]
        .iter()
        .any(|p| fs_err::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()));
    if target.kind != KeyKind::Infrastructure && linked {
        // The repository is untrusted: a link could point phase 4's write anywhere.
        return Err(crate::WorkflowError::refused_with_hint(
            format!("{rel} (or pubkeys/) is a symbolic link; hostage writes nothing through links in the repository, so nothing was changed"),
            format!("replace {rel} with the public key file itself, or remove it, then run this again"),
        ));
    }
    if target.kind != KeyKind::Infrastructure && new.ssh_public.is_none() {
        if let Some(rel) = stale_public_key(repo, &target.sops_name, &target.recipient) {
            return Err(crate::WorkflowError::refused_with_hint(
                format!(
                    "{rel} holds the old key as an SSH public key, and the new key is not an SSH key, so it could not be kept in step; nothing was changed"
                ),
                format!(
                    "give the new key as an unencrypted OpenSSH ed25519 private key (--new-identity ~/.ssh/id_ed25519_new), or remove {rel} first"
                ),
            ));
        }
    }
    let inv = &inventory.inventory;
    for (name, recipient) in inv.recipients() {
        if recipient.to_string() == new.recipient {
            return Err(crate::WorkflowError::refused_with_hint(
                format!(
                    "the new key {} is already {name}'s key in {}",
                    new.recipient,
                    inv.path.display()
                ),
                format!("generate a fresh key for {}", target.sops_name),
            ));
        }
    }
    Ok(())
}

/// The workstation's and named keys' own phases: prove (2) and retire (4).
struct KeySteps<'a> {
    kind: KeyKind,
    /// `--identity` files (the operator's other identities, for files of several key groups).
    extra_identities: Vec<PathBuf>,
    name: String,
    sops_name: String,
    inventory: &'a mut FleetInventory,
    old: String,
    new: &'a NewKey,
    /// Files phase 2 found the new identity does not open.
    unproven: Vec<UnprovenFile>,
}

impl RotationSteps for KeySteps<'_> {
    fn middle_title(&self) -> &'static str {
        "prove the new identity alone opens every file the old key is on"
    }

    fn middle(&mut self, session: &mut RepoSession) -> crate::Result<Middle> {
        let Some((_, identity)) = &self.new.identity else {
            return Ok(Middle::Done(
                "not proven: only the new recipient was given; its holder should check they can decrypt".to_owned(),
            ));
        };
        // A file of several key groups (Shamir) opens only with a share from enough groups: there
        // the new identity must open it with the operator's other identities, the old one left out.
        let mut with_others = self.inventory.repo_identities(&self.extra_identities);
        with_others
            .candidates
            .retain(|c| c.recipient.to_string() != self.old);
        if let Some((path, _)) = &self.new.identity {
            with_others
                .candidates
                .extend(load_identity_set(path)?.candidates);
        }
        let (opened, unproven) = prove(session.repo(), &self.old, identity, &with_others)?;
        if unproven.is_empty() {
            return Ok(Middle::Done(format!(
                "the new identity opens all {opened} file(s) the old key is on"
            )));
        }
        let n = unproven.len();
        self.unproven = unproven;
        Ok(Middle::Stopped(format!(
            "stopped: the new identity does not open {n} file(s) the old key is on (listed); the old key stays on every file. Fix them (`hostage rekey` brings a file in line with .sops.yaml), then run again to resume"
        )))
    }

    fn retire_title(&self) -> &'static str {
        "retire the old key"
    }

    fn retire(
        &mut self,
        session: &mut RepoSession,
        _identities: &IdentitySet,
        _passphrases: &mut dyn PassphraseProvider,
    ) -> crate::Result<String> {
        let public_key = update_public_key(
            session.repo(),
            &self.sops_name,
            &self.old,
            self.new.ssh_public.as_ref(),
        )?;
        let also = public_key
            .map(|rel| format!("; {rel} holds the new public key"))
            .unwrap_or_default();
        if self.kind != KeyKind::Workstation {
            return Ok(format!(
                "{} is {} in .sops.yaml{also}; the inventory does not manage it: tell its holder the old key is retired",
                self.name, self.new.recipient
            ));
        }
        let Some((path, _)) = &self.new.identity else {
            bail!("the workstation's new key needs its identity");
        };
        let inventory = &mut *self.inventory;
        let text = inventory.text().to_owned();
        let edited = point_workstation_at(&text.replace(&self.old, &self.new.recipient), path);
        let parsed = hostage_inventory::Inventory::parse(&inventory.inventory.path, &edited)?;
        let named = parsed.workstation.as_ref().is_some_and(|w| {
            w.recipient.to_string() == self.new.recipient && w.identity.as_deref() == Some(path)
        });
        if !named {
            return Err(crate::WorkflowError::refused_with_hint(
                format!(
                    "cannot point {}'s recipients.workstation at the new key: its layout is not one hostage edits; the files are done, the inventory is unchanged",
                    inventory.inventory.path.display()
                ),
                format!(
                    "set recipients.workstation.recipient: {} and identity: {} by hand",
                    self.new.recipient,
                    path.display()
                ),
            ));
        }
        // Compare-and-swap against the inventory this run loaded: another edit is not undone.
        session.write_if_unchanged(
            &FileSnapshot::of_text(&inventory.inventory.path, &text),
            edited.as_bytes(),
        )?;
        *inventory = FleetInventory::load(&inventory.inventory.path)?;
        Ok(format!(
            "the inventory's recipients.workstation names {} with identity {}{also}; destroy the old private key (and drop it from SOPS_AGE_KEY or keys.txt)",
            self.new.recipient,
            path.display()
        ))
    }
}

/// The inventory text with `recipients.workstation.identity` naming `identity`: the line is
/// replaced where there is one, else added after the workstation's `recipient:` line at its
/// indentation. The caller checks the parsed result.
fn point_workstation_at(text: &str, identity: &Path) -> String {
    let value = key_rotation::inventory_path_value(identity);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let indent_of = |line: &str| line.len() - line.trim_start().len();
    let Some(start) = lines.iter().position(|l| {
        let body = l.trim();
        body == "workstation:" || body.starts_with("workstation: #")
    }) else {
        return text.to_owned();
    };
    let outer = indent_of(lines[start]);
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && indent_of(l) <= outer)
        .map_or(lines.len(), |i| start + 1 + i);
    let key_is = |line: &str, key: &str| {
        line.trim_start()
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let eol = |line: &str| if line.ends_with('\n') { "\n" } else { "" };
    if let Some(i) = (start + 1..end).find(|&i| key_is(lines[i], "identity")) {
        let indent = &lines[i][..indent_of(lines[i])];
        out[i] = format!("{indent}identity: {value}{}", eol(lines[i]));
    } else if let Some(i) = (start + 1..end).find(|&i| key_is(lines[i], "recipient")) {
        let indent = &lines[i][..indent_of(lines[i])];
        let line = format!("{indent}identity: {value}\n");
        if lines[i].ends_with('\n') {
            out.insert(i + 1, line);
        } else {
            out[i] = format!("{}\n{}", lines[i], line.trim_end_matches('\n'));
        }
    }
    out.concat()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::point_workstation_at;

    #[test]
    fn the_workstation_identity_line_is_replaced_or_added_under_its_recipient() {
        let with = "recipients:\n  workstation:\n    recipient: age1x\n    identity: ~/.ssh/id_ed25519\n  infrastructure:\n    identity: keep\n";
        assert_eq!(
            point_workstation_at(with, Path::new("/keys/new.txt")),
            "recipients:\n  workstation:\n    recipient: age1x\n    identity: /keys/new.txt\n  infrastructure:\n    identity: keep\n"
        );
        let without = "recipients:\n  workstation:\n    recipient: age1x\nhosts: {}\n";
        assert_eq!(
            point_workstation_at(without, Path::new("/keys/a key")),
            "recipients:\n  workstation:\n    recipient: age1x\n    identity: \"/keys/a key\"\nhosts: {}\n"
        );
    }
}
