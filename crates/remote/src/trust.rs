//! What makes a host key trusted: a pin (`SHA256:…`), the user's known_hosts (checked by ssh
//! itself), or an explicit trust-on-first-use that records a pin.

use std::fmt;
use std::path::{Path, PathBuf};

pub use hostage_recipients::{Fingerprint, FingerprintError};

/// How a host key came to be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifiedBy {
    /// It matched a pin (`--expect-fingerprint` or the pin file).
    Pin,
    /// ssh accepted it from the user's known_hosts (plain, hashed or `@cert-authority`).
    KnownHosts,
    /// Nothing vouched for it; it was accepted because of `--trust-new` and its pin recorded.
    TrustedNew,
}

impl VerifiedBy {
    /// A short machine name: `pin`, `known_hosts`, `trust-new`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pin => "pin",
            Self::KnownHosts => "known_hosts",
            Self::TrustedNew => "trust-new",
        }
    }
}

impl fmt::Display for VerifiedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where pins of hosts accepted with `--trust-new` are recorded: the interim [`PinFile`] today,
/// the inventory once it is wired in.
pub trait PinRecorder {
    /// Records that `host` (verified by [`VerifiedBy::TrustedNew`]) is pinned from now on.
    fn record(&mut self, host: &crate::FetchedHost) -> Result<(), String>;
}

impl PinRecorder for PinFile {
    fn record(&mut self, host: &crate::FetchedHost) -> Result<(), String> {
        self.record_pin(&host.spec.name(), &host.fingerprint)
            .map_err(|e| match &self.path {
                Some(path) => format!("{}: {e}", path.display()),
                None => e.to_string(),
            })
    }
}

/// A pin file: one `NAME SHA256:…` per line (`NAME` as [`crate::HostSpec::name`] gives it),
/// `#` comments. Until the inventory exists this is where `--trust-new` records what it trusted.
#[derive(Clone, Debug, Default)]
pub struct PinFile {
    path: Option<PathBuf>,
    pins: Vec<(String, Fingerprint)>,
}

/// A pin file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PinFileError {
    /// Reading failed.
    #[error("cannot use the pin file")]
    Io(#[from] std::io::Error),
    /// Writing failed (the file keeps its old content).
    #[error("cannot record the pin")]
    Write(#[from] hostage_atomic::WriteError),
    /// A line is not `NAME SHA256:…`.
    #[error("{path}:{line}: expected `NAME SHA256:…`")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

impl PinFile {
    /// Reads `path`; a missing file is an empty pin file that will be created on first record.
    pub fn load(path: &Path) -> Result<Self, PinFileError> {
        let text = match fs_err::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        let mut pins = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split_whitespace();
            let parsed = match (fields.next(), fields.next(), fields.next()) {
                (Some(name), Some(fp), None) => Fingerprint::parse(fp).ok().map(|fp| (name, fp)),
                _ => None,
            };
            let (name, fingerprint) = parsed.ok_or_else(|| PinFileError::Malformed {
                path: path.to_owned(),
                line: index + 1,
            })?;
            pins.push((name.to_owned(), fingerprint));
        }
        Ok(Self {
            path: Some(path.to_owned()),
            pins,
        })
    }

    /// The pin recorded for `name` (the last one wins).
    pub fn get(&self, name: &str) -> Option<&Fingerprint> {
        self.pins
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, fp)| fp)
    }

    /// Adds `name fingerprint` to the file (creating it) and remembers it. The file is rewritten
    /// atomically, so an interrupted run never leaves a torn pin line.
    pub fn record_pin(
        &mut self,
        name: &str,
        fingerprint: &Fingerprint,
    ) -> Result<(), PinFileError> {
        if let Some(path) = &self.path {
            let mut text = match fs_err::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e.into()),
            };
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{name} {fingerprint}\n"));
            // `./hostage.pins` may sit in a checkout of the repo: never through a symlink out.
            hostage_atomic::ConfinedDir::of_parent(path)?.write(path, text.as_bytes())?;
        }
        self.pins.push((name.to_owned(), fingerprint.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:tSVdMCdgjLnQqlAcPpBGaHhsYsZ8XSFpmQ/NpMBLd+U";

    #[test]
    fn fingerprints_are_checked_for_shape() {
        assert_eq!(Fingerprint::parse(FP).unwrap().as_str(), FP);
        assert!(Fingerprint::parse("MD5:aa:bb").is_err());
        assert!(Fingerprint::parse("SHA256:short").is_err());
    }

    #[test]
    fn recorded_pins_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins");
        let mut pins = PinFile::load(&path).unwrap();
        assert!(pins.get("[127.0.0.2]:22").is_none());
        pins.record_pin("[127.0.0.2]:2222", &Fingerprint::parse(FP).unwrap())
            .unwrap();
        let again = PinFile::load(&path).unwrap();
        assert_eq!(again.get("[127.0.0.2]:2222").unwrap().as_str(), FP);
    }

    #[test]
    fn a_pin_file_symlinked_out_of_its_directory_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("repo");
        fs_err::create_dir(&checkout).unwrap();
        let outside = dir.path().join("authorized_keys");
        fs_err::write(&outside, "# precious\n").unwrap();
        let path = checkout.join("hostage.pins");
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let mut pins = PinFile::load(&path).unwrap();
        let error = pins
            .record_pin("web01", &Fingerprint::parse(FP).unwrap())
            .unwrap_err();
        assert!(matches!(
            error,
            PinFileError::Write(hostage_atomic::WriteError::SymlinkLeavesRoot { .. })
        ));
        assert_eq!(fs_err::read_to_string(&outside).unwrap(), "# precious\n");
    }

    #[test]
    fn malformed_pin_lines_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins");
        fs_err::write(&path, "# pins\nweb01 SHA256:nope\n").unwrap();
        assert!(matches!(
            PinFile::load(&path),
            Err(PinFileError::Malformed { line: 2, .. })
        ));
    }
}
