//! `hostage fetch` and `hostage deploy`: the fleet verbs. Results go to stdout (text, or one JSON
//! object per line with `--json`), one progress bar for the fleet goes to stderr.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hostage_remote::{
    DeployAction, DeployOptions, DeployedHost, FetchedHost, FleetOptions, HostError, HostResult,
    HostSpec, HostTarget, InfrastructureKey, PinFile,
};
use serde_json::json;

use hostage_workflows::fleet::FleetRun;
use hostage_workflows::{FleetInventory, InventoryPins};

use crate::cli::{DeployArgs, FetchArgs, FleetArgs};

/// A usage problem found after clap: reported with exit code 2.
struct Usage(String);

/// Runs `hostage fetch`.
pub fn run_fetch(
    args: &FetchArgs,
    json: bool,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (mut inventory, prepared) = match start(&args.fleet, inventory, Verb::Fetch)? {
        Ok(started) => started,
        Err(code) => return Ok(code),
    };
    let Prepared {
        targets,
        options,
        mut pins,
        names,
    } = prepared;
    let mut recorder = InventoryPins::new(inventory.as_mut(), names, &mut pins);
    let printer = Printer::new(targets.len(), json, args.fleet.verbose);
    let on_done = |result: &HostResult<FetchedHost>| printer.fetched(result);
    let run = hostage_workflows::fleet::fetch(targets, &options, &mut recorder, &on_done)
        .context("cannot start the run")?;
    Ok(printer.finished(run))
}

/// Runs `hostage deploy`.
pub fn run_deploy(
    args: &DeployArgs,
    json: bool,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (mut inventory, prepared) = match start(&args.fleet, inventory, Verb::Deploy)? {
        Ok(started) => started,
        Err(code) => return Ok(code),
    };
    let Prepared {
        targets,
        options,
        mut pins,
        names,
    } = prepared;
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
    let printer = Printer::new(targets.len(), json, args.fleet.verbose);
    let on_done = |result: &HostResult<DeployedHost>| printer.deployed(result);
    let run =
        hostage_workflows::fleet::deploy(targets, &options, &mut recorder, &key, &deploy, &on_done)
            .context("cannot start the run")?;
    Ok(printer.finished(run))
}

fn usage(message: &str) -> ExitCode {
    crate::output::error(message);
    crate::exit::code(crate::exit::USAGE)
}

