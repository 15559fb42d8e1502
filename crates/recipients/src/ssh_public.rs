//! OpenSSH public key lines, in every shape operators paste around.
//!
//! We parse the wire blob ourselves instead of using `ssh_key::PublicKey::from_openssh`, which
//! rejects tab-separated fields, `authorized_keys` options and `known_hosts` host fields.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use curve25519_dalek::edwards::CompressedEdwardsY;
use sha2::{Digest, Sha256};

use crate::{AgeRecipient, KeyError};

const ED25519: &str = "ssh-ed25519";

/// Key algorithms OpenSSH writes in public key lines; anything else in a key position is not a key.
const KNOWN_ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];
const CERT_SUFFIX: &str = "-cert-v01@openssh.com";

/// `authorized_keys` option names (sshd(8)); a prefix made only of these is options, not a host.
const AUTHORIZED_KEYS_OPTIONS: &[&str] = &[
    "agent-forwarding",
    "cert-authority",
    "command",
    "environment",
    "expiry-time",
    "from",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-touch-required",
    "no-user-rc",
    "no-x11-forwarding",
    "permitlisten",
    "permitopen",
    "port-forwarding",
    "principals",
    "pty",
    "restrict",
    "tunnel",
    "user-rc",
    "verify-required",
    "x11-forwarding",
];

/// An ed25519 public key (the 32-byte compressed Edwards point).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ed25519PublicKey([u8; 32]);

impl Ed25519PublicKey {
    /// Wraps the 32 bytes of a compressed Edwards point.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The SSH wire encoding: `string "ssh-ed25519"`, `string key`.
    pub fn wire_blob(&self) -> Vec<u8> {
        let mut blob = Vec::with_capacity(4 + ED25519.len() + 4 + 32);
        put_string(&mut blob, ED25519.as_bytes());
        put_string(&mut blob, &self.0);
        blob
    }

    /// The fingerprint exactly as `ssh-keygen -l` prints it: `SHA256:` + unpadded base64.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.wire_blob());
        format!("SHA256:{}", STANDARD_NO_PAD.encode(digest))
    }

    /// The key as an OpenSSH line without comment: `ssh-ed25519 AAAA…`.
    pub fn to_openssh(&self) -> String {
        format!("{ED25519} {}", STANDARD.encode(self.wire_blob()))
    }

    /// The age X25519 recipient that decrypts with the converted private key: the birational map
    /// from Edwards to Montgomery form, as Mic92's `ssh-to-age` does. Small-order points are
    /// rejected (age would refuse to encrypt to them).
    pub fn to_age_recipient(&self) -> Result<AgeRecipient, KeyError> {
        let point = CompressedEdwardsY(self.0)
            .decompress()
            .ok_or(KeyError::InvalidPoint {
                reason: "not on the curve",
            })?;
        if point.is_small_order() {
            return Err(KeyError::InvalidPoint {
                reason: "a small-order point",
            });
        }
        Ok(AgeRecipient::from_bytes(point.to_montgomery().to_bytes()))
    }
}

impl fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519PublicKey({})", self.fingerprint())
    }
}

/// One ed25519 key found in a text, with what the text said about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshKeyLine {
    /// 1-based line number in the input.
    pub line: usize,
    /// The key.
    pub key: Ed25519PublicKey,
    /// Host name from a `known_hosts` or `ssh-keyscan` line (first name when several are listed).
    pub host: Option<String>,
    /// Trailing comment, e.g. `root@gnomeregan`.
    pub comment: Option<String>,
}

impl SshKeyLine {
    /// What to print next to the converted key: the host name, else the comment.
    pub fn label(&self) -> Option<&str> {
        self.host.as_deref().or(self.comment.as_deref())
    }
}

/// A line that holds a key hostage cannot use, with where it was.
#[derive(Debug, thiserror::Error)]
#[error("line {line}{}: {error}", host.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct KeyLineError {
    /// 1-based line number.
    pub line: usize,
    /// Host name, when the line had one.
    pub host: Option<String>,
    /// Algorithm named on the line, when there was one.
    pub algorithm: Option<String>,
    /// What was wrong.
    #[source]
    pub error: KeyError,
}

