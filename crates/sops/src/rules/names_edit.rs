//! Writing and removing a recipient's name the way the file already names recipients: an anchor in
//! `keys:` where the file uses anchors, a header label (aligned like the others, after the last
//! one) where it uses labels, both where it uses both, and nothing where it names nobody.

use hostage_recipients::AgeRecipient;

use super::change::{ConfigChange, ConfigEdit};
use super::config::SopsConfig;
use super::edit::{is_anchor_name, NamedRecipient, RecipientRef, Splices};
use super::tree::{Kind, NodeId};
use super::RulesError;

impl SopsConfig {
    /// Names `recipient` as `name` in the file's own convention: `- &name age1…` appended to
    /// `keys:` (in the list's layout) when the file names recipients with anchors, `# name: age1…`
    /// after the last header label (same prefix, key aligned) when it uses header labels, both when
    /// it uses both, nothing when it names no recipient. Already named so: no change, so a
    /// re-run is byte-identical. Refused when `name` already names another recipient or the
    /// recipient already has another name (rename it with [`SopsConfig::unname_recipient`] first),
    /// and when the file uses anchors but has no `keys:` list of recipients to add one to.
    pub fn add_named_recipient(
        &self,
        name: &str,
        recipient: &AgeRecipient,
    ) -> Result<NamedRecipient, RulesError> {
        let value = recipient.to_string();
        if !is_anchor_name(name) {
            return Err(self.edit_error(format!(
                "{name:?} cannot name a recipient; use letters, digits, '-' and '_'"
            )));
        }
        let anchors = self.recipient_anchors();
        let labels = self.header_labels();
        let named = anchors
            .iter()
            .map(|(n, v, line)| (n.as_str(), v.as_str(), *line, "anchor &"))
            .chain(labels.iter().map(|l| {
                (
                    l.name.as_str(),
                    l.recipient.as_str(),
                    l.line,
                    "header label ",
                )
            }));
        for (n, v, line, what) in named {
            if n == name && v != value {
                return Err(self.refuse_line(
                    line,
                    format!("{what}{name} already names {v}; replace that key instead (rotate), or pick another name"),
                ));
            }
            if v == value && n != name {
                return Err(self.refuse_line(
                    line,
                    format!("{value} is already named {what}{n}; one recipient gets one name (is {name} a clone of {n}?)"),
                ));
            }
        }
        let has_anchor = anchors.iter().any(|(n, _, _)| n == name);
        let has_label = labels.iter().any(|l| l.name == name);
        // Already anchored (perhaps by hand where hostage may not write): nothing to find a
        // home for.
        let home = if has_anchor {
            None
        } else {
            self.anchor_home()?
        };
        let uses_anchors = home.is_some() || !anchors.is_empty();
        let mut splices = Splices::default();
        let mut changes = Vec::new();
        let mut define_anchor = false;
        if uses_anchors && !has_anchor {
            if let Some((_, id)) = self.tree.anchors.iter().find(|(n, _)| n == name) {
                return Err(self.refuse_at(
                    *id,
                    format!("&{name} already anchors something that is not a recipient; a second &{name} would change what its aliases read, so pick another name or rename that anchor"),
                ));
            }
        }
        if uses_anchors && !has_anchor && home.is_none() {
            // No `keys:` list: recipients are anchored where a rule first lists them (abl030's
            // `- &wsl age1…`). The new anchor is written the same way, with the first rule the
            // key is added to (`RecipientRef::define_anchor`), and aliased after it.
            if let Some(line) = self.anchor_outside_rules() {
                // sulibot's `age_key: &age_key 'age1…'`: top-level keys anchored by their own
                // name. The new one goes the same way, after the last such recipient.
                let Some(last) = self.top_level_named_recipients().last().copied() else {
                    return Err(self.refuse_line(
                        line,
                        "this file names recipients with anchors defined outside `creation_rules`, neither in a `keys:` list nor as top-level keys anchored by their own name (`age_key: &age_key age1…`); add the anchor by hand where the others are, or start a `keys:` list",
                    ));
                };
                if self.root_entries.iter().any(|(k, _)| k == name) {
                    return Err(self.refuse_line(
                        line,
                        format!("this file names recipients with top-level keys, and {name}: is already a top-level key; name the recipient by hand"),
                    ));
                }
                let range = self.node_range(last);
                let quote = match self.text[range.clone()].chars().next() {
                    Some(q @ ('\'' | '"')) => q.to_string(),
                    _ => String::new(),
                };
                let start = self.line_start(range.start);
                let indent: String = self.text[start..]
                    .chars()
                    .take_while(|c| *c == ' ' || *c == '\t')
                    .collect();
                let at = self.line_end(range.end);
                splices.push(
                    at..at,
                    format!(
                        "{}{indent}{name}: &{name} {quote}{value}{quote}",
                        self.eol()
                    ),
                );
            } else {
                define_anchor = true;
            }
            changes.push(ConfigChange::AddAnchor {
                name: name.to_owned(),
            });
        } else if uses_anchors && !has_anchor {
            let Some(list) = home else {
                return Err(self.edit_error("no anchor home"));
            };
            let Kind::Seq { items, flow } = &self.tree.nodes[list].kind else {
                return Err(self.refuse_at(list, "keys is not a list"));
            };
            let items: Vec<NodeId> = items.iter().map(|i| i.node).collect();
            let item = format!("&{name} {value}");
            if *flow {
                self.flow_append(list, &items, &item, &mut splices);
            } else {
                self.block_append(&items, &item, &mut splices)?;
            }
            changes.push(ConfigChange::AddAnchor {
                name: name.to_owned(),
            });
        }
        if let (Some(last), false) = (labels.last(), has_label) {
            let label = format!("{}{name}:", last.prefix);
            let pad = last.key_column.saturating_sub(label.chars().count()).max(1);
            let at = last.range.end;
            splices.push(
                at..at,
                format!("{}{label}{}{value}", self.eol(), " ".repeat(pad)),
            );
            changes.push(ConfigChange::AddHeaderLabel {
                name: name.to_owned(),
            });
        }
        let anchored = has_anchor
            || changes
                .iter()
                .any(|c| matches!(c, ConfigChange::AddAnchor { .. }));
        Ok(NamedRecipient {
            text: splices.apply(self)?,
            reference: RecipientRef {
                recipient: value,
                anchor: anchored.then(|| name.to_owned()),
                define_anchor,
            },
            changes,
        })
    }

