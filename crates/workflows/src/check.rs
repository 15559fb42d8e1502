//! `check`: every CI check of a secrets repository in one run, with no private key. Plaintext
//! secrets ([`crate::plaintext`]), the `.sops.yaml` lints, recipients nobody named (on a rule or
//! on a file: no anchor, no header label, not the inventory's), and drift: files lagging behind
//! `.sops.yaml` or unreadable by the planner, plus, when an inventory describes this repository,
//! everything `status` finds offline. Reads only; the caller decides the exit code from
//! [`CheckReport::findings`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hostage_rekey::Action;
use hostage_sops::rules::{Lint, SopsConfig};
use serde::Serialize;

use crate::plaintext::{find_plaintext, AllowList, PlaintextFile};
use crate::status::{Drift, DriftKind};
use crate::{FleetInventory, Progress};

/// An age recipient that nothing names: no anchor or header label in `.sops.yaml`, and not the
/// inventory's workstation, infrastructure or a host pin. Someone can read the files it is on,
/// and nobody can say who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownRecipient {
    /// The recipient (`age1…`).
    pub recipient: String,
    /// Where it is: `.sops.yaml:LINE` for a rule, the file's path for a file.
    pub places: Vec<String>,
}

/// What `hostage check` found (`--json`: this document).
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// The `.sops.yaml` followed.
    pub config: String,
    /// The inventory whose drift was checked, when one describes this repository.
    pub inventory: Option<String>,
    /// The allow-list patterns in force (defaults first).
    pub allowed: Vec<String>,
    /// Plaintext files under a creation rule.
    pub plaintext: Vec<PlaintextFile>,
    /// `.sops.yaml` lints.
    pub lints: Vec<Lint>,
    /// Recipients nobody named.
    pub unknown_recipients: Vec<UnknownRecipient>,
    /// Drift: files behind `.sops.yaml`, files the planner cannot handle, and (with an
    /// inventory) `status`'s offline drift. Plaintext files are in `plaintext`, not here.
    pub drift: Vec<Drift>,
}

impl CheckReport {
    /// How many findings (each is a reason to fail CI).
    pub fn findings(&self) -> usize {
        self.plaintext.len() + self.lints.len() + self.unknown_recipients.len() + self.drift.len()
    }
}

/// Runs every check against `config`; with `inventory` (when its secrets repository is the
/// directory of `config`), `status`'s offline drift too. `progress` hears `planning` per file.
pub fn check(
    config: &SopsConfig,
    inventory: Option<&FleetInventory>,
    allow: &AllowList,
    progress: &dyn Progress,
) -> crate::Result<CheckReport> {
    let inventory = inventory.filter(|inv| {
        let same = same_dir(&inv.inventory.secrets_repo, config.dir());
        if !same {
            progress.warn(&format!(
                "the inventory {} describes {}, not {}: its drift is not checked",
                inv.inventory.path.display(),
                inv.inventory.secrets_repo.display(),
                config.dir().display()
            ));
        }
        same
    });
    let files = hostage_rekey::walk(&[config.dir().to_owned()])?;
    let plaintext = find_plaintext(config, &files, allow)?;

    progress.phase("planning", files.len());
    // Names from the one naming model, `pubkeys/` included: a key named only there is known.
    let options = crate::names::plan_options(config.dir());
    let names = config.recipient_names(&options.supplied_names);
    let plan = hostage_rekey::plan(config, &files, &options, &|| progress.advance())?;
    progress.done();

    // The recipients the inventory accounts for (workstation, infrastructure key, every pin).
    let known: BTreeSet<String> = inventory
        .map(|i| i.inventory.recipients())
        .unwrap_or_default()
        .into_iter()
        .map(|(_, r)| r.to_string())
        .collect();
    let mut unknown: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let is_unknown = |recipient: &str, named: bool| {
        !named && recipient.starts_with("age1") && !known.contains(recipient)
    };
    for rule in config.rules() {
        for entry in rule.key_groups.iter().flatten() {
            if is_unknown(&entry.recipient, names.name_of(&entry.recipient).is_some()) {
                unknown
                    .entry(entry.recipient.clone())
                    .or_default()
                    .insert(format!(".sops.yaml:{}", entry.line));
            }
        }
    }
    let mut drift = Vec::new();
    let mut lagging = Vec::new();
    for file in plan.files() {
        let file = file?;
        for recipient in file.current_recipients() {
            if is_unknown(&recipient.recipient, recipient.name.is_some()) {
                unknown
                    .entry(recipient.recipient.clone())
                    .or_default()
                    .insert(file.display.clone());
            }
        }
        if inventory.is_some() {
            continue; // status reports lagging and broken files itself
        }
        if file.action == Action::Error {
            drift.push(Drift {
                kind: DriftKind::FileError,
                subject: file.display.clone(),
                message: format!(
                    "{}: {}",
                    file.display,
                    file.reason.clone().unwrap_or_default()
                ),
                fix: None,
            });
        } else if file.changes() {
            lagging.push(file.display.clone());
        }
    }
    if !lagging.is_empty() {
        drift.push(Drift {
            kind: DriftKind::FilesLagBehind,
            subject: ".sops.yaml".to_owned(),
            message: format!(
                "{} file(s) lag behind .sops.yaml ({}): run `hostage rekey --dry-run`, then `hostage rekey`",
                lagging.len(),
                lagging.join(", ")
            ),
            fix: Some("hostage rekey".to_owned()),
        });
    }
    if let Some(inventory) = inventory {
        let status = crate::status::status(inventory, None, allow)?;
        drift.extend(
            status
                .drift
                .into_iter()
                .filter(|d| d.kind != DriftKind::PlaintextSecret),
        );
    }
    Ok(CheckReport {
        config: config.path().display().to_string(),
        inventory: inventory.map(|i| i.inventory.path.display().to_string()),
        allowed: allow.patterns().map(str::to_owned).collect(),
        plaintext,
        lints: config.lints().to_vec(),
        unknown_recipients: unknown
            .into_iter()
            .map(|(recipient, places)| UnknownRecipient {
                recipient,
                places: places.into_iter().collect(),
            })
            .collect(),
        drift,
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs_err::canonicalize(a), fs_err::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
