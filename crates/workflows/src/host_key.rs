//! Host-key backups. `onboard --generate-host-key` generates an ed25519 key in memory and stores
//! its private half sops-encrypted where the repo keeps host-key backups ([`backup_path`]: the
//! inventory's `backup_path`, else what the repo already uses, else the seed's
//! `secrets/host/<host>/ssh_host_ed25519_key.sops`); `export-host-key` writes it as an
//! `--extra-files` tree for nixos-anywhere, so the first boot already decrypts (sops-nix#310);
//! `rotate --from-backup` puts it back on a rebuilt host.
//!
//! Two formats are read (the format is detected from the file): the seed's, a YAML sops file
//! whose one key `data` holds the OpenSSH key as a literal block (`data: |`), and hostage's
//! earlier one, sops' binary envelope at `secrets/hosts/<host>/ssh_host_ed25519_key`. Backups are
//! written natively (`hostage_sops::create_from_tree`, no `sops` binary), always in the seed's
//! format, at a path the host's own rule covers when the repo has no backups yet.
//! The key never touches the disk unencrypted.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{bail, Context as _};
use hostage_recipients::{Ed25519PublicKey, Ed25519Seed, IdentitySet, PassphraseProvider};
use zeroize::Zeroizing;

/// A freshly generated host key.
pub struct GeneratedHostKey {
    /// The OpenSSH private key text.
    pub private: Zeroizing<String>,
    /// Its public key.
    pub public: Ed25519PublicKey,
}

impl std::fmt::Debug for GeneratedHostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GeneratedHostKey({}, [REDACTED])",
            self.public.fingerprint()
        )
    }
}

/// The seed's backup path of `host`'s private key (a YAML sops file, `data: |`).
pub fn seed_backup_path(host: &str) -> String {
    format!("secrets/host/{host}/ssh_host_ed25519_key.sops")
}

/// hostage's earlier backup path of `host`'s private key (sops' binary envelope).
pub fn legacy_backup_path(host: &str) -> String {
    format!("secrets/hosts/{host}/ssh_host_ed25519_key")
}

/// Where the backup of `host`'s private key is kept, relative to `repo`: the inventory's
/// `backup_path`; else the path the repo already has for this host (the seed's, else hostage's
/// earlier one); else the layout other hosts' backups use (hostage's earlier one only when the
/// repo has such backups and none of the seed's); else the seed's.
pub fn backup_path(repo: &Path, host: &hostage_inventory::Host) -> String {
    if let Some(path) = &host.backup_path {
        return path.as_str().to_owned();
    }
    let name = host.name.as_str();
    let (seed, legacy) = (seed_backup_path(name), legacy_backup_path(name));
    if repo.join(&seed).is_file() {
        return seed;
    }
    if repo.join(&legacy).is_file() {
        return legacy;
    }
    // The backup must fall under the host's own rule (readable by the workstation and the host,
    // not by whatever a broader catch-all gives): the layout the host's `secrets:` paths cover.
    let covered = |rel: &str| {
        host.secrets
            .iter()
            .any(|path| regex::Regex::new(path.as_str()).is_ok_and(|re| re.is_match(rel)))
    };
    if let Some(rel) = [&seed, &legacy].into_iter().find(|rel| covered(rel)) {
        return rel.clone();
    }
    let has = |dir: &str, file: &str| {
        fs_err::read_dir(repo.join(dir)).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|entry| entry.path().join(file).is_file())
        })
    };
    if has("secrets/hosts", "ssh_host_ed25519_key")
        && !has("secrets/host", "ssh_host_ed25519_key.sops")
    {
        return legacy;
    }
    seed
}

/// Every place a backup of `name`'s key can be when the inventory names none: the seed's path,
/// then hostage's earlier one.
pub fn default_backup_paths(name: &str) -> [String; 2] {
    [seed_backup_path(name), legacy_backup_path(name)]
}

/// The sops format a backup is written in: always the seed's YAML `data: |` (issues 11 and 13),
/// also at hostage's earlier path; reading detects either format, so older binary-envelope
/// backups keep working.
pub fn backup_format(_rel: &str) -> hostage_sops::Format {
    hostage_sops::Format::Yaml
}

/// Generates an ed25519 host key (OpenSSH format, comment `root@<host>`).
pub fn generate(host: &str) -> crate::Result<GeneratedHostKey> {
    use rand::RngCore as _;
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(seed.as_mut());
    let public = Ed25519Seed::from_bytes(seed.clone()).public_key();
    let mut both = Zeroizing::new([0u8; 64]);
    both[..32].copy_from_slice(seed.as_ref());
    both[32..].copy_from_slice(public.as_bytes());
    let keypair = ssh_key::private::Ed25519Keypair::from_bytes(&both)
        .context("cannot build the ed25519 key pair")?;
    let key = ssh_key::PrivateKey::new(
        ssh_key::private::KeypairData::Ed25519(keypair),
        format!("root@{host}"),
    )
    .context("cannot build the host key")?;
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .context("cannot encode the host key")?;
    Ok(GeneratedHostKey {
        private: Zeroizing::new(private.to_string()),
        public,
    })
}

