//! `onboard HOST`: bring an inventory host into the secrets repo. The plan fetches and verifies
//! the host key (a pin, `--expect-fingerprint`, known_hosts or `--trust-new`), then works out the
//! changes: `pubkeys/<host>.pub`, the host's anchor and rules in `.sops.yaml`, the files to re-key
//! (exactly those that only gain this host's recipients), the infrastructure key to deploy and the
//! pin to record. Applying writes them in that order, under the repo lock; a run that is stopped
//! half way is finished by the next, and a second run finds nothing to do.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use hostage_inventory::Host;
use hostage_recipients::{IdentitySet, PassphraseProvider};
use hostage_rekey::{Action, ApplyOptions, Journal, Plan, PlanOptions, RepoLock};
use hostage_remote::{
    DeployAction, DeployOptions, FetchedHost, Fingerprint, FleetOptions, HostTarget,
    InfrastructureKey,
};
use hostage_sops::rules::{RecipientRef, RuleSelector, SopsConfig};
use serde::Serialize;

use super::fleet_inventory::NoPins;
use super::FleetInventory;

/// Asks the operator whether a host key nothing vouches for is the host's (true: trust it).
pub type ConfirmKey<'a> = &'a mut dyn FnMut(&FetchedHost) -> anyhow::Result<bool>;

/// How to reach and trust the host.
#[derive(Clone, Debug, Default)]
pub struct OnboardOptions {
    /// ssh config instead of the user's.
    pub ssh_config: Option<PathBuf>,
    /// known_hosts instead of ssh's defaults.
    pub known_hosts: Option<PathBuf>,
    /// The fingerprint the host key must have (overrides the inventory pin).
    pub expect_fingerprint: Option<Fingerprint>,
    /// Accept a host nothing vouches for (its pin is recorded when the plan is applied).
    pub trust_new: bool,
    /// Seconds allowed per SSH connection.
    pub timeout: Duration,
    /// Extra identities to open the files to re-key with.
    pub identities: Vec<PathBuf>,
    /// The host does not exist yet: generate its key here instead of fetching it.
    pub generate_host_key: bool,
}

/// One change the plan makes, in the order it is applied.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Write the host's public key to the secrets repo.
    SavePublicKey {
        /// The file, relative to the secrets repo.
        path: String,
    },
    /// Add `&name age1…` to `.sops.yaml`.
    AddAnchor {
        /// The anchor name.
        name: String,
        /// The recipient.
        recipient: String,
    },
    /// Add a recipient to the rule for `path_regex`.
    AddToRule {
        /// The rule's `path_regex`.
        path_regex: String,
        /// The recipient's name (anchor) or key.
        recipient: String,
    },
    /// Create a rule for `path_regex` above the catch-all (a copy of it plus the recipient).
    AddRule {
        /// The new rule's `path_regex`.
        path_regex: String,
        /// The recipient's name (anchor) or key.
        recipient: String,
    },
    /// Re-key these files (they gain recipients; the data key stays).
    Rekey {
        /// Paths relative to the secrets repo.
        files: Vec<String>,
    },
    /// Deploy the infrastructure key to the host.
    DeployInfrastructureKey {
        /// Where on the host.
        target: String,
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// Replace the host's old recipient with its new one everywhere in `.sops.yaml`.
    ReplaceRecipient {
        /// The host.
        name: String,
        /// The recipient being retired.
        old: String,
        /// Its replacement.
        new: String,
    },
    /// Store the generated private host key sops-encrypted in the repo.
    StoreHostKey {
        /// The file, relative to the secrets repo.
        path: String,
    },
    /// Record the verified host-key pin in the inventory.
    RecordPin {
        /// The host key's fingerprint.
        fingerprint: String,
        /// Its age recipient.
        recipient: String,
    },
}

