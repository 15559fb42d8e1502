//! The phases every key rotation shares (`rotate-infra`, `rotate-key`), written once:
//!
//! 1. the new recipient is added next to the old one wherever the old one is in `.sops.yaml`
//!    (under a temporary name in the file's own naming convention) and the files re-keyed: they
//!    gain it, same data keys;
//! 2. a middle phase the caller supplies ([`RotationSteps::middle`]: deploy and verify for the
//!    infrastructure key, prove the new identity opens every file for the workstation);
//! 3. the old recipient is removed: the temporary name goes, the old key's own name (anchor,
//!    header label) takes the new value, so `.sops.yaml` reads exactly as before with only the
//!    key replaced; every file the old key was on gets a new data key (exposure report);
//! 4. the caller retires the old key ([`RotationSteps::retire`]: the inventory names the new one).
//!
//! Progress is saved after each phase (a JSON record in the repo's state directory), so an
//! interrupted run resumes where it stopped; phase 3 never starts before the middle phase
//! succeeded. Runs hold the repo lock, so two cannot interleave.

use std::path::{Path, PathBuf};

use crate::error::Context as _;
use hostage_recipients::{IdentitySet, PassphraseProvider};
use hostage_rekey::{Action, Exposure, PlanOptions};
use hostage_sops::rules::{RuleSelector, SopsConfig};
use serde::{Deserialize, Serialize};

use super::onboard::rule_changed;
use crate::session::RepoSession;

/// Which key is rotated, as the shared phases need to know it.
#[derive(Clone, Debug)]
pub(crate) struct KeyRotation {
    /// The temporary name of the new key in `.sops.yaml` while both are on the files
    /// (`infrastructure_next`); gone again after phase 3.
    pub temporary_name: String,
    /// What the old key is called in the exposure report (`the old infrastructure key`).
    pub old_key_called: String,
    /// The verb, for re-key errors (`rotate-infra`).
    pub verb: &'static str,
    /// The progress record's file name in the repo's state directory (`rotate-infra.json`).
    pub state_file: String,
}

/// Saved progress. The field names are those `rotate-infra.json` has always had, so a rotation
/// stopped by an older hostage resumes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedProgress {
    pub old_recipient: String,
    pub new_recipient: String,
    /// The new private key or identity, when one was given.
    #[serde(default)]
    pub new_key: Option<PathBuf>,
    /// The last phase finished (0: none).
    pub done: u8,
}

impl SavedProgress {
    /// The record of a rotation under way, if there is one.
    pub fn load(path: &Path) -> crate::Result<Option<Self>> {
        match fs_err::read_to_string(path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{} is not a rotation record", path.display())
            })?)),
            Err(_) => Ok(None),
        }
    }
}

/// How the middle phase ended.
pub(crate) enum Middle {
    /// Done: what it did.
    Done(String),
    /// Stopped before phase 3 (the old key stays on every file): why, and what to do.
    Stopped(String),
}

/// The parts of a rotation that depend on the key.
pub(crate) trait RotationSteps {
    /// Phase 2's progress line.
    fn middle_title(&self) -> &'static str;
    /// Phase 2: runs after every file holds both keys, before the old one is removed.
    fn middle(&mut self, session: &mut RepoSession) -> crate::Result<Middle>;
    /// Phase 4's progress line.
    fn retire_title(&self) -> &'static str;
    /// Phase 4: the inventory (or whatever names the key) names the new key; what it did.
    fn retire(
        &mut self,
        session: &mut RepoSession,
        identities: &IdentitySet,
        passphrases: &mut dyn PassphraseProvider,
    ) -> crate::Result<String>;
}

/// What the shared phases did.
#[derive(Debug, Default)]
pub(crate) struct RotationOutcome {
    /// Phase → what it did (or why it stopped).
    pub phases: Vec<(u8, String)>,
    /// What the old key could read (rotated in phase 3).
    pub exposure: Vec<Exposure>,
    /// Whether every phase is done.
    pub complete: bool,
}

