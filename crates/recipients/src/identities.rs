//! The identities that can decrypt, found where sops looks for them.
//!
//! Order (explicit first, then sops 3.11's): `--identity FILE`…, `SOPS_AGE_SSH_PRIVATE_KEY_FILE` or
//! else `~/.ssh/id_ed25519`, `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY_CMD`, and
//! `$XDG_CONFIG_HOME/sops/age/keys.txt` (`~/.config/…`). Like sops 3.11, every source is loaded and a
//! source that fails is recorded as a problem instead of stopping the others; the problems matter
//! only when no identity fits a file.
//!
//! An SSH key becomes its *converted* X25519 identity (the `age1…` recipient `ssh-to-age` prints),
//! held only in memory. A passphrase-protected key is not unlocked until an identity with its
//! recipient is actually needed, so nobody is asked for a passphrase that cannot help.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use crate::{AgeIdentity, AgeRecipient, Ed25519PublicKey, KeyError, OpenSshPrivateKey};

/// A passphrase for an SSH private key. Wiped when dropped; `Debug` never shows it.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase (a trailing newline, as files and prompts leave, is removed).
    pub fn new(mut text: String) -> Self {
        while text.ends_with('\n') || text.ends_with('\r') {
            text.pop();
        }
        Self(Zeroizing::new(text))
    }

    /// The passphrase text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([REDACTED])")
    }
}

/// Where passphrases come from: a terminal prompt in the CLI, a file or variable in scripts.
pub trait PassphraseProvider {
    /// The passphrase for the private key whose public half is `key`, or `None` if there is none.
    fn passphrase(&mut self, key: &Ed25519PublicKey) -> Option<Passphrase>;
}

/// No passphrases at all: protected keys fail with [`KeyError::PassphraseRequired`].
impl PassphraseProvider for () {
    fn passphrase(&mut self, _: &Ed25519PublicKey) -> Option<Passphrase> {
        None
    }
}

/// Where an identity came from, for the operator reading `hostage identities`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// `--identity FILE`.
    Explicit(PathBuf),
    /// `SOPS_AGE_SSH_PRIVATE_KEY_FILE`, converted.
    SshKeyFileVariable(PathBuf),
    /// `~/.ssh/id_ed25519`, converted.
    DefaultSshKey(PathBuf),
    /// `SOPS_AGE_KEY`.
    KeyVariable,
    /// `SOPS_AGE_KEY_FILE`.
    KeyFileVariable(PathBuf),
    /// The output of `SOPS_AGE_KEY_CMD`.
    KeyCommand(String),
    /// `<config dir>/sops/age/keys.txt`.
    DefaultKeyFile(PathBuf),
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Explicit(p) => write!(f, "--identity {}", p.display()),
            Self::SshKeyFileVariable(p) => {
                write!(f, "SOPS_AGE_SSH_PRIVATE_KEY_FILE={}", p.display())
            }
            Self::DefaultSshKey(p) => write!(f, "{}", p.display()),
            Self::KeyVariable => f.write_str("SOPS_AGE_KEY"),
            Self::KeyFileVariable(p) => write!(f, "SOPS_AGE_KEY_FILE={}", p.display()),
            Self::KeyCommand(c) => write!(f, "SOPS_AGE_KEY_CMD={c}"),
            Self::DefaultKeyFile(p) => write!(f, "{}", p.display()),
        }
    }
}

enum CandidateKey {
    Ready(AgeIdentity),
    // Boxed: an unparsed OpenSSH key is large, identities are many.
    Locked(Box<OpenSshPrivateKey>),
}

/// One identity that may decrypt, with its recipient (known without unlocking anything).
pub struct IdentityCandidate {
    /// Where it came from.
    pub source: IdentitySource,
    /// 1-based line within the source, for identity files with several keys.
    pub line: Option<usize>,
    /// The recipient this identity decrypts for.
    pub recipient: AgeRecipient,
    /// The SSH key it was converted from, if any.
    pub converted_from: Option<Ed25519PublicKey>,
    key: CandidateKey,
}

impl IdentityCandidate {
    /// Whether a passphrase is needed before [`identity`](Self::identity) can succeed.
    pub fn is_locked(&self) -> bool {
        matches!(self.key, CandidateKey::Locked(_))
    }

