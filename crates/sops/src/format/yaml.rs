//! YAML: read with `yaml_serde`, edit the `sops:` block as text (never re-serialised), so every
//! byte outside the changed entries stays identical.

use std::ops::Range;

use serde::Deserialize as _;

use super::{Edit, Slot};
use crate::error::malformed;
use crate::metadata::Metadata;
use crate::tree::Value;
use crate::SopsError;

/// Documents (without their `sops` key) and the first document's `sops` node.
pub(crate) fn parse(text: &str) -> Result<(Vec<Value>, Value), SopsError> {
    let mut documents = Vec::new();
    let mut sops = None;
    for document in yaml_serde::Deserializer::from_str(text) {
        let raw = yaml_serde::Value::deserialize(document)
            .map_err(|e| malformed(format!("YAML: {e}")))?;
        let mut value = convert(raw, 0)?;
        if let Value::Map(entries) = &mut value {
            if let Some(index) = entries.iter().position(|(k, _)| k == "sops") {
                let (_, node) = entries.remove(index);
                // Metadata is read from the first document that has it.
                if sops.is_none() {
                    sops = Some(node);
                }
            }
        }
        documents.push(value);
    }
    let sops = sops.ok_or_else(|| SopsError::NotSops {
        reason: "the YAML has no top-level `sops` key".into(),
    })?;
    Ok((documents, sops))
}

fn convert(raw: yaml_serde::Value, depth: usize) -> Result<Value, SopsError> {
    if depth > 256 {
        return Err(malformed("YAML nesting too deep"));
    }
    Ok(match raw {
        yaml_serde::Value::Null => Value::Null,
        yaml_serde::Value::Bool(b) => Value::Bool(b),
        yaml_serde::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        yaml_serde::Value::String(s) => Value::Str(s),
        yaml_serde::Value::Sequence(items) => Value::List(
            items
                .into_iter()
                .map(|v| convert(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        yaml_serde::Value::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = match k {
                    yaml_serde::Value::String(s) => s,
                    other => return Err(malformed(format!("YAML: non-string key {other:?}"))),
                };
                entries.push((key, convert(v, depth + 1)?));
            }
            Value::Map(entries)
        }
        yaml_serde::Value::Tagged(tagged) => convert(tagged.value, depth + 1)?,
    })
}

#[derive(Debug)]
struct Line<'a> {
    start: usize,
    end: usize,
    indent: usize,
    content: &'a str,
}

impl Line<'_> {
    fn blank(&self) -> bool {
        self.content.trim().is_empty()
    }
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = text[start..]
            .find('\n')
            .map_or(text.len(), |i| start + i + 1);
        let raw = text[start..end].trim_end_matches(['\n', '\r']);
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        out.push(Line {
            start,
            end,
            indent,
            content: &raw[indent..],
        });
        start = end;
    }
    out
}

