//! Host keys made before the host exists (`onboard --generate-host-key`): an ed25519 key is
//! generated in memory, its private half stored sops-encrypted in the secrets repo
//! (`secrets/hosts/<host>/ssh_host_ed25519_key`), and `export-host-key` writes it as an
//! `--extra-files` tree for nixos-anywhere, so the first boot already decrypts (sops-nix#310).
//!
//! Storing runs the `sops` binary found on `PATH` with the key on stdin only; the key never
//! touches the disk unencrypted here. Exporting decrypts natively. (No variable chooses the
//! binary: the product never takes its tools from a test's settings; tests put the oracle first
//! on the child's `PATH`.)

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// Where the private key of `host` is kept in the secrets repo.
pub fn stored_path(host: &str) -> String {
    format!("secrets/hosts/{host}/ssh_host_ed25519_key")
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

/// The sops binary to encrypt new files with: `sops` from `PATH`.
fn sops_binary() -> PathBuf {
    PathBuf::from("sops")
}

/// Encrypts `private` with sops to `repo/rel` under the repo's `.sops.yaml` rule for that path
/// (binary format), feeding the key on stdin, and writes the result atomically.
pub fn store(repo: &Path, rel: &str, private: &str) -> crate::Result<()> {
    let encrypted = encrypt_with_sops(repo, rel, private, "binary")?;
    let path = repo.join(rel);
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    hostage_atomic::write(&path, &encrypted)?;
    Ok(())
}

/// The sops encryption of `plain` (a document of sops type `kind`: `binary`, `yaml`, `json`)
/// under the repo's `.sops.yaml` rule for `rel`. The plaintext goes to sops on stdin only; the
/// caller writes the result.
pub fn encrypt_with_sops(
    repo: &Path,
    rel: &str,
    plain: &str,
    kind: &str,
) -> crate::Result<Vec<u8>> {
    let sops = sops_binary();
    let mut child = Command::new(&sops)
        .args([
            "encrypt",
            "--filename-override",
            rel,
            "--input-type",
            kind,
            "--output-type",
            kind,
            "/dev/stdin",
        ])
        .current_dir(repo)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} (install sops 3.11 or later on PATH)",
                sops.display()
            )
        })?;
    child
        .stdin
        .take()
        .context("sops has a stdin")?
        .write_all(plain.as_bytes())
        .context("cannot hand the key to sops")?;
    let output = child.wait_with_output().context("sops did not finish")?;
    if !output.status.success() {
        bail!(
            "sops could not encrypt {rel}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

/// Decrypts the stored host key of `host` in memory: its OpenSSH text and its public key.
pub fn decrypt_stored(
    repo: &Path,
    host: &str,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
) -> crate::Result<(Zeroizing<String>, Ed25519PublicKey)> {
    let stored = repo.join(stored_path(host));
    let bytes = fs_err::read(&stored).with_context(|| {
        format!("{host} has no stored host key (back it up with `hostage backup-host-key {host}`, or onboard it with --generate-host-key)")
    })?;
    // `onboard --generate-host-key` stores a binary-format file (`{"data": …}`),
    // `backup-host-key` the seed's YAML `data: |`; both hold the key under `data`.
    let format = bytes
        .trim_ascii_start()
        .starts_with(b"{")
        .then_some(hostage_sops::Format::Binary);
    let file = hostage_sops::SopsFile::parse(&bytes, format)?;
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
    host: &str,
    host_key_path: &str,
    dir: &Path,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
) -> crate::Result<Vec<PathBuf>> {
    let private_rel = relative_key_path(host, host_key_path)?;
    let (private, public) = decrypt_stored(repo, host, identities, passphrases)?;
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
    use super::*;

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
