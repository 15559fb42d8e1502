//! `hostage fetch` and `hostage deploy`: the fleet verbs. Results go to stdout (text, or one JSON
//! object per line with `--json`), one progress bar for the fleet goes to stderr.

// Printing results is this module's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hostage_remote::{
    DeployAction, DeployOptions, DeployedHost, FetchedHost, Fingerprint, FleetOptions, HostError,
    HostResult, HostSpec, HostTarget, InfrastructureKey, PinFile,
};
use serde_json::json;

use hostage_workflows::{FleetInventory, InventoryPins};

/// Exit code when some host failed.
const EXIT_HOST_FAILED: u8 = 1;
/// Exit code for usage errors.
const EXIT_USAGE: u8 = 2;
/// Exit code after Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

/// Options shared by the fleet verbs.
#[derive(clap::Args, Debug)]
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
    /// Seconds allowed per host, connection included.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
    /// Pin: the host key must have this fingerprint. `SHA256:…` alone with a single host, else
    /// `HOST=SHA256:…` (repeatable). A pin takes precedence over known_hosts.
    #[arg(long, value_name = "[HOST=]SHA256:…")]
    pub expect_fingerprint: Vec<String>,
    /// Accept a host that neither a pin nor known_hosts vouches for, and record its pin in the
    /// pin file. A key that contradicts a pin or known_hosts is still refused.
    #[arg(long)]
    pub trust_new: bool,
    /// Pin file (`NAME SHA256:…` lines) for hosts outside the inventory: read for pins, appended
    /// to by --trust-new. Inventory hosts are pinned in the inventory.
    #[arg(long, value_name = "FILE", default_value = "hostage.pins")]
    pub pins: PathBuf,
    /// known_hosts file to trust instead of ssh's defaults.
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// ssh config to use instead of ~/.ssh/config and /etc/ssh/ssh_config.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Where the host's ed25519 public key file lives.
    #[arg(long, value_name = "PATH", default_value = hostage_remote::DEFAULT_HOST_KEY_PATH)]
    pub key_path: String,
    /// Per-host key file, e.g. on impermanence setups: `HOST=/persist/etc/ssh/…` (repeatable).
    #[arg(long, value_name = "HOST=PATH")]
    pub key_path_for: Vec<String>,
    /// Change nothing: fetch records no pins; deploy says what it would do and sends no key.
    #[arg(long)]
    pub dry_run: bool,
}

/// `hostage fetch`: fetch and verify the hosts' ed25519 keys and print their age recipients.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage fetch root@10.0.0.5 --expect-fingerprint SHA256:…\n  \
    hostage fetch root@web01 root@db01:2222 --known-hosts ~/.ssh/known_hosts\n  \
    hostage --json fetch root@new-host --trust-new --pins hostage.pins\n\n\
    Exit codes: 0 every host verified, 1 some host failed or was refused, 2 usage.")]