/// What onboarding a host would change (nothing, when it is already onboarded).
#[derive(Debug)]
pub struct OnboardPlan {
    /// The host's inventory name.
    pub host: String,
    /// The verified host key.
    pub fetched: FetchedHost,
    /// The changes, in order.
    pub steps: Vec<Step>,
    /// Problems that do not stop onboarding but need the operator (e.g. files that lag behind
    /// `.sops.yaml` for other reasons, left to `hostage rekey`).
    pub warnings: Vec<String>,
    /// What to do next, outside hostage (the host's NixOS config).
    pub next_steps: Vec<String>,
    pub(crate) target: HostTarget,
    pub(crate) config_path: PathBuf,
    pub(crate) public_key: Option<(PathBuf, String)>,
    pub(crate) new_config: Option<String>,
    pub(crate) rekey: Plan,
    pub(crate) deploy: Option<(InfrastructureKey, DeployOptions)>,
    pub(crate) options: OnboardOptions,
    /// The key was generated here (`--generate-host-key`), not fetched from the host.
    pub generated_locally: bool,
    pub(crate) generated: Option<super::host_key::GeneratedHostKey>,
}

impl OnboardPlan {
    /// Whether applying would change nothing.
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty()
    }

    /// What recipients taken off files could read (the data keys of those files are rotated).
    pub fn exposure(&self) -> anyhow::Result<Vec<hostage_rekey::Exposure>> {
        Ok(self.rekey.exposure()?.collect()?)
    }
}

