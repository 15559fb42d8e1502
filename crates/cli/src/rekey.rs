//! `hostage rekey`: runs the re-key workflow (`hostage_workflows::rekey`) and renders its plan,
//! what applying did and the exposure report, as text or one streamed JSON document.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use hostage_rekey::{
    Action, ApplyReport, ExposureReport, FileOutcome, FilePlan, Plan, PlanOptions, Rotate,
};
use hostage_sops::rules::{Lint, SopsConfig};
use hostage_workflows::commit::{CommitKind, CommitReport};
use hostage_workflows::plaintext::{find_plaintext, AllowList, PlaintextFile};
use hostage_workflows::rekey as workflow;
use hostage_workflows::rekey_identities as workflow_identities;
use hostage_workflows::session::ApplyOptions;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::RekeyArgs;
use crate::output::{self, Output};
use crate::passphrase::CliPassphrases;

#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Mode {
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

/// The head of the JSON document; `files` and `exposure` follow it as streamed lists.
#[derive(Serialize)]
struct HeadJson<'a> {
    format_version: u32,
    mode: Mode,
    config: String,
    resumed: bool,
    summary: SummaryJson,
    lints: &'a [Lint],
    /// Plaintext files under a creation rule (`--check` only: absent in the other modes, which
    /// do not look for them).
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a [PlaintextFile]>,
    /// What `--commit` committed (absent without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<&'a CommitReport>,
}

#[derive(Serialize)]
struct ExposureHeadJson<'a> {
    name: &'a Option<String>,
    recipient: &'a str,
}

