//! `status`: one look at the fleet. Hosts (pinned? onboarded? reachable with `--online`), the
//! recipients, drift between the inventory, `.sops.yaml` and the files (through the re-key
//! planner, so no private key is needed), and who can read which file.

use std::collections::BTreeSet;
use std::time::Duration;

use hostage_inventory::Host;
use hostage_rekey::{Action, PlanOptions};
use hostage_remote::FleetOptions;
use hostage_sops::rules::{RecipientNames, SopsConfig};
use serde::Serialize;

use super::fleet_inventory::NoPins;
use super::FleetInventory;

/// What disagrees about one host, from the facts `status` gathered: its inventory entry, the
/// recipient its `.sops.yaml` anchor holds, and whether `pubkeys/<host>.pub` exists. Pure.
pub fn host_drift(host: &Host, anchor: Option<&str>, public_key_saved: bool) -> Vec<Drift> {
    let name = host.name.as_str();
    let pin = host.pin.as_ref();
    let mut drift = Vec::new();
    match (pin, anchor) {
        (None, _) => drift.push(Drift::new(
            DriftKind::NoPin,
            name,
            format!("{name} has no pin: run `hostage onboard {name}` (or `hostage fetch {name}`)"),
            Some(format!("hostage onboard {name}")),
        )),
        (Some(_), None) if host.per_host_recipient => drift.push(Drift::new(
            DriftKind::NotInSopsConfig,
            name,
            format!("{name} is not in .sops.yaml: run `hostage onboard {name}`"),
            Some(format!("hostage onboard {name}")),
        )),
        (Some(pin), Some(value)) if value != pin.recipient.to_string() => drift.push(Drift::new(
            DriftKind::RecipientDiffersFromPin,
            name,
            format!(
                "{name}: .sops.yaml has {value} but the pin says {}: run `hostage rotate {name}` if the host was rebuilt",
                pin.recipient
            ),
            Some(format!("hostage rotate {name}")),
        )),
        _ => {}
    }
    if pin.is_some() && !public_key_saved {
        drift.push(Drift::new(
            DriftKind::PublicKeyMissing,
            name,
            format!("pubkeys/{name}.pub is missing: run `hostage onboard {name}`"),
            Some(format!("hostage onboard {name}")),
        ));
    }
    drift
}

/// One host as the inventory, the repo and (with `--online`) the host itself see it.
#[derive(Debug, Serialize)]
pub struct HostStatus {
    /// Inventory name.
    pub name: String,
    /// The pinned fingerprint, when verified.
    pub pin: Option<String>,
    /// The pinned recipient.
    pub recipient: Option<String>,
    /// Whether it gets its own recipient.
    pub per_host_recipient: bool,
    /// Whether it receives the infrastructure key.
    pub infrastructure_key: bool,
    /// `.sops.yaml` has the host's anchor with the pinned recipient.
    pub in_sops_config: bool,
    /// `pubkeys/<host>.pub` exists.
    pub public_key_saved: bool,
    /// With `--online`: `ok` (verified), or why not.
    pub online: Option<String>,
}

/// One sops file: what the planner says, and who can read it now.
#[derive(Debug, Serialize)]
pub struct FileStatus {
    /// Relative to the secrets repo.
    pub path: String,
    /// `unchanged`, `rewrap`, `rotate` or `error` against `.sops.yaml`.
    pub action: Action,
    /// Names that can read it now: `workstation`, `infrastructure`, hosts, then other named
    /// recipients, then the keys of recipients nobody names (each also an `unknown-recipient`
    /// drift).
    pub readers: Vec<String>,
}

