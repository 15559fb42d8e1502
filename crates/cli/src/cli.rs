//! The one clap definition: `--help`, shell completions and the CLI reference all come from here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hostage_remote::Fingerprint;

/// Manage the age recipients of a sops secrets repo for a fleet of servers.
#[derive(Debug, Parser)]
#[command(name = "hostage", version, about, after_help = crate::exit::HELP, max_term_width = 100)]
pub struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// The fleet inventory (default: inventory/fleet.yaml in the current directory, when it
    /// exists).
    #[arg(long, global = true, env = "HOSTAGE_INVENTORY", value_name = "FILE")]
    pub inventory: Option<PathBuf>,

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
    Fetch(FetchArgs),

    /// Deploy the shared infrastructure key to hosts without a readable moment.
    Deploy(DeployArgs),
    /// Bring an inventory host into the secrets repo: verify its key, add its recipient, re-key.
    Onboard(OnboardArgs),

    /// A host has a new identity: replace its recipient everywhere and rotate its files' keys.
    Rotate(RotateArgs),

    /// Replace the shared infrastructure key in resumable phases, with no host left unable to decrypt.
    RotateInfra(RotateInfraArgs),

    /// Replace a named non-host key (workstation, infrastructure, a colleague's) in resumable phases.
    RotateKey(RotateKeyArgs),

    /// Decommission a host: its recipient out of .sops.yaml, its files' data keys rotated.
    Offboard(OffboardArgs),

    /// Back up an onboarded host's private host key, sops-encrypted, into the secrets repo.
    BackupHostKey(BackupHostKeyArgs),

    /// Write a host key made by `onboard --generate-host-key` as a nixos-anywhere --extra-files tree.
    ExportHostKey(ExportHostKeyArgs),

    /// The fleet on one screen: hosts, pins, recipients, drift, who can read what.
    Status(StatusArgs),

    /// Re-key every sops file so it has exactly the recipients .sops.yaml gives it.
    #[command(after_help = REKEY_EXAMPLES)]
    Rekey(RekeyArgs),

    /// Every CI check in one run, no private key needed: plaintext secrets, lints, unknown
    /// recipients, drift.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Set one value of a sops file from stdin (the file is created under its rule if absent).
    Set(SetArgs),

    /// Print shell completions.
    #[command(
        after_help = "Example:\n  hostage completions bash > /etc/bash_completion.d/hostage"
    )]
    Completions(CompletionsArgs),

    /// Write the man pages (hostage.1 and one per verb) into a directory.
    #[command(
        after_help = "Example:\n  hostage man /usr/local/share/man/man1 && man hostage-onboard"
    )]
    Man(ManArgs),
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
  hostage rekey --exposure-file exposure.txt  # the whole list of values removed hosts could read
  hostage rekey --dry-run -v              # one line per file, however many
  hostage rekey --commit                  # then git commit the re-keyed files (never pushes)

Every file under PATHS (default: the directory of .sops.yaml) that carries sops metadata and is
not ignored by git is compared with the creation rule sops would pick for it, per key group and by
recipient. Files that only gain recipients are re-wrapped (same data key, new key entries);
files that lose one are rotated (a new data key, every value re-encrypted) unless --no-rotate.
When recipients are removed, an exposure report lists the files and values they could read, so
you know which credentials to change.

Output fits a screen on any repo: a run that changes or fails on more than 20 files prints one
line per outcome (\"5000 files re-wrapped: +gnomeregan\", \"312 files failed: <cause>\" with a few
example paths) instead of one per file, and the exposure report shows its counts and the first
5 files per removed recipient. -v lists every file and the whole exposure report; --json always
has every file and the whole report; --exposure-file FILE writes the whole report (in every mode).
Identities are resolved before anything is checked or written: when none opens any file to change,
the run stops with one error naming the files' recipients and every identity source tried.

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

    /// Write nothing and need no private key: exit 3 if some file must be re-keyed or a file a
    /// rule covers is plaintext (for CI).
    #[arg(long)]
    pub check: bool,

    /// With --check: files that may stay plaintext under a rule.
    #[command(flatten)]
    pub allow: AllowArgs,
    /// Commit what the run changed.
    #[command(flatten)]
    pub commit: CommitArgs,

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

    /// One line per file (and the whole exposure report) even when a run touches many files.
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// Also write the whole exposure report (every file and value per removed recipient) to FILE,
    /// atomically.
    #[arg(long, value_name = "FILE")]
    pub exposure_file: Option<PathBuf>,
}

