//! One verified connection: a control master whose host key ssh itself checked against a pin or
//! known_hosts, and the exact key of that handshake, captured through `KnownHostsCommand`.

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use hostage_recipients::{parse_key_lines, Ed25519PublicKey};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};

use crate::fleet::{FleetOptions, HostTarget};
use crate::run_dir::RunDir;
use crate::{Fingerprint, HostError, VerifiedBy};

const ED25519: &str = "ssh-ed25519";
const ED25519_CERT: &str = "ssh-ed25519-cert-v01@openssh.com";

/// An open, verified control master to one host.
pub(crate) struct Connection {
    /// The session (closed by [`Connection::close`], or on drop).
    pub(crate) session: Session,
    /// The ed25519 key the host presented in the handshake of this very connection.
    pub(crate) handshake: Ed25519PublicKey,
    /// What vouched for it.
    pub(crate) verified_by: VerifiedBy,
}

impl Connection {
    /// `program` on the host in the C locale (`env LC_ALL=C program`). Every remote command
    /// starts here: ssh may forward the operator's `LANG`/`LC_*`, and hostage reads sudo's and
    /// the shell's refusals by their English text ([`crate::HostError::hint`]).
    pub(crate) fn command_in_c_locale<'s>(&'s self, program: &str) -> openssh::Command<'s> {
        let mut command = self.session.command("env");
        command.arg("LC_ALL=C").arg(program);
        command
    }

    /// Runs the shell `script` on the host (`sh -c SCRIPT sh ARGS…`, in the C locale, stdin
    /// closed) and returns what it printed: the one way hostage's read-only and root scripts run.
    pub(crate) async fn run_script(
        &self,
        script: &str,
        args: &[&str],
    ) -> Result<std::process::Output, openssh::Error> {
        let mut command = self.command_in_c_locale("sh");
        command.arg("-c").arg(script).arg("sh");
        for arg in args {
            command.arg(arg);
        }
        command.stdin(openssh::Stdio::null()).output().await
    }

    /// Tells the master to exit.
    pub(crate) async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// Files of one host's connection inside the run directory.
struct HostFiles {
    dir: PathBuf,
    config: PathBuf,
    capture: PathBuf,
    accepted: PathBuf,
}

/// Opens a control master to `target` and checks its host key: ssh enforces the pin (through the
/// handshake script) or known_hosts, `HostKeyAlgorithms` makes the handshake use ed25519.
pub(crate) async fn connect(
    run: &RunDir,
    index: usize,
    target: &HostTarget,
    options: &FleetOptions,
) -> Result<Connection, HostError> {
    let files = write_host_files(run, index, target, options).map_err(|e| HostError::Ssh {
        detail: format!("cannot write the connection's ssh config: {e}"),
    })?;
    let check = match (&target.pin, options.trust_new) {
        (None, true) => KnownHosts::Add,
        _ => KnownHosts::Strict,
    };
    let seconds = options.timeout.as_secs().max(1);
    let mut builder = SessionBuilder::default();
    builder
        .config_file(&files.config)
        .control_directory(&files.dir)
        .known_hosts_check(check)
        .connect_timeout(Duration::from_secs(seconds))
        .server_alive_interval(Duration::from_secs(15))
        // Should this process die without closing (SIGKILL), idle masters still go away.
        .control_persist(ControlPersist::IdleFor(
            NonZeroUsize::new(usize::try_from(seconds).unwrap_or(60) + 30)
                .unwrap_or(NonZeroUsize::MIN),
        ));
    if let Some(user) = &target.spec.user {
        builder.user(user.clone());
    }
    if let Some(port) = target.spec.port {
        builder.port(port);
    }
    let result = builder.connect_mux(&target.spec.address).await;
    let handshake = read_capture(&files.capture);
    let session = match result {
        Ok(session) => session,
        Err(error) => return Err(classify(&error_text(&error), handshake, target, seconds)),
    };
    let Some(handshake) = handshake else {
        let _ = session.close().await;
        return Err(HostError::Ssh {
            detail: "ssh did not report the host key it verified (OpenSSH 8.5 or newer is needed \
                     for KnownHostsCommand)"
                .into(),
        });
    };
    let verified_by = if target.pin.is_some() {
        VerifiedBy::Pin
    } else if fs_err::metadata(&files.accepted).is_ok_and(|m| m.len() > 0) {
        VerifiedBy::TrustedNew
    } else {
        VerifiedBy::KnownHosts
    };
    if let Some(pin) = &target.pin {
        // ssh already refused a mismatch; this guards against a config that overrode us.
        let presented = Fingerprint::of(&handshake);
        if &presented != pin {
            let _ = session.close().await;
            return Err(HostError::PinMismatch {
                expected: pin.clone(),
                presented,
            });
        }
    }
    Ok(Connection {
        session,
        handshake,
        verified_by,
    })
}