/// What kind of disagreement between the inventory, `.sops.yaml`, `pubkeys/`, the files and the
/// hosts a [`Drift`] is (scripts filter on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// An inventory host has no verified pin yet.
    NoPin,
    /// A host with its own recipient is not named in `.sops.yaml`.
    NotInSopsConfig,
    /// `.sops.yaml` names a host with another recipient than its pin.
    RecipientDiffersFromPin,
    /// `pubkeys/<host>.pub` is missing for a pinned host.
    PublicKeyMissing,
    /// The host presents another key than its pin (`--online`).
    HostKeyDiffersFromPin,
    /// The inventory's workstation or infrastructure recipient is not in `.sops.yaml`.
    RecipientNotInSopsConfig,
    /// A file the planner cannot handle (no rule, not decryptable metadata…).
    FileError,
    /// A host cannot read a file of one of its secret paths.
    HostCannotRead,
    /// Files lag behind `.sops.yaml` (a re-key is due).
    FilesLagBehind,
    /// A file a creation rule covers has no sops metadata: a plaintext secret
    /// ([`crate::plaintext`]).
    PlaintextSecret,
    /// A recipient in `.sops.yaml`'s rules or in a file that the inventory does not know (not
    /// the workstation, the infrastructure key or a host's pin): a decommissioned host still in
    /// the rules, a rebuilt host's old key, or a key nobody accounts for.
    UnknownRecipient,
}

/// One disagreement `status` found: what, about whom, and the command that fixes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// What kind of drift.
    pub kind: DriftKind,
    /// Whom it is about: a host, a role (`workstation`, `infrastructure`), a file or
    /// `.sops.yaml`.
    pub subject: String,
    /// The sentence shown to the operator.
    pub message: String,
    /// The command that fixes it, when one does.
    pub fix: Option<String>,
}

impl Drift {
    /// The drift of one plaintext file found by the guard (its fix is to encrypt it).
    pub fn plaintext(file: &crate::plaintext::PlaintextFile) -> Self {
        Self::new(
            DriftKind::PlaintextSecret,
            &file.path,
            file.message(),
            Some(format!("sops -e -i {}", file.path)),
        )
    }

    fn new(kind: DriftKind, subject: &str, message: String, fix: Option<String>) -> Self {
        Self {
            kind,
            subject: subject.to_owned(),
            message,
            fix,
        }
    }
}

/// The whole picture.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The secrets repo.
    pub secrets_repo: String,
    /// Hosts in inventory order.
    pub hosts: Vec<HostStatus>,
    /// Named recipients (name → key), from the naming model: `.sops.yaml` anchors, its header
    /// labels, and `pubkeys/<name>.pub` converted.
    pub recipients: Vec<(String, String)>,
    /// Everything that disagrees, one sentence each, with what to run.
    pub drift: Vec<Drift>,
    /// Every sops file.
    pub files: Vec<FileStatus>,
}

