//! `hostage rekey`: walk the repo, plan every sops file against `.sops.yaml`, then print the plan
//! (`--dry-run`, `--check`) or apply it under the repo lock with a journal.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hostage_recipients::{IdentityOptions, IdentitySet};
use hostage_rekey::{
    Action, ApplyOptions, ApplyReport, Exposure, FileOutcome, Journal, Plan, PlanOptions, RepoLock,
    Rotate,
};
use hostage_sops::rules::{Lint, SopsConfig};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::RekeyArgs;
use crate::output::{self, Output};
use crate::passphrase::CliPassphrases;

/// `--check` found files to re-key.
const EXIT_DRIFT: u8 = 3;

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Check,
    DryRun,
    Apply,
}

#[derive(Serialize)]
struct RecipientJson {
    name: Option<String>,
    recipient: String,
}

#[derive(Serialize)]
struct GroupJson {
    added: Vec<RecipientJson>,
    removed: Vec<RecipientJson>,
    kept: Vec<RecipientJson>,
}

#[derive(Serialize)]
struct FileJson {
    path: String,
    action: Action,
    rule: Option<usize>,
    reason: Option<String>,
    groups: Vec<GroupJson>,
    /// After an apply: `written` or `failed`.
    outcome: Option<&'static str>,
    error: Option<String>,
}

#[derive(Serialize)]
struct SummaryJson {
    unchanged: usize,
    rewrap: usize,
    rotate: usize,
    error: usize,
    skipped_not_sops: usize,
    written: usize,
    failed: usize,
}

#[derive(Serialize)]
struct ExposedJson {
    path: String,
    key_paths: Vec<String>,
    shamir_share_only: bool,
}

#[derive(Serialize)]
struct ExposureJson {
    name: Option<String>,
    recipient: String,
    files: Vec<ExposedJson>,
}

#[derive(Serialize)]
struct RekeyJson<'a> {
    mode: Mode,
    config: String,
    resumed: bool,
    summary: SummaryJson,
    files: Vec<FileJson>,
    exposure: Vec<ExposureJson>,
    lints: &'a [Lint],
}

fn recipients_json(list: &[std::sync::Arc<hostage_rekey::Recipient>]) -> Vec<RecipientJson> {
    list.iter()
        .map(|r| RecipientJson {
            name: r.name.clone(),
            recipient: r.recipient.clone(),
        })
        .collect()
}

