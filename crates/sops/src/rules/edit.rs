//! Lossless edits of `.sops.yaml`: every operation splices bytes at positions taken from the CST and
//! returns the new text; nothing outside the spliced ranges changes (CRLF, missing final newline,
//! indentation, comments and their alignment stay as they were).

use std::collections::HashSet;
use std::ops::Range;

use hostage_recipients::AgeRecipient;

use super::change::{ConfigChange, ConfigEdit};
use super::config::{GroupSite, SopsConfig};
use super::tree::{Kind, NodeId, ScalarKind};
use super::RulesError;

/// A recipient to write into rules: the key, and the anchor to reference it by when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRef {
    /// The recipient string (`age1…`).
    pub recipient: String,
    /// Written as `*anchor` in lists when set (comma strings always get the literal key).
    pub anchor: Option<String>,
    /// The file defines its anchors inline in the rules (no `keys:` list) and `anchor` is not
    /// defined yet: the first list item an edit writes defines it (`- &name age1…`), later ones
    /// alias it. [`SopsConfig::add_named_recipient`] sets it; anywhere else it is `false`.
    pub define_anchor: bool,
}

impl RecipientRef {
    /// A bare recipient, written inline.
    pub fn literal(recipient: &AgeRecipient) -> Self {
        Self {
            recipient: recipient.to_string(),
            anchor: None,
            define_anchor: false,
        }
    }

    /// Whether `entry_text`/`anchor` denote this recipient.
    pub(crate) fn matches(&self, recipient: &str, anchor: Option<&str>) -> bool {
        recipient == self.recipient || (anchor.is_some() && anchor == self.anchor.as_deref())
    }
}

/// Which rules an edit applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSelector {
    /// Every creation rule.
    All,
    /// These rules (0-based indices).
    Indices(Vec<usize>),
}

impl RuleSelector {
    fn contains(&self, index: usize) -> bool {
        match self {
            Self::All => true,
            Self::Indices(list) => list.contains(&index),
        }
    }
}

/// The result of [`SopsConfig::add_named_recipient`]: the new text and how rules should refer to
/// the new key (an alias when an anchor was added, else the literal key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedRecipient {
    /// The new file text.
    pub text: String,
    /// What to pass to [`SopsConfig::add_recipient`].
    pub reference: RecipientRef,
    /// What was written (`AddAnchor`, `AddHeaderLabel`; empty on a re-run).
    pub changes: Vec<ConfigChange>,
}

/// Byte splices, applied back to front.
#[derive(Default)]
pub(crate) struct Splices(Vec<(Range<usize>, String)>);

impl Splices {
    pub(crate) fn push(&mut self, range: Range<usize>, text: impl Into<String>) {
        self.0.push((range, text.into()));
    }

    /// The byte ranges replaced so far.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = &Range<usize>> {
        self.0.iter().map(|(r, _)| r)
    }

    pub(crate) fn apply(mut self, config: &SopsConfig) -> Result<String, RulesError> {
        self.0.sort_by_key(|(r, _)| (r.start, r.end));
        for pair in self.0.windows(2) {
            if pair[0].0.end > pair[1].0.start {
                return Err(config.edit_error("two edits overlap; edit one rule at a time"));
            }
        }
        let mut text = config.text.clone();
        for (range, replacement) in self.0.into_iter().rev() {
            text.replace_range(range, &replacement);
        }
        config.verified(text)
    }
}