/// Computes the status; with `online`, every host is also reached and verified (nothing is
/// recorded). Plaintext files under a creation rule are drift, except those `allow` allows.
pub fn status(
    inventory: &FleetInventory,
    online: Option<FleetOptions>,
    allow: &crate::plaintext::AllowList,
) -> crate::Result<Status> {
    let inv = &inventory.inventory;
    let repo = &inv.secrets_repo;
    let config = SopsConfig::load(&repo.join(".sops.yaml"))?;
    let names = config.recipient_names(&crate::names::public_key_names(repo));
    let named: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.name.clone(), n.recipient.clone()))
        .collect();
    let mut drift = Vec::new();

    let online_results = match online {
        Some(options) => {
            let targets = inv.hosts.iter().map(FleetInventory::target).collect();
            let options = FleetOptions {
                dry_run: true,
                timeout: options.timeout.max(Duration::from_secs(1)),
                ..options
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Some(runtime.block_on(hostage_remote::fetch(
                targets,
                &options,
                &mut NoPins,
                &|_| {},
            ))?)
        }
        None => None,
    };

    let mut hosts = Vec::new();
    for (index, host) in inv.hosts.iter().enumerate() {
        let name = host.name.as_str();
        let pin = host.pin.as_ref();
        // The host's name in .sops.yaml (an anchor or a header label), or the recipient its
        // `pubkeys/<host>.pub` converts to when a rule has that recipient.
        let anchor = names
            .recipient_of(name)
            .filter(|value| config.name_of(value).is_some() || in_rules(&config, value))
            .map(str::to_owned);
        let anchor = anchor.as_ref();
        let in_sops_config = match (pin, anchor) {
            (Some(pin), Some(value)) => *value == pin.recipient.to_string(),
            _ => false,
        };
        let public_key_saved = repo.join(format!("pubkeys/{name}.pub")).is_file();
        drift.extend(host_drift(
            host,
            anchor.map(String::as_str),
            public_key_saved,
        ));
        let online = online_results
            .as_ref()
            .and_then(|r| r.get(index))
            .map(|r| match &r.outcome {
                Ok(fetched) => {
                    if pin.is_some_and(|p| p.fingerprint != fetched.fingerprint) {
                        drift.push(Drift::new(
                            DriftKind::HostKeyDiffersFromPin,
                            name,
                            format!("{name} shows another host key than its pin"),
                            Some(format!("hostage rotate {name}")),
                        ));
                    }
                    format!("ok ({})", fetched.verified_by)
                }
                Err(e) => format!("{}: {e}", e.kind()),
            });
        hosts.push(HostStatus {
            name: name.to_owned(),
            pin: pin.map(|p| p.fingerprint.to_string()),
            recipient: pin.map(|p| p.recipient.to_string()),
            per_host_recipient: host.per_host_recipient,
            infrastructure_key: host.infrastructure_key,
            in_sops_config,
            public_key_saved,
            online,
        });
    }
    for (role, recipient) in [
        ("workstation", inv.workstation.as_ref().map(|w| w.recipient)),
        (
            "infrastructure",
            inv.infrastructure.as_ref().map(|i| i.recipient),
        ),
    ] {
        if let Some(recipient) = recipient {
            if config.name_of(&recipient.to_string()).is_none()
                && !config.rules().iter().any(|r| {
                    r.key_groups
                        .iter()
                        .flatten()
                        .any(|e| e.recipient == recipient.to_string())
                })
            {
                drift.push(Drift::new(
                    DriftKind::RecipientNotInSopsConfig,
                    role,
                    format!(
                        "the inventory's {role} recipient {recipient} is nowhere in .sops.yaml"
                    ),
                    None,
                ));
            }
        }
    }

    // Files: the planner says which lag behind .sops.yaml; their current recipients say who
    // can read them today.
    let candidates = hostage_rekey::walk(std::slice::from_ref(repo))?;
    drift.extend(
        crate::plaintext::find_plaintext(&config, &candidates, allow)?
            .iter()
            .map(Drift::plaintext),
    );
    let plan = hostage_rekey::plan(&config, &candidates, &PlanOptions::default(), &|| {})?;
    let infra = inv.infrastructure.as_ref().map(|i| i.recipient.to_string());
    let workstation = inv.workstation.as_ref().map(|w| w.recipient.to_string());
    let known: BTreeSet<String> = inv
        .recipients()
        .into_iter()
        .map(|(_, r)| r.to_string())
        .collect();
    let mut unknown_in_files = std::collections::BTreeMap::new();
    let mut files = Vec::new();
    let mut lagging = 0;
    for file in plan.files() {
        let file = file?;
        if file.changes() {
            lagging += 1;
        }
        if file.action == Action::Error {
            drift.push(Drift::new(
                DriftKind::FileError,
                &file.display,
                format!(
                    "{}: {}",
                    file.display,
                    file.reason.clone().unwrap_or_default()
                ),
                None,
            ));
        }
        let current: BTreeSet<&str> = file
            .current_recipients()
            .map(|r| r.recipient.as_str())
            .collect();
        let mut readers = Vec::new();
        if workstation.as_deref().is_some_and(|w| current.contains(w)) {
            readers.push("workstation".to_owned());
        }
        if infra.as_deref().is_some_and(|i| current.contains(i)) {
            readers.push("infrastructure".to_owned());
        }
        for host in &inv.hosts {
            let own = host
                .pin
                .as_ref()
                .is_some_and(|p| current.contains(p.recipient.to_string().as_str()));
            let shared =
                host.infrastructure_key && infra.as_deref().is_some_and(|i| current.contains(i));
            if own || shared {
                readers.push(host.name.as_str().to_owned());
            }
            let should = host
                .secrets
                .iter()
                .any(|s| regex::Regex::new(s.as_str()).is_ok_and(|r| r.is_match(&file.display)));
            if should && !(own || shared) && file.action != Action::Error {
                drift.push(Drift::new(
                    DriftKind::HostCannotRead,
                    host.name.as_str(),
                    format!(
                        "{} cannot read {} (one of its secret paths): run `hostage onboard {}`",
                        host.name, file.display, host.name
                    ),
                    Some(format!("hostage onboard {}", host.name)),
                ));
            }
        }
        for recipient in &current {
            if known.contains(*recipient) {
                continue;
            }
            *unknown_in_files.entry((*recipient).to_owned()).or_insert(0) += 1;
            let label = names.name_of(recipient).unwrap_or(recipient).to_owned();
            if !readers.contains(&label) {
                readers.push(label);
            }
        }
        files.push(FileStatus {
            path: file.display.clone(),
            action: file.action,
            readers,
        });
    }
    if lagging > 0 {
        drift.push(Drift::new(
            DriftKind::FilesLagBehind,
            ".sops.yaml",
            format!(
                "{lagging} file(s) lag behind .sops.yaml: run `hostage rekey --dry-run`, then `hostage rekey`"
            ),
            Some("hostage rekey".to_owned()),
        ));
    }
    drift.extend(unknown_recipients(
        &config,
        &names,
        &known,
        &unknown_in_files,
    ));
    Ok(Status {
        secrets_repo: repo.display().to_string(),
        hosts,
        recipients: named,
        drift,
        files,
    })
}

