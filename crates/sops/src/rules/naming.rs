//! One naming model for recipients: a name comes from a YAML anchor (`- &web01 age1…`), a label in
//! the leading comment block (`# web01:   age1…`, the seed layout's only naming), or a (name,
//! recipient) pair the caller supplies (the workflows convert `pubkeys/<name>.pub`). Every reader
//! (onboard, rotate, status, exposure reports, re-key plans) asks [`SopsConfig::recipient_names`]
//! so a repository is read the same way whichever convention it uses.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use super::config::{RecipientKind, SopsConfig};
use super::lint::{Lint, LintKind};
use super::tree::Kind;

/// A `# name: age1…` line of the leading comment block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderLabel {
    /// The label (`gnomeregan`).
    pub name: String,
    /// The recipient it names, as written.
    pub recipient: String,
    /// 1-based line.
    pub line: usize,
    /// The line's bytes without its line break.
    #[serde(skip)]
    pub(crate) range: Range<usize>,
    /// Everything before the name (`# `, `#   `): new labels copy it.
    #[serde(skip)]
    pub(crate) prefix: String,
    /// The column (in characters) where the recipient starts: new labels align to it.
    #[serde(skip)]
    pub(crate) key_column: usize,
}

/// A name the caller knows from outside `.sops.yaml` (e.g. `pubkeys/<name>.pub`, converted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuppliedName {
    /// The name (`gnomeregan`).
    pub name: String,
    /// The `age1…` recipient.
    pub recipient: String,
    /// Where it came from, for messages (`pubkeys/gnomeregan.pub`).
    pub origin: String,
}

/// Where a name was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum NameSource {
    /// `&name` on the recipient's scalar, at this 1-based line.
    Anchor {
        /// 1-based line of the anchor.
        line: usize,
    },
    /// `# name: age1…` in the leading comment block, at this 1-based line.
    HeaderLabel {
        /// 1-based line of the label.
        line: usize,
    },
    /// Supplied by the caller.
    Supplied {
        /// Where the caller found it.
        origin: String,
    },
}

impl NameSource {
    /// Where, for messages: `line 4` or the supplied origin.
    pub fn describe(&self) -> String {
        match self {
            Self::Anchor { line } => format!("anchor at line {line}"),
            Self::HeaderLabel { line } => format!("header label at line {line}"),
            Self::Supplied { origin } => origin.clone(),
        }
    }

    fn line(&self) -> Option<usize> {
        match self {
            Self::Anchor { line } | Self::HeaderLabel { line } => Some(*line),
            Self::Supplied { .. } => None,
        }
    }
}

/// One name ↔ recipient pair and every place that says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientName {
    /// The name.
    pub name: String,
    /// The recipient (`age1…`).
    pub recipient: String,
    /// Every place naming it so, anchors first, then header labels, then supplied names.
    pub sources: Vec<NameSource>,
}

/// The answer of [`SopsConfig::recipient_names`]: name ↔ recipient, with where each name came
/// from, and the conflicts (one name for two recipients, two names for one recipient).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecipientNames {
    names: Vec<RecipientName>,
    conflicts: Vec<Lint>,
}

impl RecipientNames {
    /// Every pair, in the order first seen (anchors, header labels, supplied).
    pub fn iter(&self) -> impl Iterator<Item = &RecipientName> {
        self.names.iter()
    }

    /// The name of `recipient` (the first one seen when there are several: an anchor before a
    /// header label before a supplied name).
    pub fn name_of(&self, recipient: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|n| n.recipient == recipient)
            .map(|n| n.name.as_str())
    }

    /// The recipient called `name` (the first one seen when there are several).
    pub fn recipient_of(&self, name: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.recipient.as_str())
    }

    /// One name for two recipients, or two names for one recipient: [`LintKind::NameConflict`]
    /// lints, with the line of the later naming in the file (0 when both are supplied).
    pub fn conflicts(&self) -> &[Lint] {
        &self.conflicts
    }
}

fn label_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"^(\s*#+\s*)([A-Za-z0-9][A-Za-z0-9_.@-]*):\s+(age1[0-9a-z]+)\s*$")
            .expect("the header label pattern is a valid regex")
    })
}

impl SopsConfig {
    /// The `# name: age1…` labels of the leading comment block (the comment and blank lines
    /// before the first YAML content), in file order.
    pub fn header_labels(&self) -> Vec<HeaderLabel> {
        let mut out = Vec::new();
        let mut offset = 0;
        for (n, line) in self.text.split_inclusive('\n').enumerate() {
            let content = line.trim_end_matches(['\n', '\r']);
            let trimmed = content.trim_start();
            if !(trimmed.starts_with('#') || trimmed.is_empty()) {
                break;
            }
            if let Some(c) = label_pattern().captures(content) {
                let (Some(prefix), Some(name), Some(key)) = (c.get(1), c.get(2), c.get(3)) else {
                    continue;
                };
                out.push(HeaderLabel {
                    name: name.as_str().to_owned(),
                    recipient: key.as_str().to_owned(),
                    line: n + 1,
                    range: offset..offset + content.len(),
                    prefix: prefix.as_str().to_owned(),
                    key_column: content[..key.start()].chars().count(),
                });
            }
            offset += line.len();
        }
        out
    }