#[derive(Serialize)]
struct ExposedJson<'a> {
    path: &'a str,
    key_paths: Vec<&'a str>,
    shamir_share_only: bool,
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
    let config = locate_config(args.config.as_deref(), inventory)?;
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
    let rotate = if args.no_rotate {
        Rotate::No
    } else {
        Rotate::Yes
    };
    let bars = Bars::default();
    let view = View {
        mode,
        verbose: args.verbose,
        exposure_file: args.exposure_file.as_deref(),
    };
    let mut plan = workflow::plan(
        &config,
        &args.paths,
        &PlanOptions {
            rotate,
            threads,
            ..PlanOptions::default()
        },
        &bars,
    )?;

    if let Mode::Check = mode {
        // The plaintext guard looks where the plan looked (git-ignored files are skipped).
        let allow = AllowList::new(&args.allow.patterns)?;
        let roots = if args.paths.is_empty() {
            vec![config.dir().to_owned()]
        } else {
            args.paths.clone()
        };
        let plaintext = find_plaintext(&config, &hostage_rekey::walk(&roots)?, &allow)?;
        let extras = Extras {
            plaintext: &plaintext,
            ..Extras::default()
        };
        report(out, &view, &config, &plan, None, &plan.exposure()?, extras)?;
        return Ok(if plan.count(Action::Error) > 0 {
            crate::exit::code(crate::exit::ERROR)
        } else if plan.has_drift() || !plaintext.is_empty() {
            crate::exit::code(crate::exit::DRIFT)
        } else {
            ExitCode::SUCCESS
        });
    }

    // Resolved before anything is checked or written: when none opens any file to change, the
    // run stops here with one error instead of one per file.
    let mut passphrases = CliPassphrases::new(args.passphrase_file.as_deref())?;
    let identities = workflow_identities::resolve_identities(
        &plan,
        &workflow_identities::identity_options(&args.identities, inventory)?,
        &mut passphrases,
    )?;

    if let Mode::DryRun = mode {
        workflow::verify(&mut plan, &identities, threads, &bars)?;
        report(
            out,
            &view,
            &config,
            &plan,
            None,
            &plan.exposure()?,
            Extras::default(),
        )?;
        return Ok(if plan.count(Action::Error) > 0 {
            crate::exit::code(crate::exit::ERROR)
        } else {
            ExitCode::SUCCESS
        });
    }

    // Apply: a plan with errors writes nothing (the config or the repo needs fixing first); the
    // plan is shown before the workflow refuses.
    if plan.count(Action::Error) > 0 {
        report(
            out,
            &view,
            &config,
            &plan,
            None,
            &plan.exposure()?,
            Extras::default(),
        )?;
    }
    let guard = crate::commit::before(&args.commit, config.dir())?;
    let applied = workflow::apply(
        &config,
        &mut plan,
        &identities,
        &hostage_rekey::ApplyOptions {
            threads,
            batch: args.batch_size,
        },
        &ApplyOptions::default(),
        &bars,
    )?;
    let commit = match guard {
        Some(guard) if applied.report.failed == 0 => Some(guard.commit(&CommitKind::Rekey)?),
        Some(_) => {
            output::warn("--commit: nothing committed, since some files could not be re-keyed");
            None
        }
        None => None,
    };
    report(
        out,
        &view,
        &config,
        &plan,
        Some(applied.report),
        &applied.exposure(&plan)?,
        Extras {
            resumed: applied.resumed.is_some(),
            plaintext: &[],
            commit: commit.as_ref(),
        },
    )?;
    if let (Some(commit), false) = (&commit, out.json()) {
        crate::commit::print(out, commit)?;
    }
    let failed = applied.report.failed;
    // The journal goes only once every file is written (and its exposure reported).
    applied.finish()?;
    Ok(if failed > 0 {
        crate::exit::code(crate::exit::ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// The workflow's progress as indicatif bars on a terminal (nothing otherwise) and its warnings
/// on stderr.
#[derive(Default)]
pub(crate) struct Bars {
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl hostage_workflows::Progress for Bars {
    fn phase(&self, what: &'static str, len: usize) {
        if let Ok(mut bar) = self.bar.lock() {
            *bar = Some(progress(len, what));
        }
    }

    fn advance(&self) {
        if let Ok(bar) = self.bar.lock() {
            if let Some(bar) = bar.as_ref() {
                bar.inc(1);
            }
        }
    }

    fn done(&self) {
        if let Ok(mut bar) = self.bar.lock() {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
        }
    }

    fn warn(&self, message: &str) {
        output::warn(message);
    }
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

/// How the report is shown: the mode, whether every file is listed, and where the whole
/// exposure report goes.
pub(crate) struct View<'a> {
    pub(crate) mode: Mode,
    pub(crate) verbose: bool,
    pub(crate) exposure_file: Option<&'a std::path::Path>,
}

/// What a report says besides the plan: whether the run finished a killed run's work, and the
/// plaintext files `--check` found.
#[derive(Default, Clone, Copy)]
pub(crate) struct Extras<'a> {
    pub(crate) resumed: bool,
    pub(crate) plaintext: &'a [PlaintextFile],
    /// What `--commit` committed.
    pub(crate) commit: Option<&'a CommitReport>,
}

/// Prints the plan (and what applying did) as text (`rekey_text`: outcomes grouped, per-file
/// lines for small runs or `-v`) or, with `--json`, one document whose `files` and `exposure`
/// lists are written entry by entry as they are read back, so the report is never whole in
/// memory. `--exposure-file` gets the whole exposure report, written atomically.
fn report(
    out: &mut Output,
    view: &View<'_>,
    config: &SopsConfig,
    plan: &Plan,
    applied: Option<ApplyReport>,
    exposure: &ExposureReport<'_>,
    extras: Extras<'_>,
) -> anyhow::Result<()> {
    let summary = SummaryJson {
        unchanged: plan.count(Action::Unchanged),
        rewrap: plan.count(Action::Rewrap),
        rotate: plan.count(Action::Rotate),
        error: plan.count(Action::Error),
        skipped_not_sops: plan.skipped,
        written: applied.map_or(0, |a| a.written),
        failed: applied.map_or(0, |a| a.failed),
    };
    if let Some(path) = view.exposure_file {
        let mut text = Vec::new();
        crate::rekey_text::exposure(&mut text, exposure, None)?;
        workflow::write_exposure_file(path, &text)
            .with_context(|| format!("cannot write the exposure report to {}", path.display()))?;
    }
    if out.json() {
        return report_json(out, view.mode, config, plan, summary, exposure, extras);
    }
    crate::rekey_text::report(out, view, plan, applied, exposure, extras.plaintext)
}

/// The `--json` report: the head's members, then `files` and `exposure` one entry per line.
fn report_json(
    out: &mut Output,
    mode: Mode,
    config: &SopsConfig,
    plan: &Plan,
    summary: SummaryJson,
    exposure: &ExposureReport<'_>,
    extras: Extras<'_>,
) -> anyhow::Result<()> {
    let head = serde_json::to_string(&HeadJson {
        format_version: crate::output::FORMAT_VERSION,
        mode,
        config: config.path().display().to_string(),
        resumed: extras.resumed,
        summary,
        lints: config.lints(),
        plaintext: matches!(mode, Mode::Check).then_some(extras.plaintext),
        commit: extras.commit,
    })?;
    // The head without its closing brace, so the streamed lists become members of it.
    let head = head.strip_suffix('}').unwrap_or(&head);
    out.raw(head.as_bytes())?;
    out.raw(b",\n\"files\": [")?;
    let mut list = JsonList::default();
    for file in plan.files() {
        let file = file?;
        list.item(
            out,
            &FileJson {
                path: file.display.clone(),
                action: file.action,
                rule: file.rule,
                reason: file.reason.clone(),
                groups: file
                    .groups
                    .iter()
                    .map(|g| GroupJson {
                        added: recipients_json(&g.added),
                        removed: recipients_json(&g.removed),
                        kept: recipients_json(&g.kept),
                    })
                    .collect(),
                outcome: file.outcome.as_ref().map(|o| match o {
                    FileOutcome::Written => "written",
                    FileOutcome::Failed(_) => "failed",
                }),
                error: file.failure().map(str::to_owned),
            },
        )?;
    }
    list.end(out)?;
    out.raw(b",\n\"exposure\": [")?;
    let mut recipients = JsonList::default();
    for recipient in exposure.recipients() {
        let head = serde_json::to_string(&ExposureHeadJson {
            name: &recipient.name,
            recipient: &recipient.recipient,
        })?;
        recipients.open(out)?;
        out.raw(head.strip_suffix('}').unwrap_or(&head).as_bytes())?;
        out.raw(b", \"files\": [")?;
        let mut files = JsonList::default();
        for file in exposure.files_of(recipient)? {
            let file = file?;
            files.item(
                out,
                &ExposedJson {
                    path: &file.path,
                    key_paths: file.key_paths.iter().collect(),
                    shamir_share_only: file.shamir_share_only,
                },
            )?;
        }
        files.end(out)?;
        out.raw(b"}")?;
    }
    recipients.end(out)?;
    out.raw(b"}\n")?;
    Ok(())
}

/// A JSON array written one element per line.
#[derive(Default)]
struct JsonList {
    any: bool,
}

impl JsonList {
    /// Starts the next element (the separator before it).
    fn open(&mut self, out: &mut Output) -> std::io::Result<()> {
        out.raw(if self.any { b",\n" } else { b"\n" })?;
        self.any = true;
        Ok(())
    }

    fn item(&mut self, out: &mut Output, value: &impl Serialize) -> anyhow::Result<()> {
        self.open(out)?;
        out.raw(&serde_json::to_vec(value)?)?;
        Ok(())
    }

    fn end(self, out: &mut Output) -> std::io::Result<()> {
        out.raw(if self.any { b"\n]" } else { b"]" })
    }
}

/// A file's recipient changes (`+name -name`, per group when it has several) and its warning.
pub(crate) fn describe_changes(file: &FilePlan) -> String {
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

/// The `.sops.yaml` a repository verb uses (`--config`, the inventory's repository, `SOPS_CONFIG`
/// or the nearest above the current directory: [`workflow::locate_config`]), warning on stderr
/// about how it was found when that needs saying.
pub(crate) fn locate_config(
    flag: Option<&std::path::Path>,
    inventory: Option<&std::path::Path>,
) -> anyhow::Result<hostage_sops::rules::SopsConfig> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let env_config = std::env::var_os("SOPS_CONFIG");
    let (config, warning) = workflow::locate_config(&cwd, flag, env_config.as_deref(), inventory)?;
    if let Some(warning) = &warning {
        output::warn(warning);
    }
    Ok(config)
}
