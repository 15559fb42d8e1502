//! `hostage backup-host-key HOST`: an existing host's identity (its private ed25519 host key)
//! backed up sops-encrypted in the secrets repo, so a rebuilt host can get it back
//! (`rotate --from-backup`) and keep its recipient: nothing is re-keyed after a reinstall.
//!
//! The key is read over the verified session (the pin vouches for the handshake key, the key
//! file must match it, and the private key read must derive it), kept in memory only, and
//! written by hostage's own sops engine under the creation rule for the backup path, in the seed
//! layout's shape: YAML whose one key `data` holds the OpenSSH text as a literal block. The
//! backup lives where `onboard --generate-host-key` stores a generated key
//! ([`host_key::stored_path`](crate::host_key::stored_path)), the one place `export-host-key` and
//! `rotate --from-backup` read. A backup that already holds the pinned key is left as it is (a
//! re-run changes no byte).

use hostage_recipients::PassphraseProvider;
use hostage_remote::{BackedUpHost, Fingerprint};
use serde::Serialize;

use crate::error::{bail, Context as _};
use crate::fleet_inventory::NoPins;
use crate::onboard::{fleet_options, on_one_host, OnboardOptions};
use crate::session::{ApplyOptions, FileSnapshot, RepoSession};
use crate::{FleetInventory, WorkflowError};

/// What the run does with the backup file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupAction {
    /// No backup yet: it is written.
    Create,
    /// The backup already holds the pinned key: nothing is written.
    Unchanged,
}

/// What `backup-host-key` did or would do (`--dry-run`). Holds no key material.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    /// The host's inventory name.
    pub host: String,
    /// The host key's fingerprint (its pin).
    pub fingerprint: String,
    /// The private key's path on the host.
    pub remote_path: String,
    /// The backup file, relative to the secrets repo.
    pub path: String,
    /// What happens to it.
    pub action: BackupAction,
    /// The recipients of each key group of a new backup (from its creation rule).
    pub key_groups: Vec<Vec<String>>,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
}

/// A planned backup: the report and the encrypted file (ciphertext only).
#[derive(Debug)]
pub struct BackupPlan {
    /// What the run does.
    pub report: BackupReport,
    repo: std::path::PathBuf,
    file: FileSnapshot,
    config: FileSnapshot,
    encrypted: Option<Vec<u8>>,
}

/// Reads `name`'s private host key over SSH (verified by its pin), checks it derives the pin, and
/// computes the backup file. An existing backup is decrypted with the repo identities: holding
/// the pinned key it is left alone, holding another key the run refuses. Writes nothing.
pub fn plan(
    inventory: &FleetInventory,
    name: &str,
    options: &OnboardOptions,
    passphrases: &mut dyn PassphraseProvider,
) -> crate::Result<BackupPlan> {
    let host = inventory.host(name)?.clone();
    let Some(pin) = host.pin.clone() else {
        return Err(WorkflowError::refused_with_hint(
            format!("{name} has no pin, so nothing vouches for the key to back up"),
            format!("run `hostage onboard {name}` first"),
        ));
    };
    let repo = inventory.inventory.secrets_repo.clone();
    let rel = crate::host_key::backup_path(&repo, &host);
    let path = repo.join(&rel);
    let file = FileSnapshot::read(&path)?;
    let config_path = repo.join(".sops.yaml");
    let config = FileSnapshot::read(&config_path)?;
    if fs_err::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!(
            "{} is a symlink; refusing to write a host key through it",
            path.display()
        );
    }

    let private_path = host
        .host_key_path
        .strip_suffix(".pub")
        .unwrap_or(&host.host_key_path)
        .to_owned();
    if private_path == host.host_key_path {
        bail!(
            "{name}'s host_key_path {} does not end in .pub: cannot tell where the private key is",
            host.host_key_path
        );
    }
    let mut target = FleetInventory::target(&host);
    if let Some(fp) = &options.expect_fingerprint {
        target.pin = Some(fp.clone());
    }
    let read: BackedUpHost = on_one_host(
        hostage_remote::read_host_private_key(
            vec![target.clone()],
            &fleet_options(options, true),
            &mut NoPins,
            &private_path,
            &|_| {},
        ),
        || {
            format!(
                "cannot read the host key of {name} ({}); nothing was written",
                target.spec
            )
        },
    )?;
    let fingerprint = Fingerprint::of(&read.public_key());
    if fingerprint.as_str() != pin.fingerprint.as_str() {
        bail!(
            "{name}'s host key is {fingerprint}, but its pin is {}; back up only the pinned identity (a new identity: `hostage rotate {name}`)",
            pin.fingerprint
        );
    }

    let (action, encrypted, key_groups) = if file.is_absent() {
        let options = crate::new_sops_file::options_for(&repo, &rel)?;
        // The tree wipes the key when dropped; the engine returns ciphertext only.
        let tree = hostage_sops::data_block_tree(read.private_key());
        let format = crate::host_key::backup_format(&rel);
        let bytes = hostage_sops::create_from_tree(&tree, format, &options)
            .with_context(|| format!("cannot encrypt {rel}"))?;
        (BackupAction::Create, Some(bytes), options.key_groups)
    } else {
        let identities = inventory.repo_identities(&options.identities);
        let (_, stored) =
            crate::host_key::decrypt_stored(&repo, name, &rel, &identities, passphrases)?;
        let stored = Fingerprint::of(&stored);
        if stored.as_str() != fingerprint.as_str() {
            return Err(WorkflowError::refused_with_hint(
                format!(
                    "{} already holds another host key ({stored}), not {name}'s pinned {fingerprint}; nothing was written",
                    path.display()
                ),
                format!(
                    "if that backup is of an identity {name} no longer has, remove it (`git rm {rel}`) and run this again"
                ),
            ));
        }
        (BackupAction::Unchanged, None, Vec::new())
    };
    Ok(BackupPlan {
        report: BackupReport {
            host: name.to_owned(),
            fingerprint: fingerprint.to_string(),
            remote_path: private_path,
            path: rel,
            action,
            key_groups,
            dry_run: true,
        },
        repo,
        file,
        config,
        encrypted,
    })
}

/// Writes the planned backup in the repository session (refused when the backup or `.sops.yaml`
/// changed since the plan read them).
pub fn apply(plan: BackupPlan, options: &ApplyOptions) -> crate::Result<BackupReport> {
    let mut report = plan.report;
    report.dry_run = false;
    let Some(bytes) = plan.encrypted else {
        return Ok(report);
    };
    let session = RepoSession::open(&plan.repo, options.clone())?;
    session.revalidate(&[&plan.config])?;
    session.write_if_unchanged(&plan.file, &bytes)?;
    Ok(report)
}
