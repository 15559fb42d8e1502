//! The identities a re-key opens files with, resolved right after planning: every source sops
//! reads (plus `--identity` and the inventory's workstation identity), unlocked once for the
//! recipients of the files to change. When none of them opens any file to change, the run stops
//! here with one error naming the recipients that would work and every source tried, instead of
//! failing once per file later.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hostage_recipients::{IdentityOptions, IdentitySet, IdentitySource, PassphraseProvider};
use hostage_rekey::Plan;

use crate::WorkflowError;

/// How many recipients the error lists before it says how many more there are (the error must
/// fit on a screen; `hostage rekey --check --json` lists every file's).
const RECIPIENTS_SHOWN: usize = 10;

/// Where a re-key looks for identities: `extra` (`--identity`), then, with an inventory named
/// explicitly, its workstation identity, then the sops variables and defaults.
pub fn identity_options(
    extra: &[PathBuf],
    inventory: Option<&Path>,
) -> crate::Result<IdentityOptions> {
    match inventory {
        Some(path) => Ok(crate::FleetInventory::load(path)?.identity_options(extra)),
        None => Ok(IdentityOptions::from_env(extra.to_vec())),
    }
}

/// Loads every identity `options` names and unlocks, once, those whose recipient some file to
/// change has (so parallel workers never prompt). Fails with [`WorkflowError::NoIdentity`] when
/// the plan changes files and no identity is left for any of their recipients.
pub fn resolve_identities(
    plan: &Plan,
    options: &IdentityOptions,
    passphrases: &mut dyn PassphraseProvider,
) -> crate::Result<IdentitySet> {
    let loaded = IdentitySet::load(options);
    let recipients = recipients_to_open(plan)?;
    let needed = recipients.keys().cloned().collect();
    let unlocked = hostage_rekey::unlock_identities(&loaded, &needed, passphrases);
    if recipients.is_empty() || !unlocked.candidates.is_empty() {
        return Ok(unlocked);
    }
    let mut listed: Vec<String> = recipients
        .iter()
        .take(RECIPIENTS_SHOWN)
        .map(|(recipient, name)| match name {
            Some(name) => format!("{name} ({recipient})"),
            None => recipient.clone(),
        })
        .collect();
    if recipients.len() > RECIPIENTS_SHOWN {
        listed.push(format!(
            "… and {} more (`hostage rekey --check --json` lists every file's)",
            recipients.len() - RECIPIENTS_SHOWN
        ));
    }
    Err(WorkflowError::NoIdentity {
        files: plan.count(hostage_rekey::Action::Rewrap)
            + plan.count(hostage_rekey::Action::Rotate),
        recipients: listed,
        tried: sources_tried(options, &loaded, &unlocked),
    })
}

/// The current recipients of the files to change, with their names from `.sops.yaml` anchors.
fn recipients_to_open(plan: &Plan) -> crate::Result<BTreeMap<String, Option<String>>> {
    let mut recipients: BTreeMap<String, Option<String>> = BTreeMap::new();
    for file in plan.files() {
        let file = file?;
        if !file.changes() {
            continue;
        }
        for recipient in file.current_recipients() {
            let name = recipients.entry(recipient.recipient.clone()).or_default();
            if name.is_none() {
                name.clone_from(&recipient.name);
            }
        }
    }
    Ok(recipients)
}