/// Runs (or resumes) the phases from `saved.done`; `progress` hears each phase as it starts.
/// The record is written after each phase and removed once all four are done.
pub(crate) fn run_phases(
    rotation: &KeyRotation,
    saved: &mut SavedProgress,
    steps: &mut dyn RotationSteps,
    session: &mut RepoSession,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
    progress: &dyn Fn(u8, &str),
) -> crate::Result<RotationOutcome> {
    let config_path = session.repo().join(".sops.yaml");
    let state_file = session.state_dir().join(&rotation.state_file);
    // Each phase is recorded as done before the next starts, and only then its re-key journal
    // goes: a run killed before the record redoes the phase and still has the journal's
    // exposure report to print. `apply.stop_after` (`phase-N`) ends the run there, as a crash
    // would.
    let save = |saved: &SavedProgress, session: &mut RepoSession| -> crate::Result<()> {
        hostage_atomic::write(&state_file, serde_json::to_string_pretty(saved)?.as_bytes())?;
        session.finish()?;
        session.checkpoint(&format!("phase-{}", saved.done))
    };
    let mut outcome = RotationOutcome::default();
    let (old, new) = (saved.old_recipient.clone(), saved.new_recipient.clone());
    let (old, new) = (&old, &new);
    let edit = |phase: fn(&SopsConfig, &str, &str, &str) -> crate::Result<String>| {
        move |config: &SopsConfig| phase(config, old, new, &rotation.temporary_name)
    };

    if saved.done < 1 {
        progress(1, "add the new recipient next to the old one, re-key");
        let (n, _) = rekey(
            rotation,
            &saved.old_recipient,
            &config_path,
            &edit(phase1_text),
            identities,
            passphrases,
            session,
        )?;
        outcome
            .phases
            .push((1, format!("{n} file(s) gained the new key")));
        saved.done = 1;
        save(saved, session)?;
    }

    if saved.done < 2 {
        progress(2, steps.middle_title());
        match steps.middle(session)? {
            Middle::Done(what) => outcome.phases.push((2, what)),
            Middle::Stopped(why) => {
                outcome.phases.push((2, why));
                return Ok(outcome);
            }
        }
        saved.done = 2;
        save(saved, session)?;
    }

    if saved.done < 3 {
        progress(3, "remove the old recipient, rotate the data keys");
        let (n, exposure) = rekey(
            rotation,
            &saved.old_recipient,
            &config_path,
            &edit(phase3_text),
            identities,
            passphrases,
            session,
        )?;
        outcome.exposure = exposure;
        outcome.phases.push((
            3,
            format!("{n} file(s) lost the old key and got new data keys"),
        ));
        saved.done = 3;
        save(saved, session)?;
    } else if let Some(killed) = session.resumed() {
        // Killed after recording phase 3, before removing its journal: the report is still owed.
        outcome.exposure = killed.exposure()?.collect()?;
        session.finish()?;
    }

    if saved.done < 4 {
        progress(4, steps.retire_title());
        let what = steps.retire(session, identities, passphrases)?;
        outcome.phases.push((4, what));
        saved.done = 4;
        save(saved, session)?;
    }
    fs_err::remove_file(&state_file)?;
    outcome.complete = true;
    Ok(outcome)
}

/// `.sops.yaml` with the new key next to the old one wherever the old one is, named
/// `temporary` in the file's convention (anchor, header label, both, or nothing).
pub(crate) fn phase1_text(
    original: &SopsConfig,
    old: &str,
    new: &str,
    temporary: &str,
) -> crate::Result<String> {
    let rules: Vec<usize> = original
        .rules()
        .iter()
        .filter(|r| r.key_groups.iter().flatten().any(|e| e.recipient == old))
        .map(|r| r.index)
        .collect();
    let recipient = hostage_recipients::AgeRecipient::parse(new)?;
    let named = original.add_named_recipient(temporary, &recipient)?;
    let with_name = SopsConfig::parse(original.path(), &named.text)?;
    Ok(with_name.add_recipient(&RuleSelector::Indices(rules), &named.reference)?)
}

