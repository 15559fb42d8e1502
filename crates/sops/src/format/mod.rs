//! The sops stores: detecting the format from content, reading each into a [`Value`] tree plus
//! its `sops` node, and locating the metadata so it can be edited in place.

pub(crate) mod dotenv;
pub(crate) mod ini;
pub(crate) mod json;
pub(crate) mod yaml;
mod yaml_scan;

use std::ops::Range;

use crate::error::malformed;
use crate::metadata::Metadata;
use crate::tree::Value;
use crate::SopsError;

/// A sops store format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// YAML (one or several documents).
    Yaml,
    /// A JSON object.
    Json,
    /// `KEY=value` lines.
    Dotenv,
    /// INI sections (`[sops]` holds the metadata).
    Ini,
    /// Any file, stored as a JSON envelope `{"data": …, "sops": …}`.
    Binary,
}

impl Format {
    /// Detects the format from the content, never from a file name.
    pub fn detect(text: &str) -> Result<Self, SopsError> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            if let Ok(root) = json::parse(text) {
                if let json::Kind::Object(members) = &root.kind {
                    let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                    let data_is_string = matches!(
                        root.member("data").map(|d| &d.kind),
                        Some(json::Kind::Str(_))
                    );
                    if keys.len() == 2 && keys.contains(&"sops") && data_is_string {
                        return Ok(Self::Binary);
                    }
                }
                return Ok(Self::Json);
            }
        }
        if text
            .lines()
            .any(|l| l.starts_with("sops_mac=") || l.starts_with("sops_lastmodified="))
        {
            return Ok(Self::Dotenv);
        }
        if text.lines().any(|l| l.trim_end() == "sops:") {
            return Ok(Self::Yaml);
        }
        if ini::looks_like(text) {
            return Ok(Self::Ini);
        }
        Err(SopsError::NotSops {
            reason: "no sops metadata found (no `sops:` YAML key, JSON `\"sops\"` member, `sops_mac=` line or `[sops]` section)".into(),
        })
    }

    /// The format named like sops' `--input-type` (`yaml`, `json`, `dotenv`, `ini`, `binary`).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Yaml,
            Self::Json,
            Self::Dotenv,
            Self::Ini,
            Self::Binary,
        ]
        .into_iter()
        .find(|f| f.name() == name.trim().to_ascii_lowercase())
    }

    /// The name sops uses for `--input-type`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Yaml => "yaml",
            Self::Json => "json",
            Self::Dotenv => "dotenv",
            Self::Ini => "ini",
            Self::Binary => "binary",
        }
    }
}

/// A file as read: documents without metadata, the metadata node, and where it sits.
pub(crate) struct Parsed {
    pub documents: Vec<Value>,
    pub sops: Value,
    /// Byte ranges of the metadata in the text (one per YAML document).
    pub meta_ranges: Vec<Range<usize>>,
}

pub(crate) fn parse(text: &str, format: Format) -> Result<Parsed, SopsError> {
    match format {
        Format::Yaml => {
            let (documents, sops) = yaml::parse(text)?;
            Ok(Parsed {
                documents,
                sops,
                meta_ranges: yaml::metadata_ranges(text),
            })
        }
        Format::Json | Format::Binary => {
            let root = json::parse(text)?;
            let json::Kind::Object(members) = &root.kind else {
                return Err(SopsError::NotSops {
                    reason: "the JSON document is not an object".into(),
                });
            };
            let mut data = Vec::new();
            let mut sops = None;
            for (key, value) in members {
                if key == "sops" {
                    sops = Some(value);
                } else {
                    data.push((key.clone(), value.to_value()));
                }
            }
            let sops = sops.ok_or_else(|| SopsError::NotSops {
                reason: "the JSON object has no `sops` member".into(),
            })?;
            if format == Format::Binary
                && (data.len() != 1 || data[0].0 != "data" || !matches!(data[0].1, Value::Str(_)))
            {
                return Err(malformed(
                    "a binary envelope needs exactly one string member `data`",
                ));
            }
            Ok(Parsed {
                documents: vec![Value::Map(data)],
                meta_ranges: vec![sops.span.clone()],
                sops: sops.to_value(),
            })
        }
        Format::Dotenv => dotenv::parse(text),
        Format::Ini => ini::parse(text),
    }
}