impl Status {
    /// The status narrowed to one host (`status HOST`): that host, the drift about it or about
    /// files it reads or must read, and those files. Pure.
    pub fn for_host(self, host: &Host) -> Status {
        let name = host.name.as_str();
        let secrets: Vec<regex::Regex> = host
            .secrets
            .iter()
            .filter_map(|s| regex::Regex::new(s.as_str()).ok())
            .collect();
        let files: Vec<FileStatus> = self
            .files
            .into_iter()
            .filter(|f| {
                f.readers.iter().any(|r| r == name) || secrets.iter().any(|r| r.is_match(&f.path))
            })
            .collect();
        let drift = self
            .drift
            .into_iter()
            .filter(|d| d.subject == name || files.iter().any(|f| f.path == d.subject))
            .collect();
        Status {
            secrets_repo: self.secrets_repo,
            hosts: self.hosts.into_iter().filter(|h| h.name == name).collect(),
            recipients: self.recipients,
            drift,
            files,
        }
    }
}

/// Whether some rule of `config` encrypts to `recipient`.
fn in_rules(config: &SopsConfig, recipient: &str) -> bool {
    config.rules().iter().any(|r| {
        r.key_groups
            .iter()
            .flatten()
            .any(|e| e.recipient == recipient)
    })
}