/// `.sops.yaml` back in its own shape with the new key only: the temporary name goes, the old
/// key's anchor or header label takes the new value (same length, so alignment is kept).
pub(crate) fn phase3_text(
    original: &SopsConfig,
    old: &str,
    new: &str,
    temporary: &str,
) -> crate::Result<String> {
    let path = original.path();
    let rules = RuleSelector::Indices(original.rules().iter().map(|r| r.index).collect());
    let mut text = original.text().to_owned();
    if original
        .named_recipients()
        .iter()
        .any(|(n, _)| n == temporary)
    {
        text = original.remove_recipient(&rules, temporary)?;
        // Its name may have gone with it: an anchor defined on the rule item just removed
        // (abl030's layout, no `keys:` list). Whatever naming is left goes now.
        text = SopsConfig::parse(path, &text)?
            .unname_recipient(temporary)?
            .text;
    }
    if text.contains(old) {
        let recipient = hostage_recipients::AgeRecipient::parse(new)?;
        text = SopsConfig::parse(path, &text)?.replace_recipient(old, &recipient)?;
    }
    Ok(text)
}

/// What phases 1 and 3 would change, for `--dry-run`: the files that would gain the new key and
/// those that would lose the old one (both empty for a phase already done).
pub(crate) fn planned_files(
    repo: &Path,
    rotation: &KeyRotation,
    old: &str,
    new: &str,
    done: u8,
) -> crate::Result<(Vec<String>, Vec<String>)> {
    let original = SopsConfig::load(&repo.join(".sops.yaml"))?;
    let t1 = if done < 1 {
        phase1_text(&original, old, new, &rotation.temporary_name)?
    } else {
        original.text().to_owned()
    };
    let c1 = SopsConfig::parse(original.path(), &t1)?;
    let t3 = phase3_text(&c1, old, new, &rotation.temporary_name)?;
    let c3 = SopsConfig::parse(original.path(), &t3)?;
    let candidates = hostage_rekey::walk(&[repo.to_owned()])?;
    let changed = |from: &SopsConfig, to: &SopsConfig| -> crate::Result<Vec<String>> {
        let plan = hostage_rekey::plan(to, &candidates, &PlanOptions::default(), &|| {})?;
        let mut changed = Vec::new();
        for file in plan.files() {
            let file = file?;
            if file.action != Action::Unchanged && rule_changed(from, to, &file.path) {
                changed.push(file.display);
            }
        }
        Ok(changed)
    };
    let phase1_files = if done < 1 {
        changed(&original, &c1)?
    } else {
        Vec::new()
    };
    let phase3_files = if done < 3 {
        changed(&c1, &c3)?
    } else {
        Vec::new()
    };
    Ok((phase1_files, phase3_files))
}

/// Edits `.sops.yaml` (read under the session's lock) with `edit` and re-keys the files whose
/// rule changed (plus those a stopped run journaled), the journal written before `.sops.yaml`
/// (compare-and-swap); returns how many files and the exposure.
fn rekey(
    rotation: &KeyRotation,
    old: &str,
    config_path: &Path,
    edit: &dyn Fn(&SopsConfig) -> crate::Result<String>,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
    session: &mut RepoSession,
) -> crate::Result<(usize, Vec<Exposure>)> {
    use crate::session::FileSnapshot;
    let original = SopsConfig::load(config_path)?;
    let text = edit(&original)?;
    let repo = session.repo().to_path_buf();
    let config = SopsConfig::parse(original.path(), &text)?;
    let pending = session.pending_files()?;
    let (_, mut plan) =
        super::onboard::plan_repo(&config, &repo, "; nothing was changed in this phase")?;
    plan.retain(|f| {
        f.action != Action::Unchanged
            && (pending.contains(&f.path) || rule_changed(&original, &config, &f.path))
    })?;
    // The old key loses its name in phase 3: name it for the exposure report.
    plan.name_recipient(old, &rotation.old_key_called);
    // A killed run's journal (this phase's, redone) is merged, and its exposure reported.
    let exposure = session.begin_rekey(&plan)?;
    session.write_if_unchanged(
        &FileSnapshot::of_text(original.path(), original.text()),
        text.as_bytes(),
    )?;
    let unlocked =
        hostage_rekey::unlock_identities(identities, &plan.recipients_to_open()?, passphrases);
    let written = super::onboard::apply_rekey(&mut plan, &unlocked, rotation.verb)?;
    // The journal goes once the phase is recorded (`save`).
    Ok((written.len(), exposure))
}

