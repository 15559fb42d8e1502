//! The plan: for each sops file, the recipients `.sops.yaml` wants compared with the ones the
//! file has, per key group and by recipient, and what that means (unchanged, rewrap, rotate or
//! an error with its reason). Computing it needs no private key.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hostage_recipients::{IdentitySet, PassphraseProvider};
use hostage_sops::rules::{OtherKey, RecipientKind, RecipientNames, SopsConfig, SuppliedName};
use hostage_sops::{MacCheck, MasterKey, SopsFile};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::apply::FileOutcome;
use crate::exposure::ExposureReport;
use crate::store::{Store, StoreWriter};
use crate::walk::FileList;
use rayon::prelude::*;

use crate::{Progress, RekeyError};

/// Whether removing a recipient rotates the data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotate {
    /// Removal rotates the data key (the default: a removed recipient may have kept the old one).
    Yes,
    /// Removal only drops the recipient's `enc` (`--no-rotate`): whoever kept the old data key
    /// can still read the file.
    No,
}

/// How to plan.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Whether removals rotate the data key.
    pub rotate: Rotate,
    /// Worker threads.
    pub threads: usize,
    /// Names from outside `.sops.yaml` (the workflows convert `pubkeys/<name>.pub`): the plan
    /// names recipients through `SopsConfig::recipient_names`, the one naming model, so a repo
    /// that names a host only through `pubkeys/` sees that name in plans and exposure reports.
    /// This crate does no such I/O itself.
    pub supplied_names: Vec<SuppliedName>,
}

impl Default for PlanOptions {
    /// Removals rotate the data key; one worker per core; names from `.sops.yaml` only.
    fn default() -> Self {
        Self {
            rotate: Rotate::Yes,
            threads: crate::default_threads(),
            supplied_names: Vec::new(),
        }
    }
}

/// A recipient, with the name the naming model gives it when it has one (anchor, header label,
/// or a supplied name such as `pubkeys/<name>.pub`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Recipient {
    /// The name (`&web01` → `web01`, `# web01: age1…`, `pubkeys/web01.pub`), for display.
    pub name: Option<String>,
    /// The recipient string (`age1…`).
    pub recipient: String,
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => f.write_str(name),
            None => f.write_str(&self.recipient),
        }
    }
}

/// What a run does to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The file already has exactly the wanted recipients.
    Unchanged,
    /// Recipients are only added (or removed with `--no-rotate`): same data key, new `enc` blobs.
    Rewrap,
    /// A recipient is removed: a new data key, every value re-encrypted.
    Rotate,
    /// The file cannot be re-keyed; see the reason.
    Error,
}

/// The difference in one key group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupChange {
    /// Wanted and present.
    pub kept: Vec<Arc<Recipient>>,
    /// Wanted, missing from the file.
    pub added: Vec<Arc<Recipient>>,
    /// In the file, no longer wanted.
    pub removed: Vec<Arc<Recipient>>,
}

/// The plan for one sops file.
#[derive(Clone, Debug, Serialize)]
pub struct FilePlan {
    /// The file (absolute).
    pub path: PathBuf,
    /// The path for display: relative to the config's directory when below it.
    pub display: String,
    /// The creation rule that applies (0-based), when one does.
    pub rule: Option<usize>,
    /// What to do.
    pub action: Action,
    /// Why the file is an error, or a warning about what will be done.
    pub reason: Option<String>,
    /// Per key group, in the file's order.
    pub groups: Vec<GroupChange>,
    /// The paths of the encrypted values (`a.b.c`), kept only when a recipient is removed.
    pub key_paths: KeyPaths,
    /// What applying did to the file (set by [`apply`](crate::apply) on the files it changes).
    pub outcome: Option<FileOutcome>,
    /// The age recipients to give each key group (the rule's, in its order).
    #[serde(skip)]
    pub(crate) wanted: Arc<Vec<Vec<String>>>,
    /// SHA-256 of the content the plan was made from (a changed file is not touched).
    #[serde(skip)]
    pub(crate) digest: [u8; 32],
}