fn write_host_files(
    run: &RunDir,
    index: usize,
    target: &HostTarget,
    options: &FleetOptions,
) -> std::io::Result<HostFiles> {
    let dir = run.host_dir(index)?;
    let files = HostFiles {
        config: dir.join("ssh_config"),
        capture: dir.join("handshake"),
        accepted: dir.join("accepted_known_hosts"),
        dir,
    };
    // Our settings come first, so they win over the user's; the trust settings are scoped to the
    // target itself, so a ProxyJump host is still checked the user's usual way.
    let mut text = format!(
        "# written by hostage for one connection\nMatch originalhost \"{}\"\n",
        target.spec.address
    );
    let algorithms = if target.pin.is_some() {
        ED25519.to_owned()
    } else {
        format!("{ED25519_CERT},{ED25519}")
    };
    let pin = target.pin.as_ref().map_or("-", |p| p.as_str());
    let _ = writeln!(text, "  HostKeyAlgorithms {algorithms}");
    let _ = writeln!(
        text,
        "  KnownHostsCommand /bin/sh {} {} {pin} %H %t %K %f",
        quoted(&run.handshake_script()),
        quoted(&files.capture),
    );
    match (&target.pin, options.trust_new, &options.known_hosts) {
        (Some(_), _, _) => {
            text.push_str("  UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n");
        }
        (None, true, Some(known)) => {
            let _ = writeln!(
                text,
                "  UserKnownHostsFile {} {}",
                quoted(&files.accepted),
                quoted(known)
            );
        }
        (None, true, None) => {
            let _ = writeln!(
                text,
                "  UserKnownHostsFile {} ~/.ssh/known_hosts ~/.ssh/known_hosts2",
                quoted(&files.accepted)
            );
        }
        (None, false, _) => {}
    }
    // INFO, not less: ssh reports a failed key negotiation ("no matching host key type") at INFO.
    text.push_str("Match all\nUpdateHostKeys no\nLogLevel INFO\n");
    if let Some(known) = &options.known_hosts {
        // `--known-hosts FILE` is exclusive: neither the system's nor the user's files (nor a
        // `GlobalKnownHostsFile` from their config, read after this) vouch for a host.
        let _ = writeln!(
            text,
            "UserKnownHostsFile {}\nGlobalKnownHostsFile /dev/null",
            quoted(known)
        );
    }
    match &options.ssh_config {
        Some(config) => {
            let _ = writeln!(text, "Include {}", quoted(config));
        }
        None => text.push_str("Include ~/.ssh/config\nInclude /etc/ssh/ssh_config\n"),
    }
    fs_err::write(&files.config, text)?;
    Ok(files)
}

fn quoted(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// The key the handshake script recorded: `TYPE BASE64 FINGERPRINT`.
fn read_capture(path: &Path) -> Option<Ed25519PublicKey> {
    let text = fs_err::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace();
    let (kind, blob) = (fields.next()?, fields.next()?);
    match kind {
        ED25519 => parse_key_lines(&format!("{kind} {blob}"))
            .into_iter()
            .next()?
            .ok()
            .map(|line| line.key),
        ED25519_CERT => key_of_certificate(blob),
        _ => None,
    }
}

/// The ed25519 key inside an OpenSSH host certificate: `string type, string nonce, string pk, …`.
fn key_of_certificate(blob: &str) -> Option<Ed25519PublicKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let mut rest = bytes.as_slice();
    let mut next = || -> Option<&[u8]> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let field = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(field)
    };
    if next()? != ED25519_CERT.as_bytes() {
        return None;
    }
    let _nonce = next()?;
    let key: [u8; 32] = next()?.try_into().ok()?;
    Some(Ed25519PublicKey::from_bytes(key))
}

