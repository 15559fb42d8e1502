//! Deploying the shared infrastructure key: stdin only, `umask 0377` temp file in the target
//! directory, fsync, 0400, owner, rename; verified on the host by deriving the public key.

use std::fmt;
use std::path::Path;

use hostage_recipients::{Ed25519PublicKey, OpenSshPrivateKey};
use tokio::io::AsyncWriteExt as _;
use zeroize::Zeroizing;

use crate::connect::Connection;
use crate::{FetchedHost, Fingerprint, HostError};

/// Reports `uid N`, then `absent`, or `present` and the public key derived from the target.
/// `test -e` says nothing when the target is absent: anything on its stderr is sudo refusing
/// (`sudo: a password is required`), which must stop the run here, not pass for "absent" and
/// fail only at the write, after the repository was changed.
const INSPECT: &str = r#"t=$1
echo "uid $(id -u)"
if [ "$(id -u)" = 0 ]; then s=; else s="sudo -n"; fi
if err=$($s test -e "$t" 2>&1); then
    echo present
    $s ssh-keygen -y -P '' -f "$t" 2>&1 | head -n 1
elif [ -n "$err" ]; then
    echo "$err" >&2
    exit 1
else
    echo absent
fi"#;

/// Writes stdin to the target atomically; refuses unless the key on stdin derives `$2`.
const WRITE: &str = r#"set -eu
t=$1; want=$2; owner=$3
umask 0377
d=$(dirname -- "$t")
tmp=$(mktemp "$d/.hostage-deploy.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
trap 'rm -f -- "$tmp"; exit 1' HUP INT TERM
cat > "$tmp"
got=$(ssh-keygen -y -P '' -f "$tmp" | cut -d' ' -f1,2)
if [ "$got" != "$want" ]; then echo "the key received derives another public key: $got" >&2; exit 3; fi
chmod 0400 "$tmp"
if [ -n "$owner" ]; then chown -- "$owner" "$tmp"; fi
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$t"
trap - EXIT HUP INT TERM
sync -- "$d" 2>/dev/null || sync
echo written"#;

/// The private infrastructure key, held in zeroizing memory; `Debug` shows only its fingerprint.
pub struct InfrastructureKey {
    secret: Zeroizing<Vec<u8>>,
    public: Ed25519PublicKey,
}

/// An infrastructure key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InfrastructureKeyError {
    /// Reading the file failed.
    #[error("cannot read the infrastructure key")]
    Io(#[from] std::io::Error),
    /// It is not an OpenSSH ed25519 private key.
    #[error("{path} is not an OpenSSH ed25519 private key: {reason}")]
    NotAKey {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl InfrastructureKey {
    /// Reads an unencrypted OpenSSH ed25519 private key file.
    pub fn load(path: &Path) -> Result<Self, InfrastructureKeyError> {
        let secret = Zeroizing::new(fs_err::read(path)?);
        Self::from_openssh(secret, &path.display().to_string())
    }

    /// Takes an unencrypted OpenSSH ed25519 private key already in memory (e.g. decrypted from a
    /// sops file); `source` names where it came from, for errors.
    pub fn from_openssh(
        secret: Zeroizing<Vec<u8>>,
        source: &str,
    ) -> Result<Self, InfrastructureKeyError> {
        let not_a_key = |reason: String| InfrastructureKeyError::NotAKey {
            path: source.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(&secret).map_err(|_| not_a_key("not text".into()))?;
        let key = OpenSshPrivateKey::parse(text).map_err(|e| not_a_key(e.to_string()))?;
        if key.is_encrypted() {
            // The host uses it unattended, and the on-host check derives its public key.
            return Err(not_a_key(
                "it is passphrase-protected; hosts need the infrastructure key unencrypted".into(),
            ));
        }
        let public = key.public_key();
        Ok(Self { secret, public })
    }

    /// The public half.
    pub fn public_key(&self) -> Ed25519PublicKey {
        self.public
    }

    /// The private key text (for writing it to a host).
    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// `SHA256:…` of the public half.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.public)
    }
}

impl fmt::Debug for InfrastructureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InfrastructureKey({}, [REDACTED])",
            self.public.fingerprint()
        )
    }
}

/// Where and how to deploy.
#[derive(Clone, Debug)]
pub struct DeployOptions {
    /// Remote path of the key (default [`crate::DEFAULT_DEPLOY_PATH`]).
    pub target: String,
    /// `chown` argument (`user[:group]`); `None` leaves it owned by the writer (root under sudo).
    pub owner: Option<String>,
    /// Replace a different key already in place.
    pub replace: bool,
}

/// What happened (or, in a dry run, would happen) on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeployAction {
    /// The key was not there and was written.
    Written,
    /// The same key was already there; nothing was written.
    Unchanged,
    /// Another key was there and was replaced (`--replace`).
    Replaced {
        /// Fingerprint of the key that was there.
        old: String,
    },
    /// Dry run: the key would be written.
    WouldWrite,
    /// Dry run: another key is there and would be replaced.
    WouldReplace {
        /// Fingerprint of the key that is there.
        old: String,
    },
}

impl DeployAction {
    /// A short machine name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Unchanged => "unchanged",
            Self::Replaced { .. } => "replaced",
            Self::WouldWrite => "would-write",
            Self::WouldReplace { .. } => "would-replace",
        }
    }
}