/// What applying did.
#[derive(Debug, Default, Serialize)]
pub struct OnboardOutcome {
    /// Files re-keyed.
    pub rekeyed: Vec<String>,
    /// What the deploy did (`written`, `unchanged`), when there was one.
    pub deployed: Option<&'static str>,
    /// Whether the inventory pin was written.
    pub pin_recorded: bool,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs `run`, a fleet operation on one host, and returns that host's outcome; `failed` says
/// what could not be done when the host fails.
pub(crate) fn on_one_host<T>(
    run: impl std::future::Future<
        Output = Result<Vec<hostage_remote::HostResult<T>>, hostage_remote::FleetError>,
    >,
    failed: impl FnOnce() -> String,
) -> anyhow::Result<T> {
    let mut results = runtime()?.block_on(run)?;
    let result = results.pop().context("the fleet run returned no result")?;
    result.outcome.with_context(failed)
}

pub(crate) fn fleet_options(options: &OnboardOptions, dry_run: bool) -> FleetOptions {
    FleetOptions {
        ssh_config: options.ssh_config.clone(),
        known_hosts: options.known_hosts.clone(),
        trust_new: options.trust_new,
        jobs: 1,
        timeout: options.timeout,
        dry_run,
    }
}

/// The infrastructure private key the inventory names (a key file, or a sops file decrypted in
/// memory; `passphrases` unlocks a protected SSH identity for that).
pub fn infrastructure_key(
    inventory: &FleetInventory,
    options: &OnboardOptions,
    passphrases: &mut dyn PassphraseProvider,
) -> anyhow::Result<InfrastructureKey> {
    inventory.infrastructure_key(&options.identities, passphrases)
}

/// Fetches and verifies `host`'s key (and, for infrastructure hosts, checks what a deploy would
/// do), then computes every change. Writes nothing. When nothing vouches for the host (no pin,
/// `--expect-fingerprint`, `--trust-new` or known_hosts entry), `confirm` is shown its key and
/// decides; without `confirm` (no terminal to ask on) such a host is refused.
pub fn plan(
    inventory: &FleetInventory,
    name: &str,
    options: &OnboardOptions,
    passphrases: &mut dyn PassphraseProvider,
    confirm: Option<ConfirmKey<'_>>,
) -> anyhow::Result<OnboardPlan> {
    let host = inventory.host(name)?.clone();
    let mut target = FleetInventory::target(&host);
    if let Some(fp) = &options.expect_fingerprint {
        target.pin = Some(fp.clone());
    }
    let ask = confirm.is_some()
        && target.pin.is_none()
        && !options.trust_new
        && !options.generate_host_key;
    let mut verify_options = options.clone();
    // Accepted only for this dry-run look; the operator decides below.
    verify_options.trust_new |= ask;
    let infra = inventory.inventory.infrastructure.clone();
    let deploy = infrastructure_deploy(
        inventory,
        options,
        passphrases,
        host.infrastructure_key && !options.generate_host_key,
    )?;
    // Verify the host (and see what a deploy would do) before looking at anything else: a host
    // that fails verification changes nothing.
    let (fetched, deploy_action, generated) = if options.generate_host_key {
        let (key, generated) = pregenerated(inventory, &host)?;
        let fetched = FetchedHost {
            spec: target.spec.clone(),
            fingerprint: Fingerprint::of(&key),
            recipient: key
                .to_age_recipient()
                .context("the generated key has no age recipient")?,
            key,
            verified_by: hostage_remote::VerifiedBy::Pin,
            key_path: host.host_key_path.clone(),
        };
        (fetched, None, generated)
    } else {
        let (fetched, action) = verify(&target, &verify_options, deploy.as_ref())?;
        if ask && fetched.verified_by == hostage_remote::VerifiedBy::TrustedNew {
            if let Some(confirm) = confirm {
                if !confirm(&fetched)? {
                    bail!("the key of {name} was not confirmed; nothing was changed");
                }
            }
        }
        (fetched, action, None)
    };

    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    let repo = &inventory.inventory.secrets_repo;

    let public_key = public_key_step(&mut steps, repo, name, &fetched.key);

    // .sops.yaml
    let config_path = repo.join(".sops.yaml");
    let config = SopsConfig::load(&config_path)?;
    let mut recipients: Vec<RecipientRef> = Vec::new();
    let mut text = config.text().to_owned();
    let mut config = config;
    if host.per_host_recipient {
        if let Some(other) = config
            .named_recipients()
            .into_iter()
            .find(|(n, v)| n != name && v == &fetched.recipient.to_string())
        {
            bail!(
                "{name}'s recipient {} is already in .sops.yaml as &{}: is it a clone of that host?",
                fetched.recipient,
                other.0
            );
        }
        let named = config
            .add_named_recipient(name, &fetched.recipient)
            .with_context(|| {
                format!("cannot add {name} to .sops.yaml (if the host has a new key, run `hostage rotate {name}`)")
            })?;
        if named.text != text {
            steps.push(Step::AddAnchor {
                name: name.to_owned(),
                recipient: fetched.recipient.to_string(),
            });
            text = named.text;
            config = SopsConfig::parse(&config_path, &text)?;
        }
        recipients.push(named.reference);
    }
    // A host with its own recipient reads its secret paths through it; an infrastructure-only
    // host through the infrastructure key.
    let infra_ref = infra.as_ref().map(|i| {
        let value = i.recipient.to_string();
        RecipientRef {
            anchor: config.name_of(&value),
            recipient: value,
        }
    });
    if !host.per_host_recipient && host.infrastructure_key {
        if let Some(infra_ref) = &infra_ref {
            recipients.push(infra_ref.clone());
        }
    }
    for secret in &host.secrets {
        let regex = secret.as_str();
        for recipient in &recipients {
            let label = recipient
                .anchor
                .clone()
                .unwrap_or_else(|| recipient.recipient.clone());
            let existing = config
                .rules()
                .iter()
                .find(|r| r.path_regex.as_deref() == Some(regex))
                .map(|r| r.index);
            let (new_text, step) = match existing {
                Some(index) => (
                    config.add_recipient(&RuleSelector::Indices(vec![index]), recipient)?,
                    Step::AddToRule {
                        path_regex: regex.to_owned(),
                        recipient: label,
                    },
                ),
                None if catch_all_has(&config, &recipient.recipient) => continue,
                None => {
                    let added = config
                        .add_path_rule(regex, recipient)
                        .with_context(|| format!("cannot add a rule for {regex} to .sops.yaml"))?;
                    // The new rule copies the catch-all; a host's own secrets do not go to the
                    // shared infrastructure key unless that is how the host reads them.
                    let added = match infra_ref.as_ref().filter(|i| i != &recipient) {
                        Some(infra_ref) => {
                            without_recipient(&config_path, &added, regex, infra_ref)?
                        }
                        None => added,
                    };
                    (
                        added,
                        Step::AddRule {
                            path_regex: regex.to_owned(),
                            recipient: label,
                        },
                    )
                }
            };
            if new_text != text {
                steps.push(step);
                text = new_text;
                config = SopsConfig::parse(&config_path, &text)?;
            }
        }
    }
    let new_config = (text != fs_err::read_to_string(&config_path)?).then_some(text);

    // The files to re-key: those whose rule gives them other recipients now, and those a
    // stopped onboarding left in its journal; other drift is left to `hostage rekey`.
    let original = SopsConfig::load(&config_path)?;
    let state = hostage_rekey::state_dir(repo);
    let pending = pending_files(&state)?;
    let ours: BTreeSet<String> = recipients.iter().map(|r| r.recipient.clone()).collect();
    let (candidates, files) = affected_files(&config, repo, name, &mut warnings, |file| {
        pending.contains(&file.path) || rule_changed(&original, &config, &file.path)
    })?;
    for file in &candidates {
        let rel = file.strip_prefix(repo).unwrap_or(file);
        let rel = rel.to_string_lossy();
        for secret in &host.secrets {
            let matches = regex::Regex::new(secret.as_str()).is_ok_and(|r| r.is_match(&rel));
            if matches && !config_gives(&config, &rel, &ours) && is_sops_file(file) {
                warnings.push(format!(
                    "{rel} matches {name}'s secret path {} but an earlier rule of .sops.yaml does not give it to {name}",
                    secret.as_str()
                ));
            }
        }
    }
    if generated.is_some() {
        steps.push(Step::StoreHostKey {
            path: super::host_key::stored_path(name),
        });
    }
    let rekey = rekey_step(&mut steps, files)?;
    let deploy = deploy_step(
        &mut steps,
        deploy,
        deploy_action,
        &format!("{name} already has another key"),
        "that is `hostage rotate-infra`'s job, not onboarding's",
    )?;

    let pinned = host.pin.as_ref().is_some_and(|p| {
        p.fingerprint.as_str() == fetched.fingerprint.as_str() && p.recipient == fetched.recipient
    });
    if !pinned {
        steps.push(Step::RecordPin {
            fingerprint: fetched.fingerprint.to_string(),
            recipient: fetched.recipient.to_string(),
        });
    }

    let mut next_steps = next_steps(&host, infra.as_ref().map(|i| i.deploy_path.as_str()));
    if options.generate_host_key {
        next_steps.insert(
            0,
            format!("hostage export-host-key {name} DIR, then nixos-anywhere --extra-files DIR …: the first boot uses this key"),
        );
        if host.infrastructure_key {
            next_steps.push(format!(
                "once {name} is up: hostage deploy {name} (the infrastructure key)"
            ));
        }
    }
    Ok(OnboardPlan {
        host: name.to_owned(),
        fetched,
        steps,
        warnings,
        next_steps,
        target,
        config_path,
        public_key,
        new_config,
        rekey,
        deploy,
        options: options.clone(),
        generated_locally: options.generate_host_key,
        generated,
    })
}

/// The key of a host that does not exist yet: the one generated by an earlier run (its public
/// key in `pubkeys/`, its private key stored), else a new one.
fn pregenerated(
    inventory: &FleetInventory,
    host: &Host,
) -> anyhow::Result<(
    hostage_recipients::Ed25519PublicKey,
    Option<super::host_key::GeneratedHostKey>,
)> {
    let name = host.name.as_str();
    let repo = &inventory.inventory.secrets_repo;
    let stored = repo.join(super::host_key::stored_path(name));
    let public = repo.join(format!("pubkeys/{name}.pub"));
    if stored.is_file() {
        let text = fs_err::read_to_string(&public)
            .with_context(|| format!("{} is stored but its public key is not", stored.display()))?;
        let line = hostage_recipients::parse_key_lines(&text)
            .into_iter()
            .find_map(Result::ok)
            .with_context(|| format!("{} holds no ed25519 key", public.display()))?;
        return Ok((line.key, None));
    }
    if host.pin.is_some() {
        bail!("{name} already has a pinned host key: --generate-host-key is for hosts that do not exist yet (a rebuilt host: `hostage rotate {name}`)");
    }
    let generated = super::host_key::generate(name)?;
    Ok((generated.public, Some(generated)))
}

/// `text` with `recipient` taken out of the rule for `regex` (when it is there).
fn without_recipient(
    config_path: &Path,
    text: &str,
    regex: &str,
    recipient: &RecipientRef,
) -> anyhow::Result<String> {
    let config = SopsConfig::parse(config_path, text)?;
    let Some(rule) = config
        .rules()
        .iter()
        .find(|r| r.path_regex.as_deref() == Some(regex))
    else {
        return Ok(text.to_owned());
    };
    let present = rule
        .key_groups
        .iter()
        .any(|g| g.iter().any(|e| e.recipient == recipient.recipient));
    if !present {
        return Ok(text.to_owned());
    }
    let name = recipient.anchor.as_deref().unwrap_or(&recipient.recipient);
    Ok(config.remove_recipient(&RuleSelector::Indices(vec![rule.index]), name)?)
}

/// Whether the rule sops picks for `file` gives it other recipients in `new` than in `old`.
pub(crate) fn rule_changed(old: &SopsConfig, new: &SopsConfig, file: &Path) -> bool {
    let groups = |config: &SopsConfig| {
        config.rule_for(file).ok().map(|(_, rule)| {
            rule.key_groups
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|e| e.recipient.clone())
                        .collect::<BTreeSet<_>>()
                })
                .collect::<Vec<_>>()
        })
    };
    groups(old) != groups(new)
}

