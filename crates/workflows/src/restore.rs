//! `rotate HOST --from-backup`: the host was rebuilt but keeps its identity. The backup of the
//! private host key (the seed's `data: |` YAML or hostage's earlier binary envelope, where the
//! repo keeps it: see [`crate::host_key::backup_path`]) is decrypted in memory, must derive the pinned key,
//! and is installed on the host at its key path through the same safe remote write as the
//! infrastructure deploy (stdin only, temp file, verified on the host, rename). The host is
//! reached with the key it presents now, vouched for by `--expect-fingerprint` or the caller's
//! confirmation. `.sops.yaml`, the files, `pubkeys/` and the pin do not change: the host decrypts
//! with its old recipient again.

use crate::error::{bail, Context as _};
use hostage_recipients::PassphraseProvider;
use hostage_remote::{
    FetchedHost, Fingerprint, HostTarget, InfrastructureKey, RestoreAction, RestoreOptions,
};

use super::fleet_inventory::NoPins;
use super::onboard::{fleet_options, on_one_host, OnboardOptions};
use super::FleetInventory;
use crate::session::{ApplyOptions, FileSnapshot, RepoSession};

/// What restoring a host's key would do.
#[derive(Debug)]
pub struct RestorePlan {
    /// The host's inventory name.
    pub host: String,
    /// The host as it presents itself now (the rebuilt key), verified.
    pub presented: FetchedHost,
    /// The pinned (and backed-up) key's fingerprint.
    pub pinned: Fingerprint,
    /// Its age recipient (unchanged in `.sops.yaml`).
    pub recipient: String,
    /// The remote path of the private host key.
    pub target: String,
    /// What the dry run found: `Unchanged` or `WouldRestore`.
    pub action: RestoreAction,
    /// What to do next, outside hostage.
    pub next_steps: Vec<String>,
    key: InfrastructureKey,
    host_target: HostTarget,
    restore: RestoreOptions,
    options: OnboardOptions,
    /// The secrets repo (its session is held while the host is written).
    repo: std::path::PathBuf,
    /// The stored backup as the plan decrypted it.
    stored: FileSnapshot,
}

impl RestorePlan {
    /// Whether applying would change nothing.
    pub fn is_noop(&self) -> bool {
        self.action == RestoreAction::Unchanged
    }
}

/// Plans restoring `name`'s backed-up host key. `confirm` is asked about the key the host
/// presents now when it is not the pinned one and no `--expect-fingerprint` vouches for it.
pub fn plan(
    inventory: &FleetInventory,
    name: &str,
    options: &OnboardOptions,
    passphrases: &mut dyn PassphraseProvider,
    confirm: &mut dyn FnMut(&FetchedHost) -> crate::Result<bool>,
) -> crate::Result<RestorePlan> {
    let host = inventory.host(name)?.clone();
    let Some(pin) = host.pin.clone() else {
        bail!(
            "{name} has no pin, so there is no identity to restore: run `hostage onboard {name}`"
        );
    };
    let repo = &inventory.inventory.secrets_repo;
    let identities = inventory.repo_identities(&options.identities);
    let source = super::host_key::backup_path(repo, &host);
    let stored = FileSnapshot::read(&repo.join(&source))?;
    let (private, public) =
        super::host_key::decrypt_stored(repo, name, &source, &identities, passphrases)?;
    let pinned = Fingerprint::of(&public);
    if pinned != pin.fingerprint {
        bail!(
            "the backed-up key of {name} is {pinned}, but its pin is {}: it is not the identity to restore (a new identity: `hostage rotate {name}`)",
            pin.fingerprint
        );
    }
    let key = InfrastructureKey::from_openssh(
        zeroize::Zeroizing::new(private.as_bytes().to_vec()),
        &source,
    )
    .with_context(|| format!("cannot use {source} as {name}'s host key"))?;
    drop(private);

    let mut host_target = FleetInventory::target(&host);
    let mut verify_options = options.clone();
    match &options.expect_fingerprint {
        Some(fp) => host_target.pin = Some(fp.clone()),
        None => {
            // The pin would refuse the rebuilt key; the operator vouches for it below instead.
            host_target.pin = None;
            verify_options.trust_new = true;
        }
    }
    let target = host
        .host_key_path
        .strip_suffix(".pub")
        .unwrap_or(&host.host_key_path)
        .to_owned();
    if target == host.host_key_path {
        bail!(
            "{name}'s host_key_path {} does not end in .pub: cannot tell where the private key goes",
            host.host_key_path
        );
    }
    let restore = RestoreOptions {
        target: target.clone(),
        comment: format!("root@{name}"),
    };
    let done = on_one_host(
        hostage_remote::restore_host_key(
            vec![host_target.clone()],
            &fleet_options(&verify_options, true),
            &mut NoPins,
            &key,
            &restore,
            &|_| {},
        ),
        || format!("cannot verify {}; nothing was changed", host_target.spec),
    )?;
    let presented = done.host;
    let is_pinned = presented.fingerprint == pinned;
    if !is_pinned && options.expect_fingerprint.is_none() && !confirm(&presented)? {
        bail!("the key {name} presents now was not confirmed; nothing was changed");
    }
    let mut next_steps = Vec::new();
    if !is_pinned {
        next_steps.push(format!(
            "restart sshd on {name} (systemctl restart sshd) so it presents the restored key, then `hostage status {name}` checks it against the pin"
        ));
        next_steps.push(format!(
            "ssh clients that trusted the rebuilt key {} see the old one again: remove that known_hosts entry",
            presented.fingerprint
        ));
    }
    if host.infrastructure_key {
        next_steps.push(format!(
            "a reinstalled {name} lost the infrastructure key too: once sshd shows the restored key, `hostage deploy {name}`"
        ));
    }
    next_steps.push(format!(
        "re-activate {name} (nixos-rebuild switch, or reboot) so sops-nix decrypts its secrets with the restored key"
    ));
    Ok(RestorePlan {
        host: name.to_owned(),
        presented,
        pinned,
        recipient: pin.recipient.to_string(),
        target,
        action: done.action,
        next_steps,
        key,
        host_target,
        restore,
        options: options.clone(),
        repo: repo.clone(),
        stored,
    })
}

/// Installs the key: connects again, requiring the very key the plan verified, writes it, and
/// checks the installed file derives the pinned key. Returns what was done. The repository's
/// session is held meanwhile (no rotate of the same repo runs beside it), and the stored backup
/// must still be the one the plan decrypted.
pub fn apply(plan: RestorePlan, options: &ApplyOptions) -> crate::Result<RestoreAction> {
    if plan.is_noop() {
        return Ok(RestoreAction::Unchanged);
    }
    let session = RepoSession::open(&plan.repo, options.clone())?;
    session.revalidate(&[&plan.stored])?;
    let mut target = plan.host_target.clone();
    target.pin = Some(plan.presented.fingerprint.clone());
    let mut options = plan.options.clone();
    options.trust_new = false;
    let done = on_one_host(
        hostage_remote::restore_host_key(
            vec![target],
            &fleet_options(&options, false),
            &mut NoPins,
            &plan.key,
            &plan.restore,
            &|_| {},
        ),
        || format!("cannot restore the host key of {}", plan.host),
    )?;
    Ok(done.action)
}
