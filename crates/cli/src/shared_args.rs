//! Options several workflow verbs share, defined once so their help reads the same everywhere.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// How the workflow verbs reach hosts over SSH.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// known_hosts file to trust instead of ssh's defaults.
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// ssh config to use instead of ~/.ssh/config and /etc/ssh/ssh_config.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Seconds allowed per host, connection included.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}

impl SshArgs {
    /// `--known-hosts`, made absolute (ssh runs from another directory).
    pub fn known_hosts(&self) -> Option<PathBuf> {
        self.known_hosts.as_deref().map(absolute)
    }

    /// `--ssh-config`, made absolute.
    pub fn ssh_config(&self) -> Option<PathBuf> {
        self.ssh_config.as_deref().map(absolute)
    }

    /// `--timeout`, at least one second.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }
}

/// The identities that open the secrets repo's files.
#[derive(Debug, Args)]
pub struct RepoIdentityArgs {
    /// Extra identity to open the files (the inventory's workstation identity is used).
    #[arg(long = "identity", short = 'i', value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// Read the SSH identity's passphrase from this file (first line).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// `path` made absolute against the current directory (unchanged if that cannot be known).
pub fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
