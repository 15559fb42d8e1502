//! `hostage backup-host-key HOST`: renders the workflow's report.

use std::path::Path;
use std::process::ExitCode;

use hostage_workflows::backup_host_key::{self, BackupAction, BackupReport};
use hostage_workflows::commit::{CommitKind, CommitReport};
use hostage_workflows::FleetInventory;

use crate::cli::BackupHostKeyArgs;
use crate::onboard::host_options;
use crate::output::Output;
use crate::passphrase::CliPassphrases;

/// Runs `hostage backup-host-key`.
pub fn run(
    args: &BackupHostKeyArgs,
    out: &mut Output,
    inventory: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let inventory = FleetInventory::require(inventory)?;
    let guard = crate::commit::before(&args.commit, &inventory.inventory.secrets_repo)?;
    let options = host_options(&args.ssh, &args.keys, None);
    let mut passphrases = CliPassphrases::new(args.keys.passphrase_file.as_deref())?;
    let plan = backup_host_key::plan(&inventory, &args.host, &options, &mut passphrases)?;
    let report = if args.dry_run {
        plan.report
    } else {
        backup_host_key::apply(plan, &hostage_workflows::session::ApplyOptions::default())?
    };
    let kind = CommitKind::BackupHostKey {
        host: report.host.clone(),
    };
    let commit = guard.map(|guard| guard.commit(&kind)).transpose()?;
    render(out, &report, commit.as_ref())?;
    Ok(ExitCode::SUCCESS)
}

fn render(
    out: &mut Output,
    report: &BackupReport,
    commit: Option<&CommitReport>,
) -> anyhow::Result<()> {
    if out.json() {
        out.json_value(&crate::commit::with_commit(report, commit)?)?;
        return Ok(());
    }
    let what = match (report.action, report.dry_run) {
        (BackupAction::Create, true) => "would be backed up (dry run, nothing written)",
        (BackupAction::Create, false) => "backed up",
        (BackupAction::Unchanged, _) => "already backed up, unchanged",
    };
    out.line(&format!(
        "{}: host key {} ({}) {what} → {}",
        report.host, report.fingerprint, report.remote_path, report.path
    ))?;
    for (index, group) in report.key_groups.iter().enumerate() {
        out.line(&format!("  key group {}: {}", index + 1, group.join(", ")))?;
    }
    if let Some(commit) = commit {
        crate::commit::print(out, commit)?;
    }
    Ok(())
}
