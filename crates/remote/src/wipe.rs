//! Deleting a deployed key from a host that leaves the fleet (`offboard --wipe-remote`): over the
//! verified session, as root (`sudo -n` when the login user is not), `rm -f` of one path.

use crate::connect::Connection;
use crate::{FetchedHost, HostError};

/// Re-runs the inner script as root, so a non-root login sees into `/root` too.
const AS_ROOT: &str = r#"if [ "$(id -u)" = 0 ]; then exec sh -c "$1" sh "$2"; else exec sudo -n sh -c "$1" sh "$2"; fi"#;

/// Removes `$1` when it exists (a symlink itself, not its target), and says which.
const WIPE: &str =
    r#"if [ -e "$1" ] || [ -L "$1" ]; then rm -f -- "$1" && echo removed; else echo absent; fi"#;

/// A host a file was deleted from (or had none).
#[derive(Clone, Debug)]
pub struct WipedHost {
    /// The verified host.
    pub host: FetchedHost,
    /// The remote path.
    pub path: String,
    /// Whether there was a file to delete.
    pub removed: bool,
}

pub(crate) async fn wipe_file(
    connection: &Connection,
    host: FetchedHost,
    path: &str,
) -> Result<WipedHost, HostError> {
    let output = connection
        .run_script(AS_ROOT, &[WIPE, path])
        .await
        .map_err(|e| HostError::Ssh {
            detail: e.to_string(),
        })?;
    let said = String::from_utf8_lossy(&output.stdout);
    match (output.status.success(), said.trim()) {
        (true, "removed") => Ok(WipedHost {
            host,
            path: path.to_owned(),
            removed: true,
        }),
        (true, "absent") => Ok(WipedHost {
            host,
            path: path.to_owned(),
            removed: false,
        }),
        _ => Err(HostError::Deploy {
            target: path.to_owned(),
            detail: format!(
                "cannot delete it: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }),
    }
}