/// Reads every public key line of `text`. Blank lines and `#` comments (including `ssh-keyscan`'s
/// banner lines) are skipped; CRLF, tabs and repeated spaces are accepted.
pub fn parse_key_lines(text: &str) -> Vec<Result<SshKeyLine, KeyLineError>> {
    text.lines()
        .enumerate()
        .filter_map(|(index, raw)| {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            Some(parse_line(index + 1, line))
        })
        .collect()
}

fn parse_line(number: usize, line: &str) -> Result<SshKeyLine, KeyLineError> {
    let fields = split_fields(line);
    let fail = |host: Option<String>, algorithm: Option<String>, error| KeyLineError {
        line: number,
        host,
        algorithm,
        error,
    };
    let Some(position) = fields.iter().position(|f| is_algorithm(f)) else {
        return Err(fail(None, None, KeyError::NotAKeyLine));
    };
    let host = host_of_prefix(&fields[..position]).map_err(|e| fail(None, None, e))?;
    let algorithm = fields[position];
    let fail = |error| fail(host.clone(), Some(algorithm.to_owned()), error);
    if algorithm.ends_with(CERT_SUFFIX) {
        return Err(fail(KeyError::Certificate {
            algorithm: algorithm.to_owned(),
        }));
    }
    if algorithm != ED25519 {
        return Err(fail(KeyError::NotEd25519 {
            algorithm: algorithm.to_owned(),
        }));
    }
    let blob = fields.get(position + 1).ok_or_else(|| {
        fail(KeyError::MalformedBlob {
            algorithm: algorithm.to_owned(),
            reason: "the base64 key data is missing",
        })
    })?;
    let key = decode_ed25519_blob(blob).map_err(fail)?;
    let comment = fields
        .get(position + 2..)
        .filter(|rest| !rest.is_empty())
        .map(|rest| rest.join(" "));
    Ok(SshKeyLine {
        line: number,
        key,
        host,
        comment,
    })
}

fn is_algorithm(field: &str) -> bool {
    KNOWN_ALGORITHMS.contains(&field) || field.ends_with(CERT_SUFFIX)
}

/// What stands before the key type: nothing, `authorized_keys` options, or a `known_hosts` host
/// field (possibly after a marker).
fn host_of_prefix(prefix: &[&str]) -> Result<Option<String>, KeyError> {
    let Some(first) = prefix.first() else {
        return Ok(None);
    };
    if first.starts_with('@') {
        return Err(KeyError::MarkerLine {
            marker: (*first).to_owned(),
        });
    }
    if prefix.len() == 1 && is_authorized_keys_options(first) {
        return Ok(None);
    }
    if prefix.len() > 1 {
        return Err(KeyError::NotAKeyLine);
    }
    if first.starts_with("|1|") {
        return Ok(Some("(hashed host)".to_owned()));
    }
    let name = first.split(',').next().unwrap_or(first);
    Ok(Some(name.to_owned()))
}

fn is_authorized_keys_options(field: &str) -> bool {
    split_outside_quotes(field, ',').iter().all(|option| {
        let name = option.split('=').next().unwrap_or(option);
        AUTHORIZED_KEYS_OPTIONS.contains(&name.to_ascii_lowercase().as_str())
    })
}

fn decode_ed25519_blob(blob: &str) -> Result<Ed25519PublicKey, KeyError> {
    let malformed = |reason| KeyError::MalformedBlob {
        algorithm: ED25519.to_owned(),
        reason,
    };
    let bytes = STANDARD
        .decode(blob)
        .map_err(|_| malformed("the key data is not valid base64"))?;
    let mut rest = bytes.as_slice();
    let algorithm = take_string(&mut rest).ok_or_else(|| malformed("the key data is truncated"))?;
    if algorithm != ED25519.as_bytes() {
        return Err(malformed(
            "the key data names another algorithm than the line does",
        ));
    }
    let key = take_string(&mut rest).ok_or_else(|| malformed("the key data is truncated"))?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| malformed("the key is not 32 bytes long"))?;
    if !rest.is_empty() {
        return Err(malformed("the key data has trailing bytes"));
    }
    Ok(Ed25519PublicKey(key))
}

fn take_string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = input.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    *input = rest;
    Some(value)
}

fn put_string(out: &mut Vec<u8>, value: &[u8]) {
    let len = u32::try_from(value.len()).expect("SSH strings we write are tiny");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
}

