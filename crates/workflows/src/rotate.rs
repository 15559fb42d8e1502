//! `rotate HOST`: the host has a new identity (rebuilt or compromised). The new key is fetched
//! and must differ from the pin; it is trusted only through `--expect-fingerprint` or the
//! caller's confirmation. The plan replaces the old recipient everywhere in `.sops.yaml`, rotates
//! the data key of every file the old key could open (with the exposure report), re-deploys the
//! infrastructure key to an infrastructure host, and updates `pubkeys/` and the pin. It is applied
//! by [`super::onboard::apply`]: the same steps, the same lock and journal.

use crate::error::{bail, Context as _};
use hostage_remote::FetchedHost;
use hostage_sops::rules::SopsConfig;

use super::onboard::{
    infrastructure_deploy, next_steps, public_key_step, rule_changed, verify, OnboardOptions,
    OnboardPlan, Step,
};
use super::FleetInventory;

/// Plans the rotation of `name`'s host key. `confirm` is asked about the new key when no
/// `--expect-fingerprint` vouches for it; answering no stops with nothing changed.
pub fn plan(
    inventory: &FleetInventory,
    name: &str,
    options: &OnboardOptions,
    passphrases: &mut dyn hostage_recipients::PassphraseProvider,
    confirm: &mut dyn FnMut(&FetchedHost) -> crate::Result<bool>,
) -> crate::Result<OnboardPlan> {
    let host = inventory.host(name)?.clone();
    let Some(old_pin) = host.pin.clone() else {
        bail!("{name} has no pin yet, so there is no identity to rotate: run `hostage onboard {name}`");
    };
    let mut target = FleetInventory::target(&host);
    let mut verify_options = options.clone();
    match &options.expect_fingerprint {
        Some(fp) => target.pin = Some(fp.clone()),
        None => {
            // The old pin would refuse the new key; the operator vouches for it below instead.
            target.pin = None;
            verify_options.trust_new = true;
        }
    }
    let infra = inventory.inventory.infrastructure.clone();
    let deploy = infrastructure_deploy(inventory, options, passphrases, host.infrastructure_key)?;
    let (fetched, deploy_action) = verify(&target, &verify_options, deploy.as_ref())?;
    let repo = &inventory.inventory.secrets_repo;
    let unchanged = fetched.fingerprint == old_pin.fingerprint;
    let config_path = repo.join(".sops.yaml");
    let snapshot = crate::session::FileSnapshot::read(&config_path)?;
    let original = SopsConfig::parse(&config_path, snapshot.text()?)?;
    check_pin_is_the_repos(
        inventory,
        &original,
        &host,
        &old_pin,
        &fetched,
        options.expect_fingerprint.is_some(),
    )?;
    if !unchanged && options.expect_fingerprint.is_none() && !confirm(&fetched)? {
        bail!("the new key of {name} was not confirmed; nothing was changed");
    }
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    let state = hostage_rekey::state_dir(repo);
    let leftover = hostage_rekey::Journal::load(&state)?;
    let pending = super::onboard::journal_paths(leftover.as_ref())?;
    if unchanged && pending.is_empty() {
        warnings.push(format!(
            "{name} still shows its pinned key {}: nothing to rotate",
            old_pin.fingerprint
        ));
    }

    let public_key = public_key_step(&mut steps, repo, name, &fetched.key);

    // .sops.yaml: the old recipient becomes the new one wherever it is written.
    let old = old_pin.recipient.to_string();
    let mut config = SopsConfig::parse(&config_path, original.text())?;
    let mut new_config = None;
    if !unchanged && original.text().contains(&old) {
        let edit = original
            .replace(&old, &fetched.recipient)
            .with_context(|| format!("cannot replace {name}'s recipient in .sops.yaml"))?;
        steps.push(Step::ReplaceRecipient {
            name: name.to_owned(),
            old: old.clone(),
            new: fetched.recipient.to_string(),
            changes: edit.changes.iter().map(ToString::to_string).collect(),
        });
        let text = edit.text;
        config = SopsConfig::parse(&config_path, &text)?;
        new_config = Some(text);
    }

    // Every file the old key could open, and every file whose rule changed, gets a new data key.
    let (_, mut files) =
        super::onboard::affected_files(&config, repo, name, &mut warnings, |file| {
            file.current_recipients().any(|r| r.recipient == old)
                || pending.contains(&file.path)
                || rule_changed(&original, &config, &file.path)
        })?;
    // The old key has no anchor any more: name it for the exposure report.
    files.name_recipient(&old, &format!("{name}'s old key"));
    let rekey = super::onboard::rekey_step(&mut steps, files)?;
    let deploy = super::onboard::deploy_step(
        &mut steps,
        deploy,
        deploy_action,
        &format!("{name} has another key"),
        "run `hostage rotate-infra`, or remove it",
    )?;
    if !unchanged {
        steps.push(Step::RecordPin {
            fingerprint: fetched.fingerprint.to_string(),
            recipient: fetched.recipient.to_string(),
        });
    }
    let exposure = super::onboard::finish_step(&mut steps, &rekey, leftover.as_ref())?;
    let mut next = next_steps(&host, infra.as_ref().map(|i| i.deploy_path.as_str()));
    if !unchanged && host.infrastructure_key {
        next.insert(
            0,
            format!("if {name} was compromised, its copy of the infrastructure key is too: run `hostage rotate-infra`"),
        );
    }
    if !unchanged {
        next.insert(
            0,
            "change the credentials in the files of the exposure report: the old key could read them".to_owned(),
        );
    }
    Ok(OnboardPlan {
        host: name.to_owned(),
        fetched,
        steps,
        warnings,
        next_steps: next,
        target,
        config: snapshot,
        public_key,
        new_config,
        rekey,
        exposure,
        deploy,
        options: options.clone(),
        generated_locally: false,
        generated: None,
    })
}

