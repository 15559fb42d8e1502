//! The one clap definition: `--help`, shell completions and the CLI reference all come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes, documented in `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (some input could not be handled; the others were)
  2  usage error
  3  check found drift (commands with --check)";

/// Manage the age recipients of a sops secrets repo for a fleet of servers.
#[derive(Debug, Parser)]
#[command(name = "hostage", version, about, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert SSH ed25519 keys to age recipients (or a private key to an age identity).
    #[command(after_help = CONVERT_EXAMPLES)]
    Convert(ConvertArgs),

    /// List the identities that would decrypt sops files, and where each came from.
    #[command(after_help = IDENTITIES_EXAMPLES)]
    Identities(IdentitiesArgs),

    /// Fetch and verify hosts' ed25519 host keys over SSH, and print their age recipients.
    Fetch(crate::fleet::FetchArgs),

    /// Deploy the shared infrastructure key to hosts without a readable moment.
    Deploy(crate::fleet::DeployArgs),
    /// Re-key every sops file so it has exactly the recipients .sops.yaml gives it.
    #[command(after_help = REKEY_EXAMPLES)]
    Rekey(RekeyArgs),

    /// Print shell completions.
    #[command(
        after_help = "Example:\n  hostage completions bash > /etc/bash_completion.d/hostage"
    )]
    Completions(CompletionsArgs),
}

const CONVERT_EXAMPLES: &str = "\
Examples:
  ssh-keyscan -t ed25519 gnomeregan | hostage convert
  hostage convert /etc/ssh/ssh_host_ed25519_key.pub
  hostage convert --private ~/.ssh/id_ed25519 > keys.txt    # asks for the passphrase on the terminal

Input may be bare key lines, authorized_keys lines (with options), known_hosts lines or ssh-keyscan
output; output lines are labelled with the host name or key comment. Keys that are not ed25519 are
skipped when the same host also has an ed25519 key, and are an error otherwise.

Passphrases (--private) come from --passphrase-file, else HOSTAGE_SSH_PASSPHRASE (or
SSH_TO_AGE_PASSPHRASE), else a prompt on the terminal; never from the command line.

Exit codes: 0 every key converted, 1 some input could not be converted (the rest was printed),
2 usage error.";

const IDENTITIES_EXAMPLES: &str = "\
Examples:
  hostage identities
  hostage identities --identity ~/.ssh/id_infrastructure --json
  hostage identities secrets/hosts/gnomeregan/wifi.yaml    # which of its recipients can I decrypt as?

Sources, in the order they are tried: --identity FILE…, SOPS_AGE_SSH_PRIVATE_KEY_FILE (else
~/.ssh/id_ed25519), SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, and
$XDG_CONFIG_HOME/sops/age/keys.txt (else ~/.config/sops/age/keys.txt). SSH keys are used as their
converted age identity, in memory only. Run this when sops says \"failed to get the data key\": a
file can be decrypted only if one of its recipients is listed here.

With FILEs: lists each sops file's key groups and marks the recipients an identity was found for;
a file decrypts when enough groups (the Shamir threshold) have one.

Exit codes: 0 identities found (and every FILE decryptable), 1 otherwise.";

const REKEY_EXAMPLES: &str = "\
Examples:
  hostage rekey --dry-run                 # what would change, with host names from .sops.yaml anchors
  hostage rekey --check                   # in CI: no private keys needed, exit 3 when files lag behind
  hostage rekey secrets/hosts/ --identity ~/.ssh/id_ed25519

Every file under PATHS (default: the directory of .sops.yaml) that carries sops metadata and is
not ignored by git is compared with the creation rule sops would pick for it, per key group and by
recipient. Files that only gain recipients are re-wrapped (same data key, new key entries);
files that lose one are rotated (a new data key, every value re-encrypted) unless --no-rotate.
When recipients are removed, an exposure report lists the files and values they could read, so
you know which credentials to change.

Files are written atomically in parallel batches; a run that is killed leaves every file old or
new, and the next run finishes the job (a journal in .git/hostage/ keeps the exposure report).
One run at a time per repo. Errors in the plan (no matching rule, invalid recipient, unreadable
file) stop the run before anything is written; a file that cannot be decrypted or fails its MAC
is reported and the others are still re-keyed.

Exit codes: 0 done (or nothing to do), 1 some file could not be re-keyed, 2 usage error,
3 --check found files to re-key.";

/// Arguments of `hostage rekey`.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Files or directories to re-key (default: the directory of .sops.yaml).
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,

    /// Print the plan (and check the keys can open each file to change); write nothing.
    #[arg(long, conflicts_with = "check")]
    pub dry_run: bool,

    /// Write nothing and need no private key: exit 3 if some file must be re-keyed (for CI).
    #[arg(long)]
    pub check: bool,

    /// Do not rotate the data key when a recipient is removed (it may have kept the old one).
    #[arg(long)]
    pub no_rotate: bool,

    /// The .sops.yaml to follow (default: SOPS_CONFIG, else .sops.yaml here or in a parent).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Extra identity: an age identity file or an OpenSSH ed25519 private key (repeatable).
    #[arg(long = "identity", short = 'i', value_name = "FILE")]
    pub identities: Vec<PathBuf>,

    /// Read the SSH identity's passphrase from this file (first line).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Files computed and written per durable batch (bounds memory).
    #[arg(long, value_name = "N", default_value_t = 256, hide = true)]
    pub batch_size: usize,
}

/// Arguments of `hostage convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// File to read, or `-` for standard input.
    #[arg(value_name = "FILE|-", default_value = "-")]
    pub input: PathBuf,

    /// Convert an OpenSSH ed25519 private key to an age identity (AGE-SECRET-KEY-1…).
    #[arg(long)]
    pub private: bool,

    /// Read the private key's passphrase from this file (first line).
    #[arg(long, value_name = "FILE", requires = "private")]
    pub passphrase_file: Option<PathBuf>,
}

/// Arguments of `hostage identities`.
#[derive(Debug, Args)]
pub struct IdentitiesArgs {
    /// sops files to check against the identities found.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Extra identity: an age identity file or an OpenSSH ed25519 private key (repeatable).
    #[arg(long = "identity", short = 'i', value_name = "FILE")]
    pub identities: Vec<PathBuf>,
}

/// Arguments of `hostage completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print completions for.
    pub shell: clap_complete::Shell,
}

/// The CLI reference (`docs/cli.md`): every verb's `--help`, generated from this definition so
/// the document cannot drift (a test compares them).
pub fn reference_markdown() -> String {
    use clap::CommandFactory as _;
    let mut command = Cli::command().term_width(100);
    command.build();
    let mut text = String::from(
        "# hostage command reference\n\n\
         Generated from the clap definition in `crates/cli/src/cli.rs`; refresh with\n\
         `UPDATE_GOLDEN=1 cargo test -p hostage --test cli`.\n\n",
    );
    let mut section = |title: &str, help: String| {
        text.push_str(&format!(
            "## {title}\n\n```text\n{}\n```\n\n",
            help.trim_end()
        ));
    };
    section("hostage", command.render_long_help().to_string());
    for sub in command.get_subcommands_mut() {
        let title = format!("hostage {}", sub.get_name());
        section(&title, sub.render_long_help().to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