/// Whether the first catch-all rule already gives every file it catches to `recipient`.
fn catch_all_has(config: &SopsConfig, recipient: &str) -> bool {
    config
        .rules()
        .iter()
        .find(|r| {
            r.path_regex
                .as_deref()
                .is_none_or(|p| p.is_empty() || p == ".*")
        })
        .is_some_and(|r| {
            !r.key_groups.is_empty()
                && r.key_groups
                    .iter()
                    .all(|g| g.iter().any(|e| e.recipient == recipient))
        })
}

/// Whether the rule sops picks for `rel` has every recipient of `ours` in some group.
fn config_gives(config: &SopsConfig, rel: &str, ours: &BTreeSet<String>) -> bool {
    match config.rule_for_sops_path(rel) {
        Ok((_, rule)) => ours.iter().all(|o| {
            rule.key_groups
                .iter()
                .any(|g| g.iter().any(|e| &e.recipient == o))
        }),
        Err(_) => false,
    }
}

fn is_sops_file(path: &Path) -> bool {
    fs_err::read(path).is_ok_and(|bytes| bytes.windows(4).any(|w| w == b"sops"))
}

/// The NixOS settings the host needs to decrypt with what onboarding set up.
pub(crate) fn next_steps(host: &Host, deploy_path: Option<&str>) -> Vec<String> {
    let mut paths = Vec::new();
    if host.per_host_recipient {
        let private = host
            .host_key_path
            .strip_suffix(".pub")
            .unwrap_or(&host.host_key_path);
        paths.push(format!("\"{private}\""));
    }
    if host.infrastructure_key {
        if let Some(path) = deploy_path {
            paths.push(format!("\"{path}\""));
        }
    }
    let mut steps = Vec::new();
    if !paths.is_empty() {
        steps.push(format!(
            "in {}'s NixOS config: sops.age.sshKeyPaths = [ {} ];",
            host.name,
            paths.join(" ")
        ));
    }
    steps.push("commit the secrets repo (.sops.yaml, pubkeys/, the re-keyed files) and the inventory, then deploy the host".to_owned());
    steps
}

