//! `hostage offboard HOST`: renders the workflow's report.

use std::path::Path;
use std::process::ExitCode;

use hostage_workflows::commit::{CommitGuard, CommitKind, CommitReport};
use hostage_workflows::offboard::{self, OffboardOptions, OffboardReport};
use hostage_workflows::rotate_infra::{self, RotateInfraOptions, RotateInfraReport};
use hostage_workflows::FleetInventory;

use crate::cli::OffboardArgs;
use crate::onboard::{print_exposure, print_planned_exposure, progress};
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
        rotate_infra: args.rotate_infra,
        wipe_remote: args.wipe_remote,
        remote: crate::onboard::host_options(&args.ssh, &args.keys, None),
    };
    let guard = crate::commit::before(&args.commit, &inventory.inventory.secrets_repo)?;
    let plan = offboard::plan(&inventory, &args.host, &options)?;
    if args.dry_run {
        render(out, &plan.report, None, &Commits::default())?;
        if args.rotate_infra && !out.json() {
            out.line("then: rotate-infra with the new key on the remaining infrastructure hosts (`hostage rotate-infra --new-key FILE --dry-run` shows its phases once the host is out)")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !out.json() && !plan.is_noop() {
        progress(&format!("offboarding {}", args.host));
    }
    let mut passphrases = CliPassphrases::new(args.keys.passphrase_file.as_deref())?;
    let report = offboard::apply(
        &inventory,
        plan,
        &mut passphrases,
        &hostage_workflows::session::ApplyOptions::default(),
    )?;
    // The offboarding is committed on its own, before a rotation that may stop in phase 2.
    let mut commits = Commits {
        offboard: guard
            .map(|guard| {
                guard.commit(&CommitKind::Offboard {
                    host: report.host.clone(),
                })
            })
            .transpose()?,
        rotate_infra: None,
    };
    let Some(new_key) = args.new_key.as_deref().filter(|_| args.rotate_infra) else {
        render(out, &report, None, &commits)?;
        return Ok(ExitCode::SUCCESS);
    };
    // The inventory without the host: rotate-infra deploys to the hosts that remain.
    let mut remaining = FleetInventory::load(&inventory.inventory.path)?;
    // A re-run after a finished rotation: the inventory already names the new key.
    let new_recipient = hostage_remote::InfrastructureKey::load(new_key)?
        .public_key()
        .to_age_recipient()?;
    let rotated_already = remaining
        .inventory
        .infrastructure
        .as_ref()
        .is_some_and(|infra| infra.recipient == new_recipient);
    if rotated_already {
        render(out, &report, None, &commits)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rotation_guard = if args.commit.commit {
        Some(CommitGuard::before(&inventory.inventory.secrets_repo)?)
    } else {
        None
    };
    let options = RotateInfraOptions {
        new_key: hostage_workflows::absolute(new_key),
        ssh_config: args.ssh.ssh_config(),
        known_hosts: args.ssh.known_hosts(),
        timeout: args.ssh.timeout(),
        identities: args.keys.identities.clone(),
    };
    let json = out.json();
    let rotated = rotate_infra::run(
        &mut remaining,
        &options,
        &hostage_workflows::session::ApplyOptions::default(),
        &mut passphrases,
        &|n, what| {
            if !json {
                progress(&format!("rotate-infra phase {n}: {what}"));
            }
        },
    )?;
    // An unfinished rotation is not committed: the run that finishes it commits it.
    match rotation_guard {
        Some(guard) if rotated.complete => {
            commits.rotate_infra = Some(guard.commit(&CommitKind::RotateInfra)?);
        }
        Some(_) => output::warn("--commit: the rotation is not committed until it is complete"),
        None => {}
    }
    render(out, &report, Some(&rotated), &commits)?;
    Ok(if rotated.complete {
        ExitCode::SUCCESS
    } else {
        output::error(&format!(
            "{} is offboarded, but rotate-infra stopped before phase 3 (listed above); run the same command again to resume",
            args.host
        ));
        crate::exit::code(crate::exit::ERROR)
    })
}

/// What `--commit` committed: the offboarding, then (with `--rotate-infra`) the finished
/// rotation, each with its own message.
#[derive(Default)]
struct Commits {
    offboard: Option<CommitReport>,
    rotate_infra: Option<CommitReport>,
}

fn render(
    out: &mut Output,
    report: &OffboardReport,
    rotated: Option<&RotateInfraReport>,
    commits: &Commits,
) -> anyhow::Result<()> {
    if out.json() {
        let mut doc = crate::commit::with_commit(
            &crate::output::versioned(report)?,
            commits.offboard.as_ref(),
        )?;
        if let (Some(rotated), Some(members)) = (rotated, doc.as_object_mut()) {
            members.insert(
                "rotate_infra".to_owned(),
                crate::commit::with_commit(rotated, commits.rotate_infra.as_ref())?,
            );
        }
        out.json_value(&doc)?;
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
    let nothing_to_do = report.changes.is_empty()
        && report.rekeyed.is_empty()
        && report.removed.is_empty()
        && !report.inventory_entry_removed
        && report.wiped.is_none()
        && report.exposure.is_empty();
    out.line(&format!(
        "offboard {}{}{tail}{}",
        report.host,
        report
            .recipient
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        if nothing_to_do {
            ": nothing to do (no rule, file, public key, backup or inventory entry names it)"
        } else {
            ""
        }
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
    if let Some((path, what)) = &report.wiped {
        out.line(&format!("  {} on {}: {what}", path, report.host))?;
    }
    if report.dry_run {
        print_planned_exposure(out, &report.exposure)?;
    } else {
        print_exposure(out, &report.exposure)?;
    }
    if let Some(rotated) = rotated {
        for (phase, what) in &rotated.phases {
            out.line(&format!("rotate-infra phase {phase}: {what}"))?;
        }
        for host in &rotated.failed_hosts {
            out.line(&format!("  not deployed: {host}"))?;
        }
        print_exposure(out, &rotated.exposure)?;
    }
    for commit in [&commits.offboard, &commits.rotate_infra]
        .into_iter()
        .flatten()
    {
        crate::commit::print(out, commit)?;
    }
    Ok(())
}
