//! A new per-path rule, placed where sops will pick it: immediately above the first rule that
//! catches the path today (whatever its regex: `secrets/.*`, `.*\.yaml$`, `.*`, none at all),
//! starting from that rule's text and recipients, plus the new recipient.

use regex::Regex;

use super::change::{ConfigChange, ConfigEdit};
use super::config::SopsConfig;
use super::edit::{RecipientRef, RuleSelector, Splices};
use super::example::example_path_of;
use super::tree::Kind;
use super::RulesError;

/// Choices for [`SopsConfig::add_rule`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRuleOptions {
    /// A path the new rule is for, to find the rule that catches it today. Default:
    /// [`example_path`](super::example_path) of the new regex.
    pub example_path: Option<String>,
    /// Recipients of the catching rule not to copy (key, anchor name or header label), e.g. the
    /// infrastructure key for a host that reads its secrets with its own key. Default: keep
    /// every recipient (the seed layout's convention: workstation + infrastructure + the host).
    pub drop: Vec<String>,
}

impl SopsConfig {
    /// The path [`SopsConfig::add_rule`] places a new rule for `path_regex` by (when given no
    /// example), for readers that must find the same rule again: offboarding asks where the
    /// host's files fall once its rule is gone. None when the regex does not compile or no path
    /// for it can be thought of.
    pub fn new_rule_example(&self, path_regex: &str) -> Option<String> {
        self.example_for_new_rule(&Regex::new(path_regex).ok()?)
    }

    /// The path a new rule for `regex` is placed by, when the caller gives none: the generic
    /// example (`secrets/host/web01/secret.sops.yaml`) when a rule catches it today, else the
    /// same directory with the file name of an existing rule's own example, in rule order
    /// (onedr0p's rules only catch `*.secret.sops.yaml`, so `kubernetes/web01/.*` is placed by
    /// `kubernetes/web01/secret.secret.sops.yaml`: a file named the way the repo names its
    /// secrets). None caught: the generic example, and the caller's refusal names it.
    pub(crate) fn example_for_new_rule(&self, regex: &Regex) -> Option<String> {
        // Caught: some rule takes the path, even one the copy will then refuse (an invalid
        // recipient), so the refusal names the real problem.
        let caught = |path: &str| {
            !matches!(
                self.rule_for_sops_path(path),
                Err(RulesError::NoMatchingRule { .. } | RulesError::NoCreationRules { .. })
            )
        };
        let generic = example_path_of(regex)?;
        if caught(&generic) {
            return Some(generic);
        }
        let dir = generic.rsplit_once('/').map(|(dir, _)| dir);
        let named_like_the_repo = self
            .rules
            .iter()
            .filter_map(|rule| rule.path_regex.as_deref())
            .filter_map(super::example_path)
            .filter_map(|example| {
                let file = example.rsplit('/').next()?.to_owned();
                Some(match dir {
                    Some(dir) => format!("{dir}/{file}"),
                    None => file,
                })
            })
            .find(|path| regex.is_match(path) && caught(path));
        Some(named_like_the_repo.unwrap_or(generic))
    }

    /// Creates a rule for `path_regex` with `recipient` (see [`SopsConfig::add_rule`]), keeping
    /// every recipient of the rule it goes above. Returns only the text.
    pub fn add_path_rule(
        &self,
        path_regex: &str,
        recipient: &RecipientRef,
    ) -> Result<String, RulesError> {
        Ok(self
            .add_rule(path_regex, recipient, &NewRuleOptions::default())?
            .text)
    }

