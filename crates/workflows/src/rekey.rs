//! `rekey`: bring every sops file of a repository in step with `.sops.yaml`. Gather (find the
//! `.sops.yaml`, walk the files git tracks) → plan (per file and key group) → verify (`--dry-run`:
//! the keys open) or apply in the [`RepoSession`] (lock, a killed run's journal finished, journal
//! before any write, the journal removed only once every file is written and its exposure
//! reported). The caller renders the plan and the exposure report; nothing here prints.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use hostage_recipients::IdentitySet;
use hostage_rekey::{Action, ApplyReport, ExposureReport, FilePlan, Journal, Plan, PlanOptions};
use hostage_sops::rules::SopsConfig;

use crate::error::bail;
use crate::session::{ApplyOptions, RepoSession};
use crate::Progress;

/// The `.sops.yaml` a run uses: `--config`, else the repository of an inventory named explicitly
/// (`--inventory`, `HOSTAGE_INVENTORY`) when `SOPS_CONFIG` is unset, else `SOPS_CONFIG`, else the
/// nearest one above `cwd`. Returns it and a warning about how it was found, if any.
pub fn locate_config(
    cwd: &Path,
    config: Option<&Path>,
    env_config: Option<&OsStr>,
    inventory: Option<&Path>,
) -> crate::Result<(SopsConfig, Option<String>)> {
    let from_inventory = match (inventory, config, env_config) {
        (Some(path), None, None) => Some(
            crate::FleetInventory::load(path)?
                .inventory
                .secrets_repo
                .join(".sops.yaml"),
        ),
        _ => None,
    };
    let explicit = config.or(from_inventory.as_deref());
    let location = SopsConfig::find(cwd, explicit, env_config)?;
    Ok((SopsConfig::load(&location.path)?, location.warning))
}

/// Walks `paths` (default: the repository of `config`) and plans every sops file there against
/// `config`. `progress` hears `planning` per file and the warnings (no file found; removals that
/// `--no-rotate` leaves readable).
pub fn plan(
    config: &SopsConfig,
    paths: &[PathBuf],
    options: &PlanOptions,
    progress: &dyn Progress,
) -> crate::Result<Plan> {
    let roots: Vec<PathBuf> = if paths.is_empty() {
        vec![config.dir().to_owned()]
    } else {
        paths.to_vec()
    };
    let candidates = hostage_rekey::walk(&roots)?;
    if candidates.is_empty() {
        progress.warn(
            "no files to look at under the given paths (git ignores them, or they are empty)",
        );
    }
    progress.phase("planning", candidates.len());
    // Names from `pubkeys/` beside `.sops.yaml`, unless the caller brought its own.
    let mut options = options.clone();
    if options.supplied_names.is_empty() {
        options.supplied_names = crate::names::public_key_names(config.dir());
    }
    let plan = hostage_rekey::plan(config, &candidates, &options, &|| progress.advance())?;
    progress.done();
    if options.rotate == hostage_rekey::Rotate::No && any_file(&plan, FilePlan::removes)? {
        progress.warn("--no-rotate: removed recipients keep the data key if they saved it; rotate the secrets themselves");
    }
    Ok(plan)
}

/// `--dry-run`: checks that `identities` open every file to rewrite (failures become errors in
/// the plan).
pub fn verify(
    plan: &mut Plan,
    identities: &IdentitySet,
    threads: usize,
    progress: &dyn Progress,
) -> crate::Result<()> {
    progress.phase(
        "checking keys",
        plan.count(Action::Rewrap) + plan.count(Action::Rotate),
    );
    hostage_rekey::verify(plan, identities, threads, &|| progress.advance())?;
    progress.done();
    Ok(())
}

/// Applies `plan` in the repository's session. A plan with errors writes nothing. Returns what
/// was done; the caller reports it (with [`AppliedRekey::exposure`]) and then calls
/// [`AppliedRekey::finish`].
pub fn apply(
    config: &SopsConfig,
    plan: &mut Plan,
    identities: &IdentitySet,
    engine: &hostage_rekey::ApplyOptions,
    options: &ApplyOptions,
    progress: &dyn Progress,
) -> crate::Result<AppliedRekey> {
    if plan.count(Action::Error) > 0 {
        bail!(
            "{} file(s) cannot be re-keyed (listed above); nothing was written",
            plan.count(Action::Error)
        );
    }
    let mut session = RepoSession::open(config.dir(), options.clone())?;
    let resumed = match session.resumed() {
        Some(previous) => Some(Resumed {
            pid: previous.pid,
            files: previous.paths()?.len(),
        }),
        None => None,
    };
    if let Some(resumed) = resumed {
        progress.warn(&format!(
            "finishing an interrupted run: a previous run (pid {}, {} file(s) planned) did not complete; its exposure report is included",
            resumed.pid, resumed.files
        ));
    }
    if !plan.has_drift() {
        // Nothing left to write; a killed run's exposure report is still owed, then its journal
        // goes.
        return Ok(AppliedRekey {
            session,
            journal: None,
            report: ApplyReport::default(),
            resumed,
        });
    }
    let journal = session.write_journal(plan)?;
    progress.phase(
        "re-keying",
        plan.count(Action::Rewrap) + plan.count(Action::Rotate),
    );
    let report = hostage_rekey::apply(plan, identities, engine, &|| progress.advance())?;
    progress.done();
    Ok(AppliedRekey {
        session,
        journal: Some(journal),
        report,
        resumed,
    })
}

/// A killed run this one finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumed {
    /// Its process id.
    pub pid: u32,
    /// How many files it had planned.
    pub files: usize,
}

/// An applied re-key, still holding the repository (its journal is removed by [`finish`](Self::finish)).
#[derive(Debug)]
pub struct AppliedRekey {
    session: RepoSession,
    journal: Option<Journal>,
    /// Files written and failed.
    pub report: ApplyReport,
    /// The killed run this one finished, if any.
    pub resumed: Option<Resumed>,
}

impl AppliedRekey {
    /// What the removed recipients could read: this run's journal (which holds a killed run's
    /// entries too), else the killed run's, else the plan's.
    pub fn exposure<'a>(&'a self, plan: &'a Plan) -> crate::Result<ExposureReport<'a>> {
        Ok(match (&self.journal, self.session.resumed()) {
            (Some(journal), _) => journal.exposure()?,
            (None, Some(previous)) => previous.exposure()?,
            (None, None) => plan.exposure()?,
        })
    }

    /// Ends the run: the journal goes once every file is written (a failed file keeps it, so the
    /// next run finishes the job and still reports the exposure).
    pub fn finish(mut self) -> crate::Result<()> {
        if self.report.failed == 0 {
            self.session.finish_rekey()?;
        }
        Ok(())
    }
}

/// Writes the whole exposure report the caller rendered to `path` (`--exposure-file`), atomically:
/// a reader sees the old file or the whole new one, never a part. The file is the operator's,
/// usually outside the repository, so it does not go through the repository session.
pub fn write_exposure_file(path: &Path, report: &[u8]) -> crate::Result<()> {
    hostage_atomic::write(path, report)?;
    Ok(())
}

/// Whether some file of `plan` satisfies `test` (a streaming pass over the spilled entries).
fn any_file(plan: &Plan, test: impl Fn(&FilePlan) -> bool) -> crate::Result<bool> {
    for file in plan.files() {
        if test(&file?) {
            return Ok(true);
        }
    }
    Ok(false)
}