pub struct FetchArgs {
    /// Shared fleet options.
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// `hostage deploy`: install the shared infrastructure key on the hosts, safely.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage deploy root@web01 --key ~/.ssh/id_infrastructure\n  \
    hostage deploy admin@db01 --key id_infra --target /var/lib/infra/id --owner infra:infra\n  \
    hostage deploy root@web01 --key new_key --replace --dry-run\n\n\
    The key travels on stdin only and is verified on the host by its fingerprint.\n\
    Exit codes: 0 every host done, 1 some host failed or was refused, 2 usage.")]
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

/// A usage problem found after clap: reported with exit code 2.
struct Usage(String);

/// Runs `hostage fetch`.
pub fn run_fetch(
    args: &FetchArgs,
    json: bool,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut inventory = FleetInventory::find(inventory)?;
    let Prepared {
        targets,
        options,
        mut pins,
        names,
    } = match prepare(&args.fleet, inventory.as_ref(), Verb::Fetch) {
        Ok(prepared) => prepared,
        Err(Usage(message)) => return Ok(usage(&message)),
    };
    if let Some(inventory) = &inventory {
        inventory.refuse_pin_changes(&targets, &names)?;
    }
    let mut recorder = InventoryPins::new(inventory.as_mut(), names, &mut pins);
    let printer = Printer::new(targets.len(), json);
    let on_done = |result: &HostResult<FetchedHost>| printer.fetched(result);
    let outcome = runtime()?.block_on(async {
        tokio::select! {
            results = hostage_remote::fetch(targets, &options, &mut recorder, &on_done) => Some(results),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(results) = outcome else {
        return Ok(printer.interrupted());
    };
    let results = results.context("cannot start the run")?;
    if !options.dry_run {
        for host in results.iter().filter_map(|r| r.outcome.as_ref().ok()) {
            if let Err(e) = recorder.record_verified(host) {
                crate::output::error(&format!("cannot record the pin of {}: {e}", host.spec));
            }
        }
    }
    Ok(printer.summary(
        results
            .iter()
            .map(|r| (&r.target, r.outcome.as_ref().err())),
    ))
}

/// Runs `hostage deploy`.
pub fn run_deploy(
    args: &DeployArgs,
    json: bool,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut inventory = FleetInventory::find(inventory)?;
    let Prepared {
        targets,
        options,
        mut pins,
        names,
    } = match prepare(&args.fleet, inventory.as_ref(), Verb::Deploy) {
        Ok(prepared) => prepared,
        Err(Usage(message)) => return Ok(usage(&message)),
    };
    if let Some(inventory) = &inventory {
        inventory.refuse_pin_changes(&targets, &names)?;
    }
    let infrastructure = inventory
        .as_ref()
        .and_then(|i| i.inventory.infrastructure.clone());
    let key = match (&args.key, &inventory) {
        (Some(path), _) => InfrastructureKey::load(path).with_context(|| {
            format!("cannot use {} as the infrastructure key", path.display())
        })?,
        (None, Some(inventory)) if infrastructure.is_some() => {
            let mut passphrases = crate::passphrase::CliPassphrases::new(None)?;
            inventory.infrastructure_key(&[], &mut passphrases)?
        }
        _ => {
            return Ok(usage(
                "name the infrastructure key with --key FILE (or in the inventory's recipients.infrastructure)",
            ))
        }
    };
    let target = args
        .target
        .clone()
        .or_else(|| infrastructure.as_ref().map(|i| i.deploy_path.clone()))
        .unwrap_or_else(|| hostage_remote::DEFAULT_DEPLOY_PATH.to_owned());
    let mut recorder = InventoryPins::new(inventory.as_mut(), names, &mut pins);
    let deploy = DeployOptions {
        target,
        owner: args.owner.clone(),
        replace: args.replace,
    };
    let printer = Printer::new(targets.len(), json);
    let on_done = |result: &HostResult<DeployedHost>| printer.deployed(result);
    let outcome = runtime()?.block_on(async {
        tokio::select! {
            results = hostage_remote::deploy(targets, &options, &mut recorder, &key, &deploy, &on_done) => Some(results),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(results) = outcome else {
        return Ok(printer.interrupted());
    };
    let results = results.context("cannot start the run")?;
    if !options.dry_run {
        for done in results.iter().filter_map(|r| r.outcome.as_ref().ok()) {
            if let Err(e) = recorder.record_verified(&done.host) {
                crate::output::error(&format!("cannot record the pin of {}: {e}", done.host.spec));
            }
        }
    }
    Ok(printer.summary(
        results
            .iter()
            .map(|r| (&r.target, r.outcome.as_ref().err())),
    ))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// Which verb the hosts are for (`--all` means every host for fetch, infrastructure hosts for deploy).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Fetch,
    Deploy,
}

/// What a fleet verb runs on.
struct Prepared {
    targets: Vec<HostTarget>,
    options: FleetOptions,
    pins: PinFile,
    /// Host spec text → inventory host name, for targets taken from the inventory.
    names: HashMap<String, String>,
}

/// Turns the arguments into targets (inventory hosts by name, or `user@address[:port]`), options
/// and the pin file.
fn prepare(
    args: &FleetArgs,
    inventory: Option<&FleetInventory>,
    verb: Verb,
) -> Result<Prepared, Usage> {
    if args.jobs == 0 || args.timeout == 0 {
        return Err(Usage("--jobs and --timeout must be at least 1".into()));
    }
    let pins =
        PinFile::load(&args.pins).map_err(|e| Usage(format!("{}: {e}", args.pins.display())))?;
    let mut specs: Vec<(String, HostSpec)> = Vec::new();
    let mut targets: Vec<HostTarget> = Vec::new();
    let mut names = HashMap::new();
    let mut add_inventory_host = |host: &hostage_inventory::Host,
                                  specs: &mut Vec<(String, HostSpec)>,
                                  targets: &mut Vec<HostTarget>| {
        let target = FleetInventory::target(host);
        names.insert(target.spec.to_string(), host.name.as_str().to_owned());
        specs.push((host.name.as_str().to_owned(), target.spec.clone()));
        targets.push(target);
    };
    if args.all {
        let Some(inventory) = inventory else {
            return Err(Usage(format!(
                "--all needs an inventory: pass --inventory FILE, set HOSTAGE_INVENTORY, or run where {} exists",
                hostage_workflows::DEFAULT_INVENTORY
            )));
        };
        for host in &inventory.inventory.hosts {
            if verb == Verb::Deploy && !host.infrastructure_key {
                continue;
            }
            add_inventory_host(host, &mut specs, &mut targets);
        }
        if targets.is_empty() {
            return Err(Usage(format!(
                "{} has no host to work on",
                inventory.inventory.path.display()
            )));
        }
    }
    for given in &args.hosts {
        if let Some(host) = inventory.and_then(|i| i.inventory.host(given)) {
            add_inventory_host(host, &mut specs, &mut targets);
            continue;
        }
        let spec = HostSpec::parse(given).map_err(|e| Usage(e.to_string()))?;
        targets.push(HostTarget {
            spec: spec.clone(),
            pin: pins.get(&spec.name()).cloned(),
            key_path: args.key_path.clone(),
        });
        specs.push((given.clone(), spec));
    }
    let specs: Vec<(&str, HostSpec)> = specs.iter().map(|(g, s)| (g.as_str(), s.clone())).collect();
    for pin in &args.expect_fingerprint {
        let (host, fingerprint) = match pin.rsplit_once('=') {
            Some((host, fp)) => (Some(host), fp),
            None => (None, pin.as_str()),
        };
        let fingerprint = Fingerprint::parse(fingerprint).map_err(|e| Usage(e.to_string()))?;
        let indexes = matching(&specs, host, "--expect-fingerprint")?;
        for index in indexes {
            targets[index].pin = Some(fingerprint.clone());
        }
    }
    for entry in &args.key_path_for {
        let Some((host, path)) = entry.split_once('=') else {
            return Err(Usage(format!("--key-path-for `{entry}`: write HOST=PATH")));
        };
        for index in matching(&specs, Some(host), "--key-path-for")? {
            targets[index].key_path = path.to_owned();
        }
    }
    let options = FleetOptions {
        ssh_config: args.ssh_config.as_ref().map(|p| absolute(p)),
        known_hosts: args.known_hosts.as_ref().map(|p| absolute(p)),
        trust_new: args.trust_new,
        jobs: args.jobs,
        timeout: Duration::from_secs(args.timeout),
        dry_run: args.dry_run,
    };
    Ok(Prepared {
        targets,
        options,
        pins,
        names,
    })
}

/// The hosts an option names: `None` means "the only host".
fn matching(
    specs: &[(&str, HostSpec)],
    host: Option<&str>,
    option: &str,
) -> Result<Vec<usize>, Usage> {
    let Some(host) = host else {
        if specs.len() == 1 {
            return Ok(vec![0]);
        }
        return Err(Usage(format!(
            "{option} without HOST= is only allowed with a single host; write HOST=…"
        )));
    };
    let found: Vec<usize> = specs
        .iter()
        .enumerate()
        .filter(|(_, (given, spec))| {
            *given == host
                || spec.name() == host
                || spec.address == host
                || spec.to_string() == host
        })
        .map(|(index, _)| index)
        .collect();
    if found.is_empty() {
        return Err(Usage(format!(
            "{option}: `{host}` is none of the hosts given"
        )));
    }
    Ok(found)
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Prints results as they arrive and keeps the fleet's progress bar.
struct Printer {
    bar: indicatif::ProgressBar,
    json: bool,
}

impl Printer {
    fn new(hosts: usize, json: bool) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(hosts as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} hosts {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar, json }
    }

    /// Prints a result line on stdout; when stdout is not the terminal (JSON, a pipe), the
    /// terminal still sees a short per-host line above the bar on stderr.
    fn emit(&self, line: String, short: String) {
        self.bar.suspend(|| out(&line));
        if self.json || !std::io::stdout().is_terminal() {
            self.bar.println(short);
        }
        self.bar.inc(1);
    }

    fn fetched(&self, result: &HostResult<FetchedHost>) {
        let line = match (&result.outcome, self.json) {
            (Ok(host), true) => json!({"type": "host", "data": fetched_json(host)}).to_string(),
            (Ok(host), false) => format!(
                "ok    {}  {}  {}  (verified by {}, {})",
                host.spec, host.fingerprint, host.recipient, host.verified_by, host.key_path
            ),
            (Err(error), true) => error_json(&result.target, error),
            (Err(error), false) => error_text(&result.target, error),
        };
        let short = match &result.outcome {
            Ok(host) => format!("ok    {}  {}", host.spec, host.fingerprint),
            Err(error) => short_error(&result.target, error),
        };
        self.emit(line, short);
    }

    fn deployed(&self, result: &HostResult<DeployedHost>) {
        let line = match (&result.outcome, self.json) {
            (Ok(done), true) => {
                let mut data = fetched_json(&done.host);
                data["deploy"] = json!({
                    "target": done.target,
                    "action": done.action.as_str(),
                    "fingerprint": done.fingerprint.as_str(),
                    "old_fingerprint": match &done.action {
                        DeployAction::Replaced { old } | DeployAction::WouldReplace { old } => Some(old),
                        _ => None,
                    },
                });
                json!({"type": "host", "data": data}).to_string()
            }
            (Ok(done), false) => {
                let what = match &done.action {
                    DeployAction::Written => "written".to_owned(),
                    DeployAction::Unchanged => "already in place, not rewritten".to_owned(),
                    DeployAction::Replaced { old } => format!("replaced (was {old})"),
                    DeployAction::WouldWrite => "would be written (dry run)".to_owned(),
                    DeployAction::WouldReplace { old } => {
                        format!("would replace {old} (dry run)")
                    }
                };
                format!(
                    "ok    {}  {} {}: {what}  (host key {} verified by {})",
                    done.host.spec,
                    done.target,
                    done.fingerprint,
                    done.host.fingerprint,
                    done.host.verified_by
                )
            }
            (Err(error), true) => error_json(&result.target, error),
            (Err(error), false) => error_text(&result.target, error),
        };
        let short = match &result.outcome {
            Ok(done) => format!("ok    {}  {}", done.host.spec, done.action.as_str()),
            Err(error) => short_error(&result.target, error),
        };
        self.emit(line, short);
    }

    fn summary<'a>(
        &self,
        results: impl Iterator<Item = (&'a HostTarget, Option<&'a HostError>)>,
    ) -> ExitCode {
        self.bar.finish_and_clear();
        let mut ok = 0usize;
        let mut failed = Vec::new();
        for (target, error) in results {
            match error {
                None => ok += 1,
                Some(error) => failed.push((target.spec.to_string(), error.kind())),
            }
        }
        if self.json {
            let failed: Vec<_> = failed
                .iter()
                .map(|(host, kind)| json!({"host": host, "kind": kind}))
                .collect();
            out(&json!({"type": "summary", "data": {"ok": ok, "failed": failed}}).to_string());
        } else if failed.is_empty() {
            out(&format!("{ok} host(s) ok"));
        } else {
            let names: Vec<String> = failed
                .iter()
                .map(|(host, kind)| format!("{host} ({kind})"))
                .collect();
            out(&format!(
                "{ok} host(s) ok, {} failed: {}",
                failed.len(),
                names.join(", ")
            ));
        }
        if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_HOST_FAILED)
        }
    }

    fn interrupted(&self) -> ExitCode {
        self.bar.finish_and_clear();
        eprintln!("interrupted: every ssh connection of this run was closed");
        ExitCode::from(EXIT_INTERRUPTED)
    }
}

/// One line on stdout; a closed pipe (`hostage fetch … | head`) is not an error worth a panic.
fn out(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn fetched_json(host: &FetchedHost) -> serde_json::Value {
    json!({
        "name": host.spec.name(),
        "host": host.spec.to_string(),
        "address": host.spec.address,
        "port": host.spec.port,
        "user": host.spec.user,
        "fingerprint": host.fingerprint.as_str(),
        "recipient": host.recipient.to_string(),
        "verified_by": host.verified_by.as_str(),
        "key_path": host.key_path,
        "error": null,
    })
}

fn error_json(target: &HostTarget, error: &HostError) -> String {
    json!({"type": "host", "data": {
        "name": target.spec.name(),
        "host": target.spec.to_string(),
        "address": target.spec.address,
        "port": target.spec.port,
        "user": target.spec.user,
        "key_path": target.key_path,
        "error": {"kind": error.kind(), "refused": error.is_refusal(), "message": error.to_string()},
    }})
    .to_string()
}

fn short_error(target: &HostTarget, error: &HostError) -> String {
    let label = if error.is_refusal() {
        "REFUSED"
    } else {
        "FAIL"
    };
    format!("{label:<5} {}  {}", target.spec, error.kind())
}

fn error_text(target: &HostTarget, error: &HostError) -> String {
    let label = if error.is_refusal() {
        "REFUSED"
    } else {
        "FAIL"
    };
    let message = error.to_string();
    let message = message
        .strip_prefix("REFUSED: ")
        .unwrap_or(&message)
        .to_owned();
    format!("{label:<5} {}: {message}", target.spec)
}
