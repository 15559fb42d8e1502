//! dotenv: `KEY=value` lines, comments, then the flattened `sops_…` metadata lines (sorted).

use std::collections::BTreeMap;

use super::{Edit, Parsed, Slot};
use crate::error::malformed;
use crate::metadata::Metadata;
use crate::tree::Value;
use crate::SopsError;

struct Entry<'a> {
    start: usize,
    end: usize,
    key: &'a str,
    value: &'a str,
}

fn entries(text: &str) -> Vec<Entry<'_>> {
    super::spanned_lines(text)
        .filter(|(_, _, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|(start, end, line)| {
            let (key, value) = line.split_once('=')?;
            Some(Entry {
                start,
                end,
                key,
                value,
            })
        })
        .collect()
}

fn unescape(value: &str) -> String {
    value.replace("\\n", "\n")
}

pub(crate) fn parse(text: &str) -> Result<Parsed, SopsError> {
    let mut data = Vec::new();
    let mut meta = Value::Map(Vec::new());
    let mut meta_range: Option<std::ops::Range<usize>> = None;
    for line in text.lines() {
        if !line.trim().is_empty() && !line.starts_with('#') && !line.contains('=') {
            return Err(malformed(format!(
                "dotenv: a line is not KEY=value: {line:.40}"
            )));
        }
    }
    for entry in entries(text) {
        if let Some(flat) = entry.key.strip_prefix("sops_") {
            insert_flat(&mut meta, flat, Value::Str(unescape(entry.value)))?;
            meta_range = Some(match meta_range {
                Some(r) => r.start.min(entry.start)..r.end.max(entry.end),
                None => entry.start..entry.end,
            });
        } else {
            data.push((entry.key.to_owned(), Value::Str(unescape(entry.value))));
        }
    }
    let meta_range = meta_range.ok_or_else(|| SopsError::NotSops {
        reason: "no `sops_…` lines".into(),
    })?;
    Ok(Parsed {
        documents: vec![Value::Map(data)],
        sops: meta,
        meta_ranges: vec![meta_range],
    })
}

/// Inserts a flattened key (`age__list_0__map_enc`) into a tree.
pub(crate) fn insert_flat(root: &mut Value, flat: &str, value: Value) -> Result<(), SopsError> {
    let mut parts = flat.split("__");
    let first = parts.next().unwrap_or_default().to_owned();
    let mut steps = vec![Step::Key(first)];
    for part in parts {
        if let Some(index) = part.strip_prefix("list_") {
            let index: usize = index
                .parse()
                .map_err(|_| malformed(format!("bad metadata key `{flat}`")))?;
            if index > 10_000 {
                return Err(malformed(format!("bad metadata key `{flat}`")));
            }
            steps.push(Step::Index(index));
        } else if let Some(key) = part.strip_prefix("map_") {
            steps.push(Step::Key(key.to_owned()));
        } else {
            return Err(malformed(format!("bad metadata key `{flat}`")));
        }
    }
    let mut node = root;
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let fresh = || match steps.get(i + 1) {
            Some(Step::Index(_)) => Value::List(Vec::new()),
            _ => Value::Map(Vec::new()),
        };
        node = match (step, node) {
            (Step::Key(key), Value::Map(entries)) => {
                let position = match entries.iter().position(|(k, _)| k == key) {
                    Some(p) => p,
                    None => {
                        entries.push((key.clone(), if last { Value::Null } else { fresh() }));
                        entries.len() - 1
                    }
                };
                &mut entries[position].1
            }
            (Step::Index(index), Value::List(items)) => {
                while items.len() <= *index {
                    items.push(if last { Value::Null } else { fresh() });
                }
                &mut items[*index]
            }
            _ => return Err(malformed(format!("conflicting metadata key `{flat}`"))),
        };
    }
    *node = value;
    Ok(())
}

enum Step {
    Key(String),
    Index(usize),
}

