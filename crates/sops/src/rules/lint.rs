//! Warnings about `.sops.yaml` rules that sops accepts but that do not do what they seem to.

use serde::Serialize;

use super::config::{RecipientKind, SopsConfig};

/// What a lint is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LintKind {
    /// An `ssh-ed25519` (or other ssh) recipient: sops-nix hosts decrypt with the converted
    /// `age1…` key, and the two stanza types do not interoperate.
    SshRecipient,
    /// A recipient sops would reject when the rule is used.
    InvalidRecipient,
    /// A plugin or post-quantum recipient hostage keeps but cannot encrypt to natively.
    UnsupportedRecipient,
    /// A rule no file can reach because an earlier rule matches everything it would.
    ShadowedRule,
    /// Several key groups without `shamir_threshold`: every group is needed to decrypt, which is
    /// usually a stray `-` that split one group in two.
    ExtraShamirGroup,
    /// An empty key group (a `-` with nothing under it).
    EmptyKeyGroup,
    /// A key sops does not know and silently ignores.
    UnknownKey,
    /// A path_regex that does not compile.
    BadRegex,
    /// An anchor defined twice: aliases after the second definition use it, so the first value is
    /// silently unused from there on.
    RedefinedAnchor,
    /// One name for two recipients, or two names for one recipient (anchors, header labels):
    /// which host a key belongs to is ambiguous, so reports and edits could pick the wrong one.
    NameConflict,
}

/// One warning, with the line it is about (serialisable for `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lint {
    /// What it is about.
    pub kind: LintKind,
    /// 1-based line.
    pub line: usize,
    /// 0-based rule index, when it is about a rule.
    pub rule: Option<usize>,
    /// The message for humans.
    pub message: String,
}

pub(crate) fn is_catch_all(regex: Option<&str>) -> bool {
    match regex {
        None | Some("") => true,
        Some(r) => matches!(r, ".*" | "^.*" | ".*$" | "^.*$" | "^" | "$" | "(.*)"),
    }
}

pub(crate) fn lints(config: &SopsConfig) -> Vec<Lint> {
    let mut out = Vec::new();
    let anchors = &config.tree.anchors;
    for (i, (name, id)) in anchors.iter().enumerate() {
        if let Some((_, first)) = anchors[..i].iter().find(|(n, _)| n == name) {
            out.push(Lint {
                kind: LintKind::RedefinedAnchor,
                line: config.line(*id),
                rule: None,
                message: format!(
                    "anchor &{name} is defined again (first at line {}); aliases after this line use the new value",
                    config.line(*first)
                ),
            });
        }
    }
    let rules = config.rules();
    for rule in rules {
        let index = Some(rule.index);
        for (name, line) in &rule.unknown_keys {
            let consequence = if rule.path_regex.is_none() {
                "; this rule has no path_regex, so it matches every file"
            } else {
                ""
            };
            let hint = match name.as_str() {
                "filename_regex" | "path-regex" | "pathregex" | "path_regexp" => {
                    " (did you mean path_regex?)"
                }
                "key_group" | "keygroups" => " (did you mean key_groups?)",
                "hc_vault_uris" => " (the key is hc_vault_transit_uri)",
                _ => "",
            };
            out.push(Lint {
                kind: LintKind::UnknownKey,
                line: *line,
                rule: index,
                message: format!(
                    "rule {}: sops ignores the unknown key `{name}`{hint}{consequence}",
                    rule.index
                ),
            });
        }
        if let Some(regex) = &rule.path_regex {
            if let Err(e) = regex::Regex::new(regex) {
                out.push(Lint {
                    kind: LintKind::BadRegex,
                    line: rule.regex_line,
                    rule: index,
                    message: format!(
                        "rule {}: path_regex {regex:?} does not compile: {}",
                        rule.index,
                        e.to_string().lines().last().unwrap_or_default()
                    ),
                });
            }
        }
        if let Some(earlier) = rules[..rule.index].iter().find(|earlier| {
            is_catch_all(earlier.path_regex.as_deref())
                || (earlier.path_regex.is_some() && earlier.path_regex == rule.path_regex)
        }) {
            out.push(Lint {
                kind: LintKind::ShadowedRule,
                line: rule.line,
                rule: index,
                message: format!(
                    "rule {} can never match: rule {} (line {}) matches every file it would",
                    rule.index, earlier.index, earlier.line
                ),
            });
        }
        if rule.uses_key_groups {
            for (g, (recipients, others)) in
                rule.key_groups.iter().zip(&rule.other_keys).enumerate()
            {
                if recipients.is_empty() && others.is_empty() {
                    out.push(Lint {
                        kind: LintKind::EmptyKeyGroup,
                        line: rule.line,
                        rule: index,
                        message: format!(
                            "rule {}: key group {g} is empty (a stray `-` under key_groups?)",
                            rule.index
                        ),
                    });
                }
            }
            if rule.key_groups.len() > 1 && rule.shamir_threshold.is_none() {
                out.push(Lint {
                    kind: LintKind::ExtraShamirGroup,
                    line: rule.line,
                    rule: index,
                    message: format!(
                        "rule {}: {} key groups and no shamir_threshold, so a key from every group is needed to decrypt; if one group was meant, remove the extra `-` under key_groups",
                        rule.index,
                        rule.key_groups.len()
                    ),
                });
            }
        }
        for entry in rule.key_groups.iter().flatten() {
            let (kind, message) = match &entry.kind {
                RecipientKind::X25519 => continue,
                RecipientKind::Ssh => (
                    LintKind::SshRecipient,
                    format!(
                        "rule {}: ssh recipient {}: sops-nix hosts decrypt with the age key converted from their host key (ssh-to-age); encrypt to that age1… recipient instead",
                        rule.index,
                        short(&entry.recipient)
                    ),
                ),
                RecipientKind::Invalid(why) => (
                    LintKind::InvalidRecipient,
                    format!(
                        "rule {}: invalid age recipient {:?}: {why}",
                        rule.index,
                        short(&entry.recipient)
                    ),
                ),
                RecipientKind::Plugin | RecipientKind::PostQuantum => (
                    LintKind::UnsupportedRecipient,
                    format!(
                        "rule {}: recipient {} is a plugin/post-quantum recipient; hostage keeps it but cannot encrypt to it natively",
                        rule.index,
                        short(&entry.recipient)
                    ),
                ),
            };
            out.push(Lint {
                kind,
                line: entry.line,
                rule: index,
                message,
            });
        }
    }
    out.extend(config.recipient_names(&[]).conflicts().iter().cloned());
    out
}

fn short(recipient: &str) -> String {
    if recipient.chars().count() > 40 {
        let head: String = recipient.chars().take(36).collect();
        format!("{head}…")
    } else {
        recipient.to_owned()
    }
}