/// `hostage set FILE KEY`: one value from stdin into a sops file.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    pwgen -s 32 1 | hostage set secrets/hosts/web02/db.yaml db_password\n  \
    hostage set secrets/hosts/web02/db.yaml '[\"db\"][\"password\"]' < password.txt\n  \
    head -c 32 /dev/urandom | base64 | hostage set --dry-run secrets/app.env SESSION_KEY\n  \
    pwgen -s 32 1 | hostage set --commit secrets/hosts/web02/db.yaml db_password   # then git commit\n\n\
    The value is read from stdin (never from the command line), one trailing newline removed\n\
    unless --keep-newline. An existing file keeps its recipients and data key: only the value,\n\
    lastmodified and the MAC change (its MAC is checked first, so you need an identity that opens\n\
    it). An absent file is created for the recipients its .sops.yaml creation rule gives it, in\n\
    the format its extension says (*.sops files are YAML, as in the seed layout). Setting the\n\
    value a key already has writes nothing. No sops binary is run.\n\n\
    Exit codes: 0 done (or nothing to do), 1 error, 2 usage.")]
pub struct SetArgs {
    /// The sops file (inside the repository of .sops.yaml).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The key: `name` (top level) or sops' path form `["db"]["password"]`.
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Print what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit what the run changed.
    #[command(flatten)]
    pub commit: CommitArgs,
    /// Keep a trailing newline of the value (by default one is removed).
    #[arg(long)]
    pub keep_newline: bool,
    /// The .sops.yaml to follow (default: SOPS_CONFIG, else .sops.yaml here or in a parent).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The identities that open the file.
    #[command(flatten)]
    pub keys: RepoIdentityArgs,
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

/// `hostage man DIR`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages into (created if needed).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Arguments of `hostage completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print completions for.
    pub shell: clap_complete::Shell,
}

/// Options shared by the fleet verbs.
#[derive(Args, Debug)]
pub struct FleetArgs {
    /// Hosts: names from the inventory, or user@address[:port] (an ssh config alias works as
    /// the address).
    #[arg(value_name = "HOST", required_unless_present = "all")]
    pub hosts: Vec<String>,
    /// Every host of the inventory (deploy: every host with `infrastructure_key: true`).
    #[arg(long, conflicts_with = "hosts")]
    pub all: bool,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = hostage_remote::DEFAULT_JOBS, value_name = "N")]
    pub jobs: usize,
    /// Pin: the host key must have this fingerprint. `SHA256:…` alone with a single host, else
    /// `HOST=SHA256:…` (repeatable). A pin takes precedence over known_hosts.
    #[arg(long, value_name = "[HOST=]SHA256:…", value_parser = parse_expected_fingerprint)]
    pub expect_fingerprint: Vec<ExpectedFingerprint>,
    /// Accept a host that neither a pin nor known_hosts vouches for, and record its pin in the
    /// pin file. A key that contradicts a pin or known_hosts is still refused.
    #[arg(long)]
    pub trust_new: bool,
    /// Pin file (`NAME SHA256:…` lines) for hosts outside the inventory: read for pins, appended
    /// to by --trust-new. Inventory hosts are pinned in the inventory.
    #[arg(long, value_name = "FILE", default_value = "hostage.pins")]
    pub pins: PathBuf,
    /// How hosts are reached.
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Where the host's ed25519 public key file lives.
    #[arg(long, value_name = "PATH", default_value = hostage_remote::DEFAULT_HOST_KEY_PATH)]
    pub key_path: String,
    /// Per-host key file, e.g. on impermanence setups: `HOST=/persist/etc/ssh/…` (repeatable).
    #[arg(long, value_name = "HOST=PATH")]
    pub key_path_for: Vec<String>,
    /// Change nothing: fetch records no pins; deploy says what it would do and sends no key.
    #[arg(long)]
    pub dry_run: bool,
    /// One line per host even on more than 20 hosts (a larger run prints only the summary: one
    /// line per failure cause with its hosts and an example of what they said).
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// `hostage fetch`: fetch and verify the hosts' ed25519 keys and print their age recipients.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage fetch root@10.0.0.5 --expect-fingerprint SHA256:…\n  \
    hostage fetch root@web01 root@db01:2222 --known-hosts ~/.ssh/known_hosts\n  \
    hostage --json fetch root@new-host --trust-new --pins hostage.pins\n\n\
    Exit codes: 0 every host verified, 1 some host failed or was refused (or a pin could not be\n\
    recorded), 2 usage.")]
