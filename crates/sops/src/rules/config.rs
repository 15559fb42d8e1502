//! The parsed `.sops.yaml`: creation rules with sops 3.11's semantics, plus positions for edits.

use std::path::{Path, PathBuf};

use hostage_recipients::RecipientString;
use regex::Regex;
use serde::Serialize;

use super::lint::{self, Lint};
use super::paths;
use super::tree::{line_of, Kind, NodeId, ScalarKind, Tree};
use super::RulesError;

/// A parsed `.sops.yaml`, keeping its source text for lossless edits.
#[derive(Debug, Clone)]
pub struct SopsConfig {
    pub(crate) path: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) text: String,
    pub(crate) tree: Tree,
    has_creation_rules: bool,
    pub(crate) rules: Vec<CreationRule>,
    pub(crate) root_entries: Vec<(String, NodeId)>,
    lints: Vec<Lint>,
}

/// One entry of `creation_rules`, as sops 3.11 reads it.
#[derive(Debug, Clone, Serialize)]
pub struct CreationRule {
    /// 0-based position in `creation_rules`.
    pub index: usize,
    /// 1-based line of the rule (its first key).
    pub line: usize,
    /// `path_regex`; `None` (or empty) matches every file.
    pub path_regex: Option<String>,
    /// The age recipients of each key group, in sops' order; flat keys make one group.
    pub key_groups: Vec<Vec<RecipientEntry>>,
    /// Keys of other kinds (pgp, kms, …) per group, parallel to `key_groups`; kept, never edited.
    pub other_keys: Vec<Vec<OtherKey>>,
    /// Whether the rule uses `key_groups` (otherwise the flat keys form one group).
    pub uses_key_groups: bool,
    /// `shamir_threshold` as written (`None` when absent or 0).
    pub shamir_threshold: Option<u64>,
    /// Keys sops does not know (ignored by sops; reported as lints), with their lines.
    pub unknown_keys: Vec<(String, usize)>,
    #[serde(skip)]
    pub(crate) regex_line: usize,
    #[serde(skip)]
    pub(crate) problem: Option<(usize, String)>,
    #[serde(skip)]
    pub(crate) node: NodeId,
    #[serde(skip)]
    pub(crate) sites: Vec<GroupSite>,
    /// `path_regex` compiled on first use: a re-key matches thousands of files against the same
    /// rules, and compiling per file cost more than the match (issue 14's profile).
    #[serde(skip)]
    compiled: std::sync::OnceLock<Result<Regex, String>>,
}

/// Where a group's `age` lives in the tree (for edits).
#[derive(Debug, Clone)]
pub(crate) struct GroupSite {
    /// The mapping holding `age:` (the rule for flat keys, the group mapping for key groups).
    pub map: NodeId,
    /// The `age` value node as written in that mapping (maybe an alias), when present.
    pub age: Option<NodeId>,
}

/// One age recipient of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientEntry {
    /// The recipient string as sops sees it (trimmed).
    pub recipient: String,
    /// The anchor name when the entry came from an alias (`*alice` → `alice`).
    pub anchor: Option<String>,
    /// 1-based line where it is written (the alias or the scalar).
    pub line: usize,
    /// What kind of recipient it is.
    pub kind: RecipientKind,
}

/// The kind of an age recipient string, as sops' `parseRecipient` classifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum RecipientKind {
    /// `age1…` X25519.
    X25519,
    /// `ssh-ed25519 …` / `ssh-rsa …`.
    Ssh,
    /// `age1<plugin>1…`.
    Plugin,
    /// `age1pq1…` (sops 3.12+).
    PostQuantum,
    /// Not a valid recipient: why.
    Invalid(String),
}

impl RecipientKind {
    pub(crate) fn classify(text: &str) -> Self {
        match RecipientString::parse(text) {
            Ok(RecipientString::X25519(_)) => Self::X25519,
            Ok(RecipientString::Ssh { .. }) => Self::Ssh,
            Ok(RecipientString::Plugin(_)) => Self::Plugin,
            Ok(RecipientString::PostQuantum(_)) => Self::PostQuantum,
            Err(e) => Self::Invalid(e.to_string()),
        }
    }
}