/// Runs `hostage rekey`.
///
/// With an inventory named explicitly (`--inventory`, `HOSTAGE_INVENTORY`) and no `--config` or
/// `SOPS_CONFIG`, the inventory's secrets repo is re-keyed.
pub fn run(
    args: &RekeyArgs,
    out: &mut Output,
    inventory: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let env_config = std::env::var_os("SOPS_CONFIG");
    let from_inventory = match (inventory, &args.config, &env_config) {
        (Some(path), None, None) => Some(
            crate::workflows::FleetInventory::load(path)?
                .inventory
                .secrets_repo
                .join(".sops.yaml"),
        ),
        _ => None,
    };
    let explicit = args.config.as_deref().or(from_inventory.as_deref());
    let location = SopsConfig::find(&cwd, explicit, env_config.as_deref())?;
    if let Some(warning) = &location.warning {
        output::warn(warning);
    }
    let config = SopsConfig::load(&location.path)?;
    if !out.json() {
        for lint in config.lints() {
            output::warn(&format!(
                "{}:{}: {}",
                config.path().display(),
                lint.line,
                lint.message
            ));
        }
    }
    let mode = if args.check {
        Mode::Check
    } else if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    let threads = args
        .jobs
        .unwrap_or_else(hostage_rekey::default_threads)
        .max(1);
    let roots: Vec<PathBuf> = if args.paths.is_empty() {
        vec![config.dir().to_owned()]
    } else {
        args.paths.clone()
    };
    let candidates = hostage_rekey::walk(&roots)?;
    if candidates.is_empty() {
        output::warn(
            "no files to look at under the given paths (git ignores them, or they are empty)",
        );
    }
    let rotate = if args.no_rotate {
        Rotate::No
    } else {
        Rotate::Yes
    };
    let bar = progress(candidates.len(), "planning");
    let mut plan = hostage_rekey::plan(
        &config,
        &candidates,
        &PlanOptions { rotate, threads },
        &|| bar.inc(1),
    );
    bar.finish_and_clear();
    if args.no_rotate
        && plan
            .files
            .iter()
            .any(|f| f.removes() && f.action == Action::Rewrap)
    {
        output::warn("--no-rotate: removed recipients keep the data key if they saved it; rotate the secrets themselves");
    }

    if let Mode::Check = mode {
        report(out, mode, &config, &plan, None, &plan.exposure(), false)?;
        return Ok(if plan.count(Action::Error) > 0 {
            ExitCode::from(1)
        } else if plan.has_drift() {
            ExitCode::from(EXIT_DRIFT)
        } else {
            ExitCode::SUCCESS
        });
    }

    let identities = IdentitySet::load(&IdentityOptions::from_env(args.identities.clone()));
    let mut passphrases = CliPassphrases::new(args.passphrase_file.as_deref())?;
    let identities =
        hostage_rekey::unlock_identities(&identities, &plan.recipients_to_open(), &mut passphrases);

    if let Mode::DryRun = mode {
        let to_check = plan.count(Action::Rewrap) + plan.count(Action::Rotate);
        let bar = progress(to_check, "checking keys");
        hostage_rekey::verify(&mut plan, &identities, threads, &|| bar.inc(1));
        bar.finish_and_clear();
        report(out, mode, &config, &plan, None, &plan.exposure(), false)?;
        return Ok(if plan.count(Action::Error) > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }

    // Apply: a plan with errors writes nothing (the config or the repo needs fixing first).
    if plan.count(Action::Error) > 0 {
        report(out, mode, &config, &plan, None, &plan.exposure(), false)?;
        anyhow::bail!(
            "{} file(s) cannot be re-keyed (listed above); nothing was written",
            plan.count(Action::Error)
        );
    }
    let state = hostage_rekey::state_dir(config.dir());
    let _lock = RepoLock::acquire(&state)?;
    let previous = Journal::load(&state)?;
    let mut exposure = plan.exposure();
    if let Some(previous) = &previous {
        output::warn(&format!(
            "finishing an interrupted run: a previous run (pid {}, {} file(s) planned) did not complete; its exposure report is included",
            previous.pid,
            previous.files.len()
        ));
        previous.clean_temp_files();
        exposure = hostage_rekey::merge_exposure(exposure, &previous.exposure);
    }
    let resumed = previous.is_some();
    if !plan.has_drift() {
        Journal::remove(&state)?;
        report(
            out,
            mode,
            &config,
            &plan,
            Some(&ApplyReport::default()),
            &exposure,
            resumed,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    Journal::from_plan(&plan, exposure.clone()).save(&state)?;
    let todo = plan.count(Action::Rewrap) + plan.count(Action::Rotate);
    let bar = progress(todo, "re-keying");
    let result = hostage_rekey::apply(
        &plan,
        &identities,
        &ApplyOptions {
            threads,
            batch: args.batch_size,
        },
        &|| bar.inc(1),
    );
    bar.finish_and_clear();
    let failed = result.failures().count();
    if failed == 0 {
        Journal::remove(&state)?;
    }
    for (path, reason) in result.failures() {
        output::error(&format!("{path}: {reason}"));
    }
    report(out, mode, &config, &plan, Some(&result), &exposure, resumed)?;
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress(len: usize, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len as u64)
        .with_style(style)
        .with_prefix(what)
}

fn report(
    out: &mut Output,
    mode: Mode,
    config: &SopsConfig,
    plan: &Plan,
    applied: Option<&ApplyReport>,
    exposure: &[Exposure],
    resumed: bool,
) -> std::io::Result<()> {
    let outcome_of = |display: &str| {
        applied.and_then(|r| r.files.iter().find(|(p, _)| p == display).map(|(_, o)| o))
    };
    let summary = SummaryJson {
        unchanged: plan.count(Action::Unchanged),
        rewrap: plan.count(Action::Rewrap),
        rotate: plan.count(Action::Rotate),
        error: plan.count(Action::Error),
        skipped_not_sops: plan.skipped,
        written: applied.map_or(0, ApplyReport::written),
        failed: applied.map_or(0, |r| r.failures().count()),
    };
    if out.json() {
        let outcomes: std::collections::HashMap<&str, &FileOutcome> = applied
            .map(|r| r.files.iter().map(|(p, o)| (p.as_str(), o)).collect())
            .unwrap_or_default();
        let files = plan
            .files
            .iter()
            .map(|f| {
                let outcome = outcomes.get(f.display.as_str());
                FileJson {
                    path: f.display.clone(),
                    action: f.action,
                    rule: f.rule,
                    reason: f.reason.clone(),
                    groups: f
                        .groups
                        .iter()
                        .map(|g| GroupJson {
                            added: recipients_json(&g.added),
                            removed: recipients_json(&g.removed),
                            kept: recipients_json(&g.kept),
                        })
                        .collect(),
                    outcome: outcome.map(|o| match o {
                        FileOutcome::Written => "written",
                        FileOutcome::Failed(_) => "failed",
                    }),
                    error: outcome.and_then(|o| match o {
                        FileOutcome::Failed(reason) => Some(reason.clone()),
                        FileOutcome::Written => None,
                    }),
                }
            })
            .collect();
        let exposure = exposure
            .iter()
            .map(|e| ExposureJson {
                name: e.recipient.name.clone(),
                recipient: e.recipient.recipient.clone(),
                files: e
                    .files
                    .iter()
                    .map(|f| ExposedJson {
                        path: f.path.clone(),
                        key_paths: f.key_paths.iter().map(str::to_owned).collect(),
                        shamir_share_only: f.shamir_share_only,
                    })
                    .collect(),
            })
            .collect();
        return out.json_value(&RekeyJson {
            mode,
            config: config.path().display().to_string(),
            resumed,
            summary,
            files,
            exposure,
            lints: config.lints(),
        });
    }
    let width = plan
        .files
        .iter()
        .filter(|f| f.action != Action::Unchanged)
        .map(|f| f.display.len())
        .max()
        .unwrap_or(0);
    for file in plan.files.iter().filter(|f| f.action != Action::Unchanged) {
        let label = match (file.action, outcome_of(&file.display)) {
            (_, Some(FileOutcome::Failed(_))) => "failed",
            (Action::Rewrap, _) => "rewrap",
            (Action::Rotate, _) => "rotate",
            (Action::Error, _) => "error",
            (Action::Unchanged, _) => "unchanged",
        };
        let detail = match file.action {
            Action::Error => file.reason.clone().unwrap_or_default(),
            _ => describe_changes(file),
        };
        out.line(&format!("{label:<9} {:<width$}  {detail}", file.display))?;
    }
    let verb = match mode {
        Mode::Apply => "",
        Mode::Check | Mode::DryRun => " (nothing written)",
    };
    let mut line = format!(
        "{} sops file(s): {} unchanged, {} rewrap, {} rotate, {} error{verb}",
        plan.files.len(),
        summary.unchanged,
        summary.rewrap,
        summary.rotate,
        summary.error
    );
    if applied.is_some() {
        line.push_str(&format!(
            "; {} written, {} failed",
            summary.written, summary.failed
        ));
    }
    out.line(&line)?;
    if !exposure.is_empty() {
        out.line("")?;
        out.line("exposure: removed recipients could read these values (change the credentials they hold):")?;
        for entry in exposure {
            let who = match &entry.recipient.name {
                Some(name) => format!("{name} ({})", entry.recipient.recipient),
                None => entry.recipient.recipient.clone(),
            };
            out.line(&format!("  {who}:"))?;
            for file in &entry.files {
                let share = if file.shamir_share_only {
                    " [one Shamir share only]"
                } else {
                    ""
                };
                out.line(&format!(
                    "    {}{share}: {}",
                    file.path,
                    file.key_paths.iter().collect::<Vec<_>>().join(", ")
                ))?;
            }
        }
    }
    Ok(())
}

fn describe_changes(file: &hostage_rekey::FilePlan) -> String {
    let mut parts = Vec::new();
    let several = file.groups.len() > 1;
    for (index, group) in file.groups.iter().enumerate() {
        let mut changes: Vec<String> = group.added.iter().map(|r| format!("+{r}")).collect();
        changes.extend(group.removed.iter().map(|r| format!("-{r}")));
        if changes.is_empty() {
            continue;
        }
        if several {
            parts.push(format!("group {}: {}", index + 1, changes.join(" ")));
        } else {
            parts.push(changes.join(" "));
        }
    }
    let mut text = parts.join("; ");
    if let Some(reason) = &file.reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}
