//! `hostage set FILE KEY`: reads the value from stdin and renders the workflow's report.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use hostage_recipients::{IdentityOptions, IdentitySet};
use hostage_workflows::commit::{CommitKind, CommitReport};
use hostage_workflows::set::{self, SetAction, SetReport};
use hostage_workflows::FleetInventory;
use zeroize::Zeroizing;

use crate::cli::SetArgs;
use crate::output::Output;
use crate::passphrase::CliPassphrases;

/// Runs `hostage set`.
pub fn run(args: &SetArgs, out: &mut Output, inventory: Option<&Path>) -> anyhow::Result<ExitCode> {
    let key = set::parse_key_path(&args.key)?;
    let config = crate::rekey::locate_config(args.config.as_deref(), inventory)?;
    let guard = crate::commit::before(&args.commit, config.dir())?;
    let mut input = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut input)
        .context("cannot read the value from stdin")?;
    let value = set::value_from_input(input, args.keep_newline)?;
    let identities = match FleetInventory::find(inventory)? {
        Some(fleet) => fleet.repo_identities(&args.keys.identities),
        None => IdentitySet::load(&IdentityOptions::from_env(args.keys.identities.clone())),
    };
    let mut passphrases = CliPassphrases::new(args.keys.passphrase_file.as_deref())?;
    let plan = set::plan(
        &config,
        &args.file,
        &key,
        &value,
        &identities,
        &mut passphrases,
    )?;
    drop(value);
    let report = if args.dry_run {
        plan.report
    } else {
        set::apply(plan, &hostage_workflows::session::ApplyOptions::default())?
    };
    let kind = CommitKind::Set {
        file: report.file.clone(),
        key: report.key.clone(),
    };
    let commit = guard.map(|guard| guard.commit(&kind)).transpose()?;
    render(out, &report, commit.as_ref())?;
    Ok(ExitCode::SUCCESS)
}

fn render(
    out: &mut Output,
    report: &SetReport,
    commit: Option<&CommitReport>,
) -> anyhow::Result<()> {
    if out.json() {
        out.json_value(&crate::commit::with_commit(report, commit)?)?;
        return Ok(());
    }
    let key: String = report.key.iter().map(|k| format!("[\"{k}\"]")).collect();
    let (done, would) = match report.action {
        SetAction::Create => ("created", "would be created"),
        SetAction::Replace => ("value replaced", "value would be replaced"),
        SetAction::Add => ("key added", "key would be added"),
        SetAction::Unchanged => (
            "already has this value, unchanged",
            "already has this value",
        ),
    };
    let what = if report.dry_run { would } else { done };
    out.line(&format!("{} {key}: {what}", report.file))?;
    if report.dry_run {
        out.line("(dry run, nothing written)")?;
    }
    for (index, group) in report.key_groups.iter().enumerate() {
        out.line(&format!("  key group {}: {}", index + 1, group.join(", ")))?;
    }
    if let Some(commit) = commit {
        crate::commit::print(out, commit)?;
    }
    Ok(())
}