/// Every source, in the order sops tries them, with why it gave nothing usable: not set, not
/// found, its load or unlock error, or the recipients its identities are for.
fn sources_tried(
    options: &IdentityOptions,
    loaded: &IdentitySet,
    unlocked: &IdentitySet,
) -> Vec<String> {
    let mut sources: Vec<(String, Option<IdentitySource>)> = Vec::new();
    for path in &options.explicit {
        let source = IdentitySource::Explicit(path.clone());
        sources.push((source.to_string(), Some(source)));
    }
    match (&options.sops_age_ssh_private_key_file, &options.home) {
        (Some(path), _) => {
            let source = IdentitySource::SshKeyFileVariable(path.clone());
            sources.push((source.to_string(), Some(source)));
        }
        (None, Some(home)) => {
            let path = home.join(".ssh/id_ed25519");
            let source = path
                .exists()
                .then(|| IdentitySource::DefaultSshKey(path.clone()));
            sources.push((path.display().to_string(), source));
        }
        (None, None) => sources.push(("~/.ssh/id_ed25519 (HOME is not set)".to_owned(), None)),
    }
    sources.push((
        "SOPS_AGE_KEY".to_owned(),
        options
            .sops_age_key
            .as_ref()
            .map(|_| IdentitySource::KeyVariable),
    ));
    match &options.sops_age_key_file {
        Some(path) => {
            let source = IdentitySource::KeyFileVariable(path.clone());
            sources.push((source.to_string(), Some(source)));
        }
        None => sources.push(("SOPS_AGE_KEY_FILE".to_owned(), None)),
    }
    match &options.sops_age_key_cmd {
        Some(command) => {
            let source = IdentitySource::KeyCommand(command.clone());
            sources.push((source.to_string(), Some(source)));
        }
        None => sources.push(("SOPS_AGE_KEY_CMD".to_owned(), None)),
    }
    match options.default_key_file() {
        Some(path) => {
            let source = path
                .exists()
                .then(|| IdentitySource::DefaultKeyFile(path.clone()));
            sources.push((path.display().to_string(), source));
        }
        None => sources.push((
            "sops/age/keys.txt (neither HOME nor XDG_CONFIG_HOME is set)".to_owned(),
            None,
        )),
    }
    sources
        .into_iter()
        .map(|(label, source)| match source {
            None if label.starts_with("SOPS_") => format!("{label}: not set"),
            None if label.contains(" (") => label,
            None => format!("{label}: not found"),
            Some(source) => format!("{label}: {}", why_unused(&source, loaded, unlocked)),
        })
        .collect()
}

/// Why a source that was set gave no identity for these files.
fn why_unused(source: &IdentitySource, loaded: &IdentitySet, unlocked: &IdentitySet) -> String {
    let problems: Vec<String> = unlocked
        .problems
        .iter()
        .filter(|p| &p.source_name == source)
        .map(|p| match p.line {
            Some(line) => format!("line {line}: {}", p.message),
            None => p.message.clone(),
        })
        .collect();
    if !problems.is_empty() {
        return problems.join("; ");
    }
    let recipients: Vec<String> = loaded
        .candidates
        .iter()
        .filter(|c| &c.source == source)
        .map(|c| c.recipient.to_string())
        .collect();
    match recipients.as_slice() {
        [] => "no identity in it".to_owned(),
        [one] => format!("its identity is for {one}, not a recipient of these files"),
        many => format!(
            "its identities are for {}, none a recipient of these files",
            many.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(home: &Path) -> IdentityOptions {
        IdentityOptions {
            home: Some(home.to_owned()),
            ..IdentityOptions::default()
        }
    }

    #[test]
    fn every_source_is_named_with_why_it_gave_nothing() {
        let home = tempfile::tempdir().expect("temp dir");
        let mut options = options(home.path());
        options.explicit.push(home.path().join("missing.txt"));
        options.sops_age_key_file = Some(home.path().join("keys.txt"));
        let loaded = IdentitySet::load(&options);
        let tried = sources_tried(&options, &loaded, &loaded);
        let text = tried.join("\n");
        assert_eq!(tried.len(), 6, "{text}");
        assert!(tried[0].starts_with("--identity "), "{text}");
        assert!(tried[1].ends_with(".ssh/id_ed25519: not found"), "{text}");
        assert_eq!(tried[2], "SOPS_AGE_KEY: not set");
        assert!(tried[3].starts_with("SOPS_AGE_KEY_FILE="), "{text}");
        assert!(
            !tried[3].ends_with("no identity in it"),
            "a missing named file is its error: {text}"
        );
        assert_eq!(tried[4], "SOPS_AGE_KEY_CMD: not set");
        assert!(
            tried[5].ends_with(".config/sops/age/keys.txt: not found"),
            "{text}"
        );
    }
}