/// A host the key was deployed to (or checked, in a dry run).
#[derive(Clone, Debug)]
pub struct DeployedHost {
    /// The verified host.
    pub host: FetchedHost,
    /// The remote path.
    pub target: String,
    /// What happened.
    pub action: DeployAction,
    /// Fingerprint of the deployed key.
    pub fingerprint: Fingerprint,
}

pub(crate) enum Existing {
    Absent,
    Present(Result<Fingerprint, String>),
}

/// Deploys over an already verified connection.
pub(crate) async fn deploy_key(
    connection: &Connection,
    host: FetchedHost,
    key: &InfrastructureKey,
    options: &DeployOptions,
    dry_run: bool,
) -> Result<DeployedHost, HostError> {
    let failed = |detail: String| HostError::Deploy {
        target: options.target.clone(),
        detail,
    };
    let (root, existing) = inspect(connection, &options.target).await.map_err(failed)?;
    let new = key.fingerprint();
    let action = match existing {
        Existing::Absent if dry_run => DeployAction::WouldWrite,
        Existing::Absent => DeployAction::Written,
        Existing::Present(Ok(old)) if old == new => DeployAction::Unchanged,
        Existing::Present(old) => {
            let old = old.map(|f| f.to_string()).unwrap_or_else(|why| why);
            if !options.replace {
                return Err(HostError::DeployKeyDiffers {
                    target: options.target.clone(),
                    existing: old,
                    new,
                });
            }
            if dry_run {
                DeployAction::WouldReplace { old }
            } else {
                DeployAction::Replaced { old }
            }
        }
    };
    if matches!(
        action,
        DeployAction::Written | DeployAction::Replaced { .. }
    ) {
        write(connection, root, key, options)
            .await
            .map_err(failed)?;
    }
    Ok(DeployedHost {
        host,
        target: options.target.clone(),
        action,
        fingerprint: new,
    })
}

pub(crate) async fn inspect(
    connection: &Connection,
    target: &str,
) -> Result<(bool, Existing), String> {
    let output = connection
        .run_script(INSPECT, &[target])
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let root = lines.next().is_some_and(|l| l.trim() == "uid 0");
    let existing = match lines.next().map(str::trim) {
        Some("absent") => Existing::Absent,
        Some("present") => {
            let derived = lines.next().unwrap_or_default();
            let key = hostage_recipients::parse_key_lines(derived)
                .into_iter()
                .next()
                .and_then(Result::ok);
            Existing::Present(match key {
                Some(line) => Ok(Fingerprint::of(&line.key)),
                None => Err(format!("not a readable ed25519 key: {}", derived.trim())),
            })
        }
        _ => {
            return Err(format!(
                "cannot inspect the target: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    };
    Ok((root, existing))
}

async fn write(
    connection: &Connection,
    root: bool,
    key: &InfrastructureKey,
    options: &DeployOptions,
) -> Result<(), String> {
    let public = key.public.to_openssh();
    let owner = options.owner.as_deref().unwrap_or_default();
    write_secret(
        connection,
        root,
        WRITE,
        &[&options.target, &public, owner],
        &key.secret,
    )
    .await
}

/// Runs the shell `script` on the host as root (through `sudo -n` when the login user is not
/// root) with `args`, the secret on its stdin and nowhere else; the script reports success by
/// printing `written`. The one way a secret leaves this machine.
pub(crate) async fn write_secret(
    connection: &Connection,
    root: bool,
    script: &str,
    args: &[&str],
    secret: &[u8],
) -> Result<(), String> {
    let program = if root { "sh" } else { "sudo" };
    let mut command = connection.command_in_c_locale(program);
    if !root {
        command.arg("-n").arg("sh");
    }
    command.arg("-c").arg(script).arg("sh");
    for arg in args {
        command.arg(arg);
    }
    command
        .stdin(openssh::Stdio::piped())
        .stdout(openssh::Stdio::piped())
        .stderr(openssh::Stdio::piped());
    let mut child = command.spawn().await.map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin().take() {
        stdin
            .write_all(secret)
            .await
            .map_err(|e| format!("sending the key: {e}"))?;
        stdin
            .shutdown()
            .await
            .map_err(|e| format!("sending the key: {e}"))?;
    }
    let output = child.wait_with_output().await.map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && stdout.trim() == "written" {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_protected_and_non_key_files_are_refused_locally() {
        let dir = tempfile::tempdir().unwrap();
        let not_key = dir.path().join("notes.txt");
        fs_err::write(&not_key, "hello").unwrap();
        assert!(matches!(
            InfrastructureKey::load(&not_key),
            Err(InfrastructureKeyError::NotAKey { .. })
        ));
        let protected = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../recipients/tests/vectors/mic92/id_ed25519_passphrase");
        let error = InfrastructureKey::load(&protected).unwrap_err();
        assert!(error.to_string().contains("passphrase"), "{error}");
        let plain = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../recipients/tests/vectors/mic92/id_ed25519");
        let key = InfrastructureKey::load(&plain).unwrap();
        let debug = format!("{key:?}");
        assert!(
            debug.contains("REDACTED") && !debug.contains("BEGIN"),
            "{debug}"
        );
    }
}
