//! `hostage rotate HOST`: a host with a new identity gets a new recipient; files are rotated.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::Path;
use std::process::ExitCode;

use hostage_remote::RestoreAction;
use serde_json::json;

use crate::cli::RotateArgs;
use crate::onboard::{apply_host_plan, host_options, print_exposure_and_next_steps, progress};
use crate::output::Output;
use crate::passphrase::CliPassphrases;
use hostage_workflows::restore::{self, RestorePlan};
use hostage_workflows::{rotate, FleetInventory};

/// Runs `hostage rotate`.
pub fn run(
    args: &RotateArgs,
    out: &mut Output,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut inventory = FleetInventory::require(inventory)?;
    let options = host_options(&args.ssh, &args.keys, args.expect_fingerprint.as_ref());
    let host_name = args.host.clone();
    let mut confirm = |fetched: &hostage_remote::FetchedHost| -> hostage_workflows::Result<bool> {
        if !std::io::stdin().is_terminal() {
            return Err(hostage_workflows::WorkflowError::refused(format!(
                "{host_name} shows a new key {}: pass --expect-fingerprint with the fingerprint read on its console (nothing was changed)",
                fetched.fingerprint
            )));
        }
        Ok(ask_yes(&format!(
            "{host_name} now shows host key {} ({}). Is this the key you expect? [y/N] ",
            fetched.fingerprint, fetched.recipient
        ))?)
    };
    let mut passphrases = CliPassphrases::new(args.keys.passphrase_file.as_deref())?;
    if args.from_backup && args.commit.commit {
        anyhow::bail!(
            "--commit: rotate --from-backup changes nothing in the secrets repository (it restores the host's own key on the host)"
        );
    }
    let guard = if args.from_backup {
        None
    } else {
        crate::commit::before(&args.commit, &inventory.inventory.secrets_repo)?
    };
    if args.from_backup {
        let plan = restore::plan(
            &inventory,
            &args.host,
            &options,
            &mut passphrases,
            &mut confirm,
        )?;
        return print_restore(out, plan, args.dry_run);
    }
    let plan = rotate::plan(
        &inventory,
        &args.host,
        &options,
        &mut passphrases,
        &mut confirm,
    )?;
    let Some((plan, outcome)) =
        apply_host_plan(out, &mut inventory, plan, &mut passphrases, args.dry_run)?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let fingerprint = plan.fetched.fingerprint.to_string();
    let recipient = plan.fetched.recipient.to_string();
    if !out.json() {
        out.line(&format!(
            "rotated {} to {fingerprint} ({recipient})",
            plan.host
        ))?;
        print_exposure_and_next_steps(out, &plan)?;
    }
    let kind = hostage_workflows::commit::CommitKind::Rotate {
        host: plan.host.clone(),
    };
    let commit = crate::commit::after(out, guard, &kind)?;
    if out.json() {
        // The same report type as --dry-run's, with what applying did.
        let report = plan.report(hostage_workflows::onboard::Mode::Apply, Some(outcome))?;
        out.json_value(&crate::commit::with_commit(&report, commit.as_ref())?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_restore(out: &mut Output, plan: RestorePlan, dry_run: bool) -> anyhow::Result<ExitCode> {
    let host = plan.host.clone();
    let presented = plan.presented.fingerprint.to_string();
    let verified_by = plan.presented.verified_by.as_str();
    let pinned = plan.pinned.to_string();
    let recipient = plan.recipient.clone();
    let target = plan.target.clone();
    let next_steps = plan.next_steps.clone();
    let planned = plan.action.as_str();
    let (mode, action) = if dry_run || plan.is_noop() {
        (
            if dry_run { "dry-run" } else { "apply" },
            plan.action.clone(),
        )
    } else {
        if !out.json() {
            progress(&format!(
                "install the backed-up key {pinned} at {target} on {host}"
            ));
        }
        (
            "apply",
            restore::apply(plan, &hostage_workflows::session::ApplyOptions::default())?,
        )
    };
    if out.json() {
        out.json_value(&json!({
            "host": host,
            "mode": mode,
            "presented": {"fingerprint": presented, "verified_by": verified_by},
            "restored": {"fingerprint": pinned, "recipient": recipient},
            "target": target,
            "planned": planned,
            "action": action.as_str(),
            "next_steps": next_steps,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    match &action {
        RestoreAction::Unchanged => out.line(&format!(
            "{host}: {target} already holds the backed-up key {pinned}: nothing to do"
        ))?,
        RestoreAction::WouldRestore { current } => out.line(&format!(
            "would (dry run, nothing written): install the backed-up key {pinned} at {target} on {host} (it holds {current} now; {host} presents {presented})"
        ))?,
        RestoreAction::Restored { previous } => out.line(&format!(
            "restored {host}'s host key {pinned} ({recipient}) at {target} (it held {previous}); .sops.yaml and the pin are unchanged"
        ))?,
    }
    for step in &next_steps {
        out.line(&format!("next: {step}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows `prompt` on stderr and reads one answer from stdin: true for `y`/`yes`.
pub(crate) fn ask_yes(prompt: &str) -> std::io::Result<bool> {
    crate::output::prompt(prompt);
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
