//! Passphrases for SSH private keys: a file, an environment variable, or the terminal. Never argv.

use std::path::Path;

use anyhow::Context as _;
use hostage_recipients::{Ed25519PublicKey, Passphrase, PassphraseProvider};
use zeroize::Zeroizing;

/// Variable scripts set to unlock protected keys.
pub const PASSPHRASE_VARIABLE: &str = "HOSTAGE_SSH_PASSPHRASE";
/// Mic92's `ssh-to-age` variable, accepted too so existing scripts keep working.
pub const SSH_TO_AGE_PASSPHRASE_VARIABLE: &str = "SSH_TO_AGE_PASSPHRASE";

/// `--passphrase-file`, else the variables, else a prompt on the terminal (`/dev/tty`, so it works
/// while the key itself arrives on standard input).
pub struct CliPassphrases {
    from_file: Option<Zeroizing<String>>,
}

impl CliPassphrases {
    /// Reads the first line of `file` now, so a missing file is reported as such.
    pub fn new(file: Option<&Path>) -> anyhow::Result<Self> {
        let from_file = match file {
            None => None,
            Some(path) => {
                let text = Zeroizing::new(
                    fs_err::read_to_string(path).context("cannot read the passphrase file")?,
                );
                Some(Zeroizing::new(
                    text.lines().next().unwrap_or_default().to_owned(),
                ))
            }
        };
        Ok(Self { from_file })
    }
}

impl PassphraseProvider for CliPassphrases {
    fn passphrase(&mut self, key: &Ed25519PublicKey) -> Option<Passphrase> {
        if let Some(text) = &self.from_file {
            return Some(Passphrase::new(text.to_string()));
        }
        // Captured at start and removed from the environment, so no child inherits them.
        if let Some(value) = hostage_process::secret_environment().ssh_passphrase() {
            return Some(Passphrase::new(value.to_string()));
        }
        let prompt = format!("passphrase for {}: ", key.fingerprint());
        rpassword::prompt_password(prompt).ok().map(Passphrase::new)
    }
}