impl FilePlan {
    fn error(path: &Path, display: String, reason: String) -> Self {
        Self {
            path: path.to_owned(),
            display,
            rule: None,
            action: Action::Error,
            reason: Some(reason),
            groups: Vec::new(),
            key_paths: KeyPaths::default(),
            outcome: None,
            wanted: Arc::default(),
            digest: [0; 32],
        }
    }

    /// Whether a run changes the file (a rewrap or a rotation).
    pub fn changes(&self) -> bool {
        matches!(self.action, Action::Rewrap | Action::Rotate)
    }

    /// Why applying failed, when it did.
    pub fn failure(&self) -> Option<&str> {
        match &self.outcome {
            Some(FileOutcome::Failed(reason)) => Some(reason),
            _ => None,
        }
    }

    /// Every recipient the file has now (kept and removed), across groups.
    pub fn current_recipients(&self) -> impl Iterator<Item = &Arc<Recipient>> {
        self.groups
            .iter()
            .flat_map(|g| g.kept.iter().chain(&g.removed))
    }

    /// Whether any group loses a recipient.
    pub fn removes(&self) -> bool {
        self.groups.iter().any(|g| !g.removed.is_empty())
    }
}

/// The paths of a file's encrypted values (`a.b.c`), stored compactly (one shared allocation per
/// file: plans of 10,000 files hold one each, and the exposure report shares them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPaths(std::sync::Arc<str>);

impl KeyPaths {
    /// Collects paths (a path never contains a newline: sops keys are single-line).
    pub fn new(paths: impl IntoIterator<Item = String>) -> Self {
        let joined: Vec<String> = paths.into_iter().map(|p| p.replace('\n', "\\n")).collect();
        Self(joined.join("\n").into())
    }

    /// The paths, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split('\n').filter(|p| !p.is_empty())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for KeyPaths {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for KeyPaths {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::new(Vec::<String>::deserialize(deserializer)?))
    }
}

/// The plan for a whole repo. Only its counts are in memory: the entries (one per sops file, in
/// path order) are spilled to an unnamed temp file as they are planned and read back as a stream
/// by whoever needs them, so a plan of 100,000 files costs no more memory than one of 100.
#[derive(Debug)]
pub struct Plan {
    /// The `.sops.yaml` the recipients come from.
    pub config: PathBuf,
    /// Files looked at that carry no sops metadata.
    pub skipped: usize,
    store: Store,
    counts: Counts,
    /// Recipients with their display names (entries store only the recipient string).
    names: HashMap<String, Arc<Recipient>>,
    /// Per rule: its age recipients, per group (what a rewrap or rotation gives the file).
    wanted: Vec<Arc<Vec<Vec<String>>>>,
}

/// How many entries have each action.
#[derive(Clone, Copy, Debug, Default)]
struct Counts([usize; 4]);

impl Counts {
    fn add(&mut self, action: Action) {
        self.0[action as usize] += 1;
    }
}

impl Plan {
    /// A plan with no file (a workflow that re-keys nothing).
    pub fn empty(config: &Path) -> Result<Self, RekeyError> {
        Ok(Self {
            config: config.to_owned(),
            skipped: 0,
            store: Store::empty()?,
            counts: Counts::default(),
            names: HashMap::new(),
            wanted: Vec::new(),
        })
    }

    /// A plan of `files` as given (unit tests build journals and reports from it).
    #[cfg(test)]
    pub(crate) fn from_files(config: &Path, files: Vec<FilePlan>) -> Self {
        let mut writer = StoreWriter::new().unwrap();
        let mut counts = Counts::default();
        let mut names = HashMap::new();
        for file in &files {
            counts.add(file.action);
            learn_names(&mut names, file);
            writer.push(&StoredFile::of(file)).unwrap();
        }
        Self {
            config: config.to_owned(),
            skipped: 0,
            store: writer.finish().unwrap(),
            counts,
            names,
            wanted: Vec::new(),
        }
    }

