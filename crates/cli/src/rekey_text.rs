//! The text report of `hostage rekey`, made to fit a screen on 5,000 files: identical outcomes
//! are grouped (one line per cause or per recipient change, with a count and a few example
//! paths), per-file lines only for small runs or `-v`, the exposure report cut to its first
//! files per removed recipient (the whole of it goes to `--exposure-file` and `--json`), and a
//! last line that says what to do next.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::io;

use hostage_rekey::{Action, ApplyReport, ExposureReport, Plan};

use crate::output::Output;
use crate::rekey::{describe_changes, Mode, View};

/// Up to this many files to change or in error, every file gets its own line without `-v`
/// (said in `hostage rekey --help`).
pub(crate) const PER_FILE_LINES: usize = 20;
/// Example paths shown per group of identical failures.
const EXAMPLES: usize = 3;
/// Groups shown without `-v`; the rest are counted in one line.
const GROUPS_SHOWN: usize = 10;
/// Files listed per removed recipient in the exposure report on the terminal without `-v`.
const EXPOSED_FILES_SHOWN: usize = 5;

/// Where report lines go: the terminal's stdout, or the bytes of `--exposure-file`.
pub(crate) trait Lines {
    /// One line of text.
    fn line(&mut self, text: &str) -> io::Result<()>;
}

impl Lines for Output {
    fn line(&mut self, text: &str) -> io::Result<()> {
        Output::line(self, text)
    }
}

impl Lines for Vec<u8> {
    fn line(&mut self, text: &str) -> io::Result<()> {
        self.extend_from_slice(text.as_bytes());
        self.push(b'\n');
        Ok(())
    }
}

/// The text report: files (per file or grouped), the summary, the exposure report, what next.
pub(crate) fn report(
    out: &mut Output,
    view: &View<'_>,
    plan: &Plan,
    applied: Option<ApplyReport>,
    exposure: &ExposureReport<'_>,
    plaintext: &[hostage_workflows::plaintext::PlaintextFile],
) -> anyhow::Result<()> {
    let touched = plan.len() - plan.count(Action::Unchanged);
    let grouped = !view.verbose && touched > PER_FILE_LINES;
    if touched > 0 {
        if grouped {
            groups(out, view.mode, plan, applied.is_some())?;
        } else {
            per_file(out, plan)?;
        }
    }
    summary(out, view.mode, plan, applied)?;
    for file in plaintext {
        out.line(&format!("plaintext {}", file.message()))?;
    }
    if !exposure.is_empty() {
        out.line("")?;
        let limit = (!view.verbose).then_some(EXPOSED_FILES_SHOWN);
        self::exposure(out, exposure, limit)?;
    }
    if let Some(next) = next_step(view, plan, applied, exposure, grouped) {
        out.line("")?;
        out.line(&next)?;
    }
    Ok(())
}

/// One line per file that is not unchanged.
fn per_file(out: &mut Output, plan: &Plan) -> anyhow::Result<()> {
    let mut width = 0;
    for file in plan.files() {
        let file = file?;
        if file.action != Action::Unchanged {
            width = width.max(file.display.len());
        }
    }
    for file in plan.files() {
        let file = file?;
        if file.action == Action::Unchanged {
            continue;
        }
        let label = match (file.action, file.failure()) {
            (_, Some(_)) => "failed",
            (Action::Rewrap, _) => "rewrap",
            (Action::Rotate, _) => "rotate",
            (Action::Error, _) => "error",
            (Action::Unchanged, _) => "unchanged",
        };
        let detail = match (file.action, file.failure()) {
            (_, Some(reason)) => reason.to_owned(),
            (Action::Error, _) => file.reason.clone().unwrap_or_default(),
            _ => describe_changes(&file),
        };
        let mut lines = detail.lines();
        let first = lines.next().unwrap_or_default();
        out.line(&format!("{label:<9} {:<width$}  {first}", file.display))?;
        for rest in lines {
            out.line(&format!("{:<10}{rest}", ""))?;
        }
    }
    Ok(())
}

/// What one group of files has in common.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Applying failed, for this reason.
    Failed(String),
    /// The plan cannot re-key the file, for this reason.
    Error(String),
    /// Re-wrapped (or to re-wrap), with this recipient change.
    Rewrap(String),
    /// Rotated (or to rotate), with this recipient change.
    Rotate(String),
}

/// The files of one outcome: how many, and the first few paths.
#[derive(Default)]
struct Group {
    count: usize,
    examples: Vec<String>,
}

