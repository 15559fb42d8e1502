//! `hostage onboard HOST`: print the onboarding plan (`--dry-run`) or apply it with progress.

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;

use hostage_remote::Fingerprint;

use crate::cli::{ExportHostKeyArgs, OnboardArgs};
use crate::output::{self, Output};
use crate::passphrase::CliPassphrases;
use hostage_workflows::commit::CommitKind;
use hostage_workflows::onboard::{self, Mode, OnboardOptions, OnboardPlan, Step};
use hostage_workflows::FleetInventory;

/// The options of a host workflow (onboard, rotate) from the arguments they share: it neither
/// trusts a new host nor generates its key (onboard's own flags turn those on).
pub(crate) fn host_options(
    ssh: &crate::cli::SshArgs,
    keys: &crate::cli::RepoIdentityArgs,
    expect_fingerprint: Option<&Fingerprint>,
) -> OnboardOptions {
    OnboardOptions {
        ssh_config: ssh.ssh_config(),
        known_hosts: ssh.known_hosts(),
        expect_fingerprint: expect_fingerprint.cloned(),
        trust_new: false,
        timeout: ssh.timeout(),
        identities: keys.identities.clone(),
        generate_host_key: false,
    }
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
        ..host_options(&args.ssh, &args.keys, args.expect_fingerprint.as_ref())
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
    let guard = crate::commit::before(&args.commit, &inventory.inventory.secrets_repo)?;
    let plan = onboard::plan(&inventory, &args.host, &options, &mut passphrases, confirm)?;
    let Some((plan, outcome)) =
        apply_host_plan(out, &mut inventory, plan, &mut passphrases, args.dry_run)?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    if !out.json() {
        out.line(&format!(
            "onboarded {}: {} change(s) applied",
            plan.host,
            plan.steps.len()
        ))?;
        print_exposure_and_next_steps(out, &plan)?;
    }
    let kind = CommitKind::Onboard {
        host: plan.host.clone(),
    };
    let commit = crate::commit::after(out, guard, &kind)?;
    if out.json() {
        let report = plan.report(Mode::Apply, Some(outcome))?;
        out.json_value(&crate::commit::with_commit(&report, commit.as_ref())?)?;
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

/// One step as it starts, on stderr.
pub(crate) fn progress(text: &str) {
    output::note(&format!("  {text}"));
}

pub(crate) fn print_plan(
    out: &mut Output,
    plan: &OnboardPlan,
    dry_run: bool,
) -> anyhow::Result<()> {
    if out.json() {
        let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
        return Ok(out.json_value(&plan.report(mode, None)?)?);
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
        if dry_run {
            print_planned_exposure(out, &plan.exposure()?)?;
        } else {
            print_exposure(out, &plan.exposure()?)?;
        }
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
    print_exposure_in(out, exposure, "is taken off", "data keys rotated")
}

/// [`print_exposure`] for a plan (`--dry-run`): nothing is taken off or rotated yet.
pub(crate) fn print_planned_exposure(
    out: &mut Output,
    exposure: &[hostage_rekey::Exposure],
) -> std::io::Result<()> {
    print_exposure_in(
        out,
        exposure,
        "would be taken off",
        "data keys would be rotated",
    )
}

fn print_exposure_in(
    out: &mut Output,
    exposure: &[hostage_rekey::Exposure],
    taken_off: &str,
    rotated: &str,
) -> std::io::Result<()> {
    for exposed in exposure {
        let who = exposed
            .recipient
            .name
            .clone()
            .unwrap_or_else(|| exposed.recipient.recipient.clone());
        let files: Vec<&str> = exposed.files.iter().map(|f| f.path.as_str()).collect();
        out.line(&format!(
            "exposure: {who} {taken_off} {} file(s) it could read ({rotated}): {}",
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
            format!("add anchor &{name} {recipient} to .sops.yaml")
        }
        Step::AddHeaderLabel { name, recipient } => {
            format!("add header label {name} {recipient} to .sops.yaml")
        }
        Step::AddToRule {
            path_regex,
            recipient,
        } => format!("add {recipient} to rule {path_regex}"),
        Step::AddRule {
            path_regex,
            recipient,
            above,
            dropped,
        } => {
            let above = above.as_deref().unwrap_or("(every file)");
            let mut line = format!("add rule {path_regex} above {above} with {recipient}");
            if !dropped.is_empty() {
                line.push_str(&format!(" (without {})", dropped.join(", ")));
            }
            line
        }
        Step::Rekey { files } => format!("re-key {} file(s): {}", files.len(), files.join(", ")),
        Step::DeployInfrastructureKey {
            target,
            fingerprint,
        } => format!("deploy the infrastructure key {fingerprint} to {target}"),
        Step::StoreHostKey { path } => {
            format!("store the generated private host key sops-encrypted at {path}")
        }
        Step::ReplaceRecipient {
            name,
            old,
            new,
            changes,
        } => {
            let mut line = format!("replace {name}'s recipient {old} with {new} in .sops.yaml");
            if !changes.is_empty() {
                line.push_str(&format!(" ({})", changes.join(", ")));
            }
            line
        }
        Step::RecordPin {
            fingerprint,
            recipient: _,
        } => format!("record the pin {fingerprint} in the inventory"),
        Step::FinishInterruptedRun { pid } => format!(
            "finish the interrupted run (pid {pid}): report its exposure, remove its journal"
        ),
    }
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
        host,
        &args.dir,
        &identities,
        &mut passphrases,
    )?;
    if out.json() {
        out.json_value(&serde_json::json!({
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
