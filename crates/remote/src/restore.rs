//! Restoring a host's own key from a backup (`rotate --from-backup`): the private key is sent on
//! stdin only, written to a `umask 0177` temp file beside the target, verified on the host by
//! deriving its public key, given 0600 and root, then renamed over the host key; its `.pub` is
//! written the same way. Afterwards the installed file is read back and must derive the key.

use crate::connect::Connection;
use crate::deploy::{inspect, write_secret, Existing};
use crate::{FetchedHost, Fingerprint, HostError, InfrastructureKey};

/// Where to restore a host key.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Remote path of the private host key (its `.pub` is written beside it).
    pub target: String,
    /// The comment of the `.pub` line (e.g. `root@web01`).
    pub comment: String,
}

/// Writes stdin to `$1` (private, 0600 root) and `$3` to `$1.pub` (0644), atomically; refuses
/// unless the key on stdin derives `$2`.
const RESTORE: &str = r#"set -eu
t=$1; want=$2; pub=$3
umask 0177
d=$(dirname -- "$t")
tmp=$(mktemp "$d/.hostage-restore.XXXXXXXX")
ptmp=$(mktemp "$d/.hostage-restore-pub.XXXXXXXX")
trap 'rm -f -- "$tmp" "$ptmp"' EXIT
trap 'rm -f -- "$tmp" "$ptmp"; exit 1' HUP INT TERM
cat > "$tmp"
got=$(ssh-keygen -y -P '' -f "$tmp" | cut -d' ' -f1,2)
if [ "$got" != "$want" ]; then echo "the key received derives another public key: $got" >&2; exit 3; fi
printf '%s\n' "$pub" > "$ptmp"
chmod 0600 "$tmp"
chmod 0644 "$ptmp"
chown -- 0:0 "$tmp" "$ptmp"
sync -- "$tmp" "$ptmp" 2>/dev/null || sync
mv -f -- "$tmp" "$t"
mv -f -- "$ptmp" "$t.pub"
trap - EXIT HUP INT TERM
sync -- "$d" 2>/dev/null || sync
echo written"#;

/// What a restore did (or, in a dry run, would do) on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreAction {
    /// The key file already holds the backed-up key; nothing was written.
    Unchanged,
    /// Dry run: the key would be installed.
    WouldRestore {
        /// What the key file holds now (a fingerprint, `absent`, or why it is unreadable).
        current: String,
    },
    /// The key was installed and the installed file derives the backed-up key.
    Restored {
        /// What the key file held before.
        previous: String,
    },
}

impl RestoreAction {
    /// A short machine name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::WouldRestore { .. } => "would-restore",
            Self::Restored { .. } => "restored",
        }
    }
}

/// A host whose key was restored (or checked, in a dry run).
#[derive(Clone, Debug)]
pub struct RestoredHost {
    /// The verified host, as it presented itself (with the key it had before the restore).
    pub host: FetchedHost,
    /// The remote path of the private host key.
    pub target: String,
    /// What happened.
    pub action: RestoreAction,
    /// Fingerprint of the restored key.
    pub fingerprint: Fingerprint,
}

/// Restores over an already verified connection.
pub(crate) async fn restore_key(
    connection: &Connection,
    host: FetchedHost,
    key: &InfrastructureKey,
    options: &RestoreOptions,
    dry_run: bool,
) -> Result<RestoredHost, HostError> {
    let target = options.target.as_str();
    let failed = |detail: String| HostError::Deploy {
        target: target.to_owned(),
        detail,
    };
    let want = key.fingerprint();
    let (root, existing) = inspect(connection, target).await.map_err(failed)?;
    let current = match existing {
        Existing::Present(Ok(fp)) if fp == want => {
            return Ok(RestoredHost {
                host,
                target: target.to_owned(),
                action: RestoreAction::Unchanged,
                fingerprint: want,
            })
        }
        Existing::Present(Ok(fp)) => fp.to_string(),
        Existing::Present(Err(why)) => why,
        Existing::Absent => "absent".to_owned(),
    };
    if dry_run {
        return Ok(RestoredHost {
            host,
            target: target.to_owned(),
            action: RestoreAction::WouldRestore { current },
            fingerprint: want,
        });
    }
    write(connection, root, key, options)
        .await
        .map_err(failed)?;
    // The file now in place, read back on the host, must derive the backed-up key.
    match inspect(connection, target).await.map_err(failed)?.1 {
        Existing::Present(Ok(fp)) if fp == want => {}
        Existing::Present(Ok(fp)) => {
            return Err(failed(format!(
                "after the restore the key file derives {fp}, not {want}"
            )))
        }
        Existing::Present(Err(why)) => return Err(failed(format!("after the restore: {why}"))),
        Existing::Absent => return Err(failed("after the restore the key file is absent".into())),
    }
    Ok(RestoredHost {
        host,
        target: target.to_owned(),
        action: RestoreAction::Restored { previous: current },
        fingerprint: want,
    })
}

async fn write(
    connection: &Connection,
    root: bool,
    key: &InfrastructureKey,
    options: &RestoreOptions,
) -> Result<(), String> {
    let public = key.public_key().to_openssh();
    let public_line = format!("{public} {}", options.comment);
    write_secret(
        connection,
        root,
        RESTORE,
        &[&options.target, &public, &public_line],
        key.secret(),
    )
    .await
}