/// What one age entry of the new metadata is: an existing entry kept byte-for-byte, or a new one.
#[derive(Debug)]
pub(crate) enum Slot {
    /// Keep the group's existing entry with this index.
    Keep(usize),
    /// A new entry.
    New {
        /// Recipient string.
        recipient: String,
        /// Armored age file.
        enc: String,
    },
}

/// Replace `range` of the original text by `replacement`.
#[derive(Debug)]
pub(crate) struct Edit {
    pub range: Range<usize>,
    pub replacement: String,
}

/// Applies non-overlapping edits to `text`.
/// Every line of `text` as `(start, end, line)`: `start..end` spans the line and its newline,
/// `line` is without the newline (or `\r\n`). The text formats find their edit positions this way.
pub(crate) fn spanned_lines(text: &str) -> impl Iterator<Item = (usize, usize, &str)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let end = text[start..]
            .find('\n')
            .map_or(text.len(), |i| start + i + 1);
        let line = (start, end, text[start..end].trim_end_matches(['\n', '\r']));
        start = end;
        Some(line)
    })
}

pub(crate) fn apply(text: &str, mut edits: Vec<Edit>) -> Result<String, SopsError> {
    edits.sort_by_key(|e| e.range.start);
    let mut out = String::with_capacity(text.len() + 4096);
    let mut at = 0;
    for edit in edits {
        if edit.range.start < at {
            return Err(malformed("internal: overlapping edits"));
        }
        out.push_str(&text[at..edit.range.start]);
        out.push_str(&edit.replacement);
        at = edit.range.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// The edits that give each key group the age entries of `plan`.
pub(crate) fn age_edits(
    text: &str,
    format: Format,
    meta: &Metadata,
    plan: &[Vec<Slot>],
) -> Result<Vec<Edit>, SopsError> {
    match format {
        Format::Yaml => yaml::age_edits(text, meta, plan),
        Format::Json | Format::Binary => json_age_edits(text, meta, plan),
        Format::Dotenv => dotenv::age_edits(text, meta, plan),
        Format::Ini => ini::age_edits(text, meta, plan),
    }
}

/// Where a JSON member's key starts, and the indentation of its line.
fn json_key_start<'t>(text: &'t str, key: &str, value: &json::Spanned) -> Option<(usize, &'t str)> {
    let start = text[..value.span.start].rfind(&json::quote(key))?;
    let line = text[..start].rfind('\n').map_or(0, |i| i + 1);
    Some((start, &text[line..start]))
}

fn json_age_edits(text: &str, meta: &Metadata, plan: &[Vec<Slot>]) -> Result<Vec<Edit>, SopsError> {
    let root = json::parse(text)?;
    let sops = root
        .member("sops")
        .ok_or_else(|| malformed("no `sops` member"))?;
    let json::Kind::Object(sops_members) = &sops.kind else {
        return Err(malformed("`sops` is not an object"));
    };
    // The indentation unit: a sops member's indent minus the `"sops"` key's.
    let (_, sops_indent) =
        json_key_start(text, "sops", sops).ok_or_else(|| malformed("cannot locate `sops`"))?;
    let member_indent = sops_members
        .first()
        .and_then(|(k, v)| json_key_start(text, k, v))
        .map_or("\t\t", |(_, indent)| indent);
    let unit = member_indent
        .strip_prefix(sops_indent)
        .filter(|u| !u.is_empty())
        .unwrap_or("\t")
        .to_owned();
    // Each group: its object and its `age` value, if any.
    let groups: Vec<(&json::Spanned, Option<&json::Spanned>)> = if meta.flat {
        vec![(sops, sops.member("age"))]
    } else {
        let groups = sops
            .member("key_groups")
            .ok_or_else(|| malformed("no `key_groups` in the sops member"))?;
        let json::Kind::Array(groups) = &groups.kind else {
            return Err(malformed("`key_groups` is not an array"));
        };
        groups.iter().map(|g| (g, g.member("age"))).collect()
    };
    if groups.len() != plan.len() {
        return Err(malformed("the key groups do not match the parsed metadata"));
    }
    // Entry order follows the file: `enc` first in 3.13+ files.
    let recipient_first = groups
        .iter()
        .filter_map(|(_, age)| match age.map(|a| &a.kind) {
            Some(json::Kind::Array(items)) => items.first(),
            _ => None,
        })
        .find_map(|item| match &item.kind {
            json::Kind::Object(members) => members.first().map(|(k, _)| k == "recipient"),
            _ => None,
        })
        .unwrap_or(true);
    let entry = |indent: &str, recipient: &str, enc: &str| {
        let inner = format!("{indent}{unit}");
        let r = format!("{inner}\"recipient\": {}", json::quote(recipient));
        let e = format!("{inner}\"enc\": {}", json::quote(enc));
        let (a, b) = if recipient_first { (r, e) } else { (e, r) };
        format!("{{\n{a},\n{b}\n{indent}}}")
    };
    let array = |key_indent: &str, slots: &[Slot]| -> String {
        let item_indent = format!("{key_indent}{unit}");
        let items: Vec<String> = slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::New { recipient, enc } => Some(format!(
                    "{item_indent}{}",
                    entry(&item_indent, recipient, enc)
                )),
                Slot::Keep(_) => None,
            })
            .collect();
        format!("[\n{}\n{key_indent}]", items.join(",\n"))
    };
    let mut edits = Vec::new();
    for ((object, age), slots) in groups.iter().zip(plan) {
        let items: &[json::Spanned] = match age.map(|a| &a.kind) {
            Some(json::Kind::Array(items)) => items,
            Some(json::Kind::Null) | None => &[],
            Some(_) => return Err(malformed("`age` is not an array")),
        };
        match (age, items.first(), items.last()) {
            (Some(array_value), Some(first), Some(last)) => {
                if slots.is_empty() {
                    // Every age key goes: drop the member (flat) or write `null` (groups).
                    if meta.flat {
                        let (key_start, _) = json_key_start(text, "age", array_value)
                            .ok_or_else(|| malformed("cannot locate `age`"))?;
                        let after = &text[array_value.span.end..];
                        let comma = after.find(',').filter(|c| after[..*c].trim().is_empty());
                        let next = comma.map(|c| {
                            let rest = &after[c + 1..];
                            array_value.span.end + c + 1 + (rest.len() - rest.trim_start().len())
                        });
                        let end = next.ok_or_else(|| SopsError::Unsupported {
                            action: "remove every age key".into(),
                            reason: "`age` is the last metadata member".into(),
                        })?;
                        edits.push(Edit {
                            range: key_start..end,
                            replacement: String::new(),
                        });
                    } else {
                        edits.push(Edit {
                            range: array_value.span.clone(),
                            replacement: "null".into(),
                        });
                    }
                    continue;
                }
                let separator = match items.get(1) {
                    Some(second) => text[first.span.end..second.span.start].to_owned(),
                    None => format!(",{}", &text[array_value.span.start + 1..first.span.start]),
                };
                let line_start = text[..first.span.start].rfind('\n').map_or(0, |i| i + 1);
                let item_indent = &text[line_start..first.span.start];
                let mut pieces = Vec::new();
                for slot in slots {
                    pieces.push(match slot {
                        Slot::Keep(index) => {
                            let item = items
                                .get(*index)
                                .ok_or_else(|| malformed("age entry index"))?;
                            text[item.span.clone()].to_owned()
                        }
                        Slot::New { recipient, enc } => entry(item_indent, recipient, enc),
                    });
                }
                edits.push(Edit {
                    range: first.span.start..last.span.end,
                    replacement: pieces.join(&separator),
                });
            }
            _ if slots.is_empty() => {}
            (Some(empty_value), _, _) => {
                let (_, key_indent) = json_key_start(text, "age", empty_value)
                    .ok_or_else(|| malformed("cannot locate `age`"))?;
                edits.push(Edit {
                    range: empty_value.span.clone(),
                    replacement: array(key_indent, slots),
                });
            }
            (None, _, _) => {
                let json::Kind::Object(members) = &object.kind else {
                    return Err(malformed("a key group is not an object"));
                };
                if meta.flat {
                    // Before `lastmodified` (3.11 order) or at the sorted place (3.13+).
                    let names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                    let sorted = names.windows(2).all(|w| w[0] <= w[1]);
                    let before = members
                        .iter()
                        .find(|(k, _)| {
                            if sorted {
                                k.as_str() > "age"
                            } else {
                                k == "lastmodified"
                            }
                        })
                        .ok_or_else(|| malformed("no `lastmodified` in the sops member"))?;
                    let (at, key_indent) = json_key_start(text, &before.0, &before.1)
                        .ok_or_else(|| malformed("cannot locate a sops member"))?;
                    edits.push(Edit {
                        range: at..at,
                        replacement: format!(
                            "\"age\": {},\n{key_indent}",
                            array(key_indent, slots)
                        ),
                    });
                } else {
                    let (last_key, last_value) = members
                        .last()
                        .ok_or_else(|| malformed("an empty key group"))?;
                    let (_, key_indent) = json_key_start(text, last_key, last_value)
                        .ok_or_else(|| malformed("cannot locate a key group member"))?;
                    let at = last_value.span.end;
                    edits.push(Edit {
                        range: at..at,
                        replacement: format!(
                            ",\n{key_indent}\"age\": {}",
                            array(key_indent, slots)
                        ),
                    });
                }
            }
        }
    }
    Ok(edits)
}