/// `path` as a value of the inventory's YAML, for a rotation's phase 4 that points the inventory
/// at the new key: written plain when every character is one YAML reads as itself in a plain
/// scalar, else double-quoted (a JSON string is a valid YAML double-quoted scalar).
pub(crate) fn inventory_path_value(path: &Path) -> String {
    let path = path.display().to_string();
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+~".contains(c));
    if plain {
        path
    } else {
        serde_json::Value::String(path).to_string()
    }
}

/// `pubkeys/<name>.pub` (the seed keeps one per recipient, documentation only) rewritten with
/// the new SSH public key when it holds the old key; the file written, if any. A rotation's last
/// phase calls it, so `status`, which reads names from `pubkeys/`, never names the retired key.
/// Written confined to the repo (a symlinked `pubkeys/` cannot send the write elsewhere).
pub(crate) fn update_public_key(
    repo: &Path,
    name: &str,
    old: &str,
    new: Option<&hostage_recipients::Ed25519PublicKey>,
) -> crate::Result<Option<String>> {
    let Some(rel) = stale_public_key(repo, name, old) else {
        return Ok(None);
    };
    let Some(public) = new else {
        return Err(crate::WorkflowError::refused_with_hint(
            format!("{rel} holds the old key and the new key is not an SSH key; the files are done, {rel} is unchanged"),
            format!("remove {rel} (or replace it by hand), then run the same command again"),
        ));
    };
    let text = format!("{} {name}\n", public.to_openssh());
    hostage_atomic::ConfinedDir::of_parent(&repo.join(".sops.yaml"))?
        .write(&repo.join(&rel), text.as_bytes())?;
    Ok(Some(rel))
}

/// `pubkeys/<name>.pub` (relative to the repo) when it holds `old` as an SSH public key.
pub(crate) fn stale_public_key(repo: &Path, name: &str, old: &str) -> Option<String> {
    let rel = format!("pubkeys/{name}.pub");
    // Never read through a link out of the repository.
    if fs_err::symlink_metadata(repo.join(&rel)).is_ok_and(|m| m.file_type().is_symlink()) {
        return None;
    }
    let text = fs_err::read_to_string(repo.join(&rel)).ok()?;
    hostage_recipients::parse_key_lines(&text)
        .into_iter()
        .flatten()
        .any(|line| {
            line.key
                .to_age_recipient()
                .is_ok_and(|r| r.to_string() == old)
        })
        .then_some(rel)
}

#[cfg(test)]
mod tests {
    //! The `.sops.yaml` edits of phases 1 and 3 on fixture text (pure, no repository, no sshd).

    // Fixtures: a panic with the value is the right failure.
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use hostage_recipients::AgeRecipient;
    use hostage_sops::rules::SopsConfig;

    use super::{phase1_text, phase3_text};

    const NEXT: &str = "infrastructure_next";

    fn recipient(n: u8) -> String {
        AgeRecipient::from_bytes([n; 32]).to_string()
    }