    /// Creates a rule for `path_regex` immediately above the first rule that catches the path
    /// today (found with `options.example_path`), copying that rule's text (its whole-line
    /// comments stay with it) and recipients minus `options.drop`, plus `recipient`; reports
    /// [`ConfigChange::AddRule`]. A rule with this very path_regex that already has the recipient:
    /// no change (a re-run). Refused when no rule catches the path (there are no keys to start
    /// from), when the catching rule is not a block mapping, aliases an anchor it defines itself
    /// (its anchors are not copied: the copy lists those keys literally), or shares its keys
    /// through an alias or merge key (the new rule's list would be the catching rule's list).
    pub fn add_rule(
        &self,
        path_regex: &str,
        recipient: &RecipientRef,
        options: &NewRuleOptions,
    ) -> Result<ConfigEdit, RulesError> {
        let compiled = Regex::new(path_regex).map_err(|e| {
            self.edit_error(format!("path_regex {path_regex:?} does not compile: {e}"))
        })?;
        if let Some(same) = self
            .rules
            .iter()
            .find(|r| r.path_regex.as_deref() == Some(path_regex))
        {
            let has = same
                .key_groups
                .iter()
                .all(|g| g.iter().any(|e| e.recipient == recipient.recipient));
            if has {
                return Ok(ConfigEdit {
                    text: self.text.clone(),
                    changes: Vec::new(),
                });
            }
            return Err(self.refuse_line(
                same.line,
                format!("a rule for {path_regex} already exists; add the recipient to it instead"),
            ));
        }
        let example = match &options.example_path {
            Some(path) if compiled.is_match(path) => path.clone(),
            Some(path) => {
                return Err(self.edit_error(format!(
                    "path_regex {path_regex} does not match the example path {path}; give a path the rule is for"
                )))
            }
            None => self.example_for_new_rule(&compiled).ok_or_else(|| {
                self.edit_error(format!(
                    "cannot think of a file path_regex {path_regex} matches; give an example path"
                ))
            })?,
        };
        let catching = match self.rule_for_sops_path(&example) {
            Ok((_, rule)) => rule,
            Err(RulesError::NoMatchingRule { .. }) | Err(RulesError::NoCreationRules { .. }) => {
                return Err(self.edit_error(format!(
                    "no rule catches {example} today, so there are no keys to start the new rule from; add the rule by hand (with the keys every file needs, e.g. the workstation)"
                )))
            }
            Err(RulesError::BadRegex { line, regex, .. }) => {
                return Err(self.refuse_line(
                    line,
                    format!("path_regex {regex} does not compile, so hostage cannot tell which rule catches {example}; fix it first"),
                ))
            }
            Err(RulesError::BadRecipient {
                line, recipient, ..
            }) => {
                return Err(self.refuse_line(
                    line,
                    format!("the rule that catches {example} has an invalid recipient {recipient:?}; fix it before copying the rule"),
                ))
            }
            Err(e) => return Err(e),
        };
        let index = catching.index;
        let rule = catching.node;
        let Kind::Map {
            entries,
            flow: false,
        } = &self.tree.nodes[rule].kind
        else {
            return Err(self.refuse_line(
                catching.line,
                "the rule that catches the path is not a block mapping; add the new rule by hand",
            ));
        };
        let Some(dash) = self.dash_of(rule) else {
            return Err(self.refuse_at(
                rule,
                "the catching rule is not a `- ` list item; add the new rule by hand",
            ));
        };
        let range = self.node_range(rule);
        let start = self.line_start(dash);
        let end = self.line_end(range.end);
        // Anchors the catching rule defines (abl030's `- &wsl age1…`) are not copied: a second
        // `&wsl` would redefine it for every later alias. The copy lists those keys literally;
        // the catching rule keeps its definitions, so every alias reads what it read before.
        // An alias inside the rule to one of them cannot be copied that way (it would come
        // before its anchor).
        let within = |r: &std::ops::Range<usize>| start <= r.start && r.end <= end;
        let self_alias = self.find_alias(|alias, anchor| within(alias) && within(anchor));
        if let Some((name, alias)) = self_alias {
            return Err(self.refuse_at(
                alias,
                format!("the rule that catches the path defines &{name} and uses it again through *{name}; a copy above it cannot, so add the new rule by hand"),
            ));
        }
        let cuts: Vec<std::ops::Range<usize>> = self
            .tree
            .anchors
            .iter()
            .filter_map(|(_, id)| self.tree.nodes[*id].anchor_range.clone())
            .filter(|r| start <= r.start && r.end <= end)
            .map(|r| {
                let gap = self.text[r.end..end]
                    .find(|c: char| c != ' ' && c != '\t')
                    .unwrap_or(0);
                r.start..r.end + gap
            })
            .collect();
        let slice = |from: usize, to: usize| -> String {
            let mut out = String::new();
            let mut at = from;
            for cut in cuts.iter().filter(|c| from <= c.start && c.end <= to) {
                out.push_str(&self.text[at..cut.start]);
                at = cut.end;
            }
            out.push_str(&self.text[at..to]);
            out
        };
        let eol = self.eol();
        let quoted = quote_regex(path_regex);
        let mut copy = String::new();
        match entries.iter().find(|e| e.key == "path_regex") {
            Some(e) => {
                let value = self.node_range(e.value);
                copy.push_str(&slice(start, value.start));
                copy.push_str(&quoted);
                copy.push_str(&slice(value.end, end));
            }
            None => {
                let Some(first) = entries.first().map(|e| e.key_range.start) else {
                    return Err(self.refuse_line(catching.line, "the catching rule is empty"));
                };
                let col = first - self.line_start(first);
                copy.push_str(&slice(start, first));
                copy.push_str(&format!("path_regex: {quoted}{eol}{}", " ".repeat(col)));
                copy.push_str(&slice(first, end));
            }
        }
        // Whole-line comments of the catching rule are about it, not about the new rule.
        let copy: String = copy
            .split_inclusive('\n')
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        let copy = copy.trim_end_matches(['\n', '\r']);
        // Comment lines right above the catching rule stay with it: insert above them.
        let mut at = start;
        while let Some(prev_break) = self.break_before(at) {
            let prev_start = self.line_start(prev_break);
            if !self.text[prev_start..prev_break]
                .trim_start()
                .starts_with('#')
            {
                break;
            }
            at = prev_start;
        }
        let mut splices = Splices::default();
        splices.push(at..at, format!("{copy}{eol}"));
        let mut text = splices.apply(self)?;
        let only_new = RuleSelector::Indices(vec![index]);
        text = SopsConfig::parse(&self.path, &text)?
            .add_to_rules(&only_new, recipient)?
            .text;
        for dropped in &options.drop {
            let config = SopsConfig::parse(&self.path, &text)?;
            let key = config
                .recipient_names(&[])
                .recipient_of(dropped)
                .unwrap_or(dropped)
                .to_owned();
            if key == recipient.recipient {
                continue;
            }
            let present = config.rules[index]
                .key_groups
                .iter()
                .flatten()
                .any(|e| e.recipient == key || e.anchor.as_deref() == Some(dropped));
            if present {
                text = config.remove_from_rules(&only_new, dropped)?.text;
            }
        }
        let after = SopsConfig::parse(&self.path, &text)?;
        match after.rule_for_sops_path(&example) {
            Ok((picked, _)) if picked == index => {}
            _ => {
                return Err(RulesError::EditUnverified {
                    path: self.path.clone(),
                    message: format!(
                        "the new rule for {path_regex} is not the one sops picks for {example}"
                    ),
                })
            }
        }
        Ok(ConfigEdit {
            text,
            changes: vec![ConfigChange::AddRule {
                path_regex: path_regex.to_owned(),
                above: catching.path_regex.clone(),
            }],
        })
    }
}