/// One `unknown-recipient` drift per recipient of `.sops.yaml`'s rules or of the files
/// (`in_files`: how many files have it) that is not in `known`. Pure.
pub fn unknown_recipients(
    config: &SopsConfig,
    names: &RecipientNames,
    known: &BTreeSet<String>,
    in_files: &std::collections::BTreeMap<String, usize>,
) -> Vec<Drift> {
    let mut in_rules: std::collections::BTreeMap<&str, Vec<String>> =
        std::collections::BTreeMap::new();
    for rule in config.rules() {
        for entry in rule.key_groups.iter().flatten() {
            if !known.contains(&entry.recipient) {
                let rules = in_rules.entry(entry.recipient.as_str()).or_default();
                let label = rule
                    .path_regex
                    .clone()
                    .unwrap_or_else(|| "(every file)".to_owned());
                if !rules.contains(&label) {
                    rules.push(label);
                }
            }
        }
    }
    let all: BTreeSet<&str> = in_rules
        .keys()
        .copied()
        .chain(in_files.keys().map(String::as_str))
        .collect();
    all.into_iter()
        .map(|recipient| {
            let who = match names.name_of(recipient) {
                Some(name) => format!("{name} ({recipient})"),
                None => format!("unnamed recipient {recipient}"),
            };
            let mut places = Vec::new();
            if let Some(rules) = in_rules.get(recipient) {
                places.push(format!(".sops.yaml rule(s) {}", rules.join(", ")));
            }
            if let Some(count) = in_files.get(recipient) {
                places.push(format!("{count} file(s)"));
            }
            Drift::new(
                DriftKind::UnknownRecipient,
                names.name_of(recipient).unwrap_or(recipient),
                format!(
                    "{who} reads {} but the inventory does not know it (a decommissioned host? remove it from .sops.yaml, then `hostage rekey`; or add the host to the inventory and onboard it)",
                    places.join(" and ")
                ),
                None,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! `host_drift` on fixture facts (an inventory as text, an anchor value): no repo, no sshd.

    // Fixtures: a panic with the value is the right failure.
    #![allow(clippy::unwrap_used)]

    use hostage_inventory::Inventory;
    use hostage_recipients::AgeRecipient;

    use super::{host_drift, unknown_recipients, DriftKind};

    const FINGERPRINT: &str = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn recipient(n: u8) -> String {
        AgeRecipient::from_bytes([n; 32]).to_string()
    }

    fn inventory(pin: bool) -> (tempfile::TempDir, Inventory) {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("secrets")).unwrap();
        let pin = if pin {
            format!(
                "    pin:\n      fingerprint: {FINGERPRINT}\n      recipient: {}\n      verified: 2026-11-30T18:00:00Z\n",
                recipient(3)
            )
        } else {
            String::new()
        };
        let text = format!(
            "secrets_repo: secrets\nrecipients:\n  workstation:\n    recipient: {}\nhosts:\n  web:\n    address: 10.0.0.7\n{pin}",
            recipient(1)
        );
        let inventory = Inventory::parse(&dir.path().join("fleet.yaml"), &text).unwrap();
        (dir, inventory)
    }

    fn kinds(drift: &[super::Drift]) -> Vec<DriftKind> {
        drift.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn a_host_without_a_pin_drifts_with_onboard_as_the_fix() {
        let (_dir, inventory) = inventory(false);
        let drift = host_drift(inventory.host("web").unwrap(), None, false);
        assert_eq!(kinds(&drift), [DriftKind::NoPin]);
        assert_eq!(drift[0].subject, "web");
        assert_eq!(drift[0].fix.as_deref(), Some("hostage onboard web"));
    }

    #[test]
    fn a_pinned_host_whose_anchor_holds_another_recipient_drifts_with_rotate_as_the_fix() {
        let (_dir, inventory) = inventory(true);
        let host = inventory.host("web").unwrap();
        let drift = host_drift(host, Some(&recipient(4)), true);
        assert_eq!(kinds(&drift), [DriftKind::RecipientDiffersFromPin]);
        assert_eq!(drift[0].fix.as_deref(), Some("hostage rotate web"));
        // In step, nothing; without its anchor or public key, what is missing.
        assert!(host_drift(host, Some(&recipient(3)), true).is_empty());
        assert_eq!(
            kinds(&host_drift(host, None, false)),
            [DriftKind::NotInSopsConfig, DriftKind::PublicKeyMissing]
        );
    }

    #[test]
    fn a_recipient_the_inventory_does_not_know_is_drift_named_by_its_header_label() {
        let text = format!(
            "# workstation: {}\n# oldhost:     {}\ncreation_rules:\n  - path_regex: secrets/.*\n    age: {},{}\n",
            recipient(1),
            recipient(9),
            recipient(1),
            recipient(9)
        );
        let config =
            hostage_sops::rules::SopsConfig::parse(std::path::Path::new("/r/.sops.yaml"), &text)
                .unwrap();
        let names = config.recipient_names(&[]);
        let known = [recipient(1)].into_iter().collect();
        let mut in_files = std::collections::BTreeMap::new();
        in_files.insert(recipient(9), 2);
        in_files.insert(recipient(8), 1);
        let drift = unknown_recipients(&config, &names, &known, &in_files);
        assert_eq!(
            kinds(&drift),
            [DriftKind::UnknownRecipient, DriftKind::UnknownRecipient]
        );
        let oldhost = drift.iter().find(|d| d.subject == "oldhost").unwrap();
        assert!(
            oldhost.message.contains("rule(s) secrets/.*"),
            "{}",
            oldhost.message
        );
        assert!(oldhost.message.contains("2 file(s)"), "{}", oldhost.message);
        let unnamed = drift.iter().find(|d| d.subject == recipient(8)).unwrap();
        assert!(
            unnamed.message.contains("unnamed recipient"),
            "{}",
            unnamed.message
        );
        // Nothing unknown: no drift.
        let known = [recipient(1), recipient(9)].into_iter().collect();
        assert!(unknown_recipients(&config, &names, &known, &Default::default()).is_empty());
    }
}
