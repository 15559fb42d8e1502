//! `hostage onboard HOST`: print the onboarding plan (`--dry-run`) or apply it with progress.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hostage_remote::Fingerprint;
use serde_json::json;

use crate::output::{self, Output};
use crate::passphrase::CliPassphrases;
use hostage_workflows::onboard::{self, OnboardOptions, OnboardPlan, Step};
use hostage_workflows::FleetInventory;

/// `hostage onboard`: bring an inventory host into the secrets repo.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage onboard gnomeregan --dry-run                      # what would change\n  \
    hostage onboard gnomeregan --expect-fingerprint SHA256:…  # fingerprint read on the console\n  \
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
    /// The host key must have this fingerprint (for a host without a pin; a pinned host that
    /// shows a new key is `hostage rotate`'s).
    #[arg(long, value_name = "SHA256:…")]
    pub expect_fingerprint: Option<String>,
    /// Accept a host that neither a pin nor known_hosts vouches for (its pin is recorded).
    #[arg(long)]
    pub trust_new: bool,
    /// The host does not exist yet: generate its ed25519 host key here, register it, and store
    /// the private key sops-encrypted in the repo (`hostage export-host-key` writes it out).
    #[arg(long, conflicts_with_all = ["trust_new", "expect_fingerprint"])]
    pub generate_host_key: bool,
    /// How hosts are reached.
    #[command(flatten)]
    pub ssh: crate::shared_args::SshArgs,
    /// The identities that open the repo's files.
    #[command(flatten)]
    pub keys: crate::shared_args::RepoIdentityArgs,
}

/// The options of a host workflow (onboard, rotate) from the arguments they share: it neither
/// trusts a new host nor generates its key (onboard's own flags turn those on).
pub(crate) fn host_options(
    ssh: &crate::shared_args::SshArgs,
    keys: &crate::shared_args::RepoIdentityArgs,
    expect_fingerprint: Option<&str>,
) -> anyhow::Result<OnboardOptions> {
    Ok(OnboardOptions {
        ssh_config: ssh.ssh_config(),
        known_hosts: ssh.known_hosts(),
        expect_fingerprint: expect_fingerprint.map(Fingerprint::parse).transpose()?,
        trust_new: false,
        timeout: ssh.timeout(),
        identities: keys.identities.clone(),
        generate_host_key: false,
    })
}