    /// How many sops files the plan has.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the plan has no sops file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many files have `action`.
    pub fn count(&self, action: Action) -> usize {
        self.counts.0[action as usize]
    }

    /// Whether some file needs a rewrap or a rotation (what `--check` reports).
    pub fn has_drift(&self) -> bool {
        self.count(Action::Rewrap) + self.count(Action::Rotate) > 0
    }

    /// Every file, in path order, read back from the spill file.
    pub fn files(&self) -> impl Iterator<Item = Result<FilePlan, RekeyError>> + '_ {
        self.store
            .iter::<StoredFile>()
            .map(|stored| stored.map(|s| self.load(s)))
    }

    /// Keeps only the files `keep` accepts (a workflow's share of a repo-wide plan).
    pub fn retain(&mut self, mut keep: impl FnMut(&FilePlan) -> bool) -> Result<(), RekeyError> {
        self.rewrite(CHUNK, |files| {
            files.retain(|f| keep(f));
            Ok(())
        })
    }

    /// Names `recipient` for display, over any name the plan found: the workflow knows better
    /// (a key whose anchor or label a rotation just replaced is "web01's old key", though
    /// `pubkeys/web01.pub` still names it web01 until the run writes the new one).
    pub fn name_recipient(&mut self, recipient: &str, name: &str) {
        self.names.insert(
            recipient.to_owned(),
            Arc::new(Recipient {
                name: Some(name.to_owned()),
                recipient: recipient.to_owned(),
            }),
        );
    }

    /// The recipients whose identities a run needs: the current recipients of the files to change.
    pub fn recipients_to_open(&self) -> Result<BTreeSet<String>, RekeyError> {
        let mut needed = BTreeSet::new();
        for file in self.files() {
            let file = file?;
            if file.changes() {
                needed.extend(file.current_recipients().map(|r| r.recipient.clone()));
            }
        }
        Ok(needed)
    }

    /// What the recipients this plan removes could read.
    pub fn exposure(&self) -> Result<ExposureReport<'_>, RekeyError> {
        ExposureReport::of_plan(self)
    }

    /// Streams every entry through `change`, `chunk` at a time and in order, and keeps what it
    /// leaves (how files are filtered, verified and applied without holding the whole plan).
    pub(crate) fn rewrite(
        &mut self,
        chunk: usize,
        mut change: impl FnMut(&mut Vec<FilePlan>) -> Result<(), RekeyError>,
    ) -> Result<(), RekeyError> {
        let mut writer = StoreWriter::new()?;
        let mut counts = Counts::default();
        let mut batch: Vec<FilePlan> = Vec::with_capacity(chunk);
        let mut entries = self.files();
        loop {
            batch.clear();
            for file in entries.by_ref().take(chunk.max(1)) {
                batch.push(file?);
            }
            if batch.is_empty() {
                break;
            }
            change(&mut batch)?;
            for file in &batch {
                counts.add(file.action);
                writer.push(&StoredFile::of(file))?;
            }
        }
        drop(entries);
        self.store = writer.finish()?;
        self.counts = counts;
        Ok(())
    }

    /// The entry `stored` with its shared parts (names, wanted recipients) put back.
    fn load(&self, stored: StoredFile) -> FilePlan {
        let recipient = |r: String| {
            self.names.get(&r).cloned().unwrap_or_else(|| {
                Arc::new(Recipient {
                    name: None,
                    recipient: r,
                })
            })
        };
        let list = |rs: Vec<String>| rs.into_iter().map(recipient).collect();
        FilePlan {
            path: stored.path,
            display: stored.display,
            rule: stored.rule,
            action: stored.action,
            reason: stored.reason,
            groups: stored
                .groups
                .into_iter()
                .map(|g| GroupChange {
                    kept: list(g.kept),
                    added: list(g.added),
                    removed: list(g.removed),
                })
                .collect(),
            key_paths: stored.key_paths,
            outcome: stored.outcome,
            wanted: stored
                .rule
                .and_then(|r| self.wanted.get(r).cloned())
                .unwrap_or_default(),
            digest: stored.digest.0,
        }
    }
}