/// A non-age key of a group (kept as written; hostage never edits these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherKey {
    /// `pgp`, `kms`, `gcp_kms`, `azure_keyvault`, `hc_vault_transit_uri`/`hc_vault`, `hckms`, `plugins`.
    pub kind: String,
    /// The key as written (ARN, fingerprint, URI…), or the YAML text for structured entries.
    pub value: String,
}

const RULE_KEYS: &[&str] = &[
    "path_regex",
    "timeout",
    "kms",
    "aws_profile",
    "age",
    "pgp",
    "gcp_kms",
    "hckms",
    "azure_keyvault",
    "hc_vault_transit_uri",
    "key_groups",
    "shamir_threshold",
    "plugins",
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
    "mac_only_encrypted",
];

const FLAT_OTHER: &[&str] = &[
    "pgp",
    "kms",
    "gcp_kms",
    "hckms",
    "azure_keyvault",
    "hc_vault_transit_uri",
];
const GROUP_OTHER: &[&str] = &[
    "pgp",
    "kms",
    "gcp_kms",
    "hckms",
    "azure_keyvault",
    "hc_vault",
    "plugins",
];

impl SopsConfig {
    /// Reads and parses the `.sops.yaml` at `path`.
    pub fn load(path: &Path) -> Result<SopsConfig, RulesError> {
        let text = fs_err::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the `.sops.yaml` at `path` (the path anchors `path_regex` matching).
    ///
    /// Errors where sops 3.11 refuses the whole file (invalid YAML, wrong types) carry the line;
    /// problems sops only hits when a rule is selected (bad regex, bad recipient) surface from
    /// [`SopsConfig::rule_for`], as in sops.
    pub fn parse(path: &Path, text: &str) -> Result<SopsConfig, RulesError> {
        let syntax = |line: usize, column: usize, message: String| RulesError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message,
        };
        // yaml_serde's parser is libyaml, like sops' yaml.v3: it decides what is valid YAML.
        // Duplicate keys are left to `check_duplicates`, which reports the repeated key's line as
        // yaml.v3 does (yaml_serde names the mapping's first line).
        let expected = match yaml_serde::from_str::<yaml_serde::Value>(text) {
            Ok(value) => Some(value),
            Err(e) if e.to_string().contains("duplicate entry") => None,
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                let message = e.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                return Err(syntax(line, column, message));
            }
        };
        let tree = Tree::build(text).map_err(|e| {
            let line = line_of(text, e.offset);
            syntax(
                line,
                1,
                format!("{} (hostage's lossless parser cannot read this)", e.message),
            )
        })?;
        // yaml_serde resolves an alias of a redefined anchor to the wrong node (it picks the
        // anchor defined next), unlike yaml.v3 and the YAML spec; skip the cross-check then.
        let redefined = {
            let mut seen = std::collections::HashSet::new();
            tree.anchors
                .iter()
                .any(|(name, _)| !seen.insert(name.as_str()))
        };
        let expected = expected.filter(|_| !redefined);
        if let Some(id) = expected.and_then(|value| tree.first_difference(&value)) {
            let offset = tree.nodes[id].range.start;
            return Err(syntax(
                line_of(text, offset),
                1,
                "hostage's lossless parser reads this differently from a YAML parser, so it cannot edit the file safely; please report this file".into(),
            ));
        }
        let dir = paths::absolute(path.parent().unwrap_or(Path::new("")));
        let mut config = SopsConfig {
            path: path.to_owned(),
            dir,
            text: text.to_owned(),
            tree,
            has_creation_rules: false,
            rules: Vec::new(),
            root_entries: Vec::new(),
            lints: Vec::new(),
        };
        config.decode()?;
        config.lints = lint::lints(&config);
        Ok(config)
    }

    /// The config file's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory `path_regex` is relative to (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The source text, byte for byte.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// All creation rules, in order.
    pub fn rules(&self) -> &[CreationRule] {
        &self.rules
    }

    /// Warnings about rules that do not do what they seem to (see [`Lint`]).
    pub fn lints(&self) -> &[Lint] {
        &self.lints
    }

    /// Every (name, recipient) pair the file itself names, from the one naming model
    /// ([`SopsConfig::recipient_names`] without supplied names): anchors on recipients first, then
    /// header labels (`# web01: age1…`), each pair once.
    pub fn named_recipients(&self) -> Vec<(String, String)> {
        self.recipient_names(&[])
            .iter()
            .map(|n| (n.name.clone(), n.recipient.clone()))
            .collect()
    }

    /// The name the file gives `recipient` (an anchor before a header label), for display and
    /// plans. For names from outside the file too, use [`SopsConfig::recipient_names`].
    pub fn name_of(&self, recipient: &str) -> Option<String> {
        self.recipient_names(&[])
            .name_of(recipient)
            .map(str::to_owned)
    }

    /// The rule sops 3.11 would use for `file` (relative paths are taken from the current
    /// directory, as sops does): first match wins, in order.
    pub fn rule_for(&self, file: &Path) -> Result<(usize, &CreationRule), RulesError> {
        let relative = paths::relative_to_config(&self.dir, file);
        self.rule_for_sops_path(&relative)
    }

    /// Like [`SopsConfig::rule_for`], for a path already in sops' form (relative to the config's
    /// directory, or absolute when outside it).
    pub fn rule_for_sops_path(
        &self,
        sops_path: &str,
    ) -> Result<(usize, &CreationRule), RulesError> {
        if !self.has_creation_rules {
            return Err(RulesError::NoCreationRules {
                path: self.path.clone(),
            });
        }
        for rule in &self.rules {
            let regex = match rule.path_regex.as_deref() {
                None | Some("") => return self.selected(rule),
                Some(regex) => regex,
            };
            let compiled = rule
                .compiled
                .get_or_init(|| {
                    Regex::new(regex)
                        .map_err(|e| e.to_string().lines().last().unwrap_or_default().to_owned())
                })
                .as_ref()
                .map_err(|message| RulesError::BadRegex {
                    path: self.path.clone(),
                    line: rule.regex_line,
                    index: rule.index,
                    regex: regex.to_owned(),
                    message: message.clone(),
                })?;
            if compiled.is_match(sops_path) {
                return self.selected(rule);
            }
        }
        Err(RulesError::NoMatchingRule {
            path: self.path.clone(),
            file: sops_path.to_owned(),
        })
    }

    fn selected<'a>(
        &self,
        rule: &'a CreationRule,
    ) -> Result<(usize, &'a CreationRule), RulesError> {
        if let Some((line, message)) = &rule.problem {
            return Err(RulesError::Invalid {
                path: self.path.clone(),
                line: *line,
                message: format!("rule {}: {message}", rule.index),
            });
        }
        for entry in rule.key_groups.iter().flatten() {
            if let RecipientKind::Invalid(message) = &entry.kind {
                return Err(RulesError::BadRecipient {
                    path: self.path.clone(),
                    line: entry.line,
                    index: rule.index,
                    recipient: entry.recipient.clone(),
                    message: message.clone(),
                });
            }
        }
        Ok((rule.index, rule))
    }

    pub(crate) fn line(&self, id: NodeId) -> usize {
        line_of(&self.text, self.tree.nodes[id].range.start)
    }

    fn invalid(&self, id: NodeId, message: impl Into<String>) -> RulesError {
        RulesError::Invalid {
            path: self.path.clone(),
            line: self.line(id),
            message: message.into(),
        }
    }

    /// Entries of a mapping with `<<` merge keys applied (explicit keys win, then merge sources
    /// in order), as yaml.v3 decodes them into a struct.
    pub(crate) fn entries(&self, map: NodeId) -> Vec<(String, NodeId)> {
        let mut out: Vec<(String, NodeId)> = Vec::new();
        self.collect_entries(map, &mut out, 0);
        out
    }

    fn collect_entries(&self, map: NodeId, out: &mut Vec<(String, NodeId)>, depth: usize) {
        if depth > 16 {
            return;
        }
        let Kind::Map { entries, .. } = &self.tree.nodes[self.tree.resolve(map)].kind else {
            return;
        };
        for entry in entries {
            if entry.key != "<<" && !out.iter().any(|(k, _)| *k == entry.key) {
                out.push((entry.key.clone(), entry.value));
            }
        }
        for entry in entries.iter().filter(|e| e.key == "<<") {
            let source = self.tree.resolve(entry.value);
            match &self.tree.nodes[source].kind {
                Kind::Map { .. } => self.collect_entries(source, out, depth + 1),
                Kind::Seq { items, .. } => {
                    for item in items {
                        self.collect_entries(item.node, out, depth + 1);
                    }
                }
                _ => {}
            }
        }
    }

    fn is_null(&self, id: NodeId) -> bool {
        match &self.tree.nodes[self.tree.resolve(id)].kind {
            Kind::Empty => true,
            Kind::Scalar(s) => s.kind == ScalarKind::Null,
            _ => false,
        }
    }

    fn scalar_string(&self, id: NodeId) -> Option<String> {
        match &self.tree.nodes[self.tree.resolve(id)].kind {
            Kind::Scalar(s) if s.kind == ScalarKind::Null => Some(String::new()),
            Kind::Scalar(s) => Some(s.value.clone()),
            Kind::Empty => Some(String::new()),
            _ => None,
        }
    }

    fn check_duplicates(&self, map: NodeId) -> Result<(), RulesError> {
        let Kind::Map { entries, .. } = &self.tree.nodes[self.tree.resolve(map)].kind else {
            return Ok(());
        };
        for (i, a) in entries.iter().enumerate() {
            if a.key == "<<" {
                continue;
            }
            if let Some(b) = entries[i + 1..].iter().find(|b| b.key == a.key) {
                return Err(RulesError::Invalid {
                    path: self.path.clone(),
                    line: line_of(&self.text, b.key_range.start),
                    message: format!(
                        "mapping key {:?} already defined at line {}",
                        a.key,
                        line_of(&self.text, a.key_range.start)
                    ),
                });
            }
        }
        Ok(())
    }

    fn decode(&mut self) -> Result<(), RulesError> {
        let root = self.tree.root;
        if self.is_null(root) {
            return Ok(());
        }
        if !matches!(
            self.tree.nodes[self.tree.resolve(root)].kind,
            Kind::Map { .. }
        ) {
            return Err(self.invalid(root, "the top level must be a mapping with creation_rules"));
        }
        self.check_duplicates(root)?;
        self.root_entries = self.entries(root);
        let Some(&(_, rules_id)) = self
            .root_entries
            .iter()
            .find(|(k, _)| k == "creation_rules")
        else {
            return Ok(());
        };
        if self.is_null(rules_id) {
            return Ok(());
        }
        let rules_id = self.tree.resolve(rules_id);
        let Kind::Seq { items, .. } = &self.tree.nodes[rules_id].kind else {
            return Err(self.invalid(rules_id, "creation_rules must be a list of rules"));
        };
        self.has_creation_rules = true;
        let items: Vec<NodeId> = items.iter().map(|i| i.node).collect();
        let mut rules = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            rules.push(self.decode_rule(index, item)?);
        }
        self.rules = rules;
        Ok(())
    }

    fn decode_rule(&self, index: usize, item: NodeId) -> Result<CreationRule, RulesError> {
        let node = self.tree.resolve(item);
        let mut rule = CreationRule {
            index,
            line: self.line(item),
            path_regex: None,
            key_groups: Vec::new(),
            other_keys: Vec::new(),
            uses_key_groups: false,
            shamir_threshold: None,
            unknown_keys: Vec::new(),
            regex_line: self.line(item),
            problem: None,
            node,
            sites: Vec::new(),
            compiled: std::sync::OnceLock::new(),
        };
        if self.is_null(item) {
            // A bare `-`: sops decodes a zero rule, which matches every file and has no keys.
            rule.key_groups.push(Vec::new());
            rule.other_keys.push(Vec::new());
            rule.sites.push(GroupSite {
                map: node,
                age: None,
            });
            return Ok(rule);
        }
        if !matches!(self.tree.nodes[node].kind, Kind::Map { .. }) {
            return Err(self.invalid(item, format!("rule {index} must be a mapping")));
        }
        self.check_duplicates(node)?;
        let entries = self.entries(node);
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        for (key, value) in &entries {
            if !RULE_KEYS.contains(&key.as_str()) {
                rule.unknown_keys
                    .push((key.clone(), self.line(*value).max(1)));
            }
        }
        if let Some(v) = get("path_regex") {
            let regex = self.scalar_string(v).ok_or_else(|| {
                self.invalid(v, format!("rule {index}: path_regex must be a string"))
            })?;
            rule.regex_line = self.line(v);
            rule.path_regex = Some(regex).filter(|r| !r.is_empty());
        }
        if let Some(v) = get("shamir_threshold") {
            match &self.tree.nodes[self.tree.resolve(v)].kind {
                Kind::Scalar(s) if s.kind == ScalarKind::Int => {
                    let n: i64 = s.value.replace('_', "").parse().map_err(|_| {
                        self.invalid(
                            v,
                            format!("rule {index}: shamir_threshold must be a number"),
                        )
                    })?;
                    rule.shamir_threshold = u64::try_from(n).ok().filter(|n| *n > 0);
                }
                _ if self.is_null(v) => {}
                _ => {
                    return Err(self.invalid(
                        v,
                        format!("rule {index}: shamir_threshold must be a number"),
                    ))
                }
            }
        }
        let groups = match get("key_groups") {
            Some(v) if !self.is_null(v) => {
                let resolved = self.tree.resolve(v);
                match &self.tree.nodes[resolved].kind {
                    Kind::Seq { items, .. } => items.iter().map(|i| i.node).collect(),
                    _ => {
                        return Err(self.invalid(
                            v,
                            format!("rule {index}: key_groups must be a list of groups"),
                        ))
                    }
                }
            }
            _ => Vec::new(),
        };
        if groups.is_empty() {
            self.decode_flat(&mut rule, node, &entries);
        } else {
            rule.uses_key_groups = true;
            for group in groups {
                let mut recipients = Vec::new();
                let mut others = Vec::new();
                self.decode_group(index, group, &mut recipients, &mut others, 0)?;
                // deduplicateKeygroup: by type and string, first occurrence wins.
                let mut seen = std::collections::HashSet::new();
                recipients.retain(|e: &RecipientEntry| seen.insert(e.recipient.clone()));
                let mut seen = std::collections::HashSet::new();
                others.retain(|o: &OtherKey| seen.insert((o.kind.clone(), o.value.clone())));
                rule.key_groups.push(recipients);
                rule.other_keys.push(others);
                let map = self.tree.resolve(group);
                let age = self
                    .entries(map)
                    .into_iter()
                    .find(|(k, _)| k == "age")
                    .map(|(_, v)| v);
                rule.sites.push(GroupSite { map, age });
            }
        }
        Ok(rule)
    }

    fn decode_flat(&self, rule: &mut CreationRule, node: NodeId, entries: &[(String, NodeId)]) {
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        let mut recipients = Vec::new();
        let age = get("age");
        if let Some(v) = age {
            match self.key_field(v) {
                Ok(parts) => {
                    // 3.11 joins list items with "," and splits again, trimming each part.
                    let joined = parts
                        .iter()
                        .map(|(s, _, _)| s.as_str())
                        .collect::<Vec<_>>()
                        .join(",");
                    if !joined.is_empty() {
                        let mut owners = parts.iter().flat_map(|(s, anchor, line)| {
                            s.split(',').map(move |_| (anchor.clone(), *line))
                        });
                        for part in joined.split(',') {
                            let (anchor, line) = owners.next().unwrap_or((None, rule.line));
                            recipients.push(self.entry(part, anchor, line));
                        }
                    }
                }
                Err(message) => rule.problem = Some((self.line(v), message)),
            }
        }
        let mut others = Vec::new();
        for kind in FLAT_OTHER {
            if let Some(v) = get(kind) {
                match self.key_field(v) {
                    Ok(parts) => {
                        for (s, _, _) in parts {
                            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                                others.push(OtherKey {
                                    kind: (*kind).to_owned(),
                                    value: part.to_owned(),
                                });
                            }
                        }
                    }
                    Err(message) => {
                        rule.problem.get_or_insert((self.line(v), message));
                    }
                }
            }
        }
        if let Some(v) = get("plugins") {
            others.push(OtherKey {
                kind: "plugins".into(),
                value: self.source(v).to_owned(),
            });
        }
        rule.key_groups.push(recipients);
        rule.other_keys.push(others);
        rule.sites.push(GroupSite { map: node, age });
    }

    /// sops' `parseKeyField`: a string (comma-split, trimmed, empties dropped), a list of strings,
    /// or null. Each part comes with the anchor it was reached through and its line.
    #[allow(clippy::type_complexity)]
    fn key_field(&self, v: NodeId) -> Result<Vec<(String, Option<String>, usize)>, String> {
        let resolved = self.tree.resolve(v);
        let anchor = self.tree.alias_name(v).map(str::to_owned);
        match &self.tree.nodes[resolved].kind {
            Kind::Empty => Ok(Vec::new()),
            Kind::Scalar(s) if s.kind == ScalarKind::Null => Ok(Vec::new()),
            Kind::Scalar(s) if s.kind == ScalarKind::Str => Ok(s
                .value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| (p.to_owned(), anchor.clone(), self.line(v)))
                .collect()),
            Kind::Scalar(_) => Err("invalid key configuration: expected a string or a list".into()),
            Kind::Seq { items, .. } => items
                .iter()
                .map(|item| {
                    let target = self.tree.resolve(item.node);
                    match &self.tree.nodes[target].kind {
                        Kind::Scalar(s) if s.kind == ScalarKind::Str => Ok((
                            s.value.clone(),
                            self.tree.alias_name(item.node).map(str::to_owned),
                            self.line(item.node),
                        )),
                        _ => Err("invalid key configuration: expected string in list".into()),
                    }
                })
                .collect(),
            _ => Err("invalid key configuration: expected a string or a list".into()),
        }
    }

    fn entry(&self, text: &str, anchor: Option<String>, line: usize) -> RecipientEntry {
        let recipient = text.trim().to_owned();
        let kind = if recipient.is_empty() {
            RecipientKind::Invalid("empty recipient".into())
        } else {
            RecipientKind::classify(&recipient)
        };
        RecipientEntry {
            recipient,
            anchor,
            line,
            kind,
        }
    }

    pub(crate) fn source(&self, id: NodeId) -> &str {
        &self.text[self.tree.nodes[id].range.clone()]
    }

    fn decode_group(
        &self,
        index: usize,
        group: NodeId,
        recipients: &mut Vec<RecipientEntry>,
        others: &mut Vec<OtherKey>,
        depth: usize,
    ) -> Result<(), RulesError> {
        if self.is_null(group) || depth > 16 {
            return Ok(());
        }
        let map = self.tree.resolve(group);
        if !matches!(self.tree.nodes[map].kind, Kind::Map { .. }) {
            return Err(self.invalid(
                group,
                format!("rule {index}: a key group must be a mapping"),
            ));
        }
        self.check_duplicates(map)?;
        let entries = self.entries(map);
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        let list = |key: &str| -> Result<Vec<NodeId>, RulesError> {
            match get(key) {
                None => Ok(Vec::new()),
                Some(v) if self.is_null(v) => Ok(Vec::new()),
                Some(v) => match &self.tree.nodes[self.tree.resolve(v)].kind {
                    Kind::Seq { items, .. } => Ok(items.iter().map(|i| i.node).collect()),
                    _ => Err(self.invalid(
                        v,
                        format!(
                            "rule {index}: in key_groups, {key} must be a list (sops: cannot unmarshal into []string)"
                        ),
                    )),
                },
            }
        };
        for sub in list("merge")? {
            self.decode_group(index, sub, recipients, others, depth + 1)?;
        }
        for item in list("age")? {
            let text = self.scalar_string(item).ok_or_else(|| {
                self.invalid(item, format!("rule {index}: age items must be strings"))
            })?;
            let anchor = self.tree.alias_name(item).map(str::to_owned);
            // MasterKeysFromRecipients: split on ",", trim each part.
            for part in text.split(',') {
                recipients.push(self.entry(part, anchor.clone(), self.line(item)));
            }
        }
        for kind in GROUP_OTHER {
            for item in list(kind)? {
                let value = self
                    .scalar_string(item)
                    .unwrap_or_else(|| self.source(self.tree.resolve(item)).to_owned());
                others.push(OtherKey {
                    kind: (*kind).to_owned(),
                    value,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{parse, A, B};

    #[test]
    fn first_matching_rule_wins_and_regex_is_unanchored() {
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: web\n    age: {A}\n  - path_regex: secrets/\n    age: {B}\n"
        ));
        let pick = |p: &str| config.rule_for(Path::new(p)).map(|(i, _)| i).ok();
        assert_eq!(pick("/repo/secrets/web.yaml"), Some(0));
        assert_eq!(pick("/repo/x/secrets/db.yaml"), Some(1));
        assert_eq!(pick("/repo/other.yaml"), None);
    }

    #[test]
    fn a_bad_regex_only_fails_when_matching_reaches_it() {
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: ok/\n    age: {A}\n  - path_regex: '(['\n    age: {A}\n"
        ));
        assert!(config.rule_for(Path::new("/repo/ok/x")).is_ok());
        let err = config.rule_for(Path::new("/repo/no/x")).unwrap_err();
        assert!(matches!(err, RulesError::BadRegex { line: 4, .. }), "{err}");
        assert!(config
            .lints()
            .iter()
            .any(|l| l.kind == lint::LintKind::BadRegex));
    }

    #[test]
    fn an_invalid_recipient_fails_only_the_files_its_rule_selects() {
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: bad/\n    age: age1nope\n  - age: {A}\n"
        ));
        let err = config.rule_for(Path::new("/repo/bad/x")).unwrap_err();
        assert!(
            matches!(err, RulesError::BadRecipient { line: 3, .. }),
            "{err}"
        );
        assert!(config.rule_for(Path::new("/repo/good/x")).is_ok());
    }

    #[test]
    fn a_file_without_creation_rules_is_reported_as_such() {
        let config = parse("stores:\n  yaml:\n    indent: 4\n");
        assert!(matches!(
            config.rule_for(Path::new("/repo/x")),
            Err(RulesError::NoCreationRules { .. })
        ));
    }

    #[test]
    fn flat_groups_keep_duplicates_and_key_groups_drop_them() {
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: flat/\n    age: {A},{A}\n  - key_groups:\n      - age: [{A}, {A}, {B}]\n"
        ));
        assert_eq!(config.rules()[0].key_groups[0].len(), 2);
        assert_eq!(config.rules()[1].key_groups[0].len(), 2);
    }

    #[test]
    fn entries_reached_through_aliases_keep_the_anchor_name() {
        let config = parse(&format!(
            "keys:\n  - &web01 {A}\ncreation_rules:\n  - key_groups:\n      - age:\n          - *web01\n          - {B}\n"
        ));
        let group = &config.rules()[0].key_groups[0];
        assert_eq!(group[0].anchor.as_deref(), Some("web01"));
        assert_eq!(group[0].line, 6);
        assert_eq!(group[1].anchor, None);
        assert_eq!(config.name_of(A).as_deref(), Some("web01"));
    }

    #[test]
    fn syntax_errors_carry_file_and_line() {
        let err = SopsConfig::parse(
            Path::new("/repo/.sops.yaml"),
            "creation_rules:\n  - path_regex: x\n    age: \"unterminated\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/repo/.sops.yaml:4:"), "{text}");
    }
}
