//! Host keys made before the host exists (`onboard --generate-host-key`): an ed25519 key is
//! generated in memory, its private half stored sops-encrypted in the secrets repo
//! (`secrets/hosts/<host>/ssh_host_ed25519_key`), and `export-host-key` writes it as an
//! `--extra-files` tree for nixos-anywhere, so the first boot already decrypts (sops-nix#310).
//!
//! Storing runs the `sops` binary (`HOSTAGE_SOPS`, else `sops` on `PATH`) with the key on stdin
//! only; the key never touches the disk unencrypted here. Exporting decrypts natively.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
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
pub fn generate(host: &str) -> anyhow::Result<GeneratedHostKey> {
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

/// The sops binary to encrypt new files with.
fn sops_binary() -> PathBuf {
    std::env::var_os("HOSTAGE_SOPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("sops"))
}

/// Encrypts `private` with sops to `repo/rel` under the repo's `.sops.yaml` rule for that path
/// (binary format), feeding the key on stdin, and writes the result atomically.
pub fn store(repo: &Path, rel: &str, private: &str) -> anyhow::Result<()> {
    let sops = sops_binary();
    let mut child = Command::new(&sops)
        .args([
            "encrypt",
            "--filename-override",
            rel,
            "--input-type",
            "binary",
            "--output-type",
            "binary",
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
                "cannot run {} (install sops, or set HOSTAGE_SOPS)",
                sops.display()
            )
        })?;
    child
        .stdin
        .take()
        .context("sops has a stdin")?
        .write_all(private.as_bytes())
        .context("cannot hand the key to sops")?;
    let output = child.wait_with_output().context("sops did not finish")?;
    if !output.status.success() {
        bail!(
            "sops could not encrypt {rel}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // The repo is untrusted: the backup's directory may be a symlink out of it.
    hostage_atomic::ConfinedDir::new(repo)?.write(&repo.join(rel), &output.stdout)?;
    Ok(())
}

/// Decrypts the stored host key of `host` in memory: its OpenSSH text and its public key.
pub fn decrypt_stored(
    repo: &Path,
    host: &str,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
) -> anyhow::Result<(Zeroizing<String>, Ed25519PublicKey)> {
    let stored = repo.join(stored_path(host));
    let bytes = fs_err::read(&stored).with_context(|| {
        format!("{host} has no stored host key (onboard it with --generate-host-key)")
    })?;
    let file = hostage_sops::SopsFile::parse(&bytes, Some(hostage_sops::Format::Binary))?;
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
) -> anyhow::Result<Vec<PathBuf>> {
    let (private, public) = decrypt_stored(repo, host, identities, passphrases)?;
    let private_rel = host_key_path
        .strip_suffix(".pub")
        .unwrap_or(host_key_path)
        .trim_start_matches('/');
    let private_path = dir.join(private_rel);
    let public_path = PathBuf::from(format!("{}.pub", private_path.display()));
    if let Some(parent) = private_path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    write_new(&private_path, private.as_bytes(), 0o600)?;
    write_new(
        &public_path,
        format!("{} root@{host}\n", public.to_openssh()).as_bytes(),
        0o644,
    )?;
    Ok(vec![private_path, public_path])
}

/// Creates `path` with `mode` (refusing to replace a different file).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
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