pub struct FetchArgs {
    /// Shared fleet options.
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// `hostage deploy`: install the shared infrastructure key on the hosts, safely.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage deploy root@web01 --key ~/.ssh/id_infrastructure\n  \
    hostage deploy admin@db01 --key id_infra --target /var/lib/infra/id --owner infra:infra\n  \
    hostage deploy root@web01 --key new_key --replace --dry-run\n\n\
    The key travels on stdin only and is verified on the host by its fingerprint.\n\
    Exit codes: 0 every host done, 1 some host failed or was refused (or a pin could not be\n\
    recorded), 2 usage.")]
pub struct DeployArgs {
    /// Shared fleet options.
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The private infrastructure key (OpenSSH ed25519, unencrypted) to deploy (default: the
    /// inventory's `recipients.infrastructure.private_key_file`).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Remote path of the deployed key (default: the inventory's `deploy_path`, else
    /// /root/id_infrastructure).
    #[arg(long, value_name = "PATH")]
    pub target: Option<String>,
    /// Owner of the deployed file (`user[:group]`); default: the writing user (root).
    #[arg(long, value_name = "USER[:GROUP]")]
    pub owner: Option<String>,
    /// Replace a different key already at the target (its fingerprint is reported).
    #[arg(long)]
    pub replace: bool,
}

/// `hostage onboard`: bring an inventory host into the secrets repo.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage onboard gnomeregan --dry-run                      # what would change\n  \
    hostage onboard gnomeregan --expect-fingerprint SHA256:…  # fingerprint read on the console\n  \
    hostage onboard gnomeregan --commit                       # then git commit what it changed\n  \
    hostage --inventory fleet.yaml --json onboard ironforge --trust-new\n\n\
    Fetches and verifies the host key (the inventory pin, --expect-fingerprint, known_hosts,\n\
    --trust-new, or a yes on the terminal after its fingerprint is shown; without a terminal a\n\
    host nothing vouches for is refused), saves pubkeys/HOST.pub, adds the host's anchor and the rules its `secrets:`\n\
    paths need to .sops.yaml, re-keys exactly the files that gain its recipients, deploys the\n\
    infrastructure key when the host gets it, and records the pin in the inventory. A host that\n\
    fails verification (e.g. a key that contradicts its pin) changes nothing. Running it again\n\
    does nothing.\n\n\
    Exit codes: 0 done (or nothing to do), 1 error, 2 usage.")]
pub struct OnboardArgs {
    /// The host, by its inventory name.
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit what the run changed.
    #[command(flatten)]
    pub commit: CommitArgs,
    /// The host key must have this fingerprint (for a host without a pin; a pinned host that
    /// shows a new key is `hostage rotate`'s).
    #[arg(long, value_name = "SHA256:…", value_parser = parse_fingerprint)]
    pub expect_fingerprint: Option<Fingerprint>,
    /// Accept a host that neither a pin nor known_hosts vouches for (its pin is recorded).
    #[arg(long)]
    pub trust_new: bool,
    /// The host does not exist yet: generate its ed25519 host key here, register it, and store
    /// the private key sops-encrypted in the repo (`hostage export-host-key` writes it out).
    #[arg(long, conflicts_with_all = ["trust_new", "expect_fingerprint"])]
    pub generate_host_key: bool,
    /// How hosts are reached.
    #[command(flatten)]
    pub ssh: SshArgs,
    /// The identities that open the repo's files.
    #[command(flatten)]
    pub keys: RepoIdentityArgs,
}

/// `hostage export-host-key`: write a generated host key as an `--extra-files` tree.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage onboard web02 --generate-host-key\n  \
    hostage export-host-key web02 ./extra\n  \
    nixos-anywhere --extra-files ./extra --flake .#web02 root@203.0.113.7\n\n\
    Decrypts the host-key backup (the inventory's backup_path, else the repo's: the seed's\n\
    secrets/host/HOST/ssh_host_ed25519_key.sops, or secrets/hosts/HOST/ssh_host_ed25519_key) with\n\
    your identities and writes it (0600) and its .pub under DIR at the host's host_key_path, e.g.\n\
    DIR/etc/ssh/ssh_host_ed25519_key. Delete DIR once the host is installed.")]
pub struct ExportHostKeyArgs {
    /// The host, by its inventory name.
    #[arg(value_name = "HOST")]
    pub host: String,
    /// The directory to write the tree into.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The identities that open the stored host key.
    #[command(flatten)]
    pub keys: RepoIdentityArgs,
}

/// `hostage offboard`: decommission a host.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage offboard gnomeregan --dry-run     # the .sops.yaml edits, the files, the exposure\n  \
    hostage offboard gnomeregan\n  \
    hostage --json offboard gnomeregan --keep-backup\n  \
    hostage offboard gnomeregan --commit     # then git commit what it changed (never pushes)\n  \
    hostage offboard ironforge --rotate-infra --new-key ~/.ssh/id_infrastructure.new\n\n\
    Removes the host's recipient from every rule and key group of .sops.yaml, its anchor or\n\
    header label, and the rules that existed only for it (their files fall to the rule that\n\
    catches them next; a file no rule would catch is refused, named). Every file the host could\n\
    read gets a new data key, and the exposure report lists what it could read: change those\n\
    credentials. pubkeys/HOST.pub, the host-key backup (unless --keep-backup) and the host's\n\
    inventory entry with its pin go last. No SSH: the host may be gone already. A host that\n\
    holds the infrastructure key is refused unless --rotate-infra --new-key FILE: then, once the\n\
    host is out, rotate-infra replaces that key on the remaining hosts (its phases resume when\n\
    the same command is run again). A stopped run is finished by the next; running it again\n\
    does nothing.\n\n\
    Exit codes: 0 done (or nothing to do), 1 error, 2 usage.")]
pub struct OffboardArgs {
    /// The host, by its inventory name.
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit what the run changed.
    #[command(flatten)]
    pub commit: CommitArgs,
    /// Keep the host-key backup (at the host's backup_path: by default the seed's
    /// secrets/host/HOST/ssh_host_ed25519_key.sops, or the path the repo already uses).
    #[arg(long)]
    pub keep_backup: bool,
    /// The host holds the infrastructure key: offboard it, then replace that key (rotate-infra
    /// with --new-key) on the remaining hosts.
    #[arg(long, requires = "new_key")]
    pub rotate_infra: bool,
    /// The new infrastructure key for --rotate-infra (OpenSSH ed25519, unencrypted).
    #[arg(long, value_name = "FILE", requires = "rotate_infra")]
    pub new_key: Option<PathBuf>,
    /// Delete the infrastructure key deployed on the host, when it is still reachable and
    /// verified by its pin (a host that cannot be reached is a warning).
    #[arg(long)]
    pub wipe_remote: bool,
    /// How hosts are reached (--rotate-infra, --wipe-remote).
    #[command(flatten)]
    pub ssh: SshArgs,
    /// The identities that open the repo's files.
    #[command(flatten)]
    pub keys: RepoIdentityArgs,
}

/// `hostage backup-host-key`: an existing host's identity, backed up in the secrets repo.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage backup-host-key gnomeregan --dry-run\n  \
    hostage backup-host-key gnomeregan\n  \
    hostage backup-host-key gnomeregan --commit   # then git commit the backup (never pushes)\n  \
    hostage rotate gnomeregan --from-backup --expect-fingerprint SHA256:…   # after a reinstall\n\n\
    Reaches the host verified by its pin, reads its private host key (the host_key_path without\n\
    .pub) as root (sudo -n when the login user is not root), checks it derives the pinned key,\n\
    and writes it to secrets/hosts/HOST/ssh_host_ed25519_key, sops-encrypted for the recipients\n\
    the .sops.yaml creation rule gives that path, as YAML whose one key `data` holds the key as a\n\
    literal block. The key never touches the local disk unencrypted and never appears in argv;\n\
    no sops binary is run. A backup that already holds the pinned key is left as it is; one that\n\
    holds another key is refused. Keep the backup's rule to the workstation (and the host).\n\n\
    Exit codes: 0 done (or nothing to do), 1 error, 2 usage.")]
pub struct BackupHostKeyArgs {
    /// The host, by its inventory name (it must be pinned: onboard it first).
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Read and check the key, print what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit what the run changed.
    #[command(flatten)]
    pub commit: CommitArgs,
    /// How hosts are reached.
    #[command(flatten)]
    pub ssh: SshArgs,
    /// The identities that open an existing backup.
    #[command(flatten)]
    pub keys: RepoIdentityArgs,
}

/// `hostage rotate`: replace a rebuilt or compromised host's recipient everywhere.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage rotate gnomeregan --expect-fingerprint SHA256:…   # the new key, read on the console\n  \
    hostage rotate gnomeregan --dry-run\n  \
    hostage rotate gnomeregan --from-backup --expect-fingerprint SHA256:…   # keep its identity\n\n\
    The host's key must differ from its pin. It is trusted through --expect-fingerprint, or a\n\
    yes on the terminal after the fingerprint is shown. The old recipient is replaced everywhere\n\
    in .sops.yaml, every file it could open gets a new data key (the exposure report lists them:\n\
    change those credentials), the infrastructure key is deployed again to an infrastructure\n\
    host, and pubkeys/HOST.pub and the pin are updated.\n\n\
    --from-backup restores the identity instead: the host-key backup (the inventory's backup_path,\n\
    else the seed's secrets/host/HOST/ssh_host_ed25519_key.sops with `data: |`, or hostage's\n\
    earlier secrets/hosts/HOST/ssh_host_ed25519_key) is decrypted in memory, must match the pin, and is\n\
    installed on the host at its host_key_path (private key 0600 root, .pub beside it) over SSH,\n\
    on stdin only, verified on the host before and after the rename. The host is reached with the\n\
    key it presents now (--expect-fingerprint, or a yes on the terminal). .sops.yaml, the files\n\
    and the pin do not change. Restart sshd on the host afterwards; hostage does not.\n\n\
    Exit codes: 0 done (or nothing to do), 1 error, 2 usage.")]
pub struct RotateArgs {
    /// The host, by its inventory name.
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Restore the host's backed-up key (from onboard --generate-host-key) instead of replacing it.
    #[arg(long)]
    pub from_backup: bool,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit what the run changed.
    #[command(flatten)]
    pub commit: CommitArgs,
    /// The fingerprint the host presents now (else you are asked on the terminal).
    #[arg(long, value_name = "SHA256:…", value_parser = parse_fingerprint)]
    pub expect_fingerprint: Option<Fingerprint>,
    /// How hosts are reached.
    #[command(flatten)]
    pub ssh: SshArgs,
    /// The identities that open the repo's files.
    #[command(flatten)]
    pub keys: RepoIdentityArgs,
}

/// `hostage rotate-infra`: a new infrastructure key, with no window where a host cannot decrypt.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    ssh-keygen -t ed25519 -N '' -f ~/.ssh/id_infrastructure.new\n  \
    hostage rotate-infra --new-key ~/.ssh/id_infrastructure.new\n\n\
    Phases: (1) add the new recipient next to the old one and re-key; (2) deploy the new key to\n\
    every infrastructure host and verify it; (3) remove the old recipient and rotate the data\n\
    keys; (4) point the inventory at the new key (destroy the old one yourself). Progress is saved\n\
    after each phase: if a host cannot be reached in phase 2 the run stops before phase 3 (every\n\
    host still decrypts with the old key) and the same command resumes it later.\n\n\
    Exit codes: 0 every phase done, 1 error or stopped in phase 2, 2 usage.")]
pub struct RotateInfraArgs {
    /// Print what each phase would do (hosts are reached and verified); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit what the run changed.
    #[command(flatten)]
    pub commit: CommitArgs,
    /// The new private key (OpenSSH ed25519, unencrypted).
    #[arg(long, value_name = "FILE")]
    pub new_key: PathBuf,
    /// How hosts are reached.
    #[command(flatten)]
    pub ssh: SshArgs,
    /// The identities that open the repo's files.
    #[command(flatten)]
    pub keys: RepoIdentityArgs,
}

/// `hostage rotate-key NAME`: replace any named non-host key.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    age-keygen -o ~/.config/sops/age/workstation-2026.txt\n  \
    hostage rotate-key workstation --new-identity ~/.config/sops/age/workstation-2026.txt --dry-run\n  \
    hostage rotate-key workstation --new-identity ~/.config/sops/age/workstation-2026.txt --commit\n  \
    hostage rotate-key infrastructure --new-identity ~/.ssh/id_infrastructure.new\n  \
    hostage rotate-key alice --new-recipient age1...   # a colleague's key you do not hold\n\n\
    NAME is `workstation`, `infrastructure`, or a name .sops.yaml gives a recipient (an anchor or a\n\
    header label such as `# alice: age1...`); hosts are rotated with `hostage rotate HOST`.\n\n\
    Phases: (1) add the new recipient next to the old one (under NAME_next) and re-key; (2) for\n\
    infrastructure, deploy the new key to every infrastructure host and verify it (this is\n\
    `hostage rotate-infra`); otherwise prove the new identity alone opens every file the old key is\n\
    on (in memory; nothing to prove with --new-recipient); (3) remove the old recipient, so\n\
    .sops.yaml reads as before with only the key replaced, and rotate the data keys; (4) the\n\
    inventory names the new key (workstation: recipient and identity). Progress is saved after\n\
    each phase; the same command resumes a stopped run, and changes nothing once it is done.\n\n\
    Exit codes: 0 every phase done (or nothing to do), 1 error or stopped in phase 2, 2 usage.")]
pub struct RotateKeyArgs {
    /// The key: workstation, infrastructure, or a recipient's name in .sops.yaml.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Print what each phase would do; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit what the run changed.
    #[command(flatten)]
    pub commit: CommitArgs,
    /// The new key: an age identity file or an unencrypted OpenSSH ed25519 private key (its
    /// recipient is derived from it). For infrastructure, the OpenSSH key to deploy.
    #[arg(
        long,
        value_name = "FILE",
        visible_alias = "new-key",
        conflicts_with = "new_recipient"
    )]
    pub new_identity: Option<PathBuf>,
    /// The new key as an age recipient, for a named key whose private half you do not hold
    /// (nothing can prove it; its holder checks they decrypt).
    #[arg(long, value_name = "age1…")]
    pub new_recipient: Option<String>,
    /// How hosts are reached (infrastructure).
    #[command(flatten)]
    pub ssh: SshArgs,
    /// The identities that open the repo's files.
    #[command(flatten)]
    pub keys: RepoIdentityArgs,
}