    /// Removes every naming of `name` the file has: its header label line(s) and its `- &name …`
    /// item under `keys:` (refused while an alias still refers to it: remove the recipient from the
    /// rules first). Nothing named so: no change.
    pub fn unname_recipient(&self, name: &str) -> Result<ConfigEdit, RulesError> {
        let mut splices = Splices::default();
        let mut changes = Vec::new();
        let labels: Vec<_> = self
            .header_labels()
            .into_iter()
            .filter(|l| l.name == name)
            .collect();
        for label in &labels {
            let range = match self.break_before(label.range.start) {
                Some(from) => from..label.range.end,
                None => {
                    let end = self.text[label.range.end..]
                        .find('\n')
                        .map(|i| label.range.end + i + 1)
                        .unwrap_or(self.text.len());
                    label.range.start..end
                }
            };
            splices.push(range, "");
        }
        if !labels.is_empty() {
            changes.push(ConfigChange::RemoveHeaderLabel {
                name: name.to_owned(),
            });
        }
        if let Some((list, k)) = self.keys_item(name) {
            let uses = self
                .tree
                .nodes
                .iter()
                .filter(|n| matches!(&n.kind, Kind::Alias { name: a, .. } if a == name))
                .count();
            if uses > 0 {
                return Err(self.edit_error(format!(
                    "&{name} is still used by {uses} alias(es); remove it from the rules first"
                )));
            }
            let Kind::Seq { items, flow } = &self.tree.nodes[list].kind else {
                return Err(self.refuse_at(list, "keys is not a list"));
            };
            let items: Vec<NodeId> = items.iter().map(|i| i.node).collect();
            let item = items[k];
            if *flow {
                if items.len() < 2 {
                    return Err(self.refuse_at(list, "cannot empty the keys list; edit it by hand"));
                }
                let mut range = self.sequence_item_removal(&items, k);
                if k > 0 {
                    range.end = self.node_range(item).end;
                } else if let Some(r) = &self.tree.nodes[item].anchor_range {
                    range.start = r.start;
                }
                splices.push(range, "");
            } else {
                let dash = self.dash_of(item).unwrap_or(self.node_range(item).start);
                let from = self.break_before(dash).unwrap_or(self.line_start(dash));
                splices.push(from..self.line_end(self.node_range(item).end), "");
            }
            changes.push(ConfigChange::RemoveAnchor {
                name: name.to_owned(),
            });
        }
        let top_level = self
            .top_level_named_recipients()
            .into_iter()
            .find(|id| self.tree.nodes[*id].anchor.as_deref() == Some(name));
        if let Some(value) = top_level {
            let uses = self
                .tree
                .nodes
                .iter()
                .filter(|n| matches!(&n.kind, Kind::Alias { name: a, .. } if a == name))
                .count();
            if uses > 0 {
                return Err(self.edit_error(format!(
                    "&{name} is still used by {uses} alias(es); remove it from the rules first"
                )));
            }
            let range = self.node_range(value);
            let end = self.line_end(range.end);
            // The line and one line break: the one before it, else (first line) the one after.
            let line = match self.break_before(range.start) {
                Some(from) => from..end,
                None => {
                    let after = self.text[end..]
                        .find('\n')
                        .map_or(self.text.len(), |i| end + i + 1);
                    self.line_start(range.start)..after
                }
            };
            splices.push(line, "");
            changes.push(ConfigChange::RemoveAnchor {
                name: name.to_owned(),
            });
        }
        Ok(ConfigEdit {
            text: splices.apply(self)?,
            changes,
        })
    }