pub(crate) fn age_edits(
    text: &str,
    meta: &Metadata,
    plan: &[Vec<Slot>],
) -> Result<Vec<Edit>, SopsError> {
    let all = entries(text);
    let metadata = metadata_block(&all, "edit the age keys")?;
    let prefix_of = |group: usize| {
        if meta.flat {
            "sops_age__list_".to_owned()
        } else {
            format!("sops_key_groups__list_{group}__map_age__list_")
        }
    };
    // Original raw values of each age entry, so kept entries keep their exact text.
    let mut lines: BTreeMap<String, String> = BTreeMap::new();
    for entry in &metadata {
        let is_age = (0..plan.len()).any(|g| entry.key.starts_with(&prefix_of(g)));
        if !is_age {
            lines.insert(entry.key.to_owned(), entry.value.to_owned());
        }
    }
    for (group, slots) in plan.iter().enumerate() {
        let prefix = prefix_of(group);
        for (index, slot) in slots.iter().enumerate() {
            let (recipient, enc) = match slot {
                Slot::Keep(old) => {
                    let raw = |field: &str| {
                        let key = format!("{prefix}{old}__map_{field}");
                        metadata
                            .iter()
                            .find(|e| e.key == key)
                            .map(|e| e.value.to_owned())
                            .ok_or_else(|| malformed(format!("missing `{key}`")))
                    };
                    (raw("recipient")?, raw("enc")?)
                }
                Slot::New { recipient, enc } => (recipient.clone(), enc.replace('\n', "\\n")),
            };
            lines.insert(format!("{prefix}{index}__map_enc"), enc);
            lines.insert(format!("{prefix}{index}__map_recipient"), recipient);
        }
    }
    Ok(vec![rewrite_block(text, &metadata, &lines)])
}

/// The edits that take the master key entries of `removals` out of the `sops_…` lines (the block
/// is rewritten in `sort.Strings` order, later entries renumbered as sops would write them).
pub(crate) fn master_key_removals(
    text: &str,
    meta: &Metadata,
    removals: &[super::Removal],
) -> Result<Vec<Edit>, SopsError> {
    let all = entries(text);
    let metadata = metadata_block(&all, "remove master keys")?;
    let mut lines: BTreeMap<String, &str> = BTreeMap::new();
    for entry in &metadata {
        let flat = &entry.key["sops_".len()..];
        if let Some(key) = super::renumbered_flat_key(flat, meta.flat, removals, meta.groups.len())
        {
            lines.insert(format!("sops_{key}"), entry.value);
        }
    }
    Ok(vec![rewrite_block(text, &metadata, &lines)])
}

/// The `sops_…` lines of the file (never empty), which must be one contiguous run, as sops
/// writes them, for `action` to rewrite them in place.
fn metadata_block<'e, 'a>(
    all: &'e [Entry<'a>],
    action: &str,
) -> Result<Vec<&'e Entry<'a>>, SopsError> {
    let metadata: Vec<&Entry<'_>> = all.iter().filter(|e| e.key.starts_with("sops_")).collect();
    let (Some(first), Some(last)) = (metadata.first(), metadata.last()) else {
        return Err(malformed("no sops_ lines"));
    };
    if all
        .iter()
        .any(|e| !e.key.starts_with("sops_") && e.start > first.start && e.start < last.end)
    {
        return Err(SopsError::Unsupported {
            action: action.into(),
            reason: "the sops_ metadata lines are not one block at the end of the file".into(),
        });
    }
    Ok(metadata)
}

/// One edit that replaces the metadata `block` with `lines`, in their sorted order (sops writes
/// the block in `sort.Strings` order), with the file's line ending and, when the file had no
/// final newline, still none.
fn rewrite_block<V: AsRef<str>>(
    text: &str,
    block: &[&Entry<'_>],
    lines: &BTreeMap<String, V>,
) -> Edit {
    // `metadata_block` never returns an empty block.
    let (first, last) = (block[0], block[block.len() - 1]);
    let newline = if text[first.start..first.end].ends_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut replacement = String::new();
    for (key, value) in lines {
        replacement.push_str(key);
        replacement.push('=');
        replacement.push_str(value.as_ref());
        replacement.push_str(newline);
    }
    if !text[..last.end].ends_with('\n') {
        replacement.truncate(replacement.len() - newline.len());
    }
    Edit {
        range: first.start..last.end,
        replacement,
    }
}
