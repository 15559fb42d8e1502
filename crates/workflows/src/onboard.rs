//! `onboard HOST`: bring an inventory host into the secrets repo. The plan fetches and verifies
//! the host key (a pin, `--expect-fingerprint`, known_hosts or `--trust-new`), then works out the
//! changes: `pubkeys/<host>.pub`, the host's name (anchor or header label, as the file names
//! recipients) and rules in `.sops.yaml`, the files to re-key (exactly those whose rule changed),
//! the infrastructure key to deploy and the pin to record. Applying writes them in that order, under the repo lock; a run that is stopped
//! half way is finished by the next, and a second run finds nothing to do.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{bail, Context as _};
use hostage_inventory::Host;
use hostage_recipients::{IdentitySet, PassphraseProvider};
use hostage_rekey::{Action, Journal, Plan};
use hostage_remote::{
    DeployAction, DeployOptions, FetchedHost, Fingerprint, FleetOptions, HostTarget,
    InfrastructureKey,
};
use hostage_sops::rules::{ConfigChange, NewRuleOptions, RecipientRef, RuleSelector, SopsConfig};
use serde::Serialize;

use super::fleet_inventory::NoPins;
use super::FleetInventory;
use crate::session::{ApplyOptions, FileSnapshot, RepoSession};

/// Asks the operator whether a host key nothing vouches for is the host's (true: trust it).
pub type ConfirmKey<'a> = &'a mut dyn FnMut(&FetchedHost) -> crate::Result<bool>;

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
    /// Add `- &name age1…` to the `keys:` list of `.sops.yaml` (a file that names recipients
    /// with anchors).
    AddAnchor {
        /// The anchor name.
        name: String,
        /// The recipient.
        recipient: String,
    },
    /// Add `# name: age1…` to the leading comment block of `.sops.yaml` (a file that names
    /// recipients with header labels, like the seed layout).
    AddHeaderLabel {
        /// The label.
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
    /// Create a rule for `path_regex` immediately above the rule that catches its paths today
    /// (a copy of that rule's keys, minus `dropped`, plus the recipient).
    AddRule {
        /// The new rule's `path_regex`.
        path_regex: String,
        /// The host the rule is for.
        recipient: String,
        /// The `path_regex` of the rule it goes above and copies (null: that rule has none).
        above: Option<String>,
        /// Recipients of that rule not copied (the infrastructure key, for a host with
        /// `keep_infrastructure: false`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        dropped: Vec<String>,
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
        /// What was rewritten, in the file's terms ("replace the key of header label
        /// gnomeregan", "replace the key in rule secrets/host/gnomeregan/.*").
        changes: Vec<String>,
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
    /// A killed run left its re-key journal: report what its removed recipients could read and
    /// remove the journal, as the last write (the files it journaled are re-keyed by the
    /// `rekey` step, or were already).
    FinishInterruptedRun {
        /// The process that ran it.
        pid: u32,
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
    /// `.sops.yaml` as the plan read it (written back only if still so).
    pub(crate) config: FileSnapshot,
    pub(crate) public_key: Option<(PathBuf, String)>,
    pub(crate) new_config: Option<String>,
    pub(crate) rekey: Plan,
    /// What the recipients taken off could read: the plan's and a killed run's it finishes
    /// (applying replaces it with what the journal holds under the lock).
    pub(crate) exposure: Vec<hostage_rekey::Exposure>,
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

    /// What recipients taken off files could read (the data keys of those files are rotated),
    /// a killed run's included: its report is owed until a run completes.
    pub fn exposure(&self) -> crate::Result<Vec<hostage_rekey::Exposure>> {
        Ok(self.exposure.clone())
    }
}

/// Whether a report shows a plan (`--dry-run`: nothing written) or what applying did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The plan only.
    DryRun,
    /// Applied (or nothing to do).
    Apply,
}

/// The host key a host workflow worked with.
#[derive(Clone, Debug, Serialize)]
pub struct VerifiedKey {
    /// `SHA256:…`.
    pub fingerprint: String,
    /// Its age recipient.
    pub recipient: String,
    /// How it was trusted (`pin`, `known-hosts`, `trusted-new`…, or `generated` here).
    pub verified_by: &'static str,
}

/// What `onboard` or `rotate` would do or did: one type for `--dry-run` and apply, so a script
/// reads the same members either way (`outcome` is null in a dry run).
#[derive(Debug, Serialize)]
pub struct HostReport {
    /// The host's inventory name.
    pub host: String,
    /// Dry run or apply.
    pub mode: Mode,
    /// The key the plan verified.
    pub verified: VerifiedKey,
    /// The changes, in order.
    pub steps: Vec<Step>,
    /// What applying did (null in a dry run or when there was nothing to do).
    pub outcome: Option<OnboardOutcome>,
    /// What recipients taken off files could read.
    pub exposure: Vec<hostage_rekey::Exposure>,
    /// Problems that did not stop the workflow.
    pub warnings: Vec<String>,
    /// What to do next, outside hostage.
    pub next_steps: Vec<String>,
}

impl OnboardPlan {
    /// The report of this plan, in `mode`, with what applying did.
    pub fn report(&self, mode: Mode, outcome: Option<OnboardOutcome>) -> crate::Result<HostReport> {
        Ok(HostReport {
            host: self.host.clone(),
            mode,
            verified: VerifiedKey {
                fingerprint: self.fetched.fingerprint.to_string(),
                recipient: self.fetched.recipient.to_string(),
                verified_by: if self.generated_locally {
                    "generated"
                } else {
                    self.fetched.verified_by.as_str()
                },
            },
            steps: self.steps.clone(),
            outcome,
            exposure: self.exposure()?,
            warnings: self.warnings.clone(),
            next_steps: self.next_steps.clone(),
        })
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

/// Runs `run`, a fleet operation on one host, and returns that host's outcome; `failed` says
/// what could not be done when the host fails.
pub(crate) fn on_one_host<T>(
    run: impl std::future::Future<
        Output = Result<Vec<hostage_remote::HostResult<T>>, hostage_remote::FleetError>,
    >,
    failed: impl FnOnce() -> String,
) -> crate::Result<T> {
    let mut results = crate::runtime()?.block_on(run)?;
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
) -> crate::Result<InfrastructureKey> {
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
) -> crate::Result<OnboardPlan> {
    let host = inventory.host(name)?.clone();
    let mut target = FleetInventory::target(&host);
    if let Some(fp) = &options.expect_fingerprint {
        // Onboarding sets the pin of a host that has none; changing one is rotate's job.
        if let Some(pin) = host.pin.as_ref().filter(|p| p.fingerprint != *fp) {
            return Err(super::fleet_inventory::pin_change_refused(name, pin, fp));
        }
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

    // .sops.yaml: read once; the edits are a pure function of its text and the host.
    let config_path = repo.join(".sops.yaml");
    let snapshot = FileSnapshot::read(&config_path)?;
    let original = SopsConfig::parse(&config_path, snapshot.text()?)?;
    // A key another name already has is a clone, whichever way the repo names it (plan_rules
    // checks `.sops.yaml`'s own names; here `pubkeys/` too, the one naming model).
    if host.per_host_recipient {
        let value = fetched.recipient.to_string();
        let names = original.recipient_names(&crate::names::public_key_names(repo));
        if let Some(other) = names.name_of(&value).filter(|other| *other != name) {
            return Err(crate::WorkflowError::refused_with_hint(
                format!("{name}'s recipient {value} is already named {other} (in .sops.yaml or pubkeys/{other}.pub): is {name} a clone of {other}?"),
                format!("if {other} is gone, run `hostage offboard {other}` (or delete pubkeys/{other}.pub) first; if {name} is a copy of {other}'s disk, give it a new host key"),
            ));
        }
    }
    let RulesEdit {
        steps: rule_steps,
        config,
        recipients,
    } = plan_rules(&original, &host, &fetched.recipient, infra.as_ref())?;
    steps.extend(rule_steps);
    let new_config = (config.text() != original.text()).then(|| config.text().to_owned());

    // The files to re-key: those whose rule gives them other recipients now, and those a
    // stopped onboarding left in its journal; other drift is left to `hostage rekey`.
    let state = hostage_rekey::state_dir(repo);
    let leftover = Journal::load(&state)?;
    let pending = journal_paths(leftover.as_ref())?;
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
            path: super::host_key::backup_path(repo, &host),
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

    let pinned = host
        .pin
        .as_ref()
        .is_some_and(|p| p.fingerprint == fetched.fingerprint && p.recipient == fetched.recipient);
    if !pinned {
        steps.push(Step::RecordPin {
            fingerprint: fetched.fingerprint.to_string(),
            recipient: fetched.recipient.to_string(),
        });
    }
    let exposure = finish_step(&mut steps, &rekey, leftover.as_ref())?;

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
        config: snapshot,
        public_key,
        new_config,
        rekey,
        exposure,
        deploy,
        options: options.clone(),
        generated_locally: options.generate_host_key,
        generated,
    })
}

/// The `.sops.yaml` edits onboarding `host` makes, computed from the text alone.
#[derive(Debug)]
pub struct RulesEdit {
    /// The steps, in order (anchor, rules).
    pub steps: Vec<Step>,
    /// `.sops.yaml` with every edit made.
    pub config: SopsConfig,
    /// The recipients through which the host reads its secret paths.
    pub recipients: Vec<RecipientRef>,
}

/// Plans the `.sops.yaml` edits that let `host` (whose key has `recipient`) read its `secrets:`
/// paths, in the file's own convention: its name (an anchor, a header label or both, whichever
/// the file uses), then each path's rule gains the host's recipient (or the infrastructure key's,
/// for an infrastructure-only host), or a new rule goes immediately above the rule that catches
/// the path today, copied from it (minus the infrastructure recipient when the inventory says
/// `keep_infrastructure: false`). Pure: the facts in, the edit out; on an onboarded host it
/// changes no byte.
pub fn plan_rules(
    original: &SopsConfig,
    host: &Host,
    recipient: &hostage_recipients::AgeRecipient,
    infra: Option<&hostage_inventory::Infrastructure>,
) -> crate::Result<RulesEdit> {
    let name = host.name.as_str();
    let config_path = original.path().to_owned();
    let mut steps = Vec::new();
    let mut config = SopsConfig::parse(&config_path, original.text())?;
    let mut recipients: Vec<RecipientRef> = Vec::new();
    if host.per_host_recipient {
        let value = recipient.to_string();
        if let Some(other) = config.name_of(&value).filter(|other| other != name) {
            bail!(
                "{name}'s recipient {value} is already named {other} in .sops.yaml: is it a clone of that host?"
            );
        }
        // The name already on another key is a host with a new key: rotate says so (and does
        // it); any other refusal is about the file's layout, which the error underneath names.
        let renamed = config
            .named_recipients()
            .into_iter()
            .any(|(n, r)| n == name && r != value);
        let named = config.add_named_recipient(name, recipient).map_err(|e| {
            if renamed {
                crate::WorkflowError::refused_with_hint(
                    format!("cannot onboard {name}: {e}"),
                    format!(
                        "if {name} was rebuilt with a new host key, run `hostage rotate {name}`"
                    ),
                )
            } else {
                crate::WorkflowError::Context {
                    context: format!(
                        "cannot name {name} in .sops.yaml the way it names recipients"
                    ),
                    source: Box::new(e.into()),
                }
            }
        })?;
        for change in &named.changes {
            match change {
                ConfigChange::AddAnchor { name } => steps.push(Step::AddAnchor {
                    name: name.clone(),
                    recipient: value.clone(),
                }),
                ConfigChange::AddHeaderLabel { name } => steps.push(Step::AddHeaderLabel {
                    name: name.clone(),
                    recipient: value.clone(),
                }),
                _ => {}
            }
        }
        if named.text != config.text() {
            config = SopsConfig::parse(&config_path, &named.text)?;
        }
        recipients.push(named.reference);
    }
    // A host with its own recipient reads its secret paths through it; an infrastructure-only
    // host through the infrastructure key.
    let infra_ref = infra.map(|i| {
        let value = i.recipient.to_string();
        RecipientRef {
            anchor: config.name_of(&value),
            recipient: value,
            define_anchor: false,
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
            let existing = config
                .rules()
                .iter()
                .find(|r| r.path_regex.as_deref() == Some(regex))
                .map(|r| r.index);
            let edit = match existing {
                Some(index) => config
                    .add_to_rules(&RuleSelector::Indices(vec![index]), recipient)
                    .with_context(|| {
                        format!("cannot add {name} to the rule for {regex} in .sops.yaml")
                    })?,
                None if catching_rule_gives(&config, regex, &recipient.recipient) => continue,
                None => {
                    let drop = match infra_ref.as_ref() {
                        Some(infra_ref) if !host.keep_infrastructure && infra_ref != recipient => {
                            vec![infra_ref.recipient.clone()]
                        }
                        _ => Vec::new(),
                    };
                    let options = NewRuleOptions {
                        example_path: None,
                        drop,
                    };
                    config
                        .add_rule(regex, recipient, &options)
                        .with_context(|| format!("cannot add a rule for {regex} to .sops.yaml"))?
                }
            };
            let label = config
                .name_of(&recipient.recipient)
                .unwrap_or_else(|| recipient.recipient.clone());
            let dropped = infra_ref
                .as_ref()
                .filter(|i| !host.keep_infrastructure && *i != recipient)
                .map(|i| {
                    config
                        .name_of(&i.recipient)
                        .unwrap_or_else(|| i.recipient.clone())
                });
            steps.extend(rule_steps(&edit.changes, &label, dropped));
            if !edit.is_noop() {
                config = SopsConfig::parse(&config_path, &edit.text)?;
            }
        }
    }
    // An anchor defined where the key is first listed in a rule (abl030's layout) is written
    // only if some rule lists the host as a list item: a comma-separated `age:` string gets the
    // literal key. Report only what was written, so a re-run reports nothing.
    let anchored: Vec<String> = config
        .recipient_names(&[])
        .iter()
        .filter(|n| {
            n.sources
                .iter()
                .any(|s| matches!(s, hostage_sops::rules::NameSource::Anchor { .. }))
        })
        .map(|n| n.name.clone())
        .collect();
    steps.retain(|step| match step {
        Step::AddAnchor { name, .. } => anchored.contains(name),
        _ => true,
    });
    Ok(RulesEdit {
        steps,
        config,
        recipients,
    })
}

/// The steps that report a rule edit's changes, in the file's terms (`label` names the
/// recipient added, `dropped` the recipient a new rule did not copy).
fn rule_steps(changes: &[ConfigChange], label: &str, dropped: Option<String>) -> Vec<Step> {
    changes
        .iter()
        .filter_map(|change| match change {
            ConfigChange::AddToRule {
                path_regex,
                recipient,
                ..
            } => Some(Step::AddToRule {
                path_regex: path_regex.clone().unwrap_or_default(),
                recipient: recipient.clone(),
            }),
            ConfigChange::AddRule { path_regex, above } => Some(Step::AddRule {
                path_regex: path_regex.clone(),
                recipient: label.to_owned(),
                above: above.clone(),
                dropped: dropped.clone().into_iter().collect(),
            }),
            _ => None,
        })
        .collect()
}

/// The key of a host that does not exist yet: the one generated by an earlier run (its public
/// key in `pubkeys/`, its private key stored), else a new one.
fn pregenerated(
    inventory: &FleetInventory,
    host: &Host,
) -> crate::Result<(
    hostage_recipients::Ed25519PublicKey,
    Option<super::host_key::GeneratedHostKey>,
)> {
    let name = host.name.as_str();
    let repo = &inventory.inventory.secrets_repo;
    let stored = repo.join(super::host_key::backup_path(repo, host));
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

/// Whether the rule sops picks today for a path of `regex` already gives every file it catches
/// to `recipient` (then the host reads those paths without a rule of its own).
fn catching_rule_gives(config: &SopsConfig, regex: &str, recipient: &str) -> bool {
    // The path a new rule would be placed by (`add_rule`'s own example), so "already given" and
    // "where the new rule goes" are judged on the same file.
    let Some(path) = config.new_rule_example(regex) else {
        return false;
    };
    config.rule_for_sops_path(&path).is_ok_and(|(_, rule)| {
        !rule.key_groups.is_empty()
            && rule
                .key_groups
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
) -> crate::Result<(FetchedHost, Option<DeployAction>)> {
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

/// Applies `plan`: public key, `.sops.yaml`, re-key, deploy, pin, in that order, in a
/// [`RepoSession`]: under the repo lock, the journal written before `.sops.yaml`, and
/// `.sops.yaml` and the inventory written only if nobody changed them since the plan read them.
/// `progress` hears about each step as it starts; `options.stop_after` ends the run after a step.
pub fn apply(
    inventory: &mut FleetInventory,
    plan: &mut OnboardPlan,
    passphrases: &mut dyn PassphraseProvider,
    options: &ApplyOptions,
    progress: &dyn Fn(&Step),
) -> crate::Result<OnboardOutcome> {
    let mut outcome = OnboardOutcome::default();
    if plan.is_noop() {
        return Ok(outcome);
    }
    let config_dir = plan
        .config
        .path()
        .parent()
        .context("the .sops.yaml path has a directory")?
        .to_owned();
    let mut session = RepoSession::open(&config_dir, options.clone())?;
    // The plan was made before the lock: refuse before any write if what it read has changed.
    session.revalidate(&[
        &plan.config,
        &FileSnapshot::of_text(&inventory.inventory.path, inventory.text()),
    ])?;
    // Recorded before .sops.yaml changes, so a run stopped after that write still knows which
    // files to finish (the rule edit alone no longer shows them once it is on disk). It stays
    // until the last write, so a run killed before the pin still reports the exposure.
    plan.exposure = session.begin_rekey(&plan.rekey)?;
    let mut config_written = false;
    for step in &plan.steps {
        progress(step);
        match step {
            Step::SavePublicKey { .. } => {
                if let Some((path, text)) = &plan.public_key {
                    // The repo is untrusted: `pubkeys/` or the file may be a symlink out of it.
                    hostage_atomic::ConfinedDir::of_parent(plan.config.path())?
                        .write(path, text.as_bytes())?;
                }
            }
            // The rule edits are written together, once, with the first of them.
            Step::AddAnchor { .. }
            | Step::AddHeaderLabel { .. }
            | Step::AddToRule { .. }
            | Step::AddRule { .. }
            | Step::ReplaceRecipient { .. } => {
                if let (Some(text), false) = (&plan.new_config, config_written) {
                    session.write_if_unchanged(&plan.config, text.as_bytes())?;
                    config_written = true;
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
                    super::host_key::store(&config_dir, path, &key.private)?;
                }
            }
            Step::RecordPin { .. } => {
                outcome.pin_recorded = inventory.record_pin(
                    &plan.host,
                    &plan.fetched.fingerprint,
                    &plan.fetched.recipient,
                )?;
            }
            // The journal goes after the loop, whichever journal it is.
            Step::FinishInterruptedRun { .. } => {}
        }
        session.checkpoint(step.name())?;
    }
    // The last write: the journal this run wrote, or the killed run's it finished.
    session.finish()?;
    Ok(outcome)
}

impl Step {
    /// The step's name as `--json` shows it (`save-public-key`, `add-rule`, `rekey`…).
    pub fn name(&self) -> &'static str {
        match self {
            Self::SavePublicKey { .. } => "save-public-key",
            Self::AddAnchor { .. } => "add-anchor",
            Self::AddHeaderLabel { .. } => "add-header-label",
            Self::AddToRule { .. } => "add-to-rule",
            Self::AddRule { .. } => "add-rule",
            Self::Rekey { .. } => "rekey",
            Self::DeployInfrastructureKey { .. } => "deploy-infrastructure-key",
            Self::ReplaceRecipient { .. } => "replace-recipient",
            Self::StoreHostKey { .. } => "store-host-key",
            Self::RecordPin { .. } => "record-pin",
            Self::FinishInterruptedRun { .. } => "finish-interrupted-run",
        }
    }
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
pub(super) fn rekey_step(steps: &mut Vec<Step>, plan: Plan) -> crate::Result<Plan> {
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
) -> crate::Result<Vec<String>> {
    hostage_rekey::apply(
        plan,
        identities,
        &hostage_rekey::ApplyOptions::default(),
        &|| {},
    )?;
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

/// The files a killed run journaled (to be finished by this run).
pub(super) fn journal_paths(leftover: Option<&Journal>) -> crate::Result<BTreeSet<PathBuf>> {
    Ok(match leftover {
        Some(journal) => journal.paths()?,
        None => BTreeSet::new(),
    })
}

/// Adds the step that finishes a killed run when its journal is `leftover` (last: the journal
/// goes after every other write), and returns what applying will report as exposed: `rekey`'s
/// removals and the killed run's.
pub(super) fn finish_step(
    steps: &mut Vec<Step>,
    rekey: &Plan,
    leftover: Option<&Journal>,
) -> crate::Result<Vec<hostage_rekey::Exposure>> {
    if let Some(journal) = leftover {
        steps.push(Step::FinishInterruptedRun { pid: journal.pid });
    }
    crate::session::owed_exposure(rekey, leftover)
}

/// The files a stopped workflow left in the repo's journal (to be finished by this run).
pub(super) fn pending_files(state: &Path) -> crate::Result<BTreeSet<PathBuf>> {
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
) -> crate::Result<Option<(InfrastructureKey, DeployOptions)>> {
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
) -> crate::Result<Option<(InfrastructureKey, DeployOptions)>> {
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
) -> crate::Result<(hostage_rekey::FileList, Plan)> {
    let candidates = hostage_rekey::walk(std::slice::from_ref(&repo.to_owned()))?;
    let options = crate::names::plan_options(repo);
    let plan = hostage_rekey::plan(config, &candidates, &options, &|| {})?;
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
) -> crate::Result<(hostage_rekey::FileList, Plan)> {
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

#[cfg(test)]
mod tests {
    //! `plan_rules` on fixture facts: an inventory and a `.sops.yaml` as text, a host's recipient;
    //! no sshd, no repository.

    // Fixtures: a panic with the value is the right failure.
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use hostage_inventory::Inventory;
    use hostage_recipients::AgeRecipient;
    use hostage_sops::rules::SopsConfig;

    use super::{plan_rules, Step};

    fn recipient(n: u8) -> AgeRecipient {
        AgeRecipient::from_bytes([n; 32])
    }

    fn inventory(hosts: &str) -> (tempfile::TempDir, Inventory) {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("secrets")).unwrap();
        let text = format!(
            "secrets_repo: secrets\nrecipients:\n  workstation:\n    recipient: {}\n  infrastructure:\n    recipient: {}\n    private_key_file: ~/.ssh/id_infrastructure\nhosts:\n{hosts}",
            recipient(1),
            recipient(2)
        );
        let inventory = Inventory::parse(&dir.path().join("fleet.yaml"), &text).unwrap();
        (dir, inventory)
    }

    fn seed_config() -> SopsConfig {
        let text = format!(
            "keys:\n  - &workstation {}\n  - &infrastructure {}\ncreation_rules:\n  - path_regex: .*\n    key_groups:\n      - age:\n          - *workstation\n          - *infrastructure\n",
            recipient(1),
            recipient(2)
        );
        SopsConfig::parse(Path::new("/repo/.sops.yaml"), &text).unwrap()
    }

    /// The recipients the rule sops picks for `path` encrypts to.
    fn readers(config: &SopsConfig, path: &str) -> Vec<String> {
        let (_, rule) = config.rule_for_sops_path(path).unwrap();
        rule.key_groups
            .iter()
            .flatten()
            .map(|e| e.recipient.clone())
            .collect()
    }

    #[test]
    fn a_new_host_gets_its_anchor_and_a_rule_above_the_catch_all_that_keeps_the_infrastructure_key()
    {
        let (_dir, inventory) =
            inventory("  web:\n    address: 10.0.0.7\n    secrets: ['secrets/hosts/web/.*']\n");
        let host = inventory.host("web").unwrap();
        let original = seed_config();
        let edit = plan_rules(
            &original,
            host,
            &recipient(3),
            inventory.infrastructure.as_ref(),
        )
        .unwrap();
        let names: Vec<&str> = edit.steps.iter().map(Step::name).collect();
        assert_eq!(names, ["add-anchor", "add-rule"]);
        assert_eq!(
            edit.steps[1],
            Step::AddRule {
                path_regex: "secrets/hosts/web/.*".into(),
                recipient: "web".into(),
                above: Some(".*".into()),
                dropped: Vec::new(),
            }
        );
        let text = edit.config.text();
        assert!(text.contains(&format!("&web {}", recipient(3))), "{text}");
        let expected = [recipient(1), recipient(2), recipient(3)].map(|r| r.to_string());
        assert_eq!(readers(&edit.config, "secrets/hosts/web/db.yaml"), expected);
        // The original is untouched: planning is pure.
        assert!(!original.text().contains("&web"));
    }

    /// abl030's layout: no `keys:` list, recipients anchored where a rule first lists them; one
    /// rule writes its keys as a list, the other as one comma-separated string.
    fn anchors_in_rules_config() -> SopsConfig {
        let text = format!(
            "creation_rules:\n  - path_regex: secrets/shared/.*\n    key_groups:\n      - age:\n          - &wsl {} # WSL\n  - path_regex: secrets/hosts/web/.*\n    age: {},{}\n",
            recipient(1),
            recipient(1),
            recipient(2)
        );
        SopsConfig::parse(Path::new("/repo/.sops.yaml"), &text).unwrap()
    }

    #[test]
    fn joining_only_comma_string_rules_in_a_file_anchoring_inside_rules_reports_no_anchor_and_a_rerun_nothing(
    ) {
        let (_dir, inventory) =
            inventory("  web:\n    address: 10.0.0.7\n    secrets: ['secrets/hosts/web/.*']\n");
        let host = inventory.host("web").unwrap();
        let original = anchors_in_rules_config();
        let edit = plan_rules(&original, host, &recipient(3), None).unwrap();
        let names: Vec<&str> = edit.steps.iter().map(Step::name).collect();
        assert_eq!(names, ["add-to-rule"], "{:?}", edit.steps);
        let text = edit.config.text();
        assert!(!text.contains("&web"), "{text}");
        assert!(
            text.contains(&format!(
                "age: {},{},{}\n",
                recipient(1),
                recipient(2),
                recipient(3)
            )),
            "{text}"
        );
        let again = plan_rules(&edit.config, host, &recipient(3), None).unwrap();
        assert_eq!(again.steps, [], "a re-run has nothing to do");
        assert_eq!(again.config.text(), text);
    }

    #[test]
    fn joining_a_list_rule_in_a_file_anchoring_inside_rules_writes_and_reports_the_anchor() {
        let (_dir, inventory) =
            inventory("  web:\n    address: 10.0.0.7\n    secrets: ['secrets/shared/.*']\n");
        let host = inventory.host("web").unwrap();
        let edit = plan_rules(&anchors_in_rules_config(), host, &recipient(3), None).unwrap();
        let names: Vec<&str> = edit.steps.iter().map(Step::name).collect();
        assert_eq!(names, ["add-anchor", "add-to-rule"], "{:?}", edit.steps);
        let text = edit.config.text();
        assert!(text.contains(&format!("- &web {}", recipient(3))), "{text}");
        let again = plan_rules(&edit.config, host, &recipient(3), None).unwrap();
        assert_eq!(again.steps, [], "a re-run has nothing to do");
    }

    #[test]
    fn a_host_that_does_not_keep_the_infrastructure_key_gets_a_new_rule_without_it() {
        let (_dir, inventory) = inventory(
            "  web:\n    address: 10.0.0.7\n    keep_infrastructure: false\n    secrets: ['secrets/hosts/web/.*']\n",
        );
        let host = inventory.host("web").unwrap();
        let edit = plan_rules(
            &seed_config(),
            host,
            &recipient(3),
            inventory.infrastructure.as_ref(),
        )
        .unwrap();
        let expected = [recipient(1), recipient(3)].map(|r| r.to_string());
        assert_eq!(readers(&edit.config, "secrets/hosts/web/db.yaml"), expected);
        assert!(
            matches!(&edit.steps[1], Step::AddRule { dropped, .. } if dropped == &["infrastructure"]),
            "{:?}",
            edit.steps
        );
    }

    /// The seed layout's golden files (the shared seed-layout.md, with test keys).
    const SEED_BEFORE: &str =
        include_str!("../../sops/tests/rules/seed.before-gnomeregan.sops.yaml");
    const SEED: &str = include_str!("../../sops/tests/rules/seed.sops.yaml");
    const SEED_NEW_RULE: &str = include_str!("../../sops/tests/rules/seed.new-rule.expected.yaml");

    /// The recipient of header label `name` in `text`.
    fn label(text: &str, name: &str) -> AgeRecipient {
        let config = SopsConfig::parse(Path::new("/repo/.sops.yaml"), text).unwrap();
        let label = config
            .header_labels()
            .into_iter()
            .find(|l| l.name == name)
            .unwrap();
        label.recipient.parse().unwrap()
    }

    /// An inventory with the seed's workstation and infrastructure keys and `hosts`.
    fn seed_inventory(hosts: &str) -> (tempfile::TempDir, Inventory) {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("secrets")).unwrap();
        let text = format!(
            "secrets_repo: secrets\nrecipients:\n  workstation:\n    recipient: {}\n  infrastructure:\n    recipient: {}\n    private_key_file: ~/.ssh/id_infrastructure\nhosts:\n{hosts}",
            label(SEED, "workstation"),
            label(SEED, "infrastructure"),
        );
        let inventory = Inventory::parse(&dir.path().join("fleet.yaml"), &text).unwrap();
        (dir, inventory)
    }

    #[test]
    fn onboarding_on_the_seed_layout_is_the_seeds_hand_edit_and_a_rerun_changes_no_byte() {
        let (_dir, inventory) = seed_inventory(
            "  gnomeregan:\n    address: 10.0.0.7\n    secrets:\n      - secrets/host/gnomeregan/.*\n      - secrets/host/ironforge/.*-storage\\.sops\\.yaml\n",
        );
        let host = inventory.host("gnomeregan").unwrap();
        let infra = inventory.infrastructure.as_ref();
        let key = label(SEED, "gnomeregan");
        let before = SopsConfig::parse(Path::new("/repo/.sops.yaml"), SEED_BEFORE).unwrap();
        let once = plan_rules(&before, host, &key, infra).unwrap();
        assert_eq!(once.config.text(), SEED);
        assert_eq!(
            once.steps,
            [
                Step::AddHeaderLabel {
                    name: "gnomeregan".into(),
                    recipient: key.to_string()
                },
                Step::AddToRule {
                    path_regex: "secrets/host/gnomeregan/.*".into(),
                    recipient: "gnomeregan".into()
                },
                Step::AddToRule {
                    path_regex: "secrets/host/ironforge/.*-storage\\.sops\\.yaml".into(),
                    recipient: "gnomeregan".into()
                },
            ]
        );
        let twice = plan_rules(&once.config, host, &key, infra).unwrap();
        assert_eq!(twice.steps, Vec::<Step>::new());
        assert_eq!(twice.config.text(), SEED);
    }

    #[test]
    fn a_seed_host_without_a_rule_gets_one_above_the_secrets_catch_all() {
        let (_dir, inventory) = seed_inventory(
            "  stormwind:\n    address: 10.0.0.8\n    secrets: ['secrets/host/stormwind/.*']\n",
        );
        let host = inventory.host("stormwind").unwrap();
        let infra = inventory.infrastructure.as_ref();
        let key = label(SEED_NEW_RULE, "stormwind");
        let seed = SopsConfig::parse(Path::new("/repo/.sops.yaml"), SEED).unwrap();
        let edit = plan_rules(&seed, host, &key, infra).unwrap();
        assert_eq!(edit.config.text(), SEED_NEW_RULE);
        assert_eq!(
            edit.steps[1],
            Step::AddRule {
                path_regex: "secrets/host/stormwind/.*".into(),
                recipient: "stormwind".into(),
                above: Some("secrets/.*".into()),
                dropped: Vec::new(),
            }
        );
        let again = plan_rules(&edit.config, host, &key, infra).unwrap();
        assert_eq!(again.config.text(), SEED_NEW_RULE);
        assert!(again.steps.is_empty(), "{:?}", again.steps);
    }

    #[test]
    fn planning_an_onboarded_host_again_changes_nothing() {
        let (_dir, inventory) =
            inventory("  web:\n    address: 10.0.0.7\n    secrets: ['secrets/hosts/web/.*']\n");
        let host = inventory.host("web").unwrap();
        let infra = inventory.infrastructure.as_ref();
        let once = plan_rules(&seed_config(), host, &recipient(3), infra).unwrap();
        let twice = plan_rules(&once.config, host, &recipient(3), infra).unwrap();
        assert_eq!(twice.steps, Vec::<Step>::new());
        assert_eq!(twice.config.text(), once.config.text());
    }

    #[test]
    fn a_host_whose_recipient_another_anchor_holds_is_refused_as_a_possible_clone() {
        let (_dir, inventory) =
            inventory("  web:\n    address: 10.0.0.7\n    secrets: ['secrets/hosts/web/.*']\n");
        let host = inventory.host("web").unwrap();
        // web presents the infrastructure key's recipient.
        let error = plan_rules(
            &seed_config(),
            host,
            &recipient(2),
            inventory.infrastructure.as_ref(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("clone"), "{error}");
    }

    #[test]
    fn an_infrastructure_only_host_reads_through_the_infrastructure_key_already_on_the_catch_all() {
        let (_dir, inventory) = inventory(
            "  db:\n    address: 10.0.0.8\n    per_host_recipient: false\n    infrastructure_key: true\n    secrets: ['secrets/hosts/db/.*']\n",
        );
        let host = inventory.host("db").unwrap();
        let edit = plan_rules(
            &seed_config(),
            host,
            &recipient(4),
            inventory.infrastructure.as_ref(),
        )
        .unwrap();
        assert_eq!(edit.steps, Vec::<Step>::new());
        assert_eq!(edit.recipients.len(), 1);
        assert_eq!(edit.recipients[0].recipient, recipient(2).to_string());
    }
}