    /// The usable identity, unlocking an SSH key with `passphrases` if needed.
    pub fn identity(
        &self,
        passphrases: &mut dyn PassphraseProvider,
    ) -> Result<AgeIdentity, KeyError> {
        match &self.key {
            CandidateKey::Ready(identity) => Ok(identity.clone()),
            CandidateKey::Locked(key) => Ok(key.unlock(passphrases)?.to_age_identity()),
        }
    }
}

impl fmt::Debug for IdentityCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityCandidate")
            .field("source", &self.source)
            .field("line", &self.line)
            .field("recipient", &self.recipient)
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// A source that was set but could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct IdentityLoadProblem {
    /// Where.
    pub source_name: IdentitySource,
    /// 1-based line within the source, when one line was bad.
    pub line: Option<usize>,
    /// What went wrong (never contains key material).
    pub message: String,
}

/// What to look at: explicit files plus a snapshot of the environment (a snapshot, so tests need
/// not mutate the process environment).
#[derive(Default)]
pub struct IdentityOptions {
    /// `--identity FILE` arguments: age identity files or OpenSSH private keys.
    pub explicit: Vec<PathBuf>,
    /// `SOPS_AGE_KEY`.
    pub sops_age_key: Option<Zeroizing<String>>,
    /// `SOPS_AGE_KEY_FILE`.
    pub sops_age_key_file: Option<PathBuf>,
    /// `SOPS_AGE_KEY_CMD`.
    pub sops_age_key_cmd: Option<String>,
    /// `SOPS_AGE_SSH_PRIVATE_KEY_FILE`.
    pub sops_age_ssh_private_key_file: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
}

impl IdentityOptions {
    /// Reads the variables sops reads from this process's environment; `SOPS_AGE_KEY` comes from
    /// the capture `hostage_process` made at start (the variable itself is gone by now, so no
    /// child inherits it).
    pub fn from_env(explicit: Vec<PathBuf>) -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            explicit,
            sops_age_key: hostage_process::secret_environment()
                .sops_age_key()
                .cloned(),
            sops_age_key_file: var("SOPS_AGE_KEY_FILE").map(PathBuf::from),
            sops_age_key_cmd: std::env::var("SOPS_AGE_KEY_CMD")
                .ok()
                .filter(|v| !v.is_empty()),
            sops_age_ssh_private_key_file: var("SOPS_AGE_SSH_PRIVATE_KEY_FILE").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
        }
    }

    /// Where sops looks for `keys.txt` on this platform.
    pub fn default_key_file(&self) -> Option<PathBuf> {
        let config_dir = match (&self.xdg_config_home, &self.home) {
            (Some(xdg), _) => xdg.clone(),
            (None, Some(home)) if cfg!(target_os = "macos") => {
                home.join("Library/Application Support")
            }
            (None, Some(home)) => home.join(".config"),
            (None, None) => return None,
        };
        Some(config_dir.join("sops/age/keys.txt"))
    }
}

/// Every identity found, in the order they are tried, and the problems met on the way.
#[derive(Debug, Default)]
pub struct IdentitySet {
    /// Usable identities (some may still need a passphrase).
    pub candidates: Vec<IdentityCandidate>,
    /// Sources that were set but failed.
    pub problems: Vec<IdentityLoadProblem>,
}

impl IdentitySet {
    /// Loads every source. Missing *default* files are not problems; missing named ones are.
    pub fn load(options: &IdentityOptions) -> Self {
        let mut set = Self::default();
        for path in &options.explicit {
            set.load_file(
                IdentitySource::Explicit(path.clone()),
                path,
                FileKind::Either,
            );
        }
        match (&options.sops_age_ssh_private_key_file, &options.home) {
            (Some(path), _) => set.load_file(
                IdentitySource::SshKeyFileVariable(path.clone()),
                path,
                FileKind::SshKey,
            ),
            (None, Some(home)) => {
                let path = home.join(".ssh/id_ed25519");
                if path.exists() {
                    set.load_file(
                        IdentitySource::DefaultSshKey(path.clone()),
                        &path,
                        FileKind::SshKey,
                    );
                }
            }
            (None, None) => {}
        }
        if let Some(text) = &options.sops_age_key {
            set.load_identity_text(&IdentitySource::KeyVariable, text);
        }
        if let Some(path) = &options.sops_age_key_file {
            set.load_file(
                IdentitySource::KeyFileVariable(path.clone()),
                path,
                FileKind::AgeIdentities,
            );
        }
        if let Some(command) = &options.sops_age_key_cmd {
            set.load_command(command);
        }
        if let Some(path) = options.default_key_file() {
            if path.exists() {
                set.load_file(
                    IdentitySource::DefaultKeyFile(path.clone()),
                    &path,
                    FileKind::AgeIdentities,
                );
            }
        }
        set
    }