/// Encrypts `private` natively under the repo's `.sops.yaml` rule for `rel` (the seed's YAML
/// `data: |`, or the binary envelope at a path of hostage's earlier layout) and writes it
/// atomically. The rule is the one sops would pick for `rel`; a rule with keys hostage cannot
/// encrypt to (pgp, KMS) is refused.
pub fn store(repo: &Path, rel: &str, private: &str) -> crate::Result<()> {
    let config = hostage_sops::rules::SopsConfig::load(&repo.join(".sops.yaml"))?;
    let (_, rule) = config.rule_for_sops_path(rel)?;
    let options = hostage_sops::NewFileOptions::from_rule(&config, rule)?;
    let format = backup_format(rel);
    let encrypted =
        hostage_sops::create_from_tree(&hostage_sops::data_block_tree(private), format, &options)?;
    // The repo is untrusted: the backup's directory may be a symlink out of it.
    hostage_atomic::ConfinedDir::new(repo)?.write(&repo.join(rel), &encrypted)?;
    Ok(())
}

/// Decrypts the backup of `host`'s key at `rel` in memory, in either format (detected from the
/// file): its OpenSSH text and its public key.
pub fn decrypt_stored(
    repo: &Path,
    host: &str,
    rel: &str,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
) -> crate::Result<(Zeroizing<String>, Ed25519PublicKey)> {
    let stored = repo.join(rel);
    let bytes = fs_err::read(&stored).with_context(|| {
        format!("{host} has no host-key backup at {rel} (back it up with `hostage backup-host-key {host}`, onboard it with --generate-host-key, or set hosts.{host}.backup_path in the inventory)")
    })?;
    // `onboard --generate-host-key` at hostage's earlier path stores a binary-format file
    // (`{"data": …}`), the seed and `backup-host-key` YAML `data: |`; the format is detected.
    let file = hostage_sops::SopsFile::parse(&bytes, None)?;
    let key = file
        .data_key(identities, passphrases)
        .with_context(|| format!("cannot decrypt {}", stored.display()))?;
    file.verify_mac(&key)?;
    let tree = file.decrypt(&key)?;
    let private = match tree.documents.first().and_then(|d| d.get("data")) {
        Some(hostage_sops::Value::Str(text)) => Zeroizing::new(text.clone()),
        _ => bail!("{} does not hold a key", stored.display()),
    };
    let parsed = hostage_recipients::OpenSshPrivateKey::parse(&private)
        .with_context(|| format!("{} does not hold an OpenSSH key", stored.display()))?;
    Ok((private, parsed.public_key()))
}

/// Decrypts the stored host key of `host` and writes it (0600) and its public key under `dir` at
/// the host's key path, for `nixos-anywhere --extra-files DIR`. Returns the files written.
pub fn export(
    repo: &Path,
    host: &hostage_inventory::Host,
    dir: &Path,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
) -> crate::Result<Vec<PathBuf>> {
    let (name, host_key_path) = (host.name.as_str(), host.host_key_path.as_str());
    let private_rel = relative_key_path(name, host_key_path)?;
    let backup = backup_path(repo, host);
    let (private, public) = decrypt_stored(repo, name, &backup, identities, passphrases)?;
    let host = name;
    let private_path = dir.join(&private_rel);
    let public_path = PathBuf::from(format!("{}.pub", private_path.display()));
    if let Some(parent) = private_path.parent() {
        fs_err::create_dir_all(parent)?;
        stays_inside(dir, parent)?;
    }
    write_new(&private_path, private.as_bytes(), 0o600)?;
    write_new(
        &public_path,
        format!("{} root@{host}\n", public.to_openssh()).as_bytes(),
        0o644,
    )?;
    Ok(vec![private_path, public_path])
}

/// The private key's path relative to the export directory: `host_key_path` (absolute on the
/// host, `.pub` dropped) normalised without touching the disk. The inventory is untrusted input:
/// a `..` that climbs above `/` (`/../../x`) would land outside the directory the operator
/// named, so it is refused rather than clamped, since the host would not find its key there
/// either.
fn relative_key_path(host: &str, host_key_path: &str) -> crate::Result<PathBuf> {
    use std::path::Component;
    let private = host_key_path.strip_suffix(".pub").unwrap_or(host_key_path);
    let mut rel = PathBuf::new();
    for component in Path::new(private).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => rel.push(part),
            Component::ParentDir => {
                if !rel.pop() {
                    return Err(bad_key_path(host, host_key_path, "climbs above /"));
                }
            }
            Component::Prefix(_) => {
                return Err(bad_key_path(host, host_key_path, "is not a Unix path"))
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(bad_key_path(host, host_key_path, "names no file"));
    }
    Ok(rel)
}