/// The inventory (when there is one) and what a fleet verb runs on; a usage problem is printed
/// and its exit code returned instead.
fn start(
    args: &FleetArgs,
    inventory: Option<&Path>,
    verb: Verb,
) -> anyhow::Result<Result<(Option<FleetInventory>, Prepared), ExitCode>> {
    let inventory = FleetInventory::find(inventory)?;
    let prepared = match prepare(args, inventory.as_ref(), verb) {
        Ok(prepared) => prepared,
        Err(Usage(message)) => return Ok(Err(usage(&message))),
    };
    // Only `rotate` (and onboard of an unpinned host) may change a pin: refuse before any host.
    if let Some(inventory) = &inventory {
        inventory.refuse_pin_changes(&prepared.targets, &prepared.names)?;
    }
    Ok(Ok((inventory, prepared)))
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
    if args.jobs == 0 || args.ssh.timeout == 0 {
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
        let indexes = matching(&specs, pin.host.as_deref(), "--expect-fingerprint")?;
        for index in indexes {
            targets[index].pin = Some(pin.fingerprint.clone());
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
        ssh_config: args.ssh.ssh_config(),
        known_hosts: args.ssh.known_hosts(),
        trust_new: args.trust_new,
        jobs: args.jobs,
        timeout: Duration::from_secs(args.ssh.timeout),
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

/// Up to this many hosts, a text run prints one line per host as it finishes; larger runs print
/// only the summary, one line per failure cause with its hosts, unless `-v` (said in `--help`).
pub(crate) const PER_HOST_LINES: usize = 20;
/// Hosts named per failure cause in the summary; the rest are counted.
const HOSTS_PER_CAUSE: usize = 10;

/// Prints results as they arrive and keeps the fleet's progress bar.
struct Printer {
    bar: indicatif::ProgressBar,
    json: bool,
    /// One line per host (JSON, `-v`, or a run of at most [`PER_HOST_LINES`] hosts).
    per_host: bool,
}

impl Printer {
    fn new(hosts: usize, json: bool, verbose: bool) -> Self {
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
        Self {
            bar,
            json,
            per_host: json || verbose || hosts <= PER_HOST_LINES,
        }
    }

    /// Prints a result line on stdout; when stdout is not the terminal (JSON, a pipe), the
    /// terminal still sees a short per-host line above the bar on stderr.
    fn emit(&self, line: String, short: String) {
        if !self.per_host {
            self.bar.inc(1);
            return;
        }
        self.bar.suspend(|| crate::output::stream_line(&line));
        if self.json || !std::io::stdout().is_terminal() {
            self.bar.println(short);
        }
        self.bar.inc(1);
    }

    fn fetched(&self, result: &HostResult<FetchedHost>) {
        let line = match (&result.outcome, self.json) {
            (Ok(host), true) => crate::output::json_line("host", fetched_json(host)),
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
                crate::output::json_line("host", data)
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

    /// The last lines: how many hosts are ok and, per failure cause, how many failed and which
    /// (with JSON, the same as `failed` per host and `causes` grouped).
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
                Some(error) => failed.push(FailedHost {
                    host: target.spec.to_string(),
                    kind: error.kind(),
                    refused: error.is_refusal(),
                    message: error.to_string(),
                }),
            }
        }
        let causes = failure_causes(&failed);
        if self.json {
            let failed: Vec<_> = failed
                .iter()
                .map(|f| json!({"host": f.host, "kind": f.kind}))
                .collect();
            let causes = causes_json(&causes);
            crate::output::stream_line(&crate::output::json_line(
                "summary",
                json!({"ok": ok, "failed": failed, "causes": causes}),
            ));
        } else if failed.is_empty() {
            crate::output::stream_line(&format!("{ok} host(s) ok"));
        } else {
            crate::output::stream_line(&format!("{ok} host(s) ok, {} failed", failed.len()));
            for line in cause_lines(&causes, !self.per_host) {
                crate::output::stream_line(&line);
            }
            let every_host = if self.per_host {
                ""
            } else {
                " (`-v` or `--json`: one line per host)"
            };
            crate::output::stream_line(&format!(
                "next: fix each cause above, then run again on the failed hosts{every_host}"
            ));
        }
        if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            crate::exit::code(crate::exit::ERROR)
        }
    }

    /// The end of a run: the pins that could not be recorded, then the summary (or the note
    /// that the run was interrupted).
    fn finished<T>(&self, run: FleetRun<T>) -> ExitCode {
        match run {
            FleetRun::Interrupted => self.interrupted(),
            FleetRun::Finished {
                results,
                pin_errors,
            } => {
                for error in &pin_errors {
                    crate::output::error(error);
                }
                let summary = self.summary(
                    results
                        .iter()
                        .map(|r| (&r.target, r.outcome.as_ref().err())),
                );
                with_pin_errors(summary, &pin_errors)
            }
        }
    }

    fn interrupted(&self) -> ExitCode {
        self.bar.finish_and_clear();
        crate::output::note("interrupted: every ssh connection of this run was closed");
        crate::exit::code(crate::exit::INTERRUPTED)
    }
}

/// The exit code of a finished run: the summary's, but an error whenever a verified host's pin
/// could not be recorded (the inventory's backstop refusing a pin change, or a write that
/// failed): the run did not do what it said, so a script must not carry on as if it had.
fn with_pin_errors(summary: ExitCode, pin_errors: &[String]) -> ExitCode {
    if pin_errors.is_empty() {
        summary
    } else {
        crate::exit::code(crate::exit::ERROR)
    }
}

/// One host a fleet verb failed on.
pub(crate) struct FailedHost {
    /// The host as given (spec or inventory name).
    pub(crate) host: String,
    /// [`HostError::kind`].
    pub(crate) kind: &'static str,
    /// [`HostError::is_refusal`].
    pub(crate) refused: bool,
    /// The error's text.
    pub(crate) message: String,
}

/// The hosts that failed for one reason ([`HostError::kind`]).
pub(crate) struct Cause<'a> {
    kind: &'static str,
    refused: bool,
    hosts: Vec<&'a str>,
    /// The first host's error text, as an example of what they said.
    example: &'a str,
}