/// Verifies the host; with a deploy, through a dry-run deploy that also says what it would do.
pub(crate) fn verify(
    target: &HostTarget,
    options: &OnboardOptions,
    deploy: Option<&(InfrastructureKey, DeployOptions)>,
) -> anyhow::Result<(FetchedHost, Option<DeployAction>)> {
    let fleet = fleet_options(options, true);
    let failed = || format!("cannot verify {}; nothing was changed", target.spec);
    match deploy {
        None => {
            let fetched = on_one_host(
                hostage_remote::fetch(vec![target.clone()], &fleet, &mut NoPins, &|_| {}),
                failed,
            )?;
            Ok((fetched, None))
        }
        Some((key, deploy_options)) => {
            let done = on_one_host(
                hostage_remote::deploy(
                    vec![target.clone()],
                    &fleet,
                    &mut NoPins,
                    key,
                    deploy_options,
                    &|_| {},
                ),
                failed,
            )?;
            Ok((done.host, Some(done.action)))
        }
    }
}

/// Applies `plan`: public key, `.sops.yaml`, re-key, deploy, pin, in that order, under the repo
/// lock. `progress` hears about each step as it starts.
pub fn apply(
    inventory: &mut FleetInventory,
    plan: &mut OnboardPlan,
    passphrases: &mut dyn PassphraseProvider,
    progress: &dyn Fn(&Step),
) -> anyhow::Result<OnboardOutcome> {
    let mut outcome = OnboardOutcome::default();
    if plan.is_noop() {
        return Ok(outcome);
    }
    let config_dir = plan
        .config_path
        .parent()
        .context("the .sops.yaml path has a directory")?;
    let state = hostage_rekey::state_dir(config_dir);
    let _lock = RepoLock::acquire(&state)?;
    let previous = Journal::load(&state)?;
    if let Some(previous) = &previous {
        previous.clean_temp_files()?;
    }
    // Recorded before .sops.yaml changes, so a run stopped after that write still knows which
    // files to finish (the rule edit alone no longer shows them once it is on disk).
    if !plan.rekey.is_empty() {
        Journal::write(&state, &plan.rekey, previous.as_ref())?;
    }
    // Tests stop a run between steps to check that the next run converges (a crash there would
    // leave the same state: every write before is durable, nothing after has started).
    let stop_after = std::env::var("HOSTAGE_WORKFLOW_STOP_AFTER").ok();
    for step in &plan.steps {
        progress(step);
        match step {
            Step::SavePublicKey { .. } => {
                if let Some((path, text)) = &plan.public_key {
                    // The repo is untrusted: `pubkeys/` or the file may be a symlink out of it.
                    hostage_atomic::ConfinedDir::of_parent(&plan.config_path)?
                        .write(path, text.as_bytes())?;
                }
            }
            // The rule edits are written together, once, with the last of them.
            Step::AddAnchor { .. }
            | Step::AddToRule { .. }
            | Step::AddRule { .. }
            | Step::ReplaceRecipient { .. } => {
                if let Some(text) = &plan.new_config {
                    if fs_err::read_to_string(&plan.config_path)? != *text {
                        hostage_atomic::ConfinedDir::of_parent(&plan.config_path)?
                            .write(&plan.config_path, text.as_bytes())?;
                    }
                }
            }
            Step::Rekey { .. } => {
                let identities = inventory.repo_identities(&plan.options.identities);
                let identities = hostage_rekey::unlock_identities(
                    &identities,
                    &plan.rekey.recipients_to_open()?,
                    passphrases,
                );
                outcome.rekeyed = apply_rekey(&mut plan.rekey, &identities, "onboard")?;
                Journal::remove(&state)?;
            }
            Step::DeployInfrastructureKey { .. } => {
                if let Some((key, deploy_options)) = &plan.deploy {
                    // The host must still be the one the plan verified.
                    let mut target = plan.target.clone();
                    target.pin = Some(plan.fetched.fingerprint.clone());
                    let done = on_one_host(
                        hostage_remote::deploy(
                            vec![target],
                            &fleet_options(&plan.options, false),
                            &mut NoPins,
                            key,
                            deploy_options,
                            &|_| {},
                        ),
                        || format!("cannot deploy the infrastructure key to {}", plan.host),
                    )?;
                    outcome.deployed = Some(done.action.as_str());
                }
            }
            Step::StoreHostKey { path } => {
                if let Some(key) = &plan.generated {
                    super::host_key::store(config_dir, path, &key.private)?;
                }
            }
            Step::RecordPin { .. } => {
                outcome.pin_recorded = inventory.record_pin(
                    &plan.host,
                    &plan.fetched.fingerprint,
                    &plan.fetched.recipient,
                )?;
            }
        }
        if let Some(stop) = &stop_after {
            let name = serde_json::to_value(step)
                .ok()
                .and_then(|v| v["step"].as_str().map(str::to_owned));
            if name.as_deref() == Some(stop.as_str()) {
                bail!("stopped after the {stop} step (HOSTAGE_WORKFLOW_STOP_AFTER)");
            }
        }
    }
    Ok(outcome)
}