/// `hostage status`: hosts, recipients, drift and who can read what.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage status\n  \
    hostage status gnomeregan\n  \
    hostage status --online --known-hosts ~/.ssh/known_hosts\n  \
    hostage --json status | jq .drift\n\n\
    Needs no private key: file recipients are read from their sops metadata. A host reads a file\n\
    when its pinned recipient is on it, or when it gets the infrastructure key and that is on it.\n\
    Recipients are named by .sops.yaml anchors, its header labels (# name: age1...) and\n\
    pubkeys/NAME.pub; one the inventory does not know (a decommissioned host still in the rules)\n\
    is drift. With HOST: that host, its files and the drift about them.\n\n\
    Exit codes: 0 everything agrees, 1 error, 3 drift found (listed with what to run).")]
pub struct StatusArgs {
    /// Only this host (by its inventory name): its files and the drift about them.
    #[arg(value_name = "HOST")]
    pub host: Option<String>,
    /// Also reach every host and verify its key (nothing is recorded).
    #[arg(long)]
    pub online: bool,
    /// Files that may stay plaintext under a rule.
    #[command(flatten)]
    pub allow: AllowArgs,
    /// How hosts are reached (with --online).
    #[command(flatten)]
    pub ssh: SshArgs,
}

const CHECK_EXAMPLES: &str = "\
Examples:
  hostage check                            # in the secrets repo, or in CI (no private key needed)
  hostage check --allow '*.template' --allow 'secrets/examples/**'
  hostage --json check | jq .plaintext

Checks, in one run: files a creation rule covers that carry no sops metadata (plaintext secrets
about to be committed; git-ignored files are skipped), the .sops.yaml lints, age recipients on a
rule or a file that nothing names (no anchor, no header label, not in the inventory), files that
lag behind .sops.yaml or cannot be planned, and, when an inventory describes this repository
(--inventory, HOSTAGE_INVENTORY or inventory/fleet.yaml here), everything `hostage status` finds
offline.

Files that may stay plaintext under a rule: *.nix, *.pub, *.md, .gitignore, .gitattributes and
.gitkeep always, plus every --allow GLOB. A glob without / matches a file name anywhere; with /
it matches the path from the .sops.yaml directory; * and ? stay inside a directory, ** crosses
them.

For pre-commit users, the repository ships a hook (id: hostage-check):
  repos:
    - repo: <hostage's git URL>
      rev: <a hostage release tag>
      hooks:
        - id: hostage-check

Exit codes: 0 nothing found, 1 error, 2 usage error, 3 findings (each listed with what to do).";

/// Arguments of `hostage check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The .sops.yaml to follow (default: the inventory's repository, else SOPS_CONFIG, else
    /// .sops.yaml here or in a parent).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Files that may stay plaintext under a rule.
    #[command(flatten)]
    pub allow: AllowArgs,
}