/// Files planned, verified or applied together: what is in memory at once.
pub(crate) const CHUNK: usize = 256;

/// A [`FilePlan`] as the spill file holds it: recipients by their string only.
#[derive(Serialize, serde::Deserialize)]
struct StoredFile {
    #[serde(with = "crate::store::os_path")]
    path: PathBuf,
    display: String,
    rule: Option<usize>,
    action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    groups: Vec<StoredGroup>,
    #[serde(default, skip_serializing_if = "KeyPaths::is_empty")]
    key_paths: KeyPaths,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<FileOutcome>,
    digest: Digest,
}

#[derive(Serialize, serde::Deserialize)]
struct StoredGroup {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kept: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    added: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    removed: Vec<String>,
}

impl StoredFile {
    fn of(file: &FilePlan) -> Self {
        let list = |rs: &[Arc<Recipient>]| rs.iter().map(|r| r.recipient.clone()).collect();
        Self {
            path: file.path.clone(),
            display: file.display.clone(),
            rule: file.rule,
            action: file.action,
            reason: file.reason.clone(),
            groups: file
                .groups
                .iter()
                .map(|g| StoredGroup {
                    kept: list(&g.kept),
                    added: list(&g.added),
                    removed: list(&g.removed),
                })
                .collect(),
            key_paths: file.key_paths.clone(),
            outcome: file.outcome.clone(),
            digest: Digest(file.digest),
        }
    }
}

/// A SHA-256 digest, stored as hex.
struct Digest([u8; 32]);

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut out = [0_u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Self(out))
    }
}

/// Whether `text` carries sops metadata (a `sops:` YAML key, a JSON `"sops"` member or dotenv
/// `sops_…=` lines); only such files are planned, the others are not sops files.
pub fn carries_sops_metadata(text: &str) -> bool {
    if text.lines().any(|l| {
        l.trim_end() == "sops:" || l.starts_with("sops_mac=") || l.starts_with("sops_lastmodified=")
    }) {
        return true;
    }
    text.match_indices("\"sops\"")
        .any(|(at, m)| text[at + m.len()..].trim_start().starts_with(':'))
}

/// Plans every file of `files` against `config`, [`CHUNK`] files at a time, spilling each entry
/// as it is made. Files without sops metadata are counted as skipped; a file that cannot be read,
/// parsed or matched becomes an [`Action::Error`] entry. Fails only when the spill file does.
pub fn plan(
    config: &SopsConfig,
    files: &FileList,
    options: &PlanOptions,
    progress: Progress<'_>,
) -> Result<Plan, RekeyError> {
    let shared = Shared::new(config, &options.supplied_names);
    let mut names = shared.recipients.clone();
    let mut writer = StoreWriter::new()?;
    let mut counts = Counts::default();
    let mut skipped = 0;
    let workers = crate::workers(options.threads)?;
    let mut paths = files.iter();
    loop {
        let chunk: Vec<&Path> = paths.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        let planned: Vec<Option<FilePlan>> = workers.install(|| {
            chunk
                .par_iter()
                .map(|path| {
                    let result = plan_file(config, &shared, path, options);
                    progress();
                    result
                })
                .collect()
        });
        for entry in planned {
            match entry {
                Some(file) => {
                    counts.add(file.action);
                    learn_names(&mut names, &file);
                    writer.push(&StoredFile::of(&file))?;
                }
                None => skipped += 1,
            }
        }
    }
    Ok(Plan {
        config: config.path().to_owned(),
        skipped,
        store: writer.finish()?,
        counts,
        names,
        wanted: shared.wanted,
    })
}

