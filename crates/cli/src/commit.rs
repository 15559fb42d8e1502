//! `--commit` for the verbs that change the secrets repository: the check before the run, the
//! commit after it, and how the result is shown (text lines; the `commit` member in JSON).

use std::path::Path;

use hostage_workflows::commit::{CommitGuard, CommitKind, CommitReport};
use serde::Serialize;

use crate::cli::CommitArgs;
use crate::output::Output;

/// With `--commit`, checks the secrets repository `repo` before the run changes anything (a git
/// work tree with nothing staged); `None` without it.
pub fn before(args: &CommitArgs, repo: &Path) -> anyhow::Result<Option<CommitGuard>> {
    Ok(if args.commit {
        Some(CommitGuard::before(repo)?)
    } else {
        None
    })
}

/// After the run: commits what it changed (with `--commit`) and, in text mode, says what was
/// committed and what the fleet repository must do next.
pub fn after(
    out: &mut Output,
    guard: Option<CommitGuard>,
    kind: &CommitKind,
) -> anyhow::Result<Option<CommitReport>> {
    let Some(guard) = guard else {
        return Ok(None);
    };
    let report = guard.commit(kind)?;
    if !out.json() {
        print(out, &report)?;
    }
    Ok(Some(report))
}

/// The text lines of a commit report.
pub fn print(out: &mut Output, report: &CommitReport) -> std::io::Result<()> {
    match &report.commit {
        None => out.line("commit: nothing changed, nothing committed"),
        Some(id) => {
            out.line(&format!(
                "committed {} \"{}\" ({} file(s): {})",
                id.get(..12).unwrap_or(id),
                report.message,
                report.paths.len(),
                report.paths.join(", ")
            ))?;
            for step in &report.next_steps {
                out.line(&format!("next: {step}"))?;
            }
            Ok(())
        }
    }
}

/// `report` as JSON with the commit as its `commit` member (when there was one).
pub fn with_commit<T: Serialize>(
    report: &T,
    commit: Option<&CommitReport>,
) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(report)?;
    if let (Some(commit), serde_json::Value::Object(members)) = (commit, &mut value) {
        members.insert("commit".to_owned(), serde_json::to_value(commit)?);
    }
    Ok(value)
}
