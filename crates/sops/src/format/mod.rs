//! The sops stores: detecting the format from content, reading each into a [`Value`] tree plus
//! its `sops` node, and locating the metadata so it can be edited in place.

pub(crate) mod dotenv;
pub(crate) mod ini;
pub(crate) mod json;
pub(crate) mod yaml;

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
                    if keys.len() == 2 && keys.contains(&"data") && keys.contains(&"sops") {
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

fn json_age_edits(text: &str, meta: &Metadata, plan: &[Vec<Slot>]) -> Result<Vec<Edit>, SopsError> {
    let root = json::parse(text)?;
    let sops = root
        .member("sops")
        .ok_or_else(|| malformed("no `sops` member"))?;
    let arrays: Vec<&json::Spanned> = if meta.flat {
        vec![sops.member("age").ok_or_else(unsupported_empty)?]
    } else {
        let groups = sops
            .member("key_groups")
            .ok_or_else(|| malformed("no `key_groups` in the sops member"))?;
        let json::Kind::Array(groups) = &groups.kind else {
            return Err(malformed("`key_groups` is not an array"));
        };
        groups
            .iter()
            .map(|g| g.member("age").ok_or_else(unsupported_empty))
            .collect::<Result<_, _>>()?
    };
    if arrays.len() != plan.len() {
        return Err(malformed("the key groups do not match the parsed metadata"));
    }
    let mut edits = Vec::new();
    for (array, slots) in arrays.iter().zip(plan) {
        let json::Kind::Array(items) = &array.kind else {
            return Err(unsupported_empty());
        };
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return Err(unsupported_empty());
        };
        let separator = match items.get(1) {
            Some(second) => text[first.span.end..second.span.start].to_owned(),
            None => format!(",{}", &text[array.span.start + 1..first.span.start]),
        };
        let line_start = text[..first.span.start].rfind('\n').map_or(0, |i| i + 1);
        let item_indent = &text[line_start..first.span.start];
        let json::Kind::Object(members) = &first.kind else {
            return Err(malformed("an age entry is not an object"));
        };
        let (first_key, first_value) = members
            .first()
            .ok_or_else(|| malformed("empty age entry"))?;
        let key_start = text[..first_value.span.start]
            .rfind(&json::quote(first_key))
            .ok_or_else(|| malformed("cannot locate an age entry key"))?;
        let member_line = text[..key_start].rfind('\n').map_or(0, |i| i + 1);
        let member_indent = &text[member_line..key_start];
        let colon = &text[key_start + json::quote(first_key).len()..first_value.span.start];
        let recipient_first = first_key == "recipient";
        let mut pieces = Vec::new();
        for slot in slots {
            pieces.push(match slot {
                Slot::Keep(index) => {
                    let item = items
                        .get(*index)
                        .ok_or_else(|| malformed("age entry index"))?;
                    text[item.span.clone()].to_owned()
                }
                Slot::New { recipient, enc } => {
                    let r = format!(
                        "{member_indent}\"recipient\"{colon}{}",
                        json::quote(recipient)
                    );
                    let e = format!("{member_indent}\"enc\"{colon}{}", json::quote(enc));
                    let (a, b) = if recipient_first { (r, e) } else { (e, r) };
                    format!("{{\n{a},\n{b}\n{item_indent}}}")
                }
            });
        }
        edits.push(Edit {
            range: first.span.start..last.span.end,
            replacement: pieces.join(&separator),
        });
    }
    Ok(edits)
}

fn unsupported_empty() -> SopsError {
    SopsError::Unsupported {
        action: "edit the age keys".into(),
        reason: "a key group has no age entries to take the layout from".into(),
    }
}
