//! What an edit did, in the file's own terms, so the CLI can say "add header label gnomeregan" or
//! "add rule secrets/host/stormwind/.* above secrets/.*" instead of guessing from the diff.

use std::fmt;

use serde::Serialize;

/// One thing an edit changed in `.sops.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum ConfigChange {
    /// `- &name age1…` added to the `keys:` list.
    AddAnchor {
        /// The anchor name.
        name: String,
    },
    /// `# name: age1…` added to the leading comment block.
    AddHeaderLabel {
        /// The label.
        name: String,
    },
    /// The `&name` item removed from `keys:`.
    RemoveAnchor {
        /// The anchor name.
        name: String,
    },
    /// The `# name: …` line(s) removed from the leading comment block.
    RemoveHeaderLabel {
        /// The label.
        name: String,
    },
    /// The recipient added to a rule's keys.
    AddToRule {
        /// 0-based rule index (in the edited file).
        rule: usize,
        /// The rule's path_regex (`None`: the rule has none and matches every file).
        path_regex: Option<String>,
        /// The recipient's name when it has one, else the key.
        recipient: String,
    },
    /// The recipient removed from a rule's keys.
    RemoveFromRule {
        /// 0-based rule index.
        rule: usize,
        /// The rule's path_regex.
        path_regex: Option<String>,
        /// The recipient's name when it has one, else the key.
        recipient: String,
    },
    /// A new rule inserted right above the rule that caught its paths before.
    AddRule {
        /// The new rule's path_regex.
        path_regex: String,
        /// The path_regex of the rule it was copied from and inserted above (`None`: that rule
        /// has no path_regex).
        above: Option<String>,
    },
    /// A rule removed.
    RemoveRule {
        /// Its path_regex.
        path_regex: String,
    },
    /// An anchored recipient's value replaced (every alias follows).
    ReplaceAnchorValue {
        /// The anchor name.
        name: String,
    },
    /// A header label's recipient replaced.
    ReplaceHeaderLabel {
        /// The label.
        name: String,
    },
    /// A recipient written inline in a rule replaced.
    ReplaceInRule {
        /// 0-based rule index.
        rule: usize,
        /// The rule's path_regex.
        path_regex: Option<String>,
    },
    /// A recipient replaced elsewhere: a comment outside the header labels, a value outside
    /// the rules.
    ReplaceAt {
        /// 1-based line.
        line: usize,
    },
}

fn regex_or_all(regex: &Option<String>) -> &str {
    regex.as_deref().unwrap_or("(every file)")
}

impl fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AddAnchor { name } => write!(f, "add anchor &{name}"),
            Self::AddHeaderLabel { name } => write!(f, "add header label {name}"),
            Self::RemoveAnchor { name } => write!(f, "remove anchor &{name}"),
            Self::RemoveHeaderLabel { name } => write!(f, "remove header label {name}"),
            Self::AddToRule {
                path_regex,
                recipient,
                ..
            } => write!(f, "add {recipient} to rule {}", regex_or_all(path_regex)),
            Self::RemoveFromRule {
                path_regex,
                recipient,
                ..
            } => write!(
                f,
                "remove {recipient} from rule {}",
                regex_or_all(path_regex)
            ),
            Self::AddRule { path_regex, above } => {
                write!(f, "add rule {path_regex} above {}", regex_or_all(above))
            }
            Self::RemoveRule { path_regex } => write!(f, "remove rule {path_regex}"),
            Self::ReplaceAnchorValue { name } => write!(f, "replace the key of anchor &{name}"),
            Self::ReplaceHeaderLabel { name } => {
                write!(f, "replace the key of header label {name}")
            }
            Self::ReplaceInRule { path_regex, .. } => {
                write!(f, "replace the key in rule {}", regex_or_all(path_regex))
            }
            Self::ReplaceAt { line } => write!(f, "replace the key at line {line}"),
        }
    }
}

/// The result of an edit: the new text, and what changed (empty when the edit had nothing to do,
/// and then `text` is the input byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEdit {
    /// The new file text.
    pub text: String,
    /// What the edit did, in order.
    pub changes: Vec<ConfigChange>,
}

impl ConfigEdit {
    /// Whether the edit changed nothing (a re-run on an unchanged input).
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }
}