/// The failed hosts grouped by the kind of their error, the biggest group first (then by kind,
/// and hosts by name, so the order does not depend on which host finished first).
pub(crate) fn failure_causes(failed: &[FailedHost]) -> Vec<Cause<'_>> {
    let mut causes: Vec<Cause<'_>> = Vec::new();
    let mut sorted: Vec<&FailedHost> = failed.iter().collect();
    sorted.sort_by(|a, b| a.host.cmp(&b.host));
    for failure in sorted {
        match causes.iter_mut().find(|c| c.kind == failure.kind) {
            Some(cause) => cause.hosts.push(&failure.host),
            None => causes.push(Cause {
                kind: failure.kind,
                refused: failure.refused,
                hosts: vec![&failure.host],
                example: &failure.message,
            }),
        }
    }
    causes.sort_by(|a, b| b.hosts.len().cmp(&a.hosts.len()).then(a.kind.cmp(b.kind)));
    causes
}

/// One line per failure cause with its hosts (the first [`HOSTS_PER_CAUSE`], then a count) and,
/// with `examples` (when no per-host line said it), what the first host said.
pub(crate) fn cause_lines(causes: &[Cause<'_>], examples: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for cause in causes {
        let shown: Vec<&str> = cause.hosts.iter().take(HOSTS_PER_CAUSE).copied().collect();
        let more = cause.hosts.len() - shown.len();
        let more = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        let label = if cause.refused { "refused" } else { "failed" };
        lines.push(format!(
            "  {} host(s) {label}, {}: {}{more}",
            cause.hosts.len(),
            cause.kind,
            shown.join(", ")
        ));
        if examples {
            let message = cause
                .example
                .strip_prefix("REFUSED: ")
                .unwrap_or(cause.example);
            lines.push(format!("    e.g. {}: {message}", cause.hosts[0]));
        }
    }
    lines
}

/// The fleet verbs' causes as JSON: `[{kind, count, hosts}]`.
fn causes_json(causes: &[Cause<'_>]) -> Vec<serde_json::Value> {
    causes
        .iter()
        .map(|cause| json!({"kind": cause.kind, "count": cause.hosts.len(), "hosts": cause.hosts}))
        .collect()
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
    crate::output::json_line(
        "host",
        json!({
            "name": target.spec.name(),
            "host": target.spec.to_string(),
            "address": target.spec.address,
            "port": target.spec.port,
            "user": target.spec.user,
            "key_path": target.key_path,
            "error": {
                "kind": error.kind(),
                "refused": error.is_refusal(),
                "message": error.to_string(),
                "hint": error.hint(),
            },
        }),
    )
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
    let mut line = format!("{label:<5} {}: {message}", target.spec);
    if let Some(hint) = error.hint() {
        line.push_str(&format!("\n      hint: {hint}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(host: &str, kind: &'static str) -> FailedHost {
        FailedHost {
            host: host.to_owned(),
            kind,
            refused: kind == "pin-mismatch",
            message: format!("{kind} on {host}"),
        }
    }

    #[test]
    fn a_pin_the_backstop_refused_to_record_makes_an_all_ok_run_exit_non_zero() {
        let error = crate::exit::code(crate::exit::ERROR);
        assert_eq!(with_pin_errors(ExitCode::SUCCESS, &[]), ExitCode::SUCCESS);
        assert_eq!(
            with_pin_errors(
                ExitCode::SUCCESS,
                &["cannot record the pin of h0: h0 is pinned to …".to_owned()]
            ),
            error
        );
        assert_eq!(with_pin_errors(error, &[]), error);
    }

    #[test]
    fn failures_group_by_kind_biggest_first_whatever_order_hosts_finish_in() {
        let hosts = [
            failed("web3", "unreachable"),
            failed("db1", "pin-mismatch"),
            failed("web1", "unreachable"),
            failed("web2", "unreachable"),
        ];
        let causes = failure_causes(&hosts);
        let lines = cause_lines(&causes, true);
        assert_eq!(
            lines,
            [
                "  3 host(s) failed, unreachable: web1, web2, web3",
                "    e.g. web1: unreachable on web1",
                "  1 host(s) refused, pin-mismatch: db1",
                "    e.g. db1: pin-mismatch on db1",
            ]
        );
        assert_eq!(causes_json(&causes)[0]["count"], 3);
    }

    #[test]
    fn a_cause_names_its_first_ten_hosts_and_counts_the_rest() {
        let hosts: Vec<FailedHost> = (0..47)
            .map(|i| failed(&format!("h{i:02}"), "unreachable"))
            .collect();
        let lines = cause_lines(&failure_causes(&hosts), false);
        assert_eq!(
            lines,
            ["  47 host(s) failed, unreachable: h00, h01, h02, h03, h04, h05, h06, h07, h08, h09 (and 37 more)"]
        );
    }
}