/// Refuses a rotation whose pin is not the identity the secrets repo was made for: the host's
/// `.sops.yaml` anchor and `pubkeys/<host>.pub` name another key than the pin (the pin was
/// replaced outside `rotate`: by hand, a merge, or `fetch` of an older hostage). Rotating would
/// retire the pinned key, which no file holds, and report success while the files keep the
/// other one. hostage does not pick the key to retire from the repo on its own: an anchor is
/// as easy to point elsewhere in a pull request as the pin (at the workstation's recipient,
/// say, which a rotation would then take off every rule). The anchor and `pubkeys/` may also
/// hold the presented key: a rotation to it that stopped before recording the pin.
fn check_pin_is_the_repos(
    inventory: &FleetInventory,
    config: &SopsConfig,
    host: &hostage_inventory::Host,
    pin: &hostage_inventory::Pin,
    fetched: &FetchedHost,
    vouched: bool,
) -> crate::Result<()> {
    let name = host.name.as_str();
    let pinned = pin.recipient.to_string();
    let presented = fetched.recipient.to_string();
    let anchor = config
        .named_recipients()
        .into_iter()
        .rev()
        .find(|(anchor, _)| anchor == name)
        .map(|(_, recipient)| recipient)
        .filter(|recipient| *recipient != pinned && *recipient != presented);
    let rel = format!("pubkeys/{name}.pub");
    let saved = fs_err::read_to_string(inventory.inventory.secrets_repo.join(&rel))
        .ok()
        .and_then(|text| {
            hostage_recipients::parse_key_lines(&text)
                .into_iter()
                .find_map(Result::ok)
        })
        .map(|line| line.key.fingerprint())
        .filter(|fp| fp != pin.fingerprint.as_str() && fp != fetched.fingerprint.as_str());
    if anchor.is_none() && saved.is_none() {
        return Ok(());
    }
    let mut records = Vec::new();
    if let Some(recipient) = &anchor {
        records.push(format!("the .sops.yaml anchor &{name} is {recipient}"));
    }
    if let Some(fingerprint) = &saved {
        records.push(format!("{rel} holds {fingerprint}"));
    }
    let expect = if vouched {
        format!(" --expect-fingerprint {}", fetched.fingerprint)
    } else {
        " --expect-fingerprint SHA256:… (read on its console)".to_owned()
    };
    Err(crate::WorkflowError::refused_with_hint(
        format!(
            "{name}'s pin {} ({pinned}) in {} is not the key the secrets repo was made for ({}): the pin was changed without a rotation, and rotating from it would leave the old recipient on the files; nothing was changed",
            pin.fingerprint,
            inventory.inventory.path.display(),
            records.join(", ")
        ),
        format!(
            "put back the pin the repo was made for ({}`git log -p` of the inventory shows it), then run `hostage rotate {name}{expect}`",
            saved
                .iter()
                .map(|fp| format!("fingerprint {fp}"))
                .chain(anchor.iter().map(|r| format!("recipient {r}")))
                .map(|part| format!("{part}; "))
                .collect::<String>()
        ),
    ))
}
