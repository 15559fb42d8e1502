//! `hostage status`: the fleet on one screen (or as one JSON document).

use std::path::Path;
use std::process::ExitCode;

use hostage_remote::FleetOptions;

use crate::cli::StatusArgs;
use crate::output::{paint, Output};
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
    let allow = hostage_workflows::plaintext::AllowList::new(&args.allow.patterns)?;
    let mut status = status(&inventory, online, &allow)?;
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

/// Above this many files the matrix shows one row per directory.
const COMPACT_FILES: usize = 40;

/// One row of the who-reads-what matrix: a file, or in the compact form a directory.
struct Row {
    label: String,
    action: String,
    marks: Vec<&'static str>,
}

/// The matrix rows: one per file, or (`compact`) one per directory, whose mark is ✓ when every
/// file of it has the reader, ~ when some do, · when none, and whose action counts the files
/// that lag behind `.sops.yaml`.
fn matrix_rows(status: &Status, columns: &[String], compact: bool) -> Vec<Row> {
    let action_of = |file: &hostage_workflows::status::FileStatus| {
        serde_json::to_value(file.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    if !compact {
        return status
            .files
            .iter()
            .map(|file| Row {
                label: file.path.clone(),
                action: action_of(file),
                marks: columns
                    .iter()
                    .map(|c| {
                        if file.readers.contains(c) {
                            "✓"
                        } else {
                            "·"
                        }
                    })
                    .collect(),
            })
            .collect();
    }
    let mut groups: std::collections::BTreeMap<
        String,
        Vec<&hostage_workflows::status::FileStatus>,
    > = std::collections::BTreeMap::new();
    for file in &status.files {
        let dir = match file.path.rfind('/') {
            Some(end) => format!("{}/", &file.path[..end]),
            None => "./".to_owned(),
        };
        groups.entry(dir).or_default().push(file);
    }
    groups
        .into_iter()
        .map(|(dir, files)| {
            let lagging = files.iter().filter(|f| action_of(f) != "unchanged").count();
            Row {
                label: format!("{dir} ({} files)", files.len()),
                action: if lagging == 0 {
                    "unchanged".to_owned()
                } else {
                    format!("{lagging} lag")
                },
                marks: columns
                    .iter()
                    .map(
                        |c| match files.iter().filter(|f| f.readers.contains(c)).count() {
                            0 => "·",
                            n if n == files.len() => "✓",
                            _ => "~",
                        },
                    )
                    .collect(),
            }
        })
        .collect()
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
    let color = out.color();
    let summary_colour = if status.drift.is_empty() { 32 } else { 31 };
    out.line(&paint(color, summary_colour, &summary(status)))?;
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
                "onboarded".to_owned()
            } else {
                paint(color, 33, "NOT onboarded")
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
    if status.files.len() > COMPACT_FILES {
        out.line("who can read what, by directory (✓ every file, ~ some, · none; the action is what `hostage rekey` would do):")?;
    } else {
        out.line("who can read what (✓ reads; the action is what `hostage rekey` would do):")?;
    }
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
    let rows = matrix_rows(status, &columns, status.files.len() > COMPACT_FILES);
    let width = rows
        .iter()
        .map(|r| r.label.chars().count())
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
    for row in &rows {
        let mut line = format!("  {:<width$}  {:<9}", row.label, row.action);
        for mark in &row.marks {
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
            out.line(&format!("  {} {}", paint(color, 31, "-"), item.message))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hostage_rekey::Action;
    use hostage_workflows::status::{FileStatus, Status};

    use super::matrix_rows;

    fn file(path: &str, action: Action, readers: &[&str]) -> FileStatus {
        FileStatus {
            path: path.to_owned(),
            action,
            readers: readers.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn the_compact_matrix_has_one_row_per_directory_marking_all_some_or_none() {
        let status = Status {
            secrets_repo: "/repo".into(),
            hosts: Vec::new(),
            recipients: Vec::new(),
            drift: Vec::new(),
            files: vec![
                file(
                    "secrets/a/1.yaml",
                    Action::Unchanged,
                    &["workstation", "web"],
                ),
                file("secrets/a/2.yaml", Action::Rewrap, &["workstation"]),
                file("top.yaml", Action::Unchanged, &["workstation"]),
            ],
        };
        let columns = ["workstation".to_owned(), "web".to_owned(), "db".to_owned()];
        let rows = matrix_rows(&status, &columns, true);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].label, "./ (1 files)");
        assert_eq!(rows[1].label, "secrets/a/ (2 files)");
        assert_eq!(rows[1].action, "1 lag");
        assert_eq!(rows[1].marks, ["✓", "~", "·"]);
        // The full form: one row per file.
        assert_eq!(matrix_rows(&status, &columns, false).len(), 3);
    }
}
