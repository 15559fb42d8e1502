//! `hostage status`: the fleet on one screen (or as one JSON document).

use std::path::Path;
use std::process::ExitCode;

use hostage_remote::FleetOptions;

use crate::cli::StatusArgs;
use crate::output::Output;
use hostage_workflows::status::{status, Status};
use hostage_workflows::FleetInventory;

/// Runs `hostage status`.
pub fn run(
    args: &StatusArgs,
    out: &mut Output,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let inventory = FleetInventory::require(inventory)?;
    let online = args.online.then(|| FleetOptions {
        ssh_config: args.ssh.ssh_config(),
        known_hosts: args.ssh.known_hosts(),
        timeout: args.ssh.timeout(),
        ..FleetOptions::default()
    });
    let mut status = status(&inventory, online)?;
    if let Some(name) = &args.host {
        status = status.for_host(inventory.host(name)?);
    }
    if out.json() {
        out.json_value(&status)?;
    } else {
        print_text(out, &status)?;
    }
    Ok(if status.drift.is_empty() {
        ExitCode::SUCCESS
    } else {
        crate::exit::code(crate::exit::DRIFT)
    })
}

/// The first line: how many hosts are onboarded, and how much drift.
fn summary(status: &Status) -> String {
    let onboarded = status.hosts.iter().filter(|h| is_onboarded(h)).count();
    let drift = match status.drift.len() {
        0 => "no drift".to_owned(),
        n => format!("{n} drift item(s), exit 3"),
    };
    format!(
        "{onboarded} of {} host(s) onboarded, {} named recipient(s), {} file(s); {drift}",
        status.hosts.len(),
        status.recipients.len(),
        status.files.len()
    )
}

fn is_onboarded(host: &hostage_workflows::status::HostStatus) -> bool {
    host.pin.is_some() && (host.in_sops_config || !host.per_host_recipient)
}

/// A column title: a bare `age1…` key is cut to its start, flagged with `?`.
fn short(column: &str) -> String {
    if column.starts_with("age1") && column.len() > 12 {
        format!("?{}…", column.chars().take(10).collect::<String>())
    } else {
        column.to_owned()
    }
}

fn print_text(out: &mut Output, status: &Status) -> std::io::Result<()> {
    out.line(&summary(status))?;
    out.line("")?;
    out.line(&format!("secrets repo: {}", status.secrets_repo))?;
    out.line("")?;
    out.line("hosts:")?;
    for host in &status.hosts {
        let role = match (host.per_host_recipient, host.infrastructure_key) {
            (true, true) => "own key + infrastructure",
            (true, false) => "own key",
            (false, true) => "infrastructure",
            (false, false) => "no recipient",
        };
        out.line(&format!(
            "  {:<14} {:<26} pin {:<52} {}{}",
            host.name,
            role,
            host.pin.as_deref().unwrap_or("-"),
            if is_onboarded(host) {
                "onboarded"
            } else {
                "NOT onboarded"
            },
            host.online
                .as_deref()
                .map(|o| format!(", online: {o}"))
                .unwrap_or_default()
        ))?;
    }
    out.line("")?;
    out.line("recipients (.sops.yaml anchors and header labels, pubkeys/):")?;
    for (name, recipient) in &status.recipients {
        out.line(&format!("  {name:<14} {recipient}"))?;
    }
    out.line("")?;
    out.line("who can read what (✓ reads; the action is what `hostage rekey` would do):")?;
    // Every reader is a column: the workstation, the infrastructure key, the hosts, then anyone
    // else a file is encrypted to (named, or the bare key: the drift flags those).
    let mut columns = vec!["workstation".to_owned(), "infrastructure".to_owned()];
    columns.extend(status.hosts.iter().map(|h| h.name.clone()));
    for file in &status.files {
        for reader in &file.readers {
            if !columns.contains(reader) {
                columns.push(reader.clone());
            }
        }
    }
    columns.retain(|c| {
        c == "workstation"
            || status.hosts.iter().any(|h| &h.name == c)
            || status.files.iter().any(|f| f.readers.contains(c))
    });
    let width = status
        .files
        .iter()
        .map(|f| f.path.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut header = format!("  {:<width$}  {:<9}", "file", "action");
    let cell = columns
        .iter()
        .map(|c| short(c).chars().count())
        .max()
        .unwrap_or(0)
        .max(12);
    for column in &columns {
        header.push_str(&format!(" {:>cell$}", short(column)));
    }
    out.line(&header)?;
    for file in &status.files {
        let action = serde_json::to_value(file.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut line = format!("  {:<width$}  {action:<9}", file.path);
        for column in &columns {
            let mark = if file.readers.contains(column) {
                "✓"
            } else {
                "·"
            };
            line.push_str(&format!(" {mark:>cell$}"));
        }
        out.line(&line)?;
    }
    out.line("")?;
    if status.drift.is_empty() {
        out.line("no drift: the inventory, .sops.yaml and the files agree")?;
    } else {
        out.line(&format!("drift ({}):", status.drift.len()))?;
        for item in &status.drift {
            out.line(&format!("  - {}", item.message))?;
        }
    }
    Ok(())
}