impl SopsConfig {
    /// Removes the rule whose path_regex is exactly `path_regex` (its lines, from its dash to its
    /// last line), the inverse of [`SopsConfig::add_rule`]; reports [`ConfigChange::RemoveRule`].
    /// No such rule: no change. Refused when the rule defines an anchor an alias elsewhere still
    /// uses, or shares its line with other content.
    pub fn remove_rule(&self, path_regex: &str) -> Result<ConfigEdit, RulesError> {
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.path_regex.as_deref() == Some(path_regex))
        else {
            return Ok(ConfigEdit {
                text: self.text.clone(),
                changes: Vec::new(),
            });
        };
        let range = self.node_range(rule.node);
        let lines = self.line_start(range.start)..self.line_end(range.end);
        if let Some((name, alias)) = self.anchor_still_used(&[lines]) {
            return Err(self.refuse_at(
                alias,
                format!("the rule defines anchor &{name}, which this alias still uses; remove the alias first, or move the anchor out of the rule"),
            ));
        }
        let Some(dash) = self.dash_of(rule.node) else {
            return Err(self.refuse_line(
                rule.line,
                "the rule is not a `- ` list item; remove it by hand",
            ));
        };
        let start = self.line_start(dash);
        if !self.text[start..dash].trim().is_empty() {
            return Err(self.refuse_line(
                rule.line,
                "the rule shares its line with other content; remove it by hand",
            ));
        }
        let end = self.line_end(range.end);
        let range = match self.text[end..].find('\n') {
            Some(i) => start..end + i + 1,
            None => self.break_before(start).unwrap_or(start)..end,
        };
        let mut splices = Splices::default();
        splices.push(range, "");
        Ok(ConfigEdit {
            text: splices.apply(self)?,
            changes: vec![ConfigChange::RemoveRule {
                path_regex: path_regex.to_owned(),
            }],
        })
    }
}