fn error_text(error: &openssh::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push('\n');
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Turns ssh's words into a [`HostError`].
fn classify(
    text: &str,
    handshake: Option<Ed25519PublicKey>,
    target: &HostTarget,
    seconds: u64,
) -> HostError {
    let presented = handshake.as_ref().map(Fingerprint::of);
    let line_with = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .map(|l| l.trim().trim_start_matches("ssh: ").to_owned())
            .unwrap_or_else(|| needle.to_owned())
    };
    if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || text.contains("has changed and") {
        let entry = line_with("Offending");
        return HostError::KnownHostsMismatch {
            presented,
            known: offending_fingerprint(&entry),
            entry,
        };
    }
    if text.contains("Host key verification failed") || text.contains("host key is known") {
        return match (&target.pin, presented) {
            (Some(expected), Some(presented)) if &presented != expected => HostError::PinMismatch {
                expected: expected.clone(),
                presented,
            },
            (_, presented) => HostError::UnknownHost { presented },
        };
    }
    if text.contains("no matching host key type") {
        return HostError::NoEd25519HostKey {
            detail: line_with("no matching host key type"),
        };
    }
    if text.contains("Permission denied") {
        return HostError::AuthFailed {
            detail: line_with("Permission denied"),
        };
    }
    if text.contains("timed out") {
        return HostError::TimedOut { seconds };
    }
    for needle in [
        "Connection refused",
        "No route to host",
        "Could not resolve",
        "Network is unreachable",
        "Connection closed",
        "Connection reset",
    ] {
        if text.contains(needle) {
            return HostError::Unreachable {
                detail: line_with(needle),
            };
        }
    }
    HostError::Ssh {
        detail: text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Reads the key of ssh's "Offending ED25519 key in FILE:LINE".
fn offending_fingerprint(entry: &str) -> Option<Fingerprint> {
    let location = entry.split(" key in ").nth(1)?.trim();
    let (file, line) = location.rsplit_once(':')?;
    let line: usize = line.parse().ok()?;
    let text = fs_err::read_to_string(file).ok()?;
    let wanted = text.lines().nth(line.checked_sub(1)?)?;
    let parsed = parse_key_lines(wanted).into_iter().next()?.ok()?;
    Some(Fingerprint::of(&parsed.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(pin: Option<&str>) -> HostTarget {
        HostTarget {
            spec: crate::HostSpec::parse("root@10.0.0.1:2222").unwrap(),
            pin: pin.map(|p| Fingerprint::parse(p).unwrap()),
            key_path: crate::DEFAULT_HOST_KEY_PATH.into(),
        }
    }

    const PIN: &str = "SHA256:tSVdMCdgjLnQqlAcPpBGaHhsYsZ8XSFpmQ/NpMBLd+U";

    #[test]
    fn ssh_failures_map_to_what_the_operator_must_do() {
        let presented = Ed25519PublicKey::from_bytes([9; 32]);
        let unknown = "No ED25519 host key is known for [10.0.0.1]:2222 and you have requested \
                       strict checking.\nHost key verification failed.";
        assert!(matches!(
            classify(unknown, Some(presented), &target(Some(PIN)), 5),
            HostError::PinMismatch { .. }
        ));
        assert!(matches!(
            classify(unknown, Some(presented), &target(None), 5),
            HostError::UnknownHost { presented: Some(_) }
        ));
        let cases: [(&str, &str); 5] = [
            (
                "Unable to negotiate with 10.0.0.1 port 2222: no matching host key type found. \
              Their offer: rsa-sha2-512",
                "no-ed25519-host-key",
            ),
            (
                "root@10.0.0.1: Permission denied (publickey).",
                "auth-failed",
            ),
            (
                "ssh: connect to host 10.0.0.1 port 2222: Connection refused",
                "unreachable",
            ),
            ("Connection timed out during banner exchange", "timeout"),
            ("something new", "ssh"),
        ];
        for (text, kind) in cases {
            assert_eq!(
                classify(text, None, &target(None), 5).kind(),
                kind,
                "{text}"
            );
        }
    }

    #[test]
    fn changed_known_hosts_key_names_the_offending_entry() {
        let text = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\n\
                    Offending ED25519 key in /nonexistent/known_hosts:3\n\
                    Host key verification failed.";
        let error = classify(
            text,
            Some(Ed25519PublicKey::from_bytes([9; 32])),
            &target(None),
            5,
        );
        let HostError::KnownHostsMismatch {
            entry,
            known,
            presented,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert!(entry.contains("/nonexistent/known_hosts:3"));
        assert!(known.is_none() && presented.is_some());
    }

    #[test]
    fn certificate_blobs_yield_their_key() {
        let mut blob = Vec::new();
        for field in [ED25519_CERT.as_bytes(), b"nonce-bytes", &[7u8; 32]] {
            blob.extend_from_slice(&u32::try_from(field.len()).unwrap().to_be_bytes());
            blob.extend_from_slice(field);
        }
        let text = base64::engine::general_purpose::STANDARD.encode(&blob);
        assert_eq!(key_of_certificate(&text).unwrap().as_bytes(), &[7u8; 32]);
        assert!(key_of_certificate("AAAA").is_none());
    }
}