/// Keeps the names of `file`'s recipients (those only the file has, e.g. a removed host whose
/// anchor is still under `keys:`), since the spill file stores recipient strings only.
fn learn_names(names: &mut HashMap<String, Arc<Recipient>>, file: &FilePlan) {
    for group in &file.groups {
        for r in group.kept.iter().chain(&group.added).chain(&group.removed) {
            if !names.contains_key(&r.recipient) {
                names.insert(r.recipient.clone(), Arc::clone(r));
            }
        }
    }
}

/// What every file of a rule shares, built once so a plan of many files holds it once.
struct Shared {
    /// Per rule: its age recipients, per group.
    wanted: Vec<Arc<Vec<Vec<String>>>>,
    /// Every recipient the rules name, with its name.
    recipients: HashMap<String, Arc<Recipient>>,
    /// The naming model's answer for this config and the supplied names, read once.
    names: RecipientNames,
}

impl Shared {
    fn new(config: &SopsConfig, supplied: &[SuppliedName]) -> Self {
        let names = config.recipient_names(supplied);
        let mut recipients = HashMap::new();
        let wanted = config
            .rules()
            .iter()
            .map(|rule| {
                Arc::new(
                    rule.key_groups
                        .iter()
                        .map(|g| {
                            g.iter()
                                .map(|e| {
                                    recipients
                                        .entry(e.recipient.clone())
                                        .or_insert_with(|| Arc::new(named(&names, &e.recipient)));
                                    e.recipient.clone()
                                })
                                .collect()
                        })
                        .collect(),
                )
            })
            .collect();
        Self {
            wanted,
            recipients,
            names,
        }
    }

    fn recipient(&self, recipient: &str) -> Arc<Recipient> {
        self.recipients
            .get(recipient)
            .cloned()
            .unwrap_or_else(|| Arc::new(named(&self.names, recipient)))
    }
}