/// Runs `hostage onboard`.
pub fn run(
    args: &OnboardArgs,
    out: &mut Output,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut inventory = FleetInventory::require(inventory)?;
    let options = OnboardOptions {
        trust_new: args.trust_new,
        generate_host_key: args.generate_host_key,
        ..host_options(&args.ssh, &args.keys, args.expect_fingerprint.as_deref())?
    };
    let host_name = args.host.clone();
    let mut ask = |fetched: &hostage_remote::FetchedHost| -> hostage_workflows::Result<bool> {
        Ok(crate::rotate::ask_yes(&format!(
            "{host_name} shows host key {} ({}) and nothing vouches for it (no pin, --expect-fingerprint or known_hosts entry).\nCompare it with the fingerprint on {host_name}'s console. Is this its key? [y/N] ",
            fetched.fingerprint, fetched.recipient
        ))?)
    };
    let confirm: Option<onboard::ConfirmKey<'_>> = if std::io::stdin().is_terminal() {
        Some(&mut ask)
    } else {
        None
    };
    let mut passphrases = CliPassphrases::new(args.keys.passphrase_file.as_deref())?;
    let plan = onboard::plan(&inventory, &args.host, &options, &mut passphrases, confirm)?;
    let Some((plan, outcome)) =
        apply_host_plan(out, &mut inventory, plan, &mut passphrases, args.dry_run)?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    if out.json() {
        out.json_value(&json!({
            "host": plan.host,
            "mode": "apply",
            "verified": {
                "fingerprint": plan.fetched.fingerprint.as_str(),
                "recipient": plan.fetched.recipient.to_string(),
                "verified_by": if plan.generated_locally { "generated" } else { plan.fetched.verified_by.as_str() },
            },
            "steps": plan.steps,
            "outcome": outcome,
            "exposure": plan.exposure()?,
            "warnings": plan.warnings,
            "next_steps": plan.next_steps,
        }))?;
    } else {
        out.line(&format!(
            "onboarded {}: {} change(s) applied",
            plan.host,
            plan.steps.len()
        ))?;
        print_exposure_and_next_steps(out, &plan)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a host workflow's plan: its warnings on stderr, then with `dry_run` (or nothing to do)
/// the plan is printed and `None` returned; otherwise it is applied, each step announced on
/// stderr, and the plan and what applying did returned for the verb's own report.
pub(crate) fn apply_host_plan(
    out: &mut Output,
    inventory: &mut FleetInventory,
    mut plan: OnboardPlan,
    passphrases: &mut CliPassphrases,
    dry_run: bool,
) -> anyhow::Result<Option<(OnboardPlan, onboard::OnboardOutcome)>> {
    if !out.json() {
        for warning in &plan.warnings {
            output::warn(warning);
        }
    }
    if dry_run || plan.is_noop() {
        print_plan(out, &plan, dry_run)?;
        return Ok(None);
    }
    let json = out.json();
    let options = hostage_workflows::session::ApplyOptions::default();
    let outcome = onboard::apply(inventory, &mut plan, passphrases, &options, &|step| {
        if !json {
            progress(&describe(step));
        }
    })?;
    Ok(Some((plan, outcome)))
}

/// The text report's tail after a host workflow: the exposure report, then what to do next.
pub(crate) fn print_exposure_and_next_steps(
    out: &mut Output,
    plan: &OnboardPlan,
) -> anyhow::Result<()> {
    print_exposure(out, &plan.exposure()?)?;
    for step in &plan.next_steps {
        out.line(&format!("next: {step}"))?;
    }
    Ok(())
}

#[allow(clippy::print_stderr)]
pub(crate) fn progress(text: &str) {
    eprintln!("  {text}");
}

pub(crate) fn print_plan(
    out: &mut Output,
    plan: &OnboardPlan,
    dry_run: bool,
) -> anyhow::Result<()> {
    if out.json() {
        return Ok(out.json_value(&json!({
            "host": plan.host,
            "mode": if dry_run { "dry-run" } else { "apply" },
            "verified": {
                "fingerprint": plan.fetched.fingerprint.as_str(),
                "recipient": plan.fetched.recipient.to_string(),
                "verified_by": if plan.generated_locally { "generated" } else { plan.fetched.verified_by.as_str() },
            },
            "steps": plan.steps,
            "outcome": serde_json::Value::Null,
            "exposure": plan.exposure()?,
            "warnings": plan.warnings,
            "next_steps": plan.next_steps,
        }))?);
    }
    let how = if plan.generated_locally {
        "generated locally".to_owned()
    } else {
        format!("verified by {}", plan.fetched.verified_by)
    };
    out.line(&format!(
        "{}: host key {} ({}, {how})",
        plan.host, plan.fetched.fingerprint, plan.fetched.recipient
    ))?;
    if plan.is_noop() {
        out.line(&format!("{} is onboarded: nothing to do", plan.host))?;
    } else {
        out.line(if dry_run {
            "would (dry run, nothing written):"
        } else {
            "plan:"
        })?;
        for step in &plan.steps {
            out.line(&format!("  {}", describe(step)))?;
        }
        print_exposure(out, &plan.exposure()?)?;
    }
    for step in &plan.next_steps {
        out.line(&format!("next: {step}"))?;
    }
    Ok(())
}

/// Which files recipients taken off could read (their data keys are rotated).
pub(crate) fn print_exposure(
    out: &mut Output,
    exposure: &[hostage_rekey::Exposure],
) -> std::io::Result<()> {
    for exposed in exposure {
        let who = exposed
            .recipient
            .name
            .clone()
            .unwrap_or_else(|| exposed.recipient.recipient.clone());
        let files: Vec<&str> = exposed.files.iter().map(|f| f.path.as_str()).collect();
        out.line(&format!(
            "exposure: {who} is taken off {} file(s) it could read (data keys rotated): {}",
            files.len(),
            files.join(", ")
        ))?;
    }
    Ok(())
}

/// One line for a step.
pub(crate) fn describe(step: &Step) -> String {
    match step {
        Step::SavePublicKey { path } => format!("save the host key to {path}"),
        Step::AddAnchor { name, recipient } => {
            format!("add &{name} {recipient} to .sops.yaml")
        }
        Step::AddToRule {
            path_regex,
            recipient,
        } => format!("add {recipient} to the rule for {path_regex}"),
        Step::AddRule {
            path_regex,
            recipient,
        } => format!("add a rule for {path_regex} (above the catch-all) with {recipient}"),
        Step::Rekey { files } => format!("re-key {} file(s): {}", files.len(), files.join(", ")),
        Step::DeployInfrastructureKey {
            target,
            fingerprint,
        } => format!("deploy the infrastructure key {fingerprint} to {target}"),
        Step::StoreHostKey { path } => {
            format!("store the generated private host key sops-encrypted at {path}")
        }
        Step::ReplaceRecipient { name, old, new } => {
            format!("replace {name}'s recipient {old} with {new} in .sops.yaml")
        }
        Step::RecordPin {
            fingerprint,
            recipient: _,
        } => format!("record the pin {fingerprint} in the inventory"),
    }
}

/// `hostage export-host-key`: write a generated host key as an `--extra-files` tree.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    hostage onboard web02 --generate-host-key\n  \
    hostage export-host-key web02 ./extra\n  \
    nixos-anywhere --extra-files ./extra --flake .#web02 root@203.0.113.7\n\n\
    Decrypts secrets/hosts/HOST/ssh_host_ed25519_key (stored by onboard --generate-host-key) with\n\
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
    pub keys: crate::shared_args::RepoIdentityArgs,
}

/// Runs `hostage export-host-key`.
pub fn run_export(
    args: &ExportHostKeyArgs,
    out: &mut Output,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let inventory = FleetInventory::require(inventory)?;
    let host = inventory.host(&args.host)?;
    let identities = inventory.repo_identities(&args.keys.identities);
    let mut passphrases = CliPassphrases::new(args.keys.passphrase_file.as_deref())?;
    let written = hostage_workflows::host_key::export(
        &inventory.inventory.secrets_repo,
        host.name.as_str(),
        &host.host_key_path,
        &args.dir,
        &identities,
        &mut passphrases,
    )?;
    if out.json() {
        out.json_value(&json!({
            "host": args.host,
            "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        }))?;
    } else {
        for path in &written {
            out.line(&format!("wrote {}", path.display()))?;
        }
        out.line(&format!(
            "next: nixos-anywhere --extra-files {} …; delete it once {} is installed",
            args.dir.display(),
            args.host
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