fn key_is(content: &str, key: &str) -> bool {
    content
        .strip_prefix(key)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// Line-index ranges of each top-level `sops:` block (key line excluded).
fn sops_blocks(lines: &[Line<'_>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if line.indent == 0 && key_is(line.content, "sops") && line.content.trim_end() == "sops:" {
            let mut end = i + 1;
            while end < lines.len() && (lines[end].blank() || lines[end].indent > 0) {
                end += 1;
            }
            while end > i + 1 && lines[end - 1].blank() {
                end -= 1;
            }
            out.push(i + 1..end);
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Byte ranges of every `sops:` block (for in-place metadata edits).
pub(crate) fn metadata_ranges(text: &str) -> Vec<Range<usize>> {
    let lines = lines(text);
    sops_blocks(&lines)
        .into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| lines[r.start].start..lines[r.end - 1].end)
        .collect()
}

/// The value lines of the key on line `key_line` whose key starts at column `key_col`.
fn value_lines(lines: &[Line<'_>], key_line: usize, key_col: usize, limit: usize) -> Range<usize> {
    let mut end = key_line + 1;
    while end < limit {
        let line = &lines[end];
        let belongs = line.blank()
            || line.indent > key_col
            || (line.indent == key_col && line.content.starts_with("- "));
        if !belongs {
            break;
        }
        end += 1;
    }
    while end > key_line + 1 && lines[end - 1].blank() {
        end -= 1;
    }
    key_line + 1..end
}

/// Items of a block sequence occupying `range`: (dash column, item line ranges).
fn items(lines: &[Line<'_>], range: Range<usize>) -> Option<(usize, Vec<Range<usize>>)> {
    let first = range.clone().find(|&i| !lines[i].blank())?;
    if !lines[first].content.starts_with("- ") && lines[first].content != "-" {
        return None;
    }
    let dash = lines[first].indent;
    let mut starts: Vec<usize> = range
        .clone()
        .filter(|&i| lines[i].indent == dash && lines[i].content.starts_with('-'))
        .collect();
    starts.push(range.end);
    Some((dash, starts.windows(2).map(|w| w[0]..w[1]).collect()))
}

/// A located age list inside one `sops:` block.
struct AgeList {
    dash: usize,
    items: Vec<Range<usize>>,
}

fn find_key(lines: &[Line<'_>], range: Range<usize>, col: usize, key: &str) -> Option<usize> {
    range
        .into_iter()
        .find(|&i| lines[i].indent == col && key_is(lines[i].content, key))
}

fn age_lists(
    lines: &[Line<'_>],
    block: Range<usize>,
    meta: &Metadata,
) -> Result<Vec<AgeList>, SopsError> {
    let child_col = block
        .clone()
        .find(|&i| !lines[i].blank())
        .map(|i| lines[i].indent)
        .ok_or_else(|| malformed("empty sops block"))?;
    let mut lists = Vec::new();
    let list_at = |key_line: usize, key_col: usize, limit: usize| -> Result<AgeList, SopsError> {
        let values = value_lines(lines, key_line, key_col, limit);
        if values.is_empty() {
            return Err(SopsError::Unsupported {
                action: "edit the age keys".into(),
                reason: "a key group has an empty `age` list".into(),
            });
        }
        let (dash, items) =
            items(lines, values).ok_or_else(|| malformed("`age` is not a block sequence"))?;
        Ok(AgeList { dash, items })
    };
    if meta.flat {
        let key_line = find_key(lines, block.clone(), child_col, "age").ok_or_else(|| {
            SopsError::Unsupported {
                action: "edit the age keys".into(),
                reason: "the sops block has no `age` list".into(),
            }
        })?;
        lists.push(list_at(key_line, child_col, block.end)?);
    } else {
        let groups_line = find_key(lines, block.clone(), child_col, "key_groups")
            .ok_or_else(|| malformed("no `key_groups` in the sops block"))?;
        let values = value_lines(lines, groups_line, child_col, block.end);
        let (dash, groups) = items(lines, values)
            .ok_or_else(|| malformed("`key_groups` is not a block sequence"))?;
        for group in groups {
            let first = &lines[group.start];
            let after_dash = first.content[1..].trim_start();
            let key_line = if key_is(after_dash, "age") {
                Some(group.start)
            } else {
                find_key(lines, group.start + 1..group.end, dash + 2, "age")
            };
            let key_line = key_line.ok_or_else(|| SopsError::Unsupported {
                action: "edit the age keys".into(),
                reason: "a key group has no `age` list".into(),
            })?;
            lists.push(list_at(key_line, dash + 2, group.end)?);
        }
    }
    Ok(lists)
}

/// The edits that give each group the age entries of `plan`.
pub(crate) fn age_edits(
    text: &str,
    meta: &Metadata,
    plan: &[Vec<Slot>],
) -> Result<Vec<Edit>, SopsError> {
    let lines = lines(text);
    let mut edits = Vec::new();
    for block in sops_blocks(&lines) {
        let lists = age_lists(&lines, block, meta)?;
        if lists.len() != meta.groups.len() || lists.len() != plan.len() {
            return Err(malformed(
                "the sops block's key groups do not match its parsed metadata",
            ));
        }
        for ((list, group), slots) in lists.iter().zip(&meta.groups).zip(plan) {
            if list.items.len() != group.age.len() {
                return Err(malformed(
                    "the sops block's age entries do not match its parsed metadata",
                ));
            }
            let template = &list.items[0];
            let first_line = &lines[template.start];
            let recipient_first = key_is(first_line.content[1..].trim_start(), "recipient");
            let block_indent = (template.start..template.end)
                .find(|&i| lines[i].content.starts_with("-----BEGIN"))
                .map_or(list.dash + 4, |i| lines[i].indent);
            let mut new_text = String::new();
            for slot in slots {
                match slot {
                    Slot::Keep(index) => {
                        let item = &list.items[*index];
                        new_text.push_str(&text[lines[item.start].start..lines[item.end - 1].end]);
                    }
                    Slot::New { recipient, enc } => {
                        new_text.push_str(&item_text(
                            list.dash,
                            block_indent,
                            recipient_first,
                            recipient,
                            enc,
                        ));
                    }
                }
            }
            let last = list.items.last().map_or(template.end, |r| r.end);
            let range = lines[template.start].start..lines[last - 1].end;
            if !text[range.clone()].ends_with('\n') && new_text.ends_with('\n') {
                new_text.pop();
            }
            edits.push(Edit {
                range,
                replacement: new_text,
            });
        }
    }
    Ok(edits)
}

fn item_text(
    dash: usize,
    block: usize,
    recipient_first: bool,
    recipient: &str,
    enc: &str,
) -> String {
    let pad = " ".repeat(dash);
    let inner = " ".repeat(dash + 2);
    let blk = " ".repeat(block);
    let mut armor = String::new();
    for line in enc.lines() {
        armor.push_str(&blk);
        armor.push_str(line);
        armor.push('\n');
    }
    if recipient_first {
        format!("{pad}- recipient: {recipient}\n{inner}enc: |\n{armor}")
    } else {
        format!("{pad}- enc: |\n{armor}{inner}recipient: {recipient}\n")
    }
}