/// A non-age master key entry to take out of the metadata: its group, its kind as the file
/// names it (`pgp`, `kms`, …) and its index in that kind's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Removal {
    pub group: usize,
    pub kind: String,
    pub index: usize,
}

/// The edits that take `removals` out of the metadata, as sops writes a file without them: a
/// kind whose every entry goes loses its key (`pgp:` disappears), otherwise only the entries go.
pub(crate) fn master_key_removals(
    text: &str,
    format: Format,
    meta: &Metadata,
    removals: &[Removal],
) -> Result<Vec<Edit>, SopsError> {
    if removals.is_empty() {
        return Ok(Vec::new());
    }
    match format {
        Format::Yaml => yaml::master_key_removals(text, meta, removals),
        Format::Json | Format::Binary => json_master_key_removals(text, meta, removals),
        Format::Dotenv => dotenv::master_key_removals(text, meta, removals),
        Format::Ini => ini::master_key_removals(text, meta, removals),
    }
}

/// The kinds and indices of `removals` in `group`, kind by kind (indices sorted).
pub(crate) fn removals_by_kind(removals: &[Removal], group: usize) -> Vec<(&str, Vec<usize>)> {
    let mut out: Vec<(&str, Vec<usize>)> = Vec::new();
    for removal in removals.iter().filter(|r| r.group == group) {
        match out.iter_mut().find(|(k, _)| *k == removal.kind) {
            Some((_, indices)) => indices.push(removal.index),
            None => out.push((&removal.kind, vec![removal.index])),
        }
    }
    for (_, indices) in &mut out {
        indices.sort_unstable();
        indices.dedup();
    }
    out
}