    /// Builds a set from identities already in memory (tests, and keys decrypted from the repo).
    pub fn from_identities(source: IdentitySource, identities: Vec<AgeIdentity>) -> Self {
        let candidates = identities
            .into_iter()
            .map(|identity| IdentityCandidate {
                source: source.clone(),
                line: None,
                recipient: identity.recipient(),
                converted_from: None,
                key: CandidateKey::Ready(identity),
            })
            .collect();
        Self {
            candidates,
            problems: Vec::new(),
        }
    }

    /// The first candidate that decrypts for `recipient`.
    pub fn find(&self, recipient: &AgeRecipient) -> Option<&IdentityCandidate> {
        self.candidates.iter().find(|c| &c.recipient == recipient)
    }

    fn problem(
        &mut self,
        source: &IdentitySource,
        line: Option<usize>,
        message: impl Into<String>,
    ) {
        self.problems.push(IdentityLoadProblem {
            source_name: source.clone(),
            line,
            message: message.into(),
        });
    }

    fn load_file(&mut self, source: IdentitySource, path: &Path, kind: FileKind) {
        let text = match fs_err::read_to_string(path) {
            Ok(text) => Zeroizing::new(text),
            Err(e) => return self.problem(&source, None, e.to_string()),
        };
        let looks_like_ssh = text.trim_start().starts_with("-----BEGIN");
        match (kind, looks_like_ssh) {
            (FileKind::SshKey, _) | (FileKind::Either, true) => self.load_ssh_key(source, &text),
            (FileKind::AgeIdentities, _) | (FileKind::Either, false) => {
                self.load_identity_text(&source, &text)
            }
        }
    }

    fn load_ssh_key(&mut self, source: IdentitySource, text: &str) {
        let key = match OpenSshPrivateKey::parse(text) {
            Ok(key) => key,
            Err(e) => return self.problem(&source, None, e.to_string()),
        };
        let public = key.public_key();
        let recipient = match public.to_age_recipient() {
            Ok(r) => r,
            Err(e) => return self.problem(&source, None, e.to_string()),
        };
        let key = if key.is_encrypted() {
            CandidateKey::Locked(Box::new(key))
        } else {
            match key.unlock(&mut ()) {
                Ok(seed) => CandidateKey::Ready(seed.to_age_identity()),
                Err(e) => return self.problem(&source, None, e.to_string()),
            }
        };
        self.candidates.push(IdentityCandidate {
            source,
            line: None,
            recipient,
            converted_from: Some(public),
            key,
        });
    }

