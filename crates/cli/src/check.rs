//! `hostage check`: every CI check of a secrets repository in one run (or one JSON document);
//! exit 3 when anything is found.

use std::process::ExitCode;

use hostage_workflows::check::{check, CheckReport};
use hostage_workflows::plaintext::AllowList;
use hostage_workflows::FleetInventory;

use crate::cli::CheckArgs;
use crate::output::Output;
use crate::rekey::Bars;

/// Runs `hostage check`. The inventory (named, or `inventory/fleet.yaml` here) is optional: with
/// one, its repository is checked and its drift included.
pub fn run(
    args: &CheckArgs,
    out: &mut Output,
    inventory: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let allow = AllowList::new(&args.allow.patterns)?;
    let fleet = FleetInventory::find(inventory)?;
    let inventory_path = fleet.as_ref().map(|f| f.inventory.path.clone());
    let config = crate::rekey::locate_config(args.config.as_deref(), inventory_path.as_deref())?;
    let report = check(&config, fleet.as_ref(), &allow, &Bars::default())?;
    if out.json() {
        out.json_value(&report)?;
    } else {
        print_text(out, &report)?;
    }
    Ok(if report.findings() == 0 {
        ExitCode::SUCCESS
    } else {
        crate::exit::code(crate::exit::DRIFT)
    })
}

fn print_text(out: &mut Output, report: &CheckReport) -> std::io::Result<()> {
    for file in &report.plaintext {
        out.line(&format!("plaintext  {}", file.message()))?;
    }
    for lint in &report.lints {
        out.line(&format!(
            "lint       {}:{}: {}",
            report.config, lint.line, lint.message
        ))?;
    }
    for unknown in &report.unknown_recipients {
        out.line(&format!(
            "unknown    {} is named nowhere (no anchor or header label in .sops.yaml, not in the inventory), on: {}: name it in .sops.yaml or remove it",
            unknown.recipient,
            unknown.places.join(", ")
        ))?;
    }
    for drift in &report.drift {
        out.line(&format!("drift      {}", drift.message))?;
    }
    let found = report.findings();
    if found == 0 {
        out.line(&format!(
            "check: nothing found in {}: no plaintext secret, no lint, no unknown recipient, no drift{}",
            report.config,
            report
                .inventory
                .as_deref()
                .map(|i| format!(" (inventory {i})"))
                .unwrap_or_default()
        ))
    } else {
        out.line(&format!("check: {found} finding(s) in {}", report.config))
    }
}