/// A flattened metadata key (`pgp__list_2__map_fp`, `key_groups__list_0__map_pgp__list_2__…`)
/// after `removals`: `None` when its entry goes, otherwise the key with its list index moved down
/// past the removed entries before it (sops numbers the entries it writes from 0).
pub(crate) fn renumbered_flat_key(
    key: &str,
    flat: bool,
    removals: &[Removal],
    group_count: usize,
) -> Option<String> {
    for group in 0..group_count {
        for (kind, indices) in removals_by_kind(removals, group) {
            let prefix = if flat {
                format!("{kind}__list_")
            } else {
                format!("key_groups__list_{group}__map_{kind}__list_")
            };
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            let (number, tail) = rest.split_once("__").unwrap_or((rest, ""));
            let Ok(index) = number.parse::<usize>() else {
                continue;
            };
            if indices.contains(&index) {
                return None;
            }
            let shift = indices.iter().filter(|i| **i < index).count();
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!("__{tail}")
            };
            return Some(format!("{prefix}{}{tail}", index - shift));
        }
    }
    Some(key.to_owned())
}

fn json_master_key_removals(
    text: &str,
    meta: &Metadata,
    removals: &[Removal],
) -> Result<Vec<Edit>, SopsError> {
    let root = json::parse(text)?;
    let sops = root
        .member("sops")
        .ok_or_else(|| malformed("no `sops` member"))?;
    let groups: Vec<&json::Spanned> = if meta.flat {
        vec![sops]
    } else {
        match sops.member("key_groups").map(|g| &g.kind) {
            Some(json::Kind::Array(groups)) => groups.iter().collect(),
            _ => return Err(malformed("no `key_groups` array in the sops member")),
        }
    };
    let mut edits = Vec::new();
    for (group_index, object) in groups.iter().enumerate() {
        let json::Kind::Object(members) = &object.kind else {
            return Err(malformed("a key group is not an object"));
        };
        for (kind, indices) in removals_by_kind(removals, group_index) {
            let position = members.iter().position(|(k, _)| k == kind).ok_or_else(|| {
                malformed(format!("no `{kind}` in key group {}", group_index + 1))
            })?;
            let value = &members[position].1;
            let json::Kind::Array(items) = &value.kind else {
                return Err(malformed(format!("`{kind}` is not an array")));
            };
            let kept: Vec<&json::Spanned> = items
                .iter()
                .enumerate()
                .filter(|(i, _)| !indices.contains(i))
                .map(|(_, item)| item)
                .collect();
            if kept.len() == items.len() {
                continue;
            }
            if kept.is_empty() {
                // The whole member goes, with the separator on one side of it.
                let (key_start, _) = json_key_start(text, kind, value)
                    .ok_or_else(|| malformed(format!("cannot locate `{kind}`")))?;
                let range = match members.get(position + 1) {
                    Some((next_key, next_value)) => {
                        let (next_start, _) = json_key_start(text, next_key, next_value)
                            .ok_or_else(|| malformed("cannot locate a sops member"))?;
                        key_start..next_start
                    }
                    None => {
                        let previous_end = position
                            .checked_sub(1)
                            .and_then(|p| members.get(p))
                            .map(|(_, v)| v.span.end)
                            .ok_or_else(|| SopsError::Unsupported {
                                action: format!("remove every `{kind}` key"),
                                reason: "the key group would be left empty".into(),
                            })?;
                        previous_end..value.span.end
                    }
                };
                edits.push(Edit {
                    range,
                    replacement: String::new(),
                });
                continue;
            }
            let (Some(first), Some(last)) = (items.first(), items.last()) else {
                continue;
            };
            let separator = match items.get(1) {
                Some(second) => text[first.span.end..second.span.start].to_owned(),
                None => ",".into(),
            };
            let pieces: Vec<&str> = kept.iter().map(|item| &text[item.span.clone()]).collect();
            edits.push(Edit {
                range: first.span.start..last.span.end,
                replacement: pieces.join(&separator),
            });
        }
    }
    Ok(edits)
}