pub(crate) fn is_anchor_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl SopsConfig {
    /// `text` when it reads back as a `.sops.yaml` (the last step of every edit): an edit never
    /// hands out text that sops or hostage would refuse to read.
    pub(crate) fn verified(&self, text: String) -> Result<String, RulesError> {
        match SopsConfig::parse(&self.path, &text) {
            Ok(_) => Ok(text),
            Err(e) => Err(RulesError::EditUnverified {
                path: self.path.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// A refusal that is about the file as a whole.
    pub(crate) fn edit_error(&self, message: impl Into<String>) -> RulesError {
        RulesError::Edit {
            path: self.path.clone(),
            line: None,
            message: message.into(),
        }
    }

    /// A refusal about the node `id` (its line goes into the error).
    pub(crate) fn refuse_at(&self, id: NodeId, message: impl Into<String>) -> RulesError {
        RulesError::Edit {
            path: self.path.clone(),
            line: Some(self.line(id)),
            message: message.into(),
        }
    }

    pub(crate) fn eol(&self) -> &'static str {
        if self.text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        }
    }

    /// Start of the line holding `offset`.
    pub(crate) fn line_start(&self, offset: usize) -> usize {
        self.text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0)
    }

    /// Offset of the line break ending the line that holds `offset` (its `\r` for CRLF), or the
    /// end of the text.
    pub(crate) fn line_end(&self, offset: usize) -> usize {
        let end = self.text[offset..]
            .find('\n')
            .map(|i| offset + i)
            .unwrap_or(self.text.len());
        if end > 0 && self.text.as_bytes().get(end - 1) == Some(&b'\r') && end < self.text.len() {
            end - 1
        } else {
            end
        }
    }

    /// The line break before the line holding `offset` (where a removed line's bytes start).
    pub(crate) fn break_before(&self, offset: usize) -> Option<usize> {
        let start = self.line_start(offset);
        if start == 0 {
            return None;
        }
        let nl = start - 1;
        if nl > 0 && self.text.as_bytes()[nl - 1] == b'\r' {
            Some(nl - 1)
        } else {
            Some(nl)
        }
    }

    /// The node an edit of `age` changes: a list shared through an alias is edited where it is
    /// defined (once), anything else where it is written.
    pub(crate) fn edit_site(&self, age: NodeId) -> NodeId {
        let resolved = self.tree.resolve(age);
        match self.tree.nodes[resolved].kind {
            Kind::Seq { .. } => resolved,
            _ => age,
        }
    }

    pub(crate) fn node_range(&self, id: NodeId) -> Range<usize> {
        self.tree.nodes[id].range.clone()
    }

    // ----- add -------------------------------------------------------------------------------

    /// Adds `recipient` to every key group of the selected rules, in each list's own style (block
    /// list item, flow list element, comma string part). Groups that already have it are left
    /// alone; a list shared through an anchor is edited once. Returns only the text; see
    /// [`SopsConfig::add_to_rules`] for what changed.
    pub fn add_recipient(
        &self,
        rules: &RuleSelector,
        recipient: &RecipientRef,
    ) -> Result<String, RulesError> {
        Ok(self.add_to_rules(rules, recipient)?.text)
    }

    /// [`SopsConfig::add_recipient`], reporting an [`ConfigChange::AddToRule`] for every rule
    /// that gains the recipient (none on a re-run: the text is then unchanged).
    pub fn add_to_rules(
        &self,
        rules: &RuleSelector,
        recipient: &RecipientRef,
    ) -> Result<ConfigEdit, RulesError> {
        let mut splices = Splices::default();
        let mut done: HashSet<NodeId> = HashSet::new();
        let mut changes = Vec::new();
        let label = self.display_name(&recipient.recipient, recipient.anchor.as_deref());
        // An anchor the file defines inline is written once, with the first list item (the
        // rules are in document order, so every later item can alias it).
        let mut defined_here = false;
        for rule in self.rules.iter().filter(|r| rules.contains(r.index)) {
            let mut gains = false;
            for (g, site) in rule.sites.iter().enumerate() {
                let present = rule.key_groups[g]
                    .iter()
                    .any(|e| recipient.matches(&e.recipient, e.anchor.as_deref()));
                if present {
                    continue;
                }
                gains = true;
                let key = site.age.map(|a| self.edit_site(a)).unwrap_or(site.map);
                if !done.insert(key) {
                    continue;
                }
                self.check_not_shared(key, rules)?;
                self.add_to_site(
                    site,
                    rule.uses_key_groups,
                    recipient,
                    &mut defined_here,
                    &mut splices,
                )?;
            }
            if gains {
                changes.push(ConfigChange::AddToRule {
                    rule: rule.index,
                    path_regex: rule.path_regex.clone(),
                    recipient: label.clone(),
                });
            }
        }
        Ok(ConfigEdit {
            text: splices.apply(self)?,
            changes,
        })
    }

    /// How an edit report calls a recipient: its name (anchor, header label), else the key.
    pub(crate) fn display_name(&self, recipient: &str, anchor: Option<&str>) -> String {
        self.recipient_names(&[])
            .name_of(recipient)
            .or(anchor)
            .unwrap_or(recipient)
            .to_owned()
    }

    /// A list item for `recipient` written at byte `at`: its alias when the anchor of that name
    /// in force at `at` (the latest definition before it) is that very key, else the key itself
    /// (so a stale or foreign anchor name, or one defined further down, never becomes a dangling
    /// alias). A `define_anchor` reference defines the anchor here once (`&name age1…`) and
    /// aliases it afterwards.
    /// `defined_here` says whether this edit already wrote the definition (further up).
    pub(crate) fn list_item(
        &self,
        recipient: &RecipientRef,
        at: usize,
        defined_here: &mut bool,
    ) -> String {
        let Some(name) = recipient.anchor.as_deref() else {
            return recipient.recipient.clone();
        };
        if *defined_here {
            return format!("*{name}");
        }
        let in_force = self
            .tree
            .anchors
            .iter()
            .rfind(|(n, id)| *n == name && self.tree.nodes[*id].range.end <= at)
            .map(|(_, id)| &self.tree.nodes[*id].kind);
        match in_force {
            Some(Kind::Scalar(s)) if s.value.trim() == recipient.recipient => format!("*{name}"),
            _ if recipient.define_anchor && !self.defines_anchor(name) => {
                *defined_here = true;
                format!("&{name} {}", recipient.recipient)
            }
            _ => recipient.recipient.clone(),
        }
    }

    /// An alias outside `removed` whose anchor is defined inside it: removing those bytes would
    /// leave the alias dangling (a rule defining `&web01` inline that a later rule aliases).
    pub(crate) fn anchor_still_used(&self, removed: &[Range<usize>]) -> Option<(String, NodeId)> {
        let inside = |r: &Range<usize>| {
            removed
                .iter()
                .any(|cut| cut.start <= r.start && r.end <= cut.end)
        };
        self.find_alias(|alias, anchor| !inside(alias) && inside(anchor))
    }

    /// The first alias (its name and node) for which `pick(the alias's bytes, its anchored
    /// node's bytes)` holds.
    pub(crate) fn find_alias(
        &self,
        pick: impl Fn(&Range<usize>, &Range<usize>) -> bool,
    ) -> Option<(String, NodeId)> {
        self.tree
            .nodes
            .iter()
            .enumerate()
            .find_map(|(id, node)| match &node.kind {
                Kind::Alias {
                    name,
                    target: Some(target),
                } if pick(&node.range, &self.tree.nodes[*target].range) => Some((name.clone(), id)),
                _ => None,
            })
    }

    /// Whether some node of the file is anchored `&name` (a recipient or anything else).
    pub(crate) fn defines_anchor(&self, name: &str) -> bool {
        self.tree.anchors.iter().any(|(n, _)| n == name)
    }

    /// Refuses an edit whose bytes also belong to a rule that is not selected (a list or group
    /// shared through an anchor, or merged with `<<:`): editing it would change that rule too.
    pub(crate) fn check_not_shared(
        &self,
        key: NodeId,
        rules: &RuleSelector,
    ) -> Result<(), RulesError> {
        for other in self.rules.iter().filter(|r| !rules.contains(r.index)) {
            let shares = other
                .sites
                .iter()
                .any(|site| site.age.map(|a| self.edit_site(a)).unwrap_or(site.map) == key);
            if shares {
                return Err(self.refuse_at(key, format!("these keys are shared through an anchor with rule {} (line {}); select that rule too, or write the keys out", other.index,
                    other.line
                )));
            }
        }
        Ok(())
    }

    fn add_to_site(
        &self,
        site: &GroupSite,
        key_group: bool,
        recipient: &RecipientRef,
        defined_here: &mut bool,
        splices: &mut Splices,
    ) -> Result<(), RulesError> {
        let Some(age) = site.age else {
            return self.add_age_entry(site.map, key_group, recipient, defined_here, splices);
        };
        let end = self.node_range(age).end;
        let target = self.tree.resolve(age);
        if target != age {
            // Reached through an alias: a scalar alias becomes a flow list in a flat rule.
            return match &self.tree.nodes[target].kind {
                Kind::Scalar(_) if !key_group => {
                    let original = &self.text[self.node_range(age)];
                    splices.push(
                        self.node_range(age),
                        format!(
                            "[{original}, {}]",
                            self.list_item(recipient, end, defined_here)
                        ),
                    );
                    Ok(())
                }
                _ => Err(self.refuse_at(age, "the age keys come from an alias; add the recipient where the anchor is defined, or write the list out")),
            };
        }
        match &self.tree.nodes[age].kind {
            Kind::Seq { items, flow } => {
                let items: Vec<NodeId> = items.iter().map(|i| i.node).collect();
                if *flow {
                    let item = self.list_item(recipient, end, defined_here);
                    self.flow_append(age, &items, &item, splices);
                    Ok(())
                } else {
                    let item = self.list_item(recipient, end, defined_here);
                    self.block_append(&items, &item, splices)
                }
            }
            Kind::Scalar(s) if s.kind == ScalarKind::Str && !key_group => {
                let parts = self.comma_parts(age)?;
                let Some(last) = parts.last() else {
                    return Err(self.refuse_at(age, "empty age string"));
                };
                let sep = if parts.len() >= 2 {
                    self.text[parts[parts.len() - 2].end..last.start].to_owned()
                } else {
                    ",".to_owned()
                };
                splices.push(last.end..last.end, format!("{sep}{}", recipient.recipient));
                Ok(())
            }
            _ => Err(self.refuse_at(age, "cannot add to this age value; write it as a list")),
        }
    }

    /// Absolute byte ranges of each comma-separated part of a string scalar, as written.
    fn comma_parts(&self, scalar: NodeId) -> Result<Vec<Range<usize>>, RulesError> {
        let Kind::Scalar(s) = &self.tree.nodes[scalar].kind else {
            return Err(self.edit_error("not a string"));
        };
        let range = self.node_range(scalar);
        let source = &self.text[range.clone()];
        let mut cursor = 0;
        let mut out = Vec::new();
        for part in s.value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some(at) = source[cursor..].find(part) else {
                return Err(self.refuse_at(
                    scalar,
                    format!("cannot locate {part:?} in the string as written",),
                ));
            };
            let start = range.start + cursor + at;
            out.push(start..start + part.len());
            cursor += at + part.len();
        }
        Ok(out)
    }

    pub(crate) fn flow_append(
        &self,
        seq: NodeId,
        items: &[NodeId],
        value: &str,
        splices: &mut Splices,
    ) {
        match items {
            [] => {
                let at = self.node_range(seq).start + 1;
                splices.push(at..at, value.to_owned());
            }
            [.., prev, last] => {
                let sep =
                    self.text[self.node_range(*prev).end..self.node_range(*last).start].to_owned();
                let at = self.node_range(*last).end;
                splices.push(at..at, format!("{sep}{value}"));
            }
            [last] => {
                let at = self.node_range(*last).end;
                splices.push(at..at, format!(", {value}"));
            }
        }
    }

    pub(crate) fn block_append(
        &self,
        items: &[NodeId],
        value: &str,
        splices: &mut Splices,
    ) -> Result<(), RulesError> {
        let Some(&last) = items.last() else {
            return Err(self.edit_error("empty block list"));
        };
        let (indent, gap) = self.dash_layout(last)?;
        let at = self.line_end(self.node_range(last).end);
        splices.push(at..at, format!("{}{indent}-{gap}{value}", self.eol()));
        Ok(())
    }

    /// The indentation before a block item's `-` and the space after it.
    pub(crate) fn dash_layout(&self, item: NodeId) -> Result<(String, String), RulesError> {
        let dash = self
            .dash_of(item)
            .ok_or_else(|| self.refuse_at(item, "list item without a dash"))?;
        let start = self.line_start(dash);
        let indent = &self.text[start..dash];
        if !indent.chars().all(|c| c == ' ' || c == '\t') {
            return Err(self.refuse_at(item, "list item shares its line with other content"));
        }
        let content = self.tree.nodes[item]
            .anchor_range
            .as_ref()
            .map(|r| r.start)
            .unwrap_or(self.node_range(item).start);
        let gap = &self.text[dash + 1..content.max(dash + 1)];
        let gap = if gap.is_empty() || gap.contains('\n') {
            " "
        } else {
            gap
        };
        Ok((indent.to_owned(), gap.to_owned()))
    }

    pub(crate) fn dash_of(&self, item: NodeId) -> Option<usize> {
        self.tree.nodes.iter().find_map(|n| match &n.kind {
            Kind::Seq { items, .. } => items.iter().find(|i| i.node == item).and_then(|i| i.dash),
            _ => None,
        })
    }

    /// Adds an `age:` entry to a mapping that has none (a group with only pgp keys, say).
    fn add_age_entry(
        &self,
        map: NodeId,
        key_group: bool,
        recipient: &RecipientRef,
        defined_here: &mut bool,
        splices: &mut Splices,
    ) -> Result<(), RulesError> {
        let Kind::Map {
            entries,
            flow: false,
        } = &self.tree.nodes[map].kind
        else {
            let what = match self.tree.nodes[map].kind {
                Kind::Map { .. } => "a flow mapping (`{…}`) without age keys",
                _ => "empty (a bare `-`)",
            };
            return Err(self.refuse_at(
                map,
                format!("this rule or key group is {what}; write it as a block mapping to add an age key"),
            ));
        };
        let Some(last) = entries.last() else {
            return Err(self.edit_error("empty mapping"));
        };
        let first = &entries[0];
        let key_col = first.key_range.start - self.line_start(first.key_range.start);
        let indent = " ".repeat(key_col);
        let at = self.line_end(last.range.end);
        let eol = self.eol();
        let text = if key_group {
            // Copy the layout of a sibling block list (`pgp:` usually), else a flow list.
            let sibling = entries
                .iter()
                .find_map(|e| match &self.tree.nodes[e.value].kind {
                    Kind::Seq { items, flow: false } => items.first().map(|i| i.node),
                    _ => None,
                });
            match sibling {
                Some(item) => {
                    let (item_indent, gap) = self.dash_layout(item)?;
                    let rel = item_indent.len().saturating_sub(key_col);
                    format!(
                        "{eol}{indent}age:{eol}{indent}{}-{gap}{}",
                        " ".repeat(rel),
                        self.list_item(recipient, at, defined_here)
                    )
                }
                None => format!(
                    "{eol}{indent}age: [{}]",
                    self.list_item(recipient, at, defined_here)
                ),
            }
        } else {
            format!("{eol}{indent}age: {}", recipient.recipient)
        };
        splices.push(at..at, text);
        Ok(())
    }

    // ----- remove ----------------------------------------------------------------------------

    /// Removes a recipient (given as its key, its anchor name or its header label) from every key
    /// group of the selected rules, in whatever style each list is written. Removing the last age
    /// key of a group removes the `age:` entry when the group keeps other keys, and is refused
    /// otherwise. Returns only the text; see [`SopsConfig::remove_from_rules`].
    pub fn remove_recipient(
        &self,
        rules: &RuleSelector,
        recipient: &str,
    ) -> Result<String, RulesError> {
        Ok(self.remove_from_rules(rules, recipient)?.text)
    }

    /// [`SopsConfig::remove_recipient`], reporting a [`ConfigChange::RemoveFromRule`] for every
    /// rule that loses the recipient.
    pub fn remove_from_rules(
        &self,
        rules: &RuleSelector,
        recipient: &str,
    ) -> Result<ConfigEdit, RulesError> {
        let names = self.recipient_names(&[]);
        let key = names.recipient_of(recipient).unwrap_or(recipient);
        let target = RecipientRef {
            recipient: key.to_owned(),
            anchor: Some(recipient.to_owned()),
            define_anchor: false,
        };
        let label = self.display_name(key, None);
        let mut splices = Splices::default();
        let mut done: HashSet<NodeId> = HashSet::new();
        let mut changes = Vec::new();
        for rule in self.rules.iter().filter(|r| rules.contains(r.index)) {
            let mut loses = false;
            for (g, site) in rule.sites.iter().enumerate() {
                let present = rule.key_groups[g]
                    .iter()
                    .any(|e| target.matches(&e.recipient, e.anchor.as_deref()));
                let Some(age) = site.age.filter(|_| present) else {
                    continue;
                };
                loses = true;
                let key = self.edit_site(age);
                if !done.insert(key) {
                    continue;
                }
                self.check_not_shared(key, rules)?;
                let others = !rule.other_keys[g].is_empty();
                self.remove_from_site(
                    site.map,
                    age,
                    rule.uses_key_groups,
                    others,
                    &target,
                    &mut splices,
                )?;
            }
            if loses {
                changes.push(ConfigChange::RemoveFromRule {
                    rule: rule.index,
                    path_regex: rule.path_regex.clone(),
                    recipient: label.clone(),
                });
            }
        }
        let removed: Vec<Range<usize>> = splices.ranges().cloned().collect();
        if let Some((name, alias)) = self.anchor_still_used(&removed) {
            return Err(self.refuse_at(
                alias,
                format!("{label} is anchored &{name} in a rule it leaves, and this alias in another rule still uses the anchor; remove it from that rule too, or move the anchor"),
            ));
        }
        Ok(ConfigEdit {
            text: splices.apply(self)?,
            changes,
        })
    }

    fn remove_from_site(
        &self,
        map: NodeId,
        age: NodeId,
        key_group: bool,
        others: bool,
        target: &RecipientRef,
        splices: &mut Splices,
    ) -> Result<(), RulesError> {
        let resolved = self.tree.resolve(age);
        if resolved != age && matches!(self.tree.nodes[resolved].kind, Kind::Seq { .. }) {
            return Err(self.refuse_at(
                age,
                "the age keys come from an alias; remove the recipient where the anchor is defined",
            ));
        }
        let matches_item = |item: NodeId| {
            let value = match &self.tree.nodes[self.tree.resolve(item)].kind {
                Kind::Scalar(s) => s.value.trim().to_owned(),
                _ => String::new(),
            };
            target.matches(&value, self.tree.alias_name(item))
        };
        match &self.tree.nodes[resolved].kind {
            Kind::Seq { items, flow } if resolved == age => {
                let items: Vec<NodeId> = items.iter().map(|i| i.node).collect();
                let Some(k) = items.iter().position(|i| matches_item(*i)) else {
                    return Err(self.refuse_at(
                        age,
                        format!(
                            "{} is part of a comma-separated list item; edit it by hand",
                            target.recipient
                        ),
                    ));
                };
                if items.len() == 1 {
                    return self.remove_age_entry(map, age, others, splices);
                }
                if *flow {
                    if !key_group && items.len() == 2 {
                        // A flat `[*a, *b]` left with one element goes back to the bare `*a`.
                        let keep = items[1 - k];
                        splices.push(
                            self.node_range(age),
                            self.text[self.node_range(keep)].to_owned(),
                        );
                    } else {
                        splices.push(self.sequence_item_removal(&items, k), "");
                    }
                } else {
                    let item = items[k];
                    let dash = self.dash_of(item).unwrap_or(self.node_range(item).start);
                    let from = self.break_before(dash).unwrap_or(self.line_start(dash));
                    let to = self.line_end(self.node_range(item).end);
                    if !self.text[self.line_start(dash)..dash].trim().is_empty() {
                        return Err(
                            self.refuse_at(item, "list item shares its line with other content")
                        );
                    }
                    splices.push(from..to, "");
                }
                Ok(())
            }
            Kind::Scalar(_) if resolved != age => {
                // `age: *kazuki`: the whole value is the recipient.
                self.remove_age_entry(map, age, others, splices)
            }
            Kind::Scalar(_) => {
                let parts = self.comma_parts(age)?;
                let texts: Vec<&str> = parts.iter().map(|r| &self.text[r.clone()]).collect();
                let Some(k) = texts.iter().position(|t| *t == target.recipient) else {
                    return Ok(());
                };
                if parts.len() == 1 {
                    return self.remove_age_entry(map, age, others, splices);
                }
                let range = if k > 0 {
                    parts[k - 1].end..parts[k].end
                } else {
                    parts[0].start..parts[1].start
                };
                splices.push(range, "");
                Ok(())
            }
            _ => Err(self.refuse_at(age, "cannot edit this age value")),
        }
    }

    pub(crate) fn sequence_item_removal(&self, items: &[NodeId], k: usize) -> Range<usize> {
        if k > 0 {
            self.node_range(items[k - 1]).end..self.node_range(items[k]).end
        } else {
            self.node_range(items[0]).start..self.node_range(items[1]).start
        }
    }

    /// Removes the whole `age:` entry of `map` (when the group keeps other keys).
    fn remove_age_entry(
        &self,
        map: NodeId,
        age: NodeId,
        others: bool,
        splices: &mut Splices,
    ) -> Result<(), RulesError> {
        if !others {
            return Err(self.refuse_at(age, "removing the last recipient would leave a key group with no keys; remove or change the rule instead"));
        }
        let Kind::Map { entries, .. } = &self.tree.nodes[map].kind else {
            return Err(self.edit_error("not a mapping"));
        };
        let Some(entry) = entries.iter().find(|e| e.value == age) else {
            return Err(self.refuse_at(
                age,
                "the age key is merged from elsewhere; edit it where it is defined",
            ));
        };
        if entries.first().map(|e| e.value) == Some(age) {
            return Err(self.refuse_at(age, "age is the first key of its group; edit it by hand"));
        }
        let from = self
            .break_before(entry.key_range.start)
            .unwrap_or(entry.key_range.start);
        let to = self.line_end(entry.range.end);
        splices.push(from..to, "");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{parse, A};

    fn new_ref() -> RecipientRef {
        RecipientRef::literal(&AgeRecipient::from_bytes([3; 32]))
    }

    #[test]
    fn a_list_shared_with_an_unselected_rule_is_not_edited() {
        let config = parse(&format!(
            "common: &common\n  age:\n    - {A}\ncreation_rules:\n  - path_regex: a/\n    <<: *common\n  - path_regex: b/\n    <<: *common\n"
        ));
        let err = config
            .add_recipient(&RuleSelector::Indices(vec![0]), &new_ref())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("shared through an anchor with rule 1"),
            "{err}"
        );
        let both = config
            .add_recipient(&RuleSelector::All, &new_ref())
            .unwrap();
        let after = parse(&both);
        assert!(after.rules().iter().all(|r| r.key_groups[0].len() == 2));
        assert_eq!(both.matches(&new_ref().recipient).count(), 1);
    }

    #[test]
    fn removing_the_only_key_of_a_group_is_refused() {
        let config = parse(&format!(
            "creation_rules:\n  - key_groups:\n      - age:\n          - {A}\n"
        ));
        let err = config.remove_recipient(&RuleSelector::All, A).unwrap_err();
        assert!(err.to_string().contains("no keys"), "{err}");
    }

    #[test]
    fn a_key_group_written_as_a_flow_mapping_is_edited_in_its_age_list_and_an_empty_one_is_refused()
    {
        let key = new_ref().recipient;
        let config = parse(&format!(
            "creation_rules:\n  - path_regex: x/.*\n    key_groups:\n      - {{age: [{A}]}}\n"
        ));
        let added = config
            .add_recipient(&RuleSelector::All, &new_ref())
            .unwrap();
        assert_eq!(
            added,
            format!("creation_rules:\n  - path_regex: x/.*\n    key_groups:\n      - {{age: [{A}, {key}]}}\n")
        );
        assert_eq!(
            parse(&added)
                .remove_recipient(&RuleSelector::All, &key)
                .unwrap(),
            config.text
        );
        let empty = parse("creation_rules:\n  - path_regex: x/.*\n    key_groups:\n      - {}\n");
        let err = empty
            .add_recipient(&RuleSelector::All, &new_ref())
            .unwrap_err();
        assert!(
            err.to_string().contains("write it as a block mapping"),
            "{err}"
        );
    }

    #[test]
    fn adding_twice_changes_nothing_the_second_time() {
        let config = parse(&format!("creation_rules:\n  - age: {A}\n"));
        let once = config
            .add_recipient(&RuleSelector::All, &new_ref())
            .unwrap();
        let twice = parse(&once)
            .add_recipient(&RuleSelector::All, &new_ref())
            .unwrap();
        assert_eq!(once, twice);
    }
}