/// `--commit`, shared by the verbs that change the secrets repository.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Then commit exactly the files this run changed in the secrets repository, with a message
    /// in the conventional style (never pushes). Refused, before anything changes, when the
    /// index already holds staged changes.
    #[arg(long, conflicts_with = "dry_run")]
    pub commit: bool,
}

/// The plaintext guard's allow-list, shared by `check`, `status` and `rekey --check`.
#[derive(Debug, Args)]
pub struct AllowArgs {
    /// A file that may stay plaintext although a creation rule covers it, as a glob
    /// ('*.template', 'secrets/examples/**'); repeatable, added to the defaults.
    #[arg(long = "allow", value_name = "GLOB")]
    pub patterns: Vec<String>,
}

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

impl SshArgs {
    /// `--known-hosts`, made absolute (ssh runs from another directory).
    pub fn known_hosts(&self) -> Option<PathBuf> {
        self.known_hosts.as_deref().map(hostage_workflows::absolute)
    }

    /// `--ssh-config`, made absolute.
    pub fn ssh_config(&self) -> Option<PathBuf> {
        self.ssh_config.as_deref().map(hostage_workflows::absolute)
    }

    /// `--timeout`, at least one second.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }
}

/// A fingerprint to expect, with the host it is for when several hosts are given
/// (`--expect-fingerprint [HOST=]SHA256:…` of the fleet verbs).
#[derive(Clone, Debug)]
pub struct ExpectedFingerprint {
    /// The host it is for (`None`: the only host given).
    pub host: Option<String>,
    /// The fingerprint.
    pub fingerprint: Fingerprint,
}

/// Parses `SHA256:…` (a bad fingerprint is a usage error, exit code 2, in every verb).
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    Fingerprint::parse(text).map_err(|e| e.to_string())
}

/// Parses `[HOST=]SHA256:…`.
pub fn parse_expected_fingerprint(text: &str) -> Result<ExpectedFingerprint, String> {
    let (host, fingerprint) = match text.rsplit_once('=') {
        Some((host, fingerprint)) => (Some(host.to_owned()), fingerprint),
        None => (None, text),
    };
    Ok(ExpectedFingerprint {
        host,
        fingerprint: parse_fingerprint(fingerprint)?,
    })
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