/// One line (and the lines of a multi-line reason) per distinct outcome, failures first and
/// the biggest groups first within each kind, with example paths for failures.
fn groups(out: &mut Output, mode: Mode, plan: &Plan, applied: bool) -> anyhow::Result<()> {
    let mut by_outcome: BTreeMap<Outcome, Group> = BTreeMap::new();
    for file in plan.files() {
        let file = file?;
        let outcome = match (file.action, file.failure()) {
            (_, Some(reason)) => Outcome::Failed(reason.to_owned()),
            (Action::Error, _) => Outcome::Error(file.reason.clone().unwrap_or_default()),
            (Action::Rewrap, _) => Outcome::Rewrap(describe_changes(&file)),
            (Action::Rotate, _) => Outcome::Rotate(describe_changes(&file)),
            (Action::Unchanged, _) => continue,
        };
        let group = by_outcome.entry(outcome).or_default();
        group.count += 1;
        if group.examples.len() < EXAMPLES {
            group.examples.push(file.display.clone());
        }
    }
    let mut sorted: Vec<(Outcome, Group)> = by_outcome.into_iter().collect();
    sorted.sort_by_key(|(outcome, group)| {
        let rank = match outcome {
            Outcome::Failed(_) => 0,
            Outcome::Error(_) => 1,
            Outcome::Rewrap(_) | Outcome::Rotate(_) => 2,
        };
        (rank, Reverse(group.count))
    });
    let hidden: Vec<&(Outcome, Group)> = sorted.iter().skip(GROUPS_SHOWN).collect();
    for (outcome, group) in sorted.iter().take(GROUPS_SHOWN) {
        let files = plural(group.count, "file");
        let (head, reason) = match outcome {
            Outcome::Failed(reason) => (format!("{files} failed"), Some(reason)),
            Outcome::Error(reason) => (format!("{files} cannot be re-keyed"), Some(reason)),
            Outcome::Rewrap(change) | Outcome::Rotate(change) => {
                let done = matches!(outcome, Outcome::Rewrap(_));
                let verb = match (applied && mode == Mode::Apply, done) {
                    (true, true) => "re-wrapped",
                    (true, false) => "rotated",
                    (false, true) => "to re-wrap",
                    (false, false) => "to rotate",
                };
                out.line(&format!("{files} {verb}: {change}"))?;
                continue;
            }
        };
        let mut lines = reason.map(String::as_str).unwrap_or_default().lines();
        out.line(&format!("{head}: {}", lines.next().unwrap_or_default()))?;
        for rest in lines {
            out.line(&format!("  {rest}"))?;
        }
        let more = group.count - group.examples.len();
        let more = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        out.line(&format!("  e.g. {}{more}", group.examples.join(", ")))?;
    }
    if !hidden.is_empty() {
        let files: usize = hidden.iter().map(|(_, g)| g.count).sum();
        out.line(&format!(
            "… and {} other outcome(s) of {} (-v lists every file)",
            hidden.len(),
            plural(files, "file")
        ))?;
    }
    Ok(())
}

/// The totals line.
fn summary(
    out: &mut Output,
    mode: Mode,
    plan: &Plan,
    applied: Option<ApplyReport>,
) -> io::Result<()> {
    let verb = match mode {
        Mode::Apply => "",
        Mode::Check | Mode::DryRun => " (nothing written)",
    };
    let mut line = format!(
        "{} sops file(s): {} unchanged, {} rewrap, {} rotate, {} error{verb}",
        plan.len(),
        plan.count(Action::Unchanged),
        plan.count(Action::Rewrap),
        plan.count(Action::Rotate),
        plan.count(Action::Error),
    );
    if let Some(applied) = applied {
        line.push_str(&format!(
            "; {} written, {} failed",
            applied.written, applied.failed
        ));
    }
    out.line(&line)
}

/// The exposure report: per removed recipient, how many files and values it could read, then
/// the files with their values (the first `limit` of them, when given).
pub(crate) fn exposure(
    out: &mut dyn Lines,
    exposure: &ExposureReport<'_>,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    if exposure.is_empty() {
        out.line("exposure: no recipient was removed; no credential to change")?;
        return Ok(());
    }
    out.line(
        "exposure: removed recipients could read these values (change the credentials they hold):",
    )?;
    for recipient in exposure.recipients() {
        let who = match &recipient.name {
            Some(name) => format!("{name} ({})", recipient.recipient),
            None => recipient.recipient.clone(),
        };
        let (mut files, mut values) = (0usize, 0usize);
        for file in exposure.files_of(recipient)? {
            files += 1;
            values += file?.key_paths.iter().count();
        }
        out.line(&format!(
            "  {who}: {}, {}",
            plural(files, "file"),
            plural(values, "value")
        ))?;
        for (index, file) in exposure.files_of(recipient)?.enumerate() {
            if limit.is_some_and(|limit| index >= limit) {
                let more = files - index;
                let noun = if more == 1 { "file" } else { "files" };
                out.line(&format!(
                    "    … and {more} more {noun} (the whole report: --exposure-file FILE, -v or --json)"
                ))?;
                break;
            }
            let file = file?;
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
    Ok(())
}

/// The last line: what the operator does next, when there is something to do.
fn next_step(
    view: &View<'_>,
    plan: &Plan,
    applied: Option<ApplyReport>,
    exposure: &ExposureReport<'_>,
    grouped: bool,
) -> Option<String> {
    let every_file = if grouped {
        " (-v lists every file)"
    } else {
        ""
    };
    let errors = plan.count(Action::Error);
    if let Some(applied) = applied {
        if applied.failed > 0 {
            return Some(format!(
                "next: fix what the failures say{every_file}, then run `hostage rekey` again: it re-keys the files left and keeps the exposure report until every file is written"
            ));
        }
        if applied.written == 0 {
            return None;
        }
        return Some(if exposure.is_empty() {
            "next: review the re-keyed files (`git diff --stat`) and commit them".to_owned()
        } else {
            "next: change the credentials listed under exposure, then commit the re-keyed files"
                .to_owned()
        });
    }
    if errors > 0 {
        let again = match view.mode {
            Mode::Apply => "; nothing was written",
            Mode::Check | Mode::DryRun => "",
        };
        return Some(format!(
            "next: fix the files that cannot be re-keyed{every_file}{again}, then run `hostage rekey --dry-run` again"
        ));
    }
    if !plan.has_drift() {
        return None;
    }
    Some(match view.mode {
        Mode::Check => {
            "next: `hostage rekey --dry-run` checks your keys open these files; `hostage rekey` writes them".to_owned()
        }
        Mode::DryRun | Mode::Apply => "next: run `hostage rekey` to write these changes".to_owned(),
    })
}

/// `1 file`, `5000 files`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
