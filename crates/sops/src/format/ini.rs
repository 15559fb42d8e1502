//! INI (sops' go-ini store): `[section]`s of `key = value`, `;`/`#` comments, and the flattened
//! metadata in a final `[sops]` section (key order random in sops ≤ 3.12, `=` aligned).

use std::collections::BTreeMap;

use super::dotenv::insert_flat;
use super::{Edit, Parsed, Slot};
use crate::error::malformed;
use crate::metadata::Metadata;
use crate::tree::Value;
use crate::SopsError;

struct Line<'a> {
    start: usize,
    end: usize,
    text: &'a str,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    super::spanned_lines(text)
        .map(|(start, end, text)| Line { start, end, text })
        .collect()
}

fn section_of(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with(';') || t.starts_with('#')
}

fn key_value(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once('=')?;
    Some((k.trim(), v.trim()))
}

/// Whether `text` has a `[sops]` section.
pub(crate) fn looks_like(text: &str) -> bool {
    text.lines().any(|l| section_of(l) == Some("sops"))
}

pub(crate) fn parse(text: &str) -> Result<Parsed, SopsError> {
    let mut sections: Vec<(String, Value)> = Vec::new();
    let mut meta = Value::Map(Vec::new());
    let mut meta_range: Option<std::ops::Range<usize>> = None;
    let mut current: Option<String> = None;
    for line in lines(text) {
        if line.text.trim().is_empty() || is_comment(line.text) {
            continue;
        }
        if let Some(name) = section_of(line.text) {
            current = Some(name.to_owned());
            if name != "sops" {
                sections.push((name.to_owned(), Value::Map(Vec::new())));
            } else {
                meta_range = Some(line.start..text.len());
            }
            continue;
        }
        let (key, value) = key_value(line.text).ok_or_else(|| {
            malformed(format!("INI: a line is not key = value: {:.40}", line.text))
        })?;
        match current.as_deref() {
            Some("sops") => insert_flat(&mut meta, key, Value::Str(value.replace("\\n", "\n")))?,
            Some(section) => {
                if let Some((_, Value::Map(entries))) =
                    sections.iter_mut().rev().find(|(n, _)| n == section)
                {
                    entries.push((key.to_owned(), Value::Str(value.to_owned())));
                }
            }
            None => return Err(malformed("INI: a key outside any section")),
        }
    }
    let meta_range = meta_range.ok_or_else(|| SopsError::NotSops {
        reason: "no `[sops]` section".into(),
    })?;
    Ok(Parsed {
        documents: vec![Value::Map(sections)],
        sops: meta,
        meta_ranges: vec![meta_range],
    })
}

pub(crate) fn age_edits(
    text: &str,
    meta: &Metadata,
    plan: &[Vec<Slot>],
) -> Result<Vec<Edit>, SopsError> {
    let all = lines(text);
    let start = all
        .iter()
        .position(|l| section_of(l.text) == Some("sops"))
        .ok_or_else(|| malformed("no [sops] section"))?;
    let body = &all[start + 1..];
    let prefix_of = |group: usize| {
        if meta.flat {
            "age__list_".to_owned()
        } else {
            format!("key_groups__list_{group}__map_age__list_")
        }
    };
    let is_age = |key: &str| (0..plan.len()).any(|g| key.starts_with(&prefix_of(g)));
    let raw: BTreeMap<&str, &str> = body.iter().filter_map(|l| key_value(l.text)).collect();
    // The column where values start (go-ini pads keys to the longest one).
    let width = body
        .iter()
        .filter_map(|l| l.text.find(" = ").filter(|_| !is_comment(l.text)))
        .max()
        .unwrap_or(0);
    let mut age_lines: BTreeMap<String, String> = BTreeMap::new();
    for (group, slots) in plan.iter().enumerate() {
        let prefix = prefix_of(group);
        for (index, slot) in slots.iter().enumerate() {
            let (recipient, enc) = match slot {
                Slot::Keep(old) => {
                    let get = |field: &str| {
                        let key = format!("{prefix}{old}__map_{field}");
                        raw.get(key.as_str())
                            .map(|v| (*v).to_owned())
                            .ok_or_else(|| malformed(format!("missing `{key}`")))
                    };
                    (get("recipient")?, get("enc")?)
                }
                Slot::New { recipient, enc } => (recipient.clone(), enc.replace('\n', "\\n")),
            };
            age_lines.insert(format!("{prefix}{index}__map_enc"), enc);
            age_lines.insert(format!("{prefix}{index}__map_recipient"), recipient);
        }
    }
    let mut replacement = String::new();
    let mut emitted = false;
    for line in body {
        let newline = &text[line.start + line.text.len()..line.end];
        match key_value(line.text) {
            Some((key, _)) if !is_comment(line.text) && is_age(key) => {
                if !emitted {
                    emitted = true;
                    for (k, v) in &age_lines {
                        replacement.push_str(&format!("{k:<width$} = {v}\n"));
                    }
                }
            }
            _ => {
                replacement.push_str(line.text);
                replacement.push_str(newline);
            }
        }
    }
    if !emitted {
        if !replacement.is_empty() && !replacement.ends_with('\n') {
            replacement.push('\n');
        }
        for (k, v) in &age_lines {
            replacement.push_str(&format!("{k:<width$} = {v}\n"));
        }
    }
    let range_start = body.first().map_or(text.len(), |l| l.start);
    Ok(vec![Edit {
        range: range_start..text.len(),
        replacement,
    }])
}

/// The edits that take the master key entries of `removals` out of the `[sops]` section: their
/// lines go, later entries of the same list are renumbered in place (the section's order is
/// random in sops ≤ 3.12 anyway), values keep their column.
pub(crate) fn master_key_removals(
    text: &str,
    meta: &Metadata,
    removals: &[super::Removal],
) -> Result<Vec<Edit>, SopsError> {
    let all = lines(text);
    let start = all
        .iter()
        .position(|l| section_of(l.text) == Some("sops"))
        .ok_or_else(|| malformed("no [sops] section"))?;
    let mut edits = Vec::new();
    for line in &all[start + 1..] {
        if section_of(line.text).is_some() {
            break;
        }
        if is_comment(line.text) {
            continue;
        }
        let Some((key, _)) = key_value(line.text) else {
            continue;
        };
        match super::renumbered_flat_key(key, meta.flat, removals, meta.groups.len()) {
            None => edits.push(Edit {
                range: line.start..line.end,
                replacement: String::new(),
            }),
            Some(new_key) if new_key != key => {
                let at = line.start + line.text.find(key).unwrap_or(0);
                // Keep the value's column: pad the (shorter or equal) new key to the old width.
                let width = key.len();
                edits.push(Edit {
                    range: at..at + key.len(),
                    replacement: format!("{new_key:<width$}"),
                });
            }
            Some(_) => {}
        }
    }
    Ok(edits)
}
