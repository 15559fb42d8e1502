//! Errors of the rules engine: every one names the `.sops.yaml` and, where there is one, the line.

use std::path::PathBuf;

/// Why a `.sops.yaml` could not be found, parsed, matched or edited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// No `.sops.yaml` in the start directory or any parent.
    #[error("no .sops.yaml found in {start} or any parent directory{}", hint_yml(.ignored_yml))]
    NotFound {
        /// Where the search started.
        start: PathBuf,
        /// A `.sops.yml` that was seen and ignored, as sops does.
        ignored_yml: Option<PathBuf>,
    },
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML (sops would refuse it too).
    #[error("{}:{line}:{column}: invalid YAML: {message}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The YAML is valid but does not have the shape sops expects (sops refuses it too).
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong, and what to do.
        message: String,
    },
    /// The file has no `creation_rules`.
    #[error("{} does not contain any creation rule", path.display())]
    NoCreationRules {
        /// The config file.
        path: PathBuf,
    },
    /// No creation rule matches the file (sops: "no matching creation rules found").
    #[error("no creation rule in {} matches {file} (sops: no matching creation rules found)", path.display())]
    NoMatchingRule {
        /// The config file.
        path: PathBuf,
        /// The path as sops compares it (relative to the config's directory when below it).
        file: String,
    },
    /// A rule's `path_regex` does not compile (sops fails the same way when it reaches that rule).
    #[error("{}:{line}: rule {index}: cannot compile path_regex {regex:?}: {message}", path.display())]
    BadRegex {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the regex.
        line: usize,
        /// 0-based rule index.
        index: usize,
        /// The regex.
        regex: String,
        /// The compiler's message.
        message: String,
    },
    /// A recipient of the selected rule is not valid (sops fails the same way for files it selects).
    #[error("{}:{line}: rule {index}: invalid age recipient {recipient:?}: {message}", path.display())]
    BadRecipient {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 0-based rule index.
        index: usize,
        /// The recipient as written.
        recipient: String,
        /// Why it is invalid.
        message: String,
    },
    /// A refusal: the edit cannot be done without disturbing the file or breaking its own
    /// convention, or makes no sense. Nothing was changed; the message says what to do.
    #[error("{}{}: cannot edit: {message}", path.display(), at_line(.line))]
    Edit {
        /// The config file.
        path: PathBuf,
        /// 1-based line of what is in the way, when there is one.
        line: Option<usize>,
        /// What is in the way, and what to do.
        message: String,
    },
    /// An edit produced text that does not read back as intended. This is a bug in hostage,
    /// never a property of the file: the edit is dropped and nothing is changed.
    #[error("{}: hostage's edit did not read back as intended, so nothing was changed ({message}); please report this file", path.display())]
    EditUnverified {
        /// The config file.
        path: PathBuf,
        /// What went wrong when the new text was read back.
        message: String,
    },
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

fn hint_yml(ignored: &Option<PathBuf>) -> String {
    match ignored {
        Some(p) => format!(
            " (ignored {}: sops only reads files named .sops.yaml; rename it)",
            p.display()
        ),
        None => String::new(),
    }
}