/// Splits on runs of white space, keeping double-quoted parts (authorized_keys options) together.
fn split_fields(line: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    fields.push(&line[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        fields.push(&line[s..]);
    }
    fields
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIC92_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji joerg@turingmachine";
    const MIC92_AGE: &str = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452";

    fn only_key(text: &str) -> SshKeyLine {
        let mut lines = parse_key_lines(text);
        assert_eq!(lines.len(), 1, "{text}");
        lines.remove(0).unwrap()
    }

    #[test]
    fn bare_key_line_converts_to_mic92_vector() {
        let key = only_key(MIC92_PUB);
        assert_eq!(key.key.to_age_recipient().unwrap().to_string(), MIC92_AGE);
        assert_eq!(key.comment.as_deref(), Some("joerg@turingmachine"));
        assert_eq!(key.host, None);
    }

    #[test]
    fn tabs_double_spaces_and_crlf_are_accepted() {
        let text = "ssh-ed25519\tAAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji  my  comment\r\n";
        let key = only_key(text);
        assert_eq!(key.key.to_age_recipient().unwrap().to_string(), MIC92_AGE);
        assert_eq!(key.comment.as_deref(), Some("my comment"));
    }

    #[test]
    fn authorized_keys_options_are_skipped_even_with_quoted_spaces() {
        let text =
            format!(r#"from="10.0.0.1,10.0.0.2",command="echo hi there",no-pty {MIC92_PUB}"#);
        let key = only_key(&text);
        assert_eq!(key.host, None);
        assert_eq!(key.key.to_age_recipient().unwrap().to_string(), MIC92_AGE);
        let restricted = only_key(&format!("restrict {MIC92_PUB}"));
        assert_eq!(restricted.host, None);
    }

    #[test]
    fn known_hosts_and_keyscan_lines_keep_the_host_name() {
        let text = "# gnomeregan:22 SSH-2.0-OpenSSH_9.8\n\
                    gnomeregan,10.0.0.7 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji\n\
                    [ironforge]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji\n";
        let lines: Vec<_> = parse_key_lines(text)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines[0].host.as_deref(), Some("gnomeregan"));
        assert_eq!(lines[0].line, 2);
        assert_eq!(lines[1].host.as_deref(), Some("[ironforge]:2222"));
    }

    #[test]
    fn rsa_key_error_names_the_algorithm_and_sops_nix() {
        let err = parse_key_lines("host ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7")
            .remove(0)
            .unwrap_err();
        assert_eq!(err.host.as_deref(), Some("host"));
        let text = err.to_string();
        assert!(text.contains("ed25519 keys only"), "{text}");
        assert!(text.contains("ssh-rsa"), "{text}");
    }

    #[test]
    fn certificates_are_refused_with_a_hint() {
        let err = parse_key_lines(
            "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t",
        )
        .remove(0)
        .unwrap_err();
        assert!(matches!(err.error, KeyError::Certificate { .. }), "{err}");
    }

    #[test]
    fn invalid_point_is_refused() {
        // y = 2 is not the y-coordinate of any point on edwards25519.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        let err = Ed25519PublicKey::from_bytes(bytes)
            .to_age_recipient()
            .unwrap_err();
        assert!(matches!(err, KeyError::InvalidPoint { .. }), "{err}");
        // The identity point (y = 1) is on the curve but of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let err = Ed25519PublicKey::from_bytes(identity)
            .to_age_recipient()
            .unwrap_err();
        assert!(err.to_string().contains("small-order"), "{err}");
    }

    #[test]
    fn truncated_or_mismatched_blobs_are_refused() {
        let err = parse_key_lines("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz")
            .remove(0)
            .unwrap_err();
        assert!(matches!(err.error, KeyError::MalformedBlob { .. }), "{err}");
        // An RSA blob labelled ssh-ed25519.
        let err = parse_key_lines("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQC7")
            .remove(0)
            .unwrap_err();
        assert!(err.to_string().contains("another algorithm"), "{err}");
    }

    #[test]
    fn openssh_line_round_trips() {
        let key = only_key(MIC92_PUB).key;
        assert_eq!(only_key(&key.to_openssh()).key, key);
    }
}