    /// Removes the anchor and header label of `name` ([`SopsConfig::unname_recipient`]); refused
    /// when the file does not name anything so.
    pub fn remove_named_recipient(&self, name: &str) -> Result<String, RulesError> {
        let edit = self.unname_recipient(name)?;
        if edit.is_noop() {
            return Err(
                self.edit_error(format!("no &{name} under keys: and no header label {name}"))
            );
        }
        Ok(edit.text)
    }

    /// The values of top-level keys that name a recipient with an anchor of their own name
    /// (`age_key: &age_key 'age1…'`), in file order, when that is how the file anchors
    /// everything outside its rules (every scalar anchor outside `creation_rules` is such a
    /// key); empty otherwise.
    fn top_level_named_recipients(&self) -> Vec<NodeId> {
        let rules: Vec<std::ops::Range<usize>> =
            self.rules.iter().map(|r| self.node_range(r.node)).collect();
        let outside = |id: NodeId| {
            let r = &self.tree.nodes[id].range;
            !rules
                .iter()
                .any(|rule| rule.start <= r.start && r.end <= rule.end)
        };
        let own_named = |id: NodeId| {
            self.root_entries
                .iter()
                .any(|(k, v)| *v == id && self.tree.nodes[id].anchor.as_deref() == Some(k.as_str()))
        };
        let scalars_outside: Vec<NodeId> = self
            .tree
            .anchors
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| matches!(self.tree.nodes[*id].kind, Kind::Scalar(_)) && outside(*id))
            .collect();
        if scalars_outside.is_empty() || !scalars_outside.iter().all(|id| own_named(*id)) {
            return Vec::new();
        }
        let recipients = self.recipient_anchors();
        let mut named: Vec<NodeId> = scalars_outside
            .into_iter()
            .filter(|id| {
                let anchor = self.tree.nodes[*id].anchor.as_deref();
                recipients
                    .iter()
                    .any(|(n, _, _)| Some(n.as_str()) == anchor)
            })
            .collect();
        named.sort_by_key(|id| self.tree.nodes[*id].range.start);
        named
    }

    /// The line of the first recipient anchor defined outside every creation rule, if any.
    fn anchor_outside_rules(&self) -> Option<usize> {
        let rules: Vec<std::ops::Range<usize>> =
            self.rules.iter().map(|r| self.node_range(r.node)).collect();
        self.tree
            .anchors
            .iter()
            .filter(|(_, id)| matches!(self.tree.nodes[*id].kind, Kind::Scalar(_)))
            .find(|(_, id)| {
                let r = &self.tree.nodes[*id].range;
                !rules
                    .iter()
                    .any(|rule| rule.start <= r.start && r.end <= rule.end)
            })
            .map(|(_, id)| self.line(*id))
    }

    /// The list item of `keys:` anchored `&name`: the list and the item's position.
    fn keys_item(&self, name: &str) -> Option<(NodeId, usize)> {
        let list = self.anchor_home().ok().flatten()?;
        let Kind::Seq { items, .. } = &self.tree.nodes[list].kind else {
            return None;
        };
        let k = items
            .iter()
            .position(|i| self.tree.nodes[i.node].anchor.as_deref() == Some(name))?;
        Some((list, k))
    }

    /// Where new anchors go: the list under top-level `keys:` (else the first top-level key
    /// ending in `keys`, like `.keys:`), its last nested list for `- &hosts [...]`, its `hosts`
    /// (`machines`, `servers`; else last) list for a mapping. `None` without `keys:`;
    /// refused when `keys:` holds something else (key groups as mappings, say: an anchor added to
    /// a group's list would also change every rule that merges the group).
    pub(crate) fn anchor_home(&self) -> Result<Option<NodeId>, RulesError> {
        // `keys:` is the common spelling; `.keys:`/`x-keys:` keep the entry out of sops' way.
        let Some((_, keys)) = self
            .root_entries
            .iter()
            .find(|(k, _)| k == "keys")
            .or_else(|| {
                self.root_entries
                    .iter()
                    .find(|(k, _)| k.to_ascii_lowercase().ends_with("keys"))
            })
        else {
            return Ok(None);
        };
        let refuse = |node: NodeId, what: &str| {
            // The item's dash line is where a reader sees it (`- &all`), not its first key.
            let at = self.dash_of(node).unwrap_or(self.node_range(node).start);
            self.refuse_line(
                super::tree::line_of(&self.text, at),
                format!("keys: holds {what}, not a list of recipients, so hostage cannot add an anchor to it without changing what rules read (a key added to a group there reaches every rule that merges or aliases that group); add the recipient's anchor by hand where it belongs, then run the command again"),
            )
        };
        let mut node = *keys;
        for _ in 0..4 {
            match &self.tree.nodes[node].kind {
                Kind::Seq { items, .. } => match items.last() {
                    None => return Ok(Some(node)),
                    Some(last) => match &self.tree.nodes[last.node].kind {
                        Kind::Seq { .. } => node = last.node,
                        Kind::Scalar(_) | Kind::Alias { .. } => return Ok(Some(node)),
                        Kind::Map { .. } => return Err(refuse(last.node, "key groups (mappings)")),
                        Kind::Empty => return Err(refuse(last.node, "an empty item")),
                    },
                },
                Kind::Map { entries, .. } => {
                    // New recipients are hosts: their list when the mapping has one.
                    let hosts = |k: &str| {
                        let k = k.trim_start_matches('.').to_ascii_lowercase();
                        matches!(k.as_str(), "hosts" | "machines" | "servers")
                    };
                    let pick = entries.iter().find(|e| hosts(&e.key)).or_else(|| {
                        entries
                            .iter()
                            .rev()
                            .find(|e| matches!(self.tree.nodes[e.value].kind, Kind::Seq { .. }))
                    });
                    match pick {
                        Some(pick) => node = pick.value,
                        None => return Err(refuse(node, "a mapping without a list")),
                    }
                }
                _ => return Err(refuse(node, "a single value")),
            }
        }
        Err(refuse(*keys, "lists nested too deep"))
    }

    /// A refusal about a 1-based line.
    pub(crate) fn refuse_line(&self, line: usize, message: impl Into<String>) -> RulesError {
        RulesError::Edit {
            path: self.path.clone(),
            line: Some(line),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::edit::RuleSelector;
    use super::*;
    use crate::rules::fixtures::{parse, A};

    fn host() -> AgeRecipient {
        AgeRecipient::from_bytes([9; 32])
    }

    #[test]
    fn a_header_label_is_aligned_with_the_others_and_not_added_twice() {
        let text = format!("# Keys:\n# workstation:    {A}\ncreation_rules:\n  - age: {A}\n");
        let named = parse(&text)
            .add_named_recipient("web01", &host())
            .expect("adds");
        assert_eq!(
            named.text,
            format!("# Keys:\n# workstation:    {A}\n# web01:          {}\ncreation_rules:\n  - age: {A}\n", host())
        );
        assert_eq!(
            named.changes,
            [ConfigChange::AddHeaderLabel {
                name: "web01".into()
            }]
        );
        assert_eq!(named.reference.anchor, None);
        let again = parse(&named.text)
            .add_named_recipient("web01", &host())
            .expect("no-op");
        assert_eq!(again.text, named.text);
        assert!(again.changes.is_empty());
        let back = parse(&named.text)
            .unname_recipient("web01")
            .expect("removes");
        assert_eq!(back.text, text);
    }

    /// abl030's layout: no `keys:` list, recipients anchored where a rule lists them.
    fn inline_anchors() -> String {
        format!(
            "creation_rules:\n  - path_regex: secrets/web/.*\n    key_groups:\n      - age:\n          - {A} # ops\n  - path_regex: secrets/.*\n    key_groups:\n      - age:\n          - &wsl {A} # WSL\n"
        )
    }

    #[test]
    fn inline_anchors_get_the_new_anchor_with_the_first_rule_and_an_alias_after_it() {
        let text = inline_anchors();
        let config = parse(&text);
        let named = config.add_named_recipient("web01", &host()).expect("names");
        assert_eq!(
            named.text, text,
            "nothing is written until a rule lists the key"
        );
        assert_eq!(
            named.changes,
            [ConfigChange::AddAnchor {
                name: "web01".into()
            }]
        );
        assert!(named.reference.define_anchor);
        let added = config
            .add_to_rules(&RuleSelector::All, &named.reference)
            .expect("adds");
        let key = host();
        assert_eq!(
            added.text,
            format!(
                "creation_rules:\n  - path_regex: secrets/web/.*\n    key_groups:\n      - age:\n          - {A} # ops\n          - &web01 {key}\n  - path_regex: secrets/.*\n    key_groups:\n      - age:\n          - &wsl {A} # WSL\n          - *web01\n"
            )
        );
        let after = parse(&added.text);
        assert_eq!(after.name_of(&key.to_string()).as_deref(), Some("web01"));
        // A re-run: named already, in every rule already.
        let again = after.add_named_recipient("web01", &key).expect("no-op");
        assert!(again.changes.is_empty() && again.text == added.text);
        assert!(!again.reference.define_anchor);
        assert!(after
            .add_to_rules(&RuleSelector::All, &again.reference)
            .expect("no-op")
            .is_noop());
        // Offboarding: out of every rule gives the original bytes.
        let removed = after
            .remove_from_rules(&RuleSelector::All, "web01")
            .expect("removes");
        assert_eq!(removed.text, text);
    }

    #[test]
    fn an_inline_anchor_a_later_rule_aliases_is_not_removed_from_its_rule_alone() {
        let text = inline_anchors();
        let config = parse(&text);
        let named = config.add_named_recipient("web01", &host()).expect("names");
        let added = config
            .add_to_rules(&RuleSelector::All, &named.reference)
            .expect("adds");
        let err = parse(&added.text)
            .remove_from_rules(&RuleSelector::Indices(vec![0]), "web01")
            .expect_err("the alias in rule 1 would dangle");
        assert!(
            matches!(&err, RulesError::Edit { line: Some(11), message, .. } if message.contains("&web01")),
            "{err}"
        );
    }

    #[test]
    fn a_name_already_anchoring_something_else_is_refused() {
        let text = format!(
            "extra: &web01\n  note: not a key\ncreation_rules:\n  - key_groups:\n      - age:\n          - &wsl {A}\n"
        );
        let err = parse(&text)
            .add_named_recipient("web01", &host())
            .expect_err("refused");
        assert!(err.to_string().contains("already anchors"), "{err}");
    }

    #[test]
    fn top_level_keys_anchored_by_their_own_name_get_one_more_and_unnaming_gives_back_the_file() {
        // sulibot's layout: `age_key: &age_key 'age1…'` at the top, aliased by every rule; a
        // non-recipient anchored the same way (a vault URI) stays where it is.
        let text = format!(
            "# .sops.yaml\nage_key: &age_key '{A}' # ops\nvault_uri: &vault_uri 'https://vault.example/v1/sops'\ncreation_rules:\n  - path_regex: x/.*\n    age: *age_key\n"
        );
        let config = parse(&text);
        let named = config.add_named_recipient("web01", &host()).expect("adds");
        assert_eq!(
            named.text,
            format!(
                "# .sops.yaml\nage_key: &age_key '{A}' # ops\nweb01: &web01 '{}'\nvault_uri: &vault_uri 'https://vault.example/v1/sops'\ncreation_rules:\n  - path_regex: x/.*\n    age: *age_key\n",
                host()
            )
        );
        assert_eq!(
            named.changes,
            [ConfigChange::AddAnchor {
                name: "web01".into()
            }]
        );
        assert_eq!(named.reference.anchor.as_deref(), Some("web01"));
        assert!(!named.reference.define_anchor);
        let again = parse(&named.text);
        assert_eq!(again.name_of(&host().to_string()).as_deref(), Some("web01"));
        let rerun = again.add_named_recipient("web01", &host()).expect("no-op");
        assert_eq!(rerun.text, named.text);
        assert!(rerun.changes.is_empty());
        // Through the rules and back.
        let added = again
            .add_to_rules(&RuleSelector::All, &named.reference)
            .expect("adds to the rule");
        assert!(
            added.text.contains("age: [*age_key, *web01]"),
            "{}",
            added.text
        );
        let removed = parse(&added.text)
            .remove_from_rules(&RuleSelector::All, "web01")
            .expect("removes");
        let back = parse(&removed.text)
            .unname_recipient("web01")
            .expect("unnames");
        assert_eq!(back.text, text);
        assert_eq!(
            back.changes,
            [ConfigChange::RemoveAnchor {
                name: "web01".into()
            }]
        );
    }

    #[test]
    fn anchors_outside_the_rules_not_named_like_their_key_stay_refused() {
        let text =
            format!("age_key: &ops '{A}'\ncreation_rules:\n  - path_regex: x/.*\n    age: *ops\n");
        let err = parse(&text)
            .add_named_recipient("web01", &host())
            .expect_err("refused");
        assert!(
            matches!(&err, RulesError::Edit { line: Some(1), message, .. } if message.contains("outside `creation_rules`")),
            "{err}"
        );
        // A top-level key of the host's name already exists.
        let text = format!(
            "age_key: &age_key '{A}'\nweb01: notes\ncreation_rules:\n  - path_regex: x/.*\n    age: *age_key\n"
        );
        let err = parse(&text)
            .add_named_recipient("web01", &host())
            .expect_err("refused");
        assert!(err.to_string().contains("already a top-level key"), "{err}");
    }

    #[test]
    fn a_file_with_anchors_and_labels_gets_both() {
        let text =
            format!("# alice: {A}\nkeys:\n  - &alice {A}\ncreation_rules:\n  - age: *alice\n");
        let named = parse(&text)
            .add_named_recipient("web01", &host())
            .expect("adds");
        assert_eq!(
            named.changes,
            [
                ConfigChange::AddAnchor {
                    name: "web01".into()
                },
                ConfigChange::AddHeaderLabel {
                    name: "web01".into()
                }
            ]
        );
        assert_eq!(named.reference.anchor.as_deref(), Some("web01"));
        let back = parse(&named.text)
            .unname_recipient("web01")
            .expect("removes");
        assert_eq!(back.text, text);
    }

    #[test]
    fn a_name_already_used_for_another_key_or_a_key_with_another_name_is_refused() {
        let text = format!("# alice: {A}\ncreation_rules:\n  - age: {A}\n");
        let err = parse(&text)
            .add_named_recipient("alice", &host())
            .unwrap_err();
        assert!(
            matches!(err, RulesError::Edit { line: Some(1), .. }),
            "{err}"
        );
        let alice = AgeRecipient::parse(A).expect("valid");
        let err = parse(&text).add_named_recipient("bob", &alice).unwrap_err();
        assert!(
            err.to_string().contains("already named header label alice"),
            "{err}"
        );
    }

    #[test]
    fn names_that_would_break_the_yaml_or_the_header_are_refused() {
        let text = format!("# alice: {A}\ncreation_rules:\n  - age: {A}\n");
        for name in ["", "a b", "x\ny", "*alias", "&a", "a:b", "#c", "é"] {
            let err = parse(&text).add_named_recipient(name, &host()).unwrap_err();
            assert!(matches!(err, RulesError::Edit { .. }), "{name:?}: {err}");
        }
    }

    #[test]
    fn keys_holding_key_groups_refuse_a_new_anchor_instead_of_breaking_the_file() {
        let text = format!(
            "keys:\n  - &hosts\n    age:\n    - &atlas {A}\n  - &all\n    <<: [*hosts]\ncreation_rules:\n  - key_groups:\n      - <<: *all\n"
        );
        let err = parse(&text)
            .add_named_recipient("web01", &host())
            .unwrap_err();
        assert!(
            matches!(err, RulesError::Edit { line: Some(5), .. }),
            "{err}"
        );
        assert!(err.to_string().contains("key groups"), "{err}");
        assert!(err.to_string().contains("run the command again"), "{err}");
        // The operator anchors the host by hand in the group it belongs to: the next run finds
        // it named and changes nothing.
        let by_hand = text.replace(
            &format!("    - &atlas {A}\n"),
            &format!("    - &atlas {A}\n    - &web01 {}\n", host()),
        );
        let named = parse(&by_hand)
            .add_named_recipient("web01", &host())
            .expect("already named");
        assert_eq!(named.text, by_hand);
        assert!(named.changes.is_empty());
        assert_eq!(named.reference.anchor.as_deref(), Some("web01"));
    }
}
