//! `hostage offboard HOST`: renders the workflow's report.

use std::path::Path;
use std::process::ExitCode;

use hostage_workflows::offboard::{self, OffboardOptions, OffboardReport};
use hostage_workflows::FleetInventory;

use crate::cli::OffboardArgs;
use crate::onboard::{print_exposure, progress};
use crate::output::{self, Output};
use crate::passphrase::CliPassphrases;

/// Runs `hostage offboard`.
pub fn run(
    args: &OffboardArgs,
    out: &mut Output,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let inventory = FleetInventory::require(inventory)?;
    let options = OffboardOptions {
        keep_backup: args.keep_backup,
        identities: args.keys.identities.clone(),
    };
    let plan = offboard::plan(&inventory, &args.host, &options)?;
    let report = if args.dry_run {
        plan.report
    } else {
        if !out.json() && !plan.is_noop() {
            progress(&format!("offboarding {}", args.host));
        }
        let mut passphrases = CliPassphrases::new(args.keys.passphrase_file.as_deref())?;
        offboard::apply(
            &inventory,
            plan,
            &mut passphrases,
            &hostage_workflows::session::ApplyOptions::default(),
        )?
    };
    render(out, &report)?;
    Ok(ExitCode::SUCCESS)
}

fn render(out: &mut Output, report: &OffboardReport) -> anyhow::Result<()> {
    if out.json() {
        out.json_value(report)?;
        return Ok(());
    }
    for warning in &report.warnings {
        output::warn(warning);
    }
    let (verb, tail) = if report.dry_run {
        ("would ", " (dry run, nothing written)")
    } else {
        ("", "")
    };
    out.line(&format!(
        "offboard {}{}{tail}",
        report.host,
        report
            .recipient
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    ))?;
    for change in &report.changes {
        out.line(&format!("  .sops.yaml: {change}"))?;
    }
    if !report.rekeyed.is_empty() {
        out.line(&format!(
            "  {verb}re-key with new data keys: {}",
            report.rekeyed.join(", ")
        ))?;
    }
    for removed in &report.removed {
        out.line(&format!("  {verb}remove {removed}"))?;
    }
    if report.inventory_entry_removed {
        out.line(&format!(
            "  {verb}remove {} and its pin from the inventory",
            report.host
        ))?;
    }
    print_exposure(out, &report.exposure)?;
    Ok(())
}
