//! Reading a host's own private host key for a backup (`hostage backup-host-key`): over the
//! already verified session, as the login user when root, else through `sudo -n` (the key is
//! root's, 0600). The text lives only in memory (wiped on drop) and must derive the very key the
//! handshake presented (and the pin vouched for), so a swapped file is never backed up.

use hostage_recipients::{Ed25519PublicKey, OpenSshPrivateKey};
use zeroize::Zeroizing;

use crate::connect::Connection;
use crate::{FetchedHost, Fingerprint, HostError, KeyFileError};

/// `cat` as root (directly or through `sudo -n`, which never prompts).
const READ_PRIVATE_KEY: &str =
    r#"if [ "$(id -u)" = 0 ]; then exec cat -- "$1"; else exec sudo -n cat -- "$1"; fi"#;

/// A host whose private host key was read and checked against its verified public key.
pub struct BackedUpHost {
    /// The verified host.
    pub host: FetchedHost,
    /// The remote path of the private key read.
    pub private_path: String,
    private: Zeroizing<String>,
}

impl BackedUpHost {
    /// The OpenSSH private key text (keep it in memory; it is wiped when this is dropped).
    pub fn private_key(&self) -> &Zeroizing<String> {
        &self.private
    }

    /// Its public key (the host's verified key).
    pub fn public_key(&self) -> Ed25519PublicKey {
        self.host.key
    }
}

impl std::fmt::Debug for BackedUpHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BackedUpHost({}, {}, [REDACTED])",
            self.host.fingerprint, self.private_path
        )
    }
}

/// Reads `private_path` over the verified connection; refuses a key that is protected, not
/// ed25519, or derives another public key than the verified one.
pub(crate) async fn read_private_key(
    connection: &Connection,
    host: FetchedHost,
    private_path: &str,
) -> Result<BackedUpHost, HostError> {
    let output = connection
        .run_script(READ_PRIVATE_KEY, &[private_path])
        .await
        .map_err(|e| HostError::Ssh {
            detail: e.to_string(),
        })?;
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        return Err(KeyFileError::Unreadable {
            path: private_path.to_owned(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }
        .into());
    }
    let unusable = |detail: &str| {
        HostError::from(KeyFileError::NotEd25519 {
            path: private_path.to_owned(),
            detail: detail.to_owned(),
        })
    };
    let text = std::str::from_utf8(&stdout)
        .map_err(|_| unusable("the file is not an OpenSSH private key (not text)"))?;
    // The parser's errors describe the structure, never the key material.
    let key = OpenSshPrivateKey::parse(text)
        .map_err(|e| unusable(&format!("not an OpenSSH ed25519 private key: {e}")))?;
    if key.is_encrypted() {
        return Err(unusable(
            "the private host key is passphrase-protected; sshd and sops-nix need it unencrypted",
        ));
    }
    let derived = key.public_key();
    if derived != host.key {
        return Err(HostError::KeyFileMismatch {
            path: private_path.to_owned(),
            handshake: host.fingerprint.clone(),
            file: Fingerprint::of(&derived),
        });
    }
    Ok(BackedUpHost {
        host,
        private_path: private_path.to_owned(),
        private: Zeroizing::new(text.to_owned()),
    })
}