    #[test]
    fn phase_one_adds_the_new_key_beside_the_old_and_phase_three_leaves_only_the_new_under_the_old_anchor(
    ) {
        let (ws, old, new) = (recipient(1), recipient(2), recipient(3));
        let text = format!(
            "keys:\n  - &workstation {ws}\n  - &infrastructure {old}\ncreation_rules:\n  - path_regex: secrets/only-me$\n    key_groups:\n      - age:\n          - *workstation\n  - path_regex: .*\n    key_groups:\n      - age:\n          - *workstation\n          - *infrastructure\n"
        );
        let path = Path::new("/repo/.sops.yaml");
        let original = SopsConfig::parse(path, &text).unwrap();
        let both =
            SopsConfig::parse(path, &phase1_text(&original, &old, &new, NEXT).unwrap()).unwrap();
        let readers = |config: &SopsConfig, file: &str| -> Vec<String> {
            let (_, rule) = config.rule_for_sops_path(file).unwrap();
            rule.key_groups
                .iter()
                .flatten()
                .map(|e| e.recipient.clone())
                .collect()
        };
        assert_eq!(
            readers(&both, "secrets/x.yaml"),
            [ws.clone(), old.clone(), new.clone()]
        );
        assert_eq!(readers(&both, "secrets/only-me"), std::slice::from_ref(&ws));
        assert!(both.text().contains(NEXT), "{}", both.text());

        let after =
            SopsConfig::parse(path, &phase3_text(&both, &old, &new, NEXT).unwrap()).unwrap();
        assert_eq!(readers(&after, "secrets/x.yaml"), [ws.clone(), new.clone()]);
        assert_eq!(after.text(), text.replace(&old, &new));
    }

    #[test]
    fn with_anchors_defined_inside_rules_the_temporary_anchor_goes_with_its_rule_item_and_the_file_reads_as_before(
    ) {
        // abl030's layout: no `keys:` list; `&wsl` defined where a rule first lists the key.
        let (other, old, new) = (recipient(1), recipient(2), recipient(3));
        let text = format!(
            "---\ncreation_rules:\n  - path_regex: secrets/.*\n    key_groups:\n      - age:\n          - {other} # Epi Key\n          - &wsl {old} # WSL\n  - path_regex: hosts/wsl/.*\n    key_groups:\n      - age:\n          - *wsl\n"
        );
        let path = Path::new("/repo/.sops.yaml");
        let original = SopsConfig::parse(path, &text).unwrap();
        let both = phase1_text(&original, &old, &new, "wsl_next").unwrap();
        assert!(both.contains(&format!("&wsl_next {new}")), "{both}");
        let both = SopsConfig::parse(path, &both).unwrap();
        let after = phase3_text(&both, &old, &new, "wsl_next").unwrap();
        assert_eq!(after, text.replace(&old, &new));
        let again = phase3_text(
            &SopsConfig::parse(path, &after).unwrap(),
            &old,
            &new,
            "wsl_next",
        )
        .unwrap();
        assert_eq!(again, after);
    }

    #[test]
    fn on_the_seed_layout_the_temporary_header_label_goes_and_the_old_label_line_holds_the_new_key()
    {
        let (ws, infra, host, new) = (recipient(1), recipient(2), recipient(3), recipient(4));
        let text = format!(
            "# SOPS configuration file\n#\n# Public AGE keys:\n# workstation:    {ws}\n# infrastructure: {infra}\n# gnomeregan:     {host}\n\
             creation_rules:\n  - path_regex: secrets/host/gnomeregan/.*\n    age: {ws},{infra},{host}\n\
             \x20 - path_regex: secrets/.*\n    age: {ws}\n"
        );
        let path = Path::new("/repo/.sops.yaml");
        let original = SopsConfig::parse(path, &text).unwrap();
        let both = phase1_text(&original, &ws, &new, "workstation_next").unwrap();
        // Both keys on every rule the old one is on, the new one labelled for the while.
        assert!(
            both.contains(&format!("# workstation_next: {new}\n")),
            "{both}"
        );
        assert!(
            both.contains(&format!("age: {ws},{infra},{host},{new}\n")),
            "{both}"
        );
        assert!(both.contains(&format!("age: {ws},{new}\n")), "{both}");
        let both = SopsConfig::parse(path, &both).unwrap();
        let after = phase3_text(&both, &ws, &new, "workstation_next").unwrap();
        // Exactly the file as it was, only the old key replaced (its label line included).
        assert_eq!(after, text.replace(&ws, &new));
        assert!(
            after.contains(&format!("# workstation:    {new}\n")),
            "{after}"
        );
        // Phase 3 again (a resumed run) changes nothing.
        let again = phase3_text(
            &SopsConfig::parse(path, &after).unwrap(),
            &ws,
            &new,
            "workstation_next",
        )
        .unwrap();
        assert_eq!(again, after);
    }
}