/// A path_regex as a YAML scalar: plain when that reads back identically, else single-quoted.
fn quote_regex(regex: &str) -> String {
    let plain_safe = !regex.is_empty()
        && !regex.starts_with([
            '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%',
            '@', '`', ' ',
        ])
        && !regex.ends_with([' ', ':'])
        && !regex.contains(": ")
        && !regex.contains(" #")
        && !regex.contains(['\n', '\t']);
    let reads_back = plain_safe
        && matches!(
            yaml_serde::from_str::<yaml_serde::Value>(regex),
            Ok(yaml_serde::Value::String(s)) if s == regex
        );
    if reads_back {
        regex.to_owned()
    } else {
        format!("'{}'", regex.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{parse, A, B};
    use hostage_recipients::AgeRecipient;

    fn host() -> RecipientRef {
        RecipientRef::literal(&AgeRecipient::from_bytes([9; 32]))
    }

    #[test]
    fn a_new_rule_is_placed_by_a_file_named_like_the_repos_secrets_when_the_generic_one_is_caught_by_no_rule(
    ) {
        // onedr0p's layout: rules only for `*.secret.sops.yaml`, no catch-all.
        let text = format!(
            "creation_rules:\n  - path_regex: talos/.+\\.secret(\\.sops)?\\.ya?ml\n    age: {B}\n  - path_regex: kubernetes/.+\\.secret(\\.sops)?\\.ya?ml\n    age: {A}\n"
        );
        let edit = parse(&text)
            .add_rule("kubernetes/web01/.*", &host(), &NewRuleOptions::default())
            .expect("adds");
        assert_eq!(
            edit.changes,
            [ConfigChange::AddRule {
                path_regex: "kubernetes/web01/.*".into(),
                above: Some("kubernetes/.+\\.secret(\\.sops)?\\.ya?ml".into())
            }]
        );
        let expected = format!(
            "creation_rules:\n  - path_regex: talos/.+\\.secret(\\.sops)?\\.ya?ml\n    age: {B}\n  - path_regex: kubernetes/web01/.*\n    age: {A},{}\n  - path_regex: kubernetes/.+\\.secret(\\.sops)?\\.ya?ml\n    age: {A}\n",
            host().recipient
        );
        assert_eq!(edit.text, expected);
        assert_eq!(
            parse(&edit.text)
                .remove_rule("kubernetes/web01/.*")
                .expect("removes")
                .text,
            text
        );
    }

    #[test]
    fn a_new_rule_whose_files_no_rule_catches_under_any_name_is_refused_naming_the_path() {
        let text =
            format!("creation_rules:\n  - path_regex: hosts/web01/secrets\\.yml$\n    age: {A}\n");
        let error = parse(&text)
            .add_rule("hosts/web02/.*", &host(), &NewRuleOptions::default())
            .expect_err("refused");
        assert!(matches!(error, RulesError::Edit { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("no rule catches hosts/web02/secret.sops.yaml today"),
            "{error}"
        );
    }

    #[test]
    fn the_new_rule_goes_above_whichever_rule_catches_the_path() {
        for catch_all in ["secrets/.*", ".*\\.yaml$", ".*"] {
            let text = format!(
                "creation_rules:\n  - path_regex: other/.*\n    age: {B}\n  # everything else\n  - path_regex: {catch_all}\n    age: {A},{B}\n"
            );
            let edit = parse(&text)
                .add_rule("secrets/host/web01/.*", &host(), &NewRuleOptions::default())
                .expect("adds");
            let expected = format!(
                "creation_rules:\n  - path_regex: other/.*\n    age: {B}\n  - path_regex: secrets/host/web01/.*\n    age: {A},{B},{}\n  # everything else\n  - path_regex: {catch_all}\n    age: {A},{B}\n",
                host().recipient
            );
            assert_eq!(edit.text, expected);
            assert_eq!(
                edit.changes,
                [ConfigChange::AddRule {
                    path_regex: "secrets/host/web01/.*".into(),
                    above: Some(catch_all.into())
                }]
            );
            let back = parse(&edit.text)
                .remove_rule("secrets/host/web01/.*")
                .expect("removes");
            assert_eq!(back.text, text);
            let again = parse(&edit.text)
                .add_rule("secrets/host/web01/.*", &host(), &NewRuleOptions::default())
                .expect("no-op");
            assert!(again.is_noop() && again.text == edit.text);
        }
    }

    #[test]
    fn a_rule_without_path_regex_catches_and_gets_one_in_its_copy() {
        let text = format!("creation_rules:\n  - age: {A}\n");
        let edit = parse(&text)
            .add_rule("hosts/web01/.*", &host(), &NewRuleOptions::default())
            .expect("adds");
        assert!(
            edit.text.starts_with(&format!(
                "creation_rules:\n  - path_regex: hosts/web01/.*\n    age: {A},"
            )),
            "{}",
            edit.text
        );
        assert_eq!(
            edit.changes,
            [ConfigChange::AddRule {
                path_regex: "hosts/web01/.*".into(),
                above: None
            }]
        );
    }

    #[test]
    fn a_dropped_recipient_is_not_copied() {
        let text = format!("# infrastructure: {B}\ncreation_rules:\n  - path_regex: secrets/.*\n    age: {A},{B}\n");
        let options = NewRuleOptions {
            drop: vec!["infrastructure".into()],
            ..Default::default()
        };
        let edit = parse(&text)
            .add_rule("secrets/web01/.*", &host(), &options)
            .expect("adds");
        let after = parse(&edit.text);
        let keys: Vec<_> = after.rules()[0].key_groups[0]
            .iter()
            .map(|e| e.recipient.clone())
            .collect();
        assert_eq!(keys, [A.to_owned(), host().recipient]);
    }

    #[test]
    fn a_catching_rule_sharing_its_keys_through_an_alias_or_merge_key_is_refused() {
        let alias = format!("shared: &shared [{A}]\ncreation_rules:\n  - path_regex: secrets/.*\n    age: *shared\n");
        let merge = format!(
            "base: &base\n  age: {A}\ncreation_rules:\n  - path_regex: secrets/.*\n    <<: *base\n"
        );
        for text in [alias, merge] {
            let err = parse(&text)
                .add_rule("secrets/web01/.*", &host(), &NewRuleOptions::default())
                .unwrap_err();
            assert!(matches!(err, RulesError::Edit { .. }), "{err}");
        }
    }

    #[test]
    fn a_catching_rule_that_defines_anchors_is_copied_with_its_keys_written_out() {
        let text = format!(
            "creation_rules:\n  - path_regex: secrets/.*\n    key_groups:\n      - age:\n          - &wsl {A} # WSL\n          - {B}\n  - path_regex: other/.*\n    age: *wsl\n"
        );
        let config = parse(&text);
        let edit = config
            .add_rule("secrets/web/.*", &host(), &NewRuleOptions::default())
            .expect("adds");
        let key = host().recipient;
        assert_eq!(
            edit.text,
            format!(
                "creation_rules:\n  - path_regex: secrets/web/.*\n    key_groups:\n      - age:\n          - {A} # WSL\n          - {B}\n          - {key}\n  - path_regex: secrets/.*\n    key_groups:\n      - age:\n          - &wsl {A} # WSL\n          - {B}\n  - path_regex: other/.*\n    age: *wsl\n"
            )
        );
        // The anchor and its alias are untouched; removing the rule gives the original back.
        let after = parse(&edit.text);
        assert_eq!(after.rules()[2].key_groups[0][0].recipient, A);
        assert_eq!(
            after.remove_rule("secrets/web/.*").expect("removes").text,
            text
        );
    }

    #[test]
    fn a_catching_rule_that_aliases_its_own_anchor_is_refused() {
        let text = format!(
            "creation_rules:\n  - path_regex: secrets/.*\n    key_groups:\n      - age:\n          - &wsl {A}\n      - age:\n          - *wsl\n"
        );
        let err = parse(&text)
            .add_rule("secrets/web/.*", &host(), &NewRuleOptions::default())
            .expect_err("refused");
        assert!(
            err.to_string().contains("uses it again through *wsl"),
            "{err}"
        );
    }

    #[test]
    fn a_rule_whose_anchor_another_rule_aliases_is_not_removed() {
        let text = format!(
            "creation_rules:\n  - path_regex: a/.*\n    age: &k {A}\n  - path_regex: b/.*\n    age: *k\n"
        );
        let err = parse(&text).remove_rule("a/.*").expect_err("refused");
        assert!(err.to_string().contains("&k"), "{err}");
        // Unused anchors do not stop the removal.
        let text = format!("creation_rules:\n  - path_regex: a/.*\n    age: &k {A}\n  - path_regex: b/.*\n    age: {A}\n");
        let removed = parse(&text).remove_rule("a/.*").expect("removes");
        assert_eq!(
            removed.text,
            format!("creation_rules:\n  - path_regex: b/.*\n    age: {A}\n")
        );
    }

    #[test]
    fn a_path_no_rule_catches_is_refused() {
        let text = format!("creation_rules:\n  - path_regex: other/.*\n    age: {A}\n");
        let err = parse(&text)
            .add_rule("secrets/web01/.*", &host(), &NewRuleOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("no rule catches"), "{err}");
    }

    #[test]
    fn regexes_are_quoted_only_when_plain_would_read_differently() {
        assert_eq!(
            quote_regex("secrets/hosts/web01/.*"),
            "secrets/hosts/web01/.*"
        );
        assert_eq!(quote_regex("^(a|b)\\.yaml$"), "^(a|b)\\.yaml$");
        assert_eq!(quote_regex("[ab]/x"), "'[ab]/x'");
        assert_eq!(quote_regex("*.yaml"), "'*.yaml'");
        assert_eq!(quote_regex("a: b"), "'a: b'");
        assert_eq!(quote_regex("it's"), "it's");
        assert_eq!(quote_regex("'x'"), "'''x'''");
    }
}