/// The path sops would show: relative to the config's directory when below it.
pub(crate) fn display_path(config: &SopsConfig, path: &Path) -> String {
    path.strip_prefix(config.dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn named(names: &RecipientNames, recipient: &str) -> Recipient {
    Recipient {
        name: names.name_of(recipient).map(str::to_owned),
        recipient: recipient.to_owned(),
    }
}

fn plan_file(
    config: &SopsConfig,
    shared: &Shared,
    path: &Path,
    options: &PlanOptions,
) -> Option<FilePlan> {
    let display = display_path(config, path);
    let bytes = match crate::apply::read_with_metadata(path) {
        Ok((bytes, _)) => bytes,
        Err(e) => {
            return Some(FilePlan::error(
                path,
                display,
                format!("cannot read the file: {}", io_cause(&e)),
            ))
        }
    };
    let text = std::str::from_utf8(&bytes).ok()?;
    if !carries_sops_metadata(text) {
        return None;
    }
    let file = match SopsFile::parse(&bytes, None) {
        Ok(file) => file,
        Err(hostage_sops::SopsError::NotSops { .. }) => return None,
        Err(e) => return Some(FilePlan::error(path, display, e.to_string())),
    };
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let rule = match config.rule_for(path) {
        Ok((_, rule)) => rule,
        Err(e) => return Some(FilePlan::error(path, display, e.to_string())),
    };
    let wanted = shared.wanted.get(rule.index).cloned().unwrap_or_default();
    let mut entry = FilePlan {
        path: path.to_owned(),
        display,
        rule: Some(rule.index),
        action: Action::Unchanged,
        reason: None,
        groups: Vec::new(),
        key_paths: KeyPaths::default(),
        outcome: None,
        wanted,
        digest,
    };
    let current = &file.metadata().groups;
    // Non-age master keys (pgp, KMS, …) the file keeps and the rule adds: hostage writes only
    // age keys, so these decide what it can do (a key that leaves never blocks anything).
    let mut staying_others: Vec<(usize, MasterKey)> = Vec::new();
    let mut added_others: Vec<(usize, &OtherKey)> = Vec::new();
    for (index, group) in current.iter().enumerate() {
        let have: Vec<&str> = group.age.iter().map(|e| e.recipient.as_str()).collect();
        let want: Vec<&str> = entry
            .wanted
            .get(index)
            .map(|g| g.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let mut change = GroupChange::default();
        for r in dedup(&want) {
            if have.contains(&r) {
                change.kept.push(shared.recipient(r));
            } else {
                change.added.push(shared.recipient(r));
            }
        }
        for r in dedup(&have) {
            if !want.contains(&r) {
                change.removed.push(shared.recipient(r));
            }
        }
        let rule_others: &[OtherKey] = rule.other_keys.get(index).map_or(&[], Vec::as_slice);
        for other in &group.others {
            let named = Arc::new(Recipient {
                name: shared.names.name_of(&other.id).map(str::to_owned),
                recipient: other.to_string(),
            });
            if rule_others
                .iter()
                .any(|o| other.is_rule_key(&o.kind, &o.value))
            {
                staying_others.push((index, other.clone()));
                change.kept.push(named);
            } else if !change.removed.contains(&named) {
                change.removed.push(named);
            }
        }
        for wanted in rule_others.iter().filter(|o| o.kind != "plugins") {
            if !group
                .others
                .iter()
                .any(|o| o.is_rule_key(&wanted.kind, &wanted.value))
            {
                added_others.push((index, wanted));
            }
        }
        entry.groups.push(change);
    }
    let refused = refusal(config, rule, &file, &entry)
        .or_else(|| other_key_refusal(config, rule, &file, &added_others));
    if let Some(reason) = refused {
        entry.action = Action::Error;
        entry.reason = Some(reason);
        return Some(entry);
    }
    let adds = entry.groups.iter().any(|g| !g.added.is_empty());
    entry.action = match (adds, entry.removes(), options.rotate) {
        (false, false, _) => Action::Unchanged,
        (_, true, Rotate::Yes) => Action::Rotate,
        (_, true, Rotate::No) => {
            entry.reason = Some(
                "--no-rotate: removed recipients lose their key entry but keep the old data key if they saved it".into(),
            );
            Action::Rewrap
        }
        (true, false, _) => Action::Rewrap,
    };
    if entry.action == Action::Rotate {
        if let Some((group, key)) = staying_others.first() {
            entry.action = Action::Error;
            entry.reason = Some(format!(
                "cannot rotate the data key: the {} key {} stays in key group {} (rule {} of {}) and hostage can encrypt only to age keys; rotate this file with sops (`sops updatekeys` then `sops rotate -i`, which use that key's tooling), or drop the key from the rule so it leaves with this re-key",
                key.kind,
                key.id,
                group + 1,
                rule.index,
                config.path().display()
            ));
            return Some(entry);
        }
    }
    if entry.removes() {
        entry.key_paths = KeyPaths::new(file.encrypted_paths().iter().map(|p| p.join(".")));
    }
    Some(entry)
}

/// Why a file cannot be re-keyed because of its non-age master keys: the rule adds one (hostage
/// writes only age keys), or no age key opens the file (its data key needs gpg, KMS, …).
fn other_key_refusal(
    config: &SopsConfig,
    rule: &hostage_sops::rules::CreationRule,
    file: &SopsFile,
    added: &[(usize, &OtherKey)],
) -> Option<String> {
    if let Some((group, key)) = added.first() {
        return Some(format!(
            "cannot add the {} key {} to key group {} (rule {} of {}): hostage writes only age keys; add it with `sops updatekeys`, then run hostage again",
            key.kind,
            key.value,
            group + 1,
            rule.index,
            config.path().display()
        ));
    }
    let meta = file.metadata();
    let needed = if meta.groups.len() > 1 {
        meta.threshold
    } else {
        1
    };
    let with_age = meta.groups.iter().filter(|g| !g.age.is_empty()).count();
    if with_age >= needed {
        return None;
    }
    let others: Vec<String> = meta
        .groups
        .iter()
        .flat_map(|g| g.others.iter().map(ToString::to_string))
        .collect();
    Some(format!(
        "hostage cannot open this file: its data key is encrypted to no age key in enough key groups ({with_age} of {needed}), only to {}; hostage decrypts with age identities only, so add the age recipients with `sops updatekeys` (which decrypts with that key's tooling, e.g. gpg), then run hostage again",
        if others.is_empty() {
            "nothing it knows".to_owned()
        } else {
            others.join(", ")
        }
    ))
}

impl FilePlan {
    /// `file` without the non-age master keys this plan takes off it (see
    /// [`leaving_master_keys`](Self::leaving_master_keys)): what apply re-wraps or rotates.
    pub fn without_leaving_master_keys(
        &self,
        file: SopsFile,
    ) -> Result<SopsFile, hostage_sops::SopsError> {
        let leaving = self.leaving_master_keys(&file);
        if leaving.iter().all(Vec::is_empty) {
            Ok(file)
        } else {
            file.without_master_keys(&leaving)
        }
    }

    /// The non-age master keys (pgp, KMS, …) of `file` that this plan takes off it, per key
    /// group: those listed as removed. Apply takes them out with
    /// [`SopsFile::without_master_keys`] before re-wrapping or rotating.
    pub fn leaving_master_keys(&self, file: &SopsFile) -> Vec<Vec<MasterKey>> {
        file.metadata()
            .groups
            .iter()
            .enumerate()
            .map(|(index, group)| {
                let removed = self.groups.get(index).map_or(&[][..], |g| &g.removed[..]);
                group
                    .others
                    .iter()
                    .filter(|o| {
                        let named = o.to_string();
                        removed.iter().any(|r| r.recipient == named)
                    })
                    .cloned()
                    .collect()
            })
            .collect()
    }
}

/// Why a file whose rule was found still cannot be re-keyed by hostage, if it cannot.
fn refusal(
    config: &SopsConfig,
    rule: &hostage_sops::rules::CreationRule,
    file: &SopsFile,
    entry: &FilePlan,
) -> Option<String> {
    let current = file.metadata().groups.len();
    if entry.wanted.len() != current {
        return Some(format!(
            "rule {} of {} has {} key group(s) but the file has {current}; changing the number of groups needs a new Shamir split: re-encrypt it with `sops updatekeys`",
            rule.index,
            config.path().display(),
            entry.wanted.len()
        ));
    }
    if current > 1 {
        let wanted = rule
            .shamir_threshold
            .and_then(|t| usize::try_from(t).ok())
            .filter(|t| *t > 0);
        if let Some(threshold) = wanted {
            if threshold != file.metadata().threshold {
                return Some(format!(
                    "the rule's shamir_threshold is {threshold} but the file's is {}; changing it needs a new Shamir split: use `sops updatekeys`",
                    file.metadata().threshold
                ));
            }
        }
    }
    for (index, group) in entry.groups.iter().enumerate() {
        if !group.removed.is_empty() && group.kept.is_empty() && group.added.is_empty() {
            return Some(format!(
                "key group {} would have no age recipient left",
                index + 1
            ));
        }
        for added in &group.added {
            let kind = rule.key_groups[index]
                .iter()
                .find(|e| e.recipient == added.recipient)
                .map(|e| &e.kind);
            if !matches!(kind, Some(RecipientKind::X25519)) {
                return Some(format!(
                    "cannot add `{added}`: hostage adds only age X25519 (age1…) recipients; SSH, plugin and post-quantum ones are kept but not created (use sops for those)"
                ));
            }
        }
    }
    None
}

fn dedup<'a>(items: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(item) {
            out.push(item);
        }
    }
    out
}