/// Adds the step that saves the host's public key as `pubkeys/<host>.pub` unless it is there
/// already; returns the file and its content.
pub(super) fn public_key_step(
    steps: &mut Vec<Step>,
    repo: &Path,
    name: &str,
    key: &hostage_recipients::Ed25519PublicKey,
) -> Option<(PathBuf, String)> {
    let rel = format!("pubkeys/{name}.pub");
    let path = repo.join(&rel);
    let text = format!("{} {name}\n", key.to_openssh());
    if fs_err::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return None;
    }
    steps.push(Step::SavePublicKey { path: rel });
    Some((path, text))
}

/// Adds the re-key step when `plan` changes some files, and returns the plan that applies it.
pub(super) fn rekey_step(steps: &mut Vec<Step>, plan: Plan) -> anyhow::Result<Plan> {
    if !plan.is_empty() {
        let files = plan
            .files()
            .map(|f| f.map(|f| f.display))
            .collect::<Result<_, _>>()?;
        steps.push(Step::Rekey { files });
    }
    Ok(plan)
}

/// Applies a workflow's re-key plan; fails listing every file that could not be re-keyed
/// (`again` names the command to run once they are fixed). Returns the files written.
pub(super) fn apply_rekey(
    plan: &mut Plan,
    identities: &IdentitySet,
    again: &str,
) -> anyhow::Result<Vec<String>> {
    hostage_rekey::apply(plan, identities, &ApplyOptions::default(), &|| {})?;
    let mut written = Vec::new();
    let mut failures = Vec::new();
    for file in plan.files() {
        let file = file?;
        match file.failure() {
            Some(reason) => failures.push(format!("{}: {reason}", file.display)),
            None if file.outcome.is_some() => written.push(file.display),
            None => {}
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} file(s) could not be re-keyed (run {again} again once fixed):\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(written)
}

/// The files a stopped workflow left in the repo's journal (to be finished by this run).
pub(super) fn pending_files(state: &Path) -> anyhow::Result<BTreeSet<PathBuf>> {
    Ok(match Journal::load(state)? {
        Some(journal) => journal.paths()?,
        None => BTreeSet::new(),
    })
}

/// The infrastructure key and where it goes on a host, when the host takes it (`wanted`) and the
/// inventory has one.
pub(super) fn infrastructure_deploy(
    inventory: &FleetInventory,
    options: &OnboardOptions,
    passphrases: &mut dyn PassphraseProvider,
    wanted: bool,
) -> anyhow::Result<Option<(InfrastructureKey, DeployOptions)>> {
    let Some(infra) = inventory
        .inventory
        .infrastructure
        .as_ref()
        .filter(|_| wanted)
    else {
        return Ok(None);
    };
    Ok(Some((
        infrastructure_key(inventory, options, passphrases)?,
        DeployOptions {
            target: infra.deploy_path.clone(),
            owner: None,
            replace: false,
        },
    )))
}

/// Adds the infrastructure-key deploy step unless the key is already in place. A different key
/// at the target is refused: `what` says whose it is, `advice` what to do instead.
pub(super) fn deploy_step(
    steps: &mut Vec<Step>,
    deploy: Option<(InfrastructureKey, DeployOptions)>,
    action: Option<DeployAction>,
    what: &str,
    advice: &str,
) -> anyhow::Result<Option<(InfrastructureKey, DeployOptions)>> {
    let (Some((key, options)), Some(action)) = (deploy, action) else {
        return Ok(None);
    };
    match action {
        DeployAction::Unchanged => Ok(None),
        DeployAction::WouldReplace { old } => {
            bail!("{what} ({old}) at {}: {advice}", options.target)
        }
        _ => {
            steps.push(Step::DeployInfrastructureKey {
                target: options.target.clone(),
                fingerprint: key.fingerprint().to_string(),
            });
            Ok(Some((key, options)))
        }
    }
}

/// Plans every file of `repo` against `config` (removals rotate the data key). The first file the
/// planner cannot handle stops the workflow before anything is written: its reason, then `advice`.
pub(super) fn plan_repo(
    config: &SopsConfig,
    repo: &Path,
    advice: &str,
) -> anyhow::Result<(hostage_rekey::FileList, Plan)> {
    let candidates = hostage_rekey::walk(std::slice::from_ref(&repo.to_owned()))?;
    let plan = hostage_rekey::plan(config, &candidates, &PlanOptions::default(), &|| {})?;
    // The counts say whether some file is an error; only then are the entries read to name it.
    if plan.count(Action::Error) > 0 {
        for file in plan.files() {
            let file = file?;
            if file.action == Action::Error {
                bail!(
                    "{}: {}{advice}",
                    file.display,
                    file.reason.unwrap_or_default()
                );
            }
        }
    }
    Ok((candidates, plan))
}

/// Plans the whole repo against `config` (removals rotate the data key). Files `ours` selects are
/// this workflow's to re-key; other files that lag behind `.sops.yaml` are left to `hostage rekey`
/// with a warning. A file the planner cannot handle stops the workflow before anything is written.
/// Returns every file looked at and the plan of the files to re-key.
pub(super) fn affected_files(
    config: &SopsConfig,
    repo: &Path,
    host: &str,
    warnings: &mut Vec<String>,
    ours: impl Fn(&hostage_rekey::FilePlan) -> bool,
) -> anyhow::Result<(hostage_rekey::FileList, Plan)> {
    let (candidates, mut plan) = plan_repo(
        config,
        repo,
        " (fix it, or run `hostage rekey --dry-run` to see the repo's state)",
    )?;
    plan.retain(|file| {
        if !file.changes() {
            return false;
        }
        let mine = ours(file);
        if !mine {
            warnings.push(format!(
                "{} lags behind .sops.yaml for reasons other than {host}; left to `hostage rekey`",
                file.display
            ));
        }
        mine
    })?;
    Ok((candidates, plan))
}
