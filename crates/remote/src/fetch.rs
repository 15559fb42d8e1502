//! Verified fetch: the handshake key (already trusted) must equal the key file the authenticated
//! host holds.

use hostage_recipients::{parse_key_lines, AgeRecipient, Ed25519PublicKey};

use crate::connect::Connection;
use crate::{Fingerprint, HostError, HostSpec, KeyFileError, VerifiedBy};

/// Reads the key file as the login user, or through `sudo -n` when that user cannot read it.
/// A file that does not exist is reported by `cat` itself, not by a confusing sudo error.
const READ_KEY_FILE: &str = r#"if [ -r "$1" ] || [ ! -e "$1" ] || [ "$(id -u)" = 0 ]; then exec cat -- "$1"; else exec sudo -n cat -- "$1"; fi"#;

/// A host whose ed25519 key was fetched and verified.
#[derive(Clone, Debug)]
pub struct FetchedHost {
    /// The host as given.
    pub spec: HostSpec,
    /// Its ed25519 host key.
    pub key: Ed25519PublicKey,
    /// `SHA256:…` of the key.
    pub fingerprint: Fingerprint,
    /// The age recipient sops-nix decrypts with on that host.
    pub recipient: AgeRecipient,
    /// What vouched for the key.
    pub verified_by: VerifiedBy,
    /// The key file read on the host.
    pub key_path: String,
}

/// Reads `key_path` over the verified connection and checks it against the handshake key.
pub(crate) async fn verify_key_file(
    connection: &Connection,
    spec: &HostSpec,
    key_path: &str,
) -> Result<FetchedHost, HostError> {
    let output = connection
        .run_script(READ_KEY_FILE, &[key_path])
        .await
        .map_err(|e| HostError::Ssh {
            detail: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(KeyFileError::Unreadable {
            path: key_path.to_owned(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }
        .into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut problems = Vec::new();
    let mut file_key = None;
    for line in parse_key_lines(&text) {
        match line {
            Ok(line) => {
                file_key = Some(line.key);
                break;
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let Some(file_key) = file_key else {
        return Err(KeyFileError::NotEd25519 {
            path: key_path.to_owned(),
            detail: problems
                .first()
                .cloned()
                .unwrap_or_else(|| "the file is empty".into()),
        }
        .into());
    };
    if file_key != connection.handshake {
        return Err(HostError::KeyFileMismatch {
            path: key_path.to_owned(),
            handshake: Fingerprint::of(&connection.handshake),
            file: Fingerprint::of(&file_key),
        });
    }
    let recipient = file_key
        .to_age_recipient()
        .map_err(|e| KeyFileError::NotEd25519 {
            path: key_path.to_owned(),
            detail: e.to_string(),
        })?;
    Ok(FetchedHost {
        spec: spec.clone(),
        key: file_key,
        fingerprint: Fingerprint::of(&file_key),
        recipient,
        verified_by: connection.verified_by,
        key_path: key_path.to_owned(),
    })
}