    /// Identity files and `SOPS_AGE_KEY`: one or more identities per line (sops 3.13 allows
    /// several separated by spaces), `#` comments and blank lines skipped.
    fn load_identity_text(&mut self, source: &IdentitySource, text: &str) {
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for word in line.split_whitespace() {
                let upper = word.to_ascii_uppercase();
                if upper.starts_with("AGE-SECRET-KEY-PQ-") || upper.starts_with("AGE-PLUGIN-") {
                    self.problem(
                        source,
                        Some(index + 1),
                        "post-quantum and plugin identities are not supported by hostage (X25519 only)",
                    );
                    continue;
                }
                match AgeIdentity::parse(word) {
                    Ok(identity) => self.candidates.push(IdentityCandidate {
                        source: source.clone(),
                        line: Some(index + 1),
                        recipient: identity.recipient(),
                        converted_from: None,
                        key: CandidateKey::Ready(identity),
                    }),
                    Err(e) => self.problem(source, Some(index + 1), e.to_string()),
                }
            }
        }
    }

    fn load_command(&mut self, command: &str) {
        let source = IdentitySource::KeyCommand(command.to_owned());
        let Some(words) = shlex::split(command).filter(|w| !w.is_empty()) else {
            return self.problem(
                &source,
                None,
                "cannot split the command into words (unbalanced quotes?)",
            );
        };
        let output = Command::new(&words[0])
            .args(&words[1..])
            .stdin(Stdio::inherit())
            .stderr(Stdio::inherit())
            .output();
        match output {
            Err(e) => self.problem(&source, None, format!("cannot run it: {e}")),
            Ok(out) => {
                let stdout = Zeroizing::new(out.stdout);
                if !out.status.success() {
                    return self.problem(&source, None, format!("it failed ({})", out.status));
                }
                match std::str::from_utf8(&stdout) {
                    Ok(text) => self.load_identity_text(&source, text),
                    Err(_) => self.problem(&source, None, "its output is not UTF-8 text"),
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum FileKind {
    SshKey,
    AgeIdentities,
    Either,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIC92_KEY: &str = include_str!("../tests/vectors/mic92/id_ed25519");
    const MIC92_AGE: &str = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452";
    const MIC92_SECRET: &str =
        "AGE-SECRET-KEY-1K3VN4N03PTHJWSJSCCMQCN33RY5FSKQPJ4KRRTG3JMQUYE0TUSEQEDH6V8";

    fn sources(set: &IdentitySet) -> Vec<String> {
        set.candidates
            .iter()
            .map(|c| c.source.to_string())
            .collect()
    }

    #[test]
    fn every_source_is_loaded_in_sops_order() {
        let home = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(home.path().join(".ssh")).unwrap();
        fs_err::write(home.path().join(".ssh/id_ed25519"), MIC92_KEY).unwrap();
        let keys_txt = home.path().join(".config/sops/age/keys.txt");
        fs_err::create_dir_all(keys_txt.parent().unwrap()).unwrap();
        fs_err::write(
            &keys_txt,
            format!("# created: today\n# public key: x\n{MIC92_SECRET}\n"),
        )
        .unwrap();
        let options = IdentityOptions {
            sops_age_key: Some(Zeroizing::new(format!("{MIC92_SECRET} {MIC92_SECRET}"))),
            sops_age_key_cmd: Some(format!("echo {MIC92_SECRET}")),
            home: Some(home.path().to_owned()),
            ..IdentityOptions::default()
        };
        let set = IdentitySet::load(&options);
        assert!(set.problems.is_empty(), "{:?}", set.problems);
        let expected_cmd = format!("SOPS_AGE_KEY_CMD=echo {MIC92_SECRET}");
        assert_eq!(
            sources(&set),
            vec![
                home.path().join(".ssh/id_ed25519").display().to_string(),
                "SOPS_AGE_KEY".to_owned(),
                "SOPS_AGE_KEY".to_owned(),
                expected_cmd,
                keys_txt.display().to_string(),
            ]
        );
        assert!(set
            .candidates
            .iter()
            .all(|c| c.recipient.to_string() == MIC92_AGE));
        assert!(set.candidates[0].converted_from.is_some());
    }

    #[test]
    fn bad_lines_are_problems_that_name_the_line_but_not_the_text() {
        let options = IdentityOptions {
            sops_age_key: Some(Zeroizing::new(format!(
                "{MIC92_SECRET}\nAGE-SECRET-KEY-1NOTREALLYAKEY\n"
            ))),
            ..IdentityOptions::default()
        };
        let set = IdentitySet::load(&options);
        assert_eq!(set.candidates.len(), 1);
        assert_eq!(set.problems.len(), 1);
        let problem = set.problems[0].to_string();
        assert!(problem.starts_with("SOPS_AGE_KEY line 2"), "{problem}");
        assert!(!problem.contains("NOTREALLY"), "{problem}");
    }

    #[test]
    fn a_named_missing_file_is_a_problem_a_missing_default_is_not() {
        let home = tempfile::tempdir().unwrap();
        let options = IdentityOptions {
            sops_age_key_file: Some(home.path().join("nope.txt")),
            home: Some(home.path().to_owned()),
            ..IdentityOptions::default()
        };
        let set = IdentitySet::load(&options);
        assert!(set.candidates.is_empty());
        assert_eq!(set.problems.len(), 1, "{:?}", set.problems);
        assert!(set.problems[0].to_string().contains("nope.txt"));
    }

    #[test]
    fn xdg_config_home_wins_over_home() {
        let options = IdentityOptions {
            home: Some("/home/op".into()),
            xdg_config_home: Some("/xdg".into()),
            ..IdentityOptions::default()
        };
        assert_eq!(
            options.default_key_file(),
            Some(PathBuf::from("/xdg/sops/age/keys.txt"))
        );
    }
}
