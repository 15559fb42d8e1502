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
use hostage_rekey::Exposure;
use hostage_remote::{DeployOptions, FleetOptions, InfrastructureKey};
use serde::Serialize;

use super::fleet_inventory::NoPins;
use super::key_rotation::{self, KeyRotation, Middle, RotationSteps, SavedProgress};
use super::FleetInventory;
use crate::session::{ApplyOptions, FileSnapshot, RepoSession};

/// The temporary name of the new key while both are on the files.
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

/// The shared phases' settings for the infrastructure key.
fn infrastructure_rotation() -> KeyRotation {
    KeyRotation {
        temporary_name: NEXT_ANCHOR.to_owned(),
        old_key_called: "the old infrastructure key".to_owned(),
        verb: "rotate-infra",
        state_file: STATE_FILE.to_owned(),
    }
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
    let mut session = RepoSession::open(&repo, apply.clone())?;
    // The inventory was read before the lock (phase 4 writes it back compare-and-swap).
    session.revalidate(&[&FileSnapshot::of_text(
        &inventory.inventory.path,
        inventory.text(),
    )])?;
    let state_file = session.state_dir().join(STATE_FILE);
    let mut saved = match SavedProgress::load(&state_file)? {
        Some(saved) => saved,
        None => {
            if infra.recipient.to_string() == new_recipient {
                bail!("the inventory already names this key as the infrastructure key: nothing to rotate");
            }
            check_sops_key_file(&repo, &infra)?;
            SavedProgress {
                old_recipient: infra.recipient.to_string(),
                new_recipient: new_recipient.clone(),
                new_key: Some(options.new_key.clone()),
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
    let identities = inventory.repo_identities(&options.identities);
    let mut steps = InfrastructureSteps {
        old: saved.old_recipient.clone(),
        inventory,
        options,
        infra: &infra,
        new_key: &new_key,
        new_recipient: &new_recipient,
        failures: Vec::new(),
    };
    let outcome = key_rotation::run_phases(
        &infrastructure_rotation(),
        &mut saved,
        &mut steps,
        &mut session,
        &identities,
        passphrases,
        progress,
    )?;
    Ok(RotateInfraReport {
        phases: outcome.phases,
        exposure: outcome.exposure,
        failed_hosts: steps
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.host, f.message))
            .collect(),
        failures: steps.failures,
        complete: outcome.complete,
    })
}

/// The infrastructure key's own phases: deploy and verify (2), the inventory names the new key (4).
struct InfrastructureSteps<'a> {
    inventory: &'a mut FleetInventory,
    options: &'a RotateInfraOptions,
    infra: &'a hostage_inventory::Infrastructure,
    new_key: &'a InfrastructureKey,
    new_recipient: &'a str,
    old: String,
    /// Hosts phase 2 failed on.
    failures: Vec<HostFailure>,
}

impl RotationSteps for InfrastructureSteps<'_> {
    fn middle_title(&self) -> &'static str {
        "deploy the new key to every infrastructure host and verify it"
    }

    fn middle(&mut self, _session: &mut RepoSession) -> crate::Result<Middle> {
        let deployed = deploy_to_infrastructure_hosts(
            self.inventory,
            self.options,
            self.infra,
            self.new_key,
            DryRun::No,
        )?;
        for (name, result) in &deployed {
            if let Err(e) = &result.outcome {
                self.failures.push(HostFailure {
                    host: name.clone(),
                    kind: e.kind(),
                    refused: e.is_refusal(),
                    message: e.to_string(),
                });
            }
        }
        if !self.failures.is_empty() {
            return Ok(Middle::Stopped(format!(
                "stopped: {} host(s) did not get the new key; the old key stays on every file, so every host still decrypts. Run again to resume",
                self.failures.len()
            )));
        }
        Ok(Middle::Done(format!(
            "{} host(s) hold the new key",
            deployed.len()
        )))
    }

    fn retire_title(&self) -> &'static str {
        "retire the old key: the inventory names the new one"
    }

    fn retire(
        &mut self,
        session: &mut RepoSession,
        identities: &IdentitySet,
        passphrases: &mut dyn PassphraseProvider,
    ) -> crate::Result<String> {
        let inventory = &mut *self.inventory;
        let repo = inventory.inventory.secrets_repo.clone();
        let (old, new_recipient) = (&self.old, self.new_recipient);
        let text = inventory.text().to_owned();
        let new_key_path = crate::absolute(&self.options.new_key);
        let renamed = text.replace(old, new_recipient);
        let (edited, source) = match &self.infra.private_key {
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
                    new_recipient,
                    identities,
                    passphrases,
                    session,
                )?;
                (renamed, self.infra.private_key.clone())
            }
        };
        check_names_new_key(
            &hostage_inventory::Inventory::parse(&inventory.inventory.path, &edited)?,
            new_recipient,
            &source,
        )?;
        // Compare-and-swap against the inventory this run loaded: another edit is not undone.
        session.write_if_unchanged(
            &FileSnapshot::of_text(&inventory.inventory.path, &text),
            edited.as_bytes(),
        )?;
        *inventory = FleetInventory::load(&inventory.inventory.path)?;
        // After phase 3 the new key carries the old one's name in `.sops.yaml`.
        let config = hostage_sops::rules::SopsConfig::load(&repo.join(".sops.yaml"))?;
        let names = config.recipient_names(&[]);
        let name = names.name_of(new_recipient).unwrap_or("infrastructure");
        let public_key =
            key_rotation::update_public_key(&repo, name, old, Some(&self.new_key.public_key()))?;
        let also = public_key
            .map(|rel| format!("; {rel} holds the new public key"))
            .unwrap_or_default();
        Ok(format!(
            "the inventory names {new_recipient}{also}; destroy the old private key"
        ))
    }
}

/// The inventory text with `private_key_file` (plain or quoted) naming `new_key`. The key is
/// matched by name at the start of a line (it occurs only under `recipients.infrastructure`);
/// [`check_names_new_key`] then checks the parsed result, so an inventory this misses is refused
/// instead of left naming the retired key.
fn point_at_new_key(text: &str, new_key: &Path) -> String {
    let value = key_rotation::inventory_path_value(new_key);
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
    let saved = SavedProgress::load(&state_file)?;
    let done = saved.as_ref().map_or(0, |s| s.done);
    if saved.is_none() {
        check_sops_key_file(repo, &infra)?;
    }
    let old = saved
        .as_ref()
        .map_or_else(|| infra.recipient.to_string(), |s| s.old_recipient.clone());
    let (phase1_files, phase3_files) =
        key_rotation::planned_files(repo, &infrastructure_rotation(), &old, &new_recipient, done)?;
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

#[cfg(test)]
mod tests {
    //! The inventory edit of phase 4 on fixture text (pure, no repository, no sshd).

    use std::path::Path;

    use super::point_at_new_key;

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
