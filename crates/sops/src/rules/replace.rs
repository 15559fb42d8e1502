//! Replacing a recipient (a host's key rotation): every occurrence is rewritten in place, once,
//! so the anchor, its aliases, the header label and inline keys all follow and no line is added.

use hostage_recipients::AgeRecipient;

use super::change::{ConfigChange, ConfigEdit};
use super::config::SopsConfig;
use super::edit::Splices;
use super::RulesError;

impl SopsConfig {
    /// Replaces `old` everywhere it is written: anchor definitions (so every alias follows),
    /// header labels, inline keys in rules and comma strings, comments that mention it. Returns
    /// only the text; see [`SopsConfig::replace`].
    pub fn replace_recipient(&self, old: &str, new: &AgeRecipient) -> Result<String, RulesError> {
        Ok(self.replace(old, new)?.text)
    }

    /// [`SopsConfig::replace_recipient`], reporting where (`ReplaceAnchorValue`,
    /// `ReplaceHeaderLabel`, `ReplaceInRule`, `ReplaceAt` a comment or other line). Refused when
    /// `old` is not in the file, and when `new` already has another name than `old` (the result
    /// would name one key twice).
    pub fn replace(&self, old: &str, new: &AgeRecipient) -> Result<ConfigEdit, RulesError> {
        let new = new.to_string();
        if old.is_empty() {
            return Err(self.edit_error("empty recipient"));
        }
        let names = self.recipient_names(&[]);
        if let (Some(new_name), old_name) = (names.name_of(&new), names.name_of(old)) {
            if old_name != Some(new_name) {
                return Err(self.edit_error(format!(
                    "{new} is already named {new_name}; one recipient gets one name"
                )));
            }
        }
        let occurrences = word_occurrences(&self.text, old);
        if occurrences.is_empty() {
            return Err(self.edit_error(format!("{old} does not appear in the file")));
        }
        let labels = self.header_labels();
        let anchors: Vec<_> = self
            .tree
            .anchors
            .iter()
            .map(|(name, id)| (name.clone(), self.node_range(*id)))
            .collect();
        let mut splices = Splices::default();
        let mut changes: Vec<ConfigChange> = Vec::new();
        for start in occurrences {
            let end = start + old.len();
            splices.push(start..end, new.clone());
            let change = if let Some(label) = labels.iter().find(|l| l.range.contains(&start)) {
                ConfigChange::ReplaceHeaderLabel {
                    name: label.name.clone(),
                }
            } else if let Some((name, _)) = anchors
                .iter()
                .find(|(_, r)| r.start <= start && end <= r.end)
            {
                ConfigChange::ReplaceAnchorValue { name: name.clone() }
            } else if let Some(rule) = self.rules.iter().find(|r| {
                let range = self.node_range(r.node);
                range.start <= start && end <= range.end && !self.in_comment(start)
            }) {
                ConfigChange::ReplaceInRule {
                    rule: rule.index,
                    path_regex: rule.path_regex.clone(),
                }
            } else {
                ConfigChange::ReplaceAt {
                    line: super::tree::line_of(&self.text, start),
                }
            };
            if !changes.contains(&change) {
                changes.push(change);
            }
        }
        let text = splices.apply(self)?;
        if !word_occurrences(&text, old).is_empty() {
            return Err(RulesError::EditUnverified {
                path: self.path.clone(),
                message: format!("{old} is still in the file after replacing it"),
            });
        }
        Ok(ConfigEdit { text, changes })
    }

    /// Whether `offset` is inside a `#` comment (a `#` after whitespace, or at the line start).
    fn in_comment(&self, offset: usize) -> bool {
        let line = &self.text[self.line_start(offset)..offset];
        line.trim_start().starts_with('#') || line.contains(" #")
    }
}

/// Start offsets of `needle` in `text` where it is a whole word (no alphanumeric around it).
fn word_occurrences(text: &str, needle: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(needle) {
        let start = from + at;
        let end = start + needle.len();
        let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let after_ok = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if before_ok && after_ok {
            out.push(start);
        }
        from = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{parse, A, B};

    #[test]
    fn replacing_a_labelled_key_rewrites_the_label_and_each_rule_once() {
        let text = format!(
            "# web01:  {A}\n# other:  {B}\ncreation_rules:\n  - path_regex: a/\n    age: {B},{A}\n  - age: {A}\n"
        );
        let new = AgeRecipient::from_bytes([9; 32]);
        let edit = parse(&text).replace(A, &new).expect("replaces");
        assert_eq!(edit.text, text.replace(A, &new.to_string()));
        assert_eq!(edit.text.lines().count(), text.lines().count());
        assert_eq!(
            edit.changes,
            [
                ConfigChange::ReplaceHeaderLabel {
                    name: "web01".into()
                },
                ConfigChange::ReplaceInRule {
                    rule: 0,
                    path_regex: Some("a/".into())
                },
                ConfigChange::ReplaceInRule {
                    rule: 1,
                    path_regex: None
                },
            ]
        );
    }

    #[test]
    fn replacing_with_a_key_named_otherwise_is_refused() {
        let text = format!("# web01: {A}\n# other: {B}\ncreation_rules:\n  - age: {A},{B}\n");
        let other = AgeRecipient::parse(B).expect("valid");
        let err = parse(&text).replace(A, &other).unwrap_err();
        assert!(err.to_string().contains("already named other"), "{err}");
    }
}