/// An I/O error's cause without the path `fs-err` puts in front (the caller names the file).
pub(crate) fn io_cause(error: &std::io::Error) -> String {
    use std::error::Error as _;
    error
        .source()
        .map_or_else(|| error.to_string(), ToString::to_string)
}

/// Unlocks, once, every identity whose recipient is in `needed` (asking `passphrases` for
/// protected SSH keys), so parallel workers never prompt. Identities that fail to unlock become
/// problems of the returned set.
pub fn unlock_identities(
    set: &IdentitySet,
    needed: &BTreeSet<String>,
    passphrases: &mut dyn PassphraseProvider,
) -> IdentitySet {
    let mut out = IdentitySet::default();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for candidate in &set.candidates {
        let recipient = candidate.recipient.to_string();
        if !needed.contains(&recipient) || !seen.insert(recipient) {
            continue;
        }
        match candidate.identity(passphrases) {
            Ok(identity) => out.candidates.extend(
                IdentitySet::from_identities(candidate.source.clone(), vec![identity]).candidates,
            ),
            Err(e) => out.problems.push(hostage_recipients::IdentityLoadProblem {
                source_name: candidate.source.clone(),
                line: candidate.line,
                message: e.to_string(),
            }),
        }
    }
    out.problems.extend(
        set.problems
            .iter()
            .map(|p| hostage_recipients::IdentityLoadProblem {
                source_name: p.source_name.clone(),
                line: p.line,
                message: p.message.clone(),
            }),
    );
    out
}