fn bad_key_path(host: &str, host_key_path: &str, what: &str) -> crate::WorkflowError {
    crate::WorkflowError::refused_with_hint(
        format!("host `{host}`: host_key_path `{host_key_path}` {what}, so its key would be written outside the export directory; nothing was written"),
        format!("set hosts.{host}.host_key_path in the inventory to the key's absolute path on the host, e.g. /etc/ssh/ssh_host_ed25519_key.pub"),
    )
}

/// Refuses `parent` (just created under `dir`) when it resolves outside `dir`: a symlink
/// already inside the directory must not carry the private key somewhere else.
fn stays_inside(dir: &Path, parent: &Path) -> crate::Result<()> {
    let root = fs_err::canonicalize(dir)?;
    let resolved = fs_err::canonicalize(parent)?;
    if !resolved.starts_with(&root) {
        bail!(
            "{} leads to {} through a symlink, outside {}; nothing was written",
            parent.display(),
            resolved.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Creates `path` with `mode` (refusing to replace a different file).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> crate::Result<()> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    if let Ok(existing) = fs_err::read(path) {
        if existing == bytes {
            return Ok(());
        }
        bail!(
            "{} exists with other content; remove it first",
            path.display()
        );
    }
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    // Fixtures: a panic with the value is the right failure.
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `hosts` parsed as an inventory whose secrets repo is `repo`.
    fn host(repo: &Path, fields: &str) -> hostage_inventory::Host {
        let text = format!(
            "secrets_repo: {}\nhosts:\n  web:\n    address: 10.0.0.7\n{fields}",
            repo.display()
        );
        let inventory =
            hostage_inventory::Inventory::parse(&repo.join("fleet.yaml"), &text).unwrap();
        inventory.host("web").unwrap().clone()
    }

    fn touch(repo: &Path, rel: &str) {
        let path = repo.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, "x").unwrap();
    }

    #[test]
    fn a_repo_without_backups_gets_the_seeds_backup_path() {
        let repo = tempfile::tempdir().unwrap();
        let web = host(repo.path(), "");
        assert_eq!(
            backup_path(repo.path(), &web),
            "secrets/host/web/ssh_host_ed25519_key.sops"
        );
    }

    #[test]
    fn a_repo_with_hostages_earlier_backups_keeps_that_layout() {
        let repo = tempfile::tempdir().unwrap();
        touch(repo.path(), "secrets/hosts/db/ssh_host_ed25519_key");
        let web = host(repo.path(), "");
        assert_eq!(
            backup_path(repo.path(), &web),
            "secrets/hosts/web/ssh_host_ed25519_key"
        );
        // Once the repo also has a seed-style backup, new ones follow the seed.
        touch(repo.path(), "secrets/host/mail/ssh_host_ed25519_key.sops");
        assert_eq!(
            backup_path(repo.path(), &web),
            "secrets/host/web/ssh_host_ed25519_key.sops"
        );
    }

    #[test]
    fn a_hosts_existing_backup_and_then_the_inventorys_path_win() {
        let repo = tempfile::tempdir().unwrap();
        touch(repo.path(), "secrets/hosts/web/ssh_host_ed25519_key");
        touch(repo.path(), "secrets/host/db/ssh_host_ed25519_key.sops");
        let web = host(repo.path(), "");
        assert_eq!(
            backup_path(repo.path(), &web),
            "secrets/hosts/web/ssh_host_ed25519_key"
        );
        let web = host(repo.path(), "    backup_path: keys/web.sops.yaml\n");
        assert_eq!(backup_path(repo.path(), &web), "keys/web.sops.yaml");
    }

    #[test]
    fn key_paths_are_normalised_below_the_export_directory() {
        let rel = |p: &str| relative_key_path("h", p).map(|p| p.display().to_string());
        assert_eq!(
            rel("/etc/ssh/ssh_host_ed25519_key.pub").unwrap(),
            "etc/ssh/ssh_host_ed25519_key"
        );
        assert_eq!(
            rel("/persist/./etc/../etc/ssh/key.pub").unwrap(),
            "persist/etc/ssh/key"
        );
    }

    #[test]
    fn key_paths_that_climb_out_of_the_export_directory_are_refused() {
        for path in ["/../../x", "/etc/../../x.pub", "/..", "/", "/./"] {
            let error = relative_key_path("h", path).unwrap_err();
            assert!(
                error.to_string().contains("host_key_path"),
                "{path}: {error}"
            );
            assert!(error.hint().is_some(), "{path}");
        }
    }

    #[test]
    fn a_symlink_inside_the_export_directory_that_leads_out_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("etc")).unwrap();
        let parent = dir.path().join("etc").join("ssh");
        fs_err::create_dir_all(&parent).unwrap();
        let error = stays_inside(dir.path(), &parent).unwrap_err();
        assert!(error.to_string().contains("symlink"), "{error}");
        stays_inside(dir.path(), dir.path()).unwrap();
    }
}
