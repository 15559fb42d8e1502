//! `hostage rotate-infra`: replace the shared infrastructure key in four resumable phases.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::RotateInfraArgs;
use crate::fleet::{cause_lines, failure_causes, FailedHost};
use crate::onboard::{print_exposure, progress};
use crate::output::Output;
use crate::passphrase::CliPassphrases;
use hostage_workflows::commit::CommitKind;
use hostage_workflows::rotate_infra::{self, HostFailure, RotateInfraOptions};
use hostage_workflows::FleetInventory;

/// Runs `hostage rotate-infra`.
pub fn run(
    args: &RotateInfraArgs,
    out: &mut Output,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut inventory = FleetInventory::require(inventory)?;
    let options = RotateInfraOptions {
        new_key: hostage_workflows::absolute(&args.new_key),
        ssh_config: args.ssh.ssh_config(),
        known_hosts: args.ssh.known_hosts(),
        timeout: args.ssh.timeout(),
        identities: args.keys.identities.clone(),
    };
    if args.dry_run {
        let plan = rotate_infra::plan(&inventory, &options)?;
        if out.json() {
            out.json_value(&plan)?;
        } else {
            print_rotation_plan(
                out,
                &RotationPlanText {
                    name: "infrastructure",
                    old_recipient: &plan.old_recipient,
                    new_recipient: &plan.new_recipient,
                    done: plan.done,
                    phase1_files: &plan.phase1_files,
                    phase2: plan
                        .hosts
                        .iter()
                        .map(|(host, what)| format!("{host}: {what}"))
                        .collect(),
                    phase3_files: &plan.phase3_files,
                    phase4: "the inventory would name the new key",
                },
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let guard = crate::commit::before(&args.commit, &inventory.inventory.secrets_repo)?;
    let mut passphrases = CliPassphrases::new(args.keys.passphrase_file.as_deref())?;
    let json = out.json();
    let report = rotate_infra::run(
        &mut inventory,
        &options,
        &hostage_workflows::session::ApplyOptions::default(),
        &mut passphrases,
        &phase_progress(json),
    )?;
    if !json {
        print_phases_and_failures(out, &report.phases, &report.failures)?;
        print_exposure(out, &report.exposure)?;
    }
    finish_rotation(
        out,
        guard,
        &report,
        report.complete,
        &CommitKind::RotateInfra,
        "rotate-infra stopped before phase 3 (listed above); run the same command again to resume",
    )
}

/// The end of a key rotation's run, `rotate-infra`'s and `rotate-key`'s: with `--commit`, commits
/// once the rotation is `complete` (an unfinished one is not committed: the run that finishes it
/// commits it all); with `--json`, prints `report` with its commit; an unfinished rotation says
/// `stopped` and exits with an error.
pub(crate) fn finish_rotation<T: serde::Serialize>(
    out: &mut Output,
    guard: Option<hostage_workflows::commit::CommitGuard>,
    report: &T,
    complete: bool,
    kind: &CommitKind,
    stopped: &str,
) -> anyhow::Result<ExitCode> {
    let commit = if complete {
        crate::commit::after(out, guard, kind)?
    } else {
        if guard.is_some() {
            crate::output::warn("--commit: nothing committed until the rotation is complete");
        }
        None
    };
    if out.json() {
        out.json_value(&crate::commit::with_commit(report, commit.as_ref())?)?;
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        crate::output::error(stopped);
        crate::exit::code(crate::exit::ERROR)
    })
}

/// A key rotation's dry run as text, for [`print_rotation_plan`].
pub(crate) struct RotationPlanText<'a> {
    /// The key's name (`infrastructure`, `workstation`, a name in `.sops.yaml`).
    pub(crate) name: &'a str,
    pub(crate) old_recipient: &'a str,
    pub(crate) new_recipient: &'a str,
    /// The last phase a previous run finished (0: a fresh rotation).
    pub(crate) done: u8,
    pub(crate) phase1_files: &'a [String],
    /// Phase 2's lines: a host each (infrastructure), or what must be proved.
    pub(crate) phase2: Vec<String>,
    pub(crate) phase3_files: &'a [String],
    /// What phase 4 would change.
    pub(crate) phase4: &'a str,
}

/// A key rotation's dry run, as `rotate-infra` and `rotate-key` print it: what is rotated, then
/// a line per phase (files counted, the first of them named).
pub(crate) fn print_rotation_plan(
    out: &mut Output,
    plan: &RotationPlanText<'_>,
) -> anyhow::Result<()> {
    out.line(&format!(
        "rotate the {} key {} → {} (dry run, nothing written){}",
        plan.name,
        plan.old_recipient,
        plan.new_recipient,
        if plan.done > 0 {
            format!("; resuming after phase {}", plan.done)
        } else {
            String::new()
        }
    ))?;
    out.line(&format!(
        "phase 1: {} file(s) would gain the new key: {}",
        plan.phase1_files.len(),
        first_files(plan.phase1_files)
    ))?;
    for line in &plan.phase2 {
        out.line(&format!("phase 2: {line}"))?;
    }
    out.line(&format!(
        "phase 3: {} file(s) would lose the old key and get new data keys: {}",
        plan.phase3_files.len(),
        first_files(plan.phase3_files)
    ))?;
    out.line(&format!("phase 4: {}", plan.phase4))?;
    Ok(())
}

/// A key rotation's phases as they start, on stderr (nothing with `--json`: stdout is the
/// report and stderr stays quiet).
pub(crate) fn phase_progress(json: bool) -> impl Fn(u8, &str) {
    move |n, what| {
        if !json {
            progress(&format!("phase {n}: {what}"));
        }
    }
}

/// What a key rotation's run did, a line per phase, then the hosts the new key did not reach: one
/// line per cause with its hosts (and what the first said), however many hosts. `rotate-infra`
/// and `rotate-key` print their runs alike.
pub(crate) fn print_phases_and_failures(
    out: &mut Output,
    phases: &[(u8, String)],
    failures: &[HostFailure],
) -> anyhow::Result<()> {
    for (phase, what) in phases {
        out.line(&format!("phase {phase}: {what}"))?;
    }
    let failed: Vec<FailedHost> = failures
        .iter()
        .map(|f| FailedHost {
            host: f.host.clone(),
            kind: f.kind,
            refused: f.refused,
            message: f.message.clone(),
        })
        .collect();
    if !failed.is_empty() {
        out.line("not deployed:")?;
    }
    for line in cause_lines(&failure_causes(&failed), true) {
        out.line(&line)?;
    }
    Ok(())
}

/// Files listed in a dry run's phase line before the rest are counted (`--json` lists them all).
const FILES_SHOWN: usize = 5;

/// The first [`FILES_SHOWN`] files, then how many more: a phase line stays one line on 5,000
/// files.
pub(crate) fn first_files(files: &[String]) -> String {
    let shown = files
        .iter()
        .take(FILES_SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    match files.len().saturating_sub(FILES_SHOWN) {
        0 => shown,
        more => format!("{shown} … and {more} more (--json lists every file)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_line_names_the_first_five_files_and_counts_the_rest() {
        let files: Vec<String> = (0..5000).map(|i| format!("s/{i}.yaml")).collect();
        assert_eq!(
            first_files(&files),
            "s/0.yaml, s/1.yaml, s/2.yaml, s/3.yaml, s/4.yaml … and 4995 more (--json lists every file)"
        );
        assert_eq!(first_files(&files[..2]), "s/0.yaml, s/1.yaml");
    }
}