/// Checks, for every file the plan would change, that `identities` recover its data key and
/// that its MAC matches (what `--dry-run` can say beyond `--check`); failures become errors.
pub fn verify(
    plan: &mut Plan,
    identities: &IdentitySet,
    threads: usize,
    progress: Progress<'_>,
) -> Result<(), RekeyError> {
    let workers = crate::workers(threads)?;
    plan.rewrite(CHUNK, |files| {
        let check = |file: &FilePlan| {
            if !file.changes() {
                return None;
            }
            let result = (|| -> Result<(), String> {
                let bytes = fs_err::read(&file.path)
                    .map_err(|e| format!("cannot read the file: {}", io_cause(&e)))?;
                let sops = SopsFile::parse(&bytes, None).map_err(|e| e.to_string())?;
                let key = sops
                    .data_key(identities, &mut ())
                    .map_err(|e| e.to_string())?;
                match file.action {
                    // A re-wrap is cheap: make it in memory, so what only the key can tell
                    // (e.g. a Shamir group whose share no identity opened) shows up now.
                    Action::Rewrap => file
                        .without_leaving_master_keys(sops)
                        .and_then(|sops| sops.rewrap(&key, &file.wanted, MacCheck::Verify))
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    _ => sops.verify_mac(&key).map_err(|e| e.to_string()),
                }
            })();
            progress();
            result.err()
        };
        let problems: Vec<Option<String>> =
            workers.install(|| files.par_iter().map(check).collect());
        for (file, problem) in files.iter_mut().zip(problems) {
            if let Some(reason) = problem {
                file.action = Action::Error;
                file.reason = Some(reason);
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sops_metadata_is_recognised_in_every_format_and_not_elsewhere() {
        assert!(carries_sops_metadata("a: ENC[…]\nsops:\n    age: []\n"));
        assert!(carries_sops_metadata("{\n  \"a\": 1,\n  \"sops\" : {}\n}"));
        assert!(carries_sops_metadata("A=ENC[…]\nsops_mac=ENC[…]\n"));
        assert!(!carries_sops_metadata("name: sops\nsops_version: 3\n"));
        assert!(!carries_sops_metadata("{\"tool\": \"sops\"}"));
        assert!(!carries_sops_metadata("  sops:\n"));
    }

    #[test]
    fn key_paths_keep_their_order_and_round_trip_through_json() {
        let paths = KeyPaths::new(["db.password".to_owned(), "db.user".to_owned()]);
        assert_eq!(paths.iter().collect::<Vec<_>>(), ["db.password", "db.user"]);
        let json = serde_json::to_string(&paths).unwrap();
        assert_eq!(json, r#"["db.password","db.user"]"#);
        assert_eq!(serde_json::from_str::<KeyPaths>(&json).unwrap(), paths);
        assert!(KeyPaths::default().is_empty());
        assert_eq!(KeyPaths::default().iter().count(), 0);
    }
}
