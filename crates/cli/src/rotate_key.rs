//! `hostage rotate-key NAME`: replace a named non-host key in four resumable phases.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::RotateKeyArgs;
use crate::onboard::print_exposure;
use crate::output::Output;
use crate::passphrase::CliPassphrases;
use crate::rotate_infra::{
    finish_rotation, phase_progress, print_phases_and_failures, print_rotation_plan,
    RotationPlanText,
};
use hostage_workflows::commit::CommitKind;
use hostage_workflows::rotate_key::{self, KeyKind, RotateKeyOptions, RotateKeyPlan};
use hostage_workflows::FleetInventory;

/// Runs `hostage rotate-key`.
pub fn run(
    args: &RotateKeyArgs,
    out: &mut Output,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut inventory = FleetInventory::require(inventory)?;
    let options = RotateKeyOptions {
        name: args.name.clone(),
        new_identity: args
            .new_identity
            .as_deref()
            .map(hostage_workflows::absolute),
        new_recipient: args.new_recipient.clone(),
        ssh_config: args.ssh.ssh_config(),
        known_hosts: args.ssh.known_hosts(),
        timeout: args.ssh.timeout(),
        identities: args.keys.identities.clone(),
    };
    if args.dry_run {
        let plan = rotate_key::plan(&inventory, &options)?;
        if out.json() {
            out.json_value(&plan)?;
        } else {
            print_plan(out, &plan)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let guard = crate::commit::before(&args.commit, &inventory.inventory.secrets_repo)?;
    let mut passphrases = CliPassphrases::new(args.keys.passphrase_file.as_deref())?;
    let json = out.json();
    let report = rotate_key::run(
        &mut inventory,
        &options,
        &hostage_workflows::session::ApplyOptions::default(),
        &mut passphrases,
        &phase_progress(json),
    )?;
    if !json {
        if report.nothing_to_do {
            out.line(&format!(
                "{} already is {}: nothing to rotate",
                report.name, report.new_recipient
            ))?;
        } else {
            // The run's one-line summary, as the dry run's first line.
            let (verb, state) = if report.complete {
                ("rotated", "")
            } else {
                ("rotating", ": stopped (below)")
            };
            out.line(&format!(
                "{verb} the {} key {} → {}{state}",
                report.name, report.old_recipient, report.new_recipient
            ))?;
        }
        print_phases_and_failures(out, &report.phases, &report.failures)?;
        if !report.unproven.is_empty() {
            out.line("not opened by the new identity:")?;
        }
        for file in &report.unproven {
            out.line(&format!("  {}: {}", file.path, file.error))?;
        }
        print_exposure(out, &report.exposure)?;
    }
    let kind = match report.key {
        KeyKind::Infrastructure => CommitKind::RotateInfra,
        _ => CommitKind::Other {
            scope: report.name.clone(),
            summary: format!("rotate the {} key", report.name),
        },
    };
    finish_rotation(
        out,
        guard,
        &report,
        report.complete,
        &kind,
        "rotate-key stopped before phase 3 (listed above); the old key is still on every file. Run the same command again to resume",
    )
}

/// The dry run, one line per phase.
fn print_plan(out: &mut Output, plan: &RotateKeyPlan) -> anyhow::Result<()> {
    if plan.nothing_to_do {
        out.line(&format!(
            "{} already is {}: nothing to rotate (dry run, nothing written)",
            plan.name, plan.new_recipient
        ))?;
        return Ok(());
    }
    let phase2 = if plan.key == KeyKind::Infrastructure {
        plan.hosts
            .iter()
            .map(|(host, what)| format!("{host}: {what}"))
            .collect()
    } else {
        vec![format!("prove: {}", plan.prove)]
    };
    print_rotation_plan(
        out,
        &RotationPlanText {
            name: &plan.name,
            old_recipient: &plan.old_recipient,
            new_recipient: &plan.new_recipient,
            done: plan.done,
            phase1_files: &plan.phase1_files,
            phase2,
            phase3_files: &plan.phase3_files,
            phase4: &plan.retire,
        },
    )
}