    /// Anchors on scalars that hold one recipient (`&web01 age1…`), with their lines; the latest
    /// definition of a redefined anchor wins, as for aliases after it.
    pub(crate) fn recipient_anchors(&self) -> Vec<(String, String, usize)> {
        let mut out: Vec<(String, String, usize)> = Vec::new();
        for (name, id) in &self.tree.anchors {
            let Kind::Scalar(s) = &self.tree.nodes[*id].kind else {
                continue;
            };
            let value = s.value.trim();
            if value.contains(',')
                || matches!(RecipientKind::classify(value), RecipientKind::Invalid(_))
            {
                continue;
            }
            out.retain(|(n, _, _)| n != name);
            out.push((name.clone(), value.to_owned(), self.line(*id)));
        }
        out
    }

    /// Every recipient name: anchors, header labels, then the caller's `supplied` names, merged
    /// (one entry per name ↔ recipient pair, with all its sources) and checked for conflicts.
    pub fn recipient_names(&self, supplied: &[SuppliedName]) -> RecipientNames {
        let mut found: Vec<(String, String, NameSource)> = Vec::new();
        for (name, recipient, line) in self.recipient_anchors() {
            found.push((name, recipient, NameSource::Anchor { line }));
        }
        for label in self.header_labels() {
            found.push((
                label.name,
                label.recipient,
                NameSource::HeaderLabel { line: label.line },
            ));
        }
        for s in supplied {
            found.push((
                s.name.clone(),
                s.recipient.clone(),
                NameSource::Supplied {
                    origin: s.origin.clone(),
                },
            ));
        }
        let mut names: Vec<RecipientName> = Vec::new();
        let mut conflicts = Vec::new();
        for (name, recipient, source) in found {
            if let Some(same) = names
                .iter_mut()
                .find(|n| n.name == name && n.recipient == recipient)
            {
                same.sources.push(source);
                continue;
            }
            let other_recipient = names.iter().find(|n| n.name == name);
            let other_name = names.iter().find(|n| n.recipient == recipient);
            for (other, what) in [
                (other_recipient, "names another recipient"),
                (other_name, "is another name for the same recipient"),
            ] {
                let Some(other) = other else { continue };
                let first = &other.sources[0];
                conflicts.push(Lint {
                    kind: LintKind::NameConflict,
                    line: source.line().or(first.line()).unwrap_or(0),
                    rule: None,
                    message: format!(
                        "{name} ({recipient}, {}) {what}: {} is {} ({}); keep one name per recipient",
                        source.describe(),
                        other.name,
                        other.recipient,
                        first.describe()
                    ),
                });
            }
            names.push(RecipientName {
                name,
                recipient,
                sources: vec![source],
            });
        }
        RecipientNames { names, conflicts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{parse, A, B};

    #[test]
    fn header_labels_are_read_in_any_alignment_and_only_from_the_leading_block() {
        let config = parse(&format!(
            "# SOPS configuration file\n#\n# Public AGE keys:\n# workstation:    {A}\n#   web01: {B}\ncreation_rules:\n  # later: {A}\n  - age: {A}\n"
        ));
        let labels = config.header_labels();
        let got: Vec<_> = labels.iter().map(|l| (l.name.as_str(), l.line)).collect();
        assert_eq!(got, [("workstation", 4), ("web01", 5)]);
        assert_eq!(labels[0].key_column, 18);
    }

    #[test]
    fn names_from_anchors_labels_and_the_caller_merge_into_one_pair() {
        let config = parse(&format!(
            "# web01: {A}\nkeys:\n  - &web01 {A}\ncreation_rules:\n  - age: *web01\n"
        ));
        let supplied = [SuppliedName {
            name: "web01".into(),
            recipient: A.into(),
            origin: "pubkeys/web01.pub".into(),
        }];
        let names = config.recipient_names(&supplied);
        let all: Vec<_> = names.iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].sources,
            [
                NameSource::Anchor { line: 3 },
                NameSource::HeaderLabel { line: 1 },
                NameSource::Supplied {
                    origin: "pubkeys/web01.pub".into()
                }
            ]
        );
        assert!(names.conflicts().is_empty());
        assert_eq!(names.name_of(A), Some("web01"));
        assert_eq!(names.recipient_of("web01"), Some(A));
    }

    #[test]
    fn one_name_for_two_recipients_and_two_names_for_one_are_conflicts_with_lines() {
        let config = parse(&format!(
            "# web01: {A}\n# web02: {A}\nkeys:\n  - &web01 {B}\ncreation_rules:\n  - age: *web01\n"
        ));
        let names = config.recipient_names(&[]);
        let lines: Vec<_> = names.conflicts().iter().map(|l| l.line).collect();
        // Label web01 (line 1) against anchor web01 (line 4); label web02 against label web01.
        assert_eq!(lines, [1, 2], "{:#?}", names.conflicts());
        assert!(config
            .lints()
            .iter()
            .any(|l| l.kind == LintKind::NameConflict));
    }

    #[test]
    fn hostile_header_lines_are_not_labels() {
        // A label must be a plain word and the key the only thing after it.
        let config = parse(&format!(
            "# evil name: {A}\n# x: {A} trailing\n# *alias: {A}\n# ok:{A}\n# \u{202e}rtl: {A}\ncreation_rules:\n  - age: {A}\n"
        ));
        assert!(
            config.header_labels().is_empty(),
            "{:?}",
            config.header_labels()
        );
    }

    #[test]
    fn anchors_on_non_recipients_are_not_names() {
        let config = parse(&format!(
            "keys:\n  - &pgpkey 85D77543B3D624B63CEA9E6DBC17301B491B3F21\n  - &both {A},{B}\ncreation_rules:\n  - age: {A}\n"
        ));
        assert_eq!(config.recipient_names(&[]).iter().count(), 0);
    }
}
