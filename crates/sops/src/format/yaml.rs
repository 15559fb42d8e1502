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
    // The block YAML sops writes is scanned directly; anything else goes through libyaml.
    let documents = match super::yaml_scan::scan(text) {
        Some(documents) => documents,
        None => full_parse(text)?,
    };
    take_metadata(documents)
}

/// Every document of `text` through the full YAML reader.
fn full_parse(text: &str) -> Result<Vec<Value>, SopsError> {
    let mut documents = Vec::new();
    for document in yaml_serde::Deserializer::from_str(text) {
        let raw = yaml_serde::Value::deserialize(document)
            .map_err(|e| malformed(format!("YAML: {e}")))?;
        documents.push(convert(raw, 0)?);
    }
    Ok(documents)
}

/// The full reader's tree of one document (the scanner's tests compare against it).
#[cfg(test)]
pub(crate) fn convert_for_tests(raw: yaml_serde::Value) -> Option<Value> {
    convert(raw, 0).ok()
}

/// Takes the `sops` key out of each document; the metadata is the first document's that has it.
fn take_metadata(parsed: Vec<Value>) -> Result<(Vec<Value>, Value), SopsError> {
    let mut documents = Vec::with_capacity(parsed.len());
    let mut sops = None;
    for mut value in parsed {
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

/// How one reader of YAML takes what sops' value tree has no place for. The rest of the
/// conversion (scalars, sequences, the depth limit) is the same for every reader: [`tree`].
pub(crate) struct TreeReading {
    /// The error for nesting deeper than [`MAX_DEPTH`] levels.
    pub(crate) too_deep: fn() -> SopsError,
    /// A mapping key as a string, or why it is refused.
    pub(crate) key: fn(yaml_serde::Value) -> Result<String, SopsError>,
    /// Whether a tagged value (`!tag`) is read as its value (`Ok`) or refused.
    pub(crate) tagged: fn() -> Result<(), SopsError>,
}

/// How deep a YAML tree may nest before it is refused (a guard against stack exhaustion).
pub(crate) const MAX_DEPTH: usize = 256;

/// A file sops wrote: its keys are strings, a tag is dropped and its value kept.
const ENCRYPTED_FILE: TreeReading = TreeReading {
    too_deep: || malformed("YAML nesting too deep"),
    key: |key| match key {
        yaml_serde::Value::String(s) => Ok(s),
        other => Err(malformed(format!("YAML: non-string key {other:?}"))),
    },
    tagged: || Ok(()),
};

fn convert(raw: yaml_serde::Value, depth: usize) -> Result<Value, SopsError> {
    tree(raw, depth, &ENCRYPTED_FILE)
}

/// `raw` (at `depth`) as sops' value tree, what it has no place for taken by `reading`'s rules.
pub(crate) fn tree(
    raw: yaml_serde::Value,
    depth: usize,
    reading: &TreeReading,
) -> Result<Value, SopsError> {
    if depth > MAX_DEPTH {
        return Err((reading.too_deep)());
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
                .map(|v| tree(v, depth + 1, reading))
                .collect::<Result<_, _>>()?,
        ),
        yaml_serde::Value::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = (reading.key)(k)?;
                entries.push((key, tree(v, depth + 1, reading)?));
            }
            Value::Map(entries)
        }
        yaml_serde::Value::Tagged(tagged) => {
            (reading.tagged)()?;
            tree(tagged.value, depth + 1, reading)?
        }
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
    super::spanned_lines(text)
        .map(|(start, end, raw)| {
            let indent = raw.len() - raw.trim_start_matches(' ').len();
            Line {
                start,
                end,
                indent,
                content: &raw[indent..],
            }
        })
        .collect()
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

/// Where one key group's age list is inside a `sops:` block.
enum AgeList {
    /// A block sequence of entries.
    Items {
        key_line: usize,
        key_col: usize,
        dash: usize,
        items: Vec<Range<usize>>,
    },
    /// `age: []` on `line`.
    EmptyInline { line: usize, key_col: usize },
    /// No `age` key: one would go at byte `at`, its key at `key_col`.
    Missing { at: usize, key_col: usize },
}

/// How new entries look: dash column offset from the key, block-scalar column offset from the
/// dash, and whether `recipient` comes before `enc` (3.11/3.12) or after (3.13+).
#[derive(Clone, Copy)]
struct Style {
    dash_offset: usize,
    block_offset: usize,
    recipient_first: bool,
}

fn find_key(lines: &[Line<'_>], range: Range<usize>, col: usize, key: &str) -> Option<usize> {
    range
        .into_iter()
        .find(|&i| lines[i].indent == col && key_is(lines[i].content, key))
}

fn is_empty_inline(content: &str) -> bool {
    let value = content.trim_start_matches("- ").trim_start();
    value
        .strip_prefix("age:")
        .is_some_and(|rest| rest.trim() == "[]")
}

fn list_at(
    lines: &[Line<'_>],
    key_line: usize,
    key_col: usize,
    limit: usize,
) -> Result<AgeList, SopsError> {
    if is_empty_inline(lines[key_line].content) {
        return Ok(AgeList::EmptyInline {
            line: key_line,
            key_col,
        });
    }
    let values = value_lines(lines, key_line, key_col, limit);
    if values.is_empty() {
        return Err(malformed("`age` has no entries and is not `[]`"));
    }
    let (dash, items) =
        items(lines, values).ok_or_else(|| malformed("`age` is not a block sequence"))?;
    Ok(AgeList::Items {
        key_line,
        key_col,
        dash,
        items,
    })
}

/// The child keys (name, line) of the lines in `range` at column `col`.
fn child_keys<'a>(lines: &[Line<'a>], range: Range<usize>, col: usize) -> Vec<(&'a str, usize)> {
    range
        .filter(|&i| lines[i].indent == col && !lines[i].content.starts_with('-'))
        .filter_map(|i| lines[i].content.split_once(':').map(|(k, _)| (k, i)))
        .collect()
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
    if meta.flat {
        match find_key(lines, block.clone(), child_col, "age") {
            Some(key_line) => lists.push(list_at(lines, key_line, child_col, block.end)?),
            None => {
                // Insert where sops would have written it: before `lastmodified` (3.11 order), or
                // at its alphabetical place when the block is sorted (3.13+).
                let keys = child_keys(lines, block.clone(), child_col);
                let sorted = keys.windows(2).all(|w| w[0].0 <= w[1].0);
                let before = if sorted {
                    keys.iter().find(|(k, _)| *k > "age").map(|(_, i)| *i)
                } else {
                    keys.iter()
                        .find(|(k, _)| *k == "lastmodified")
                        .map(|(_, i)| *i)
                };
                let at = before.map_or(lines[block.end - 1].end, |i| lines[i].start);
                lists.push(AgeList::Missing {
                    at,
                    key_col: child_col,
                });
            }
        }
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
            match key_line {
                Some(key_line) => lists.push(list_at(lines, key_line, dash + 2, group.end)?),
                None => lists.push(AgeList::Missing {
                    at: lines[group.end - 1].end,
                    key_col: dash + 2,
                }),
            }
        }
    }
    Ok(lists)
}

fn style_of(lines: &[Line<'_>], list: &AgeList) -> Option<Style> {
    let AgeList::Items {
        key_col,
        dash,
        items,
        ..
    } = list
    else {
        return None;
    };
    let template = items.first()?;
    let first_line = &lines[template.start];
    let block = (template.start..template.end)
        .find(|&i| lines[i].content.starts_with("-----BEGIN"))
        .map_or(dash + 4, |i| lines[i].indent);
    Some(Style {
        dash_offset: dash.saturating_sub(*key_col),
        block_offset: block.saturating_sub(*dash),
        recipient_first: key_is(first_line.content[1..].trim_start(), "recipient"),
    })
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
        let child_col = block
            .clone()
            .find(|&i| !lines[i].blank())
            .map_or(4, |i| lines[i].indent);
        let lists = age_lists(&lines, block, meta)?;
        if lists.len() != meta.groups.len() || lists.len() != plan.len() {
            return Err(malformed(
                "the sops block's key groups do not match its parsed metadata",
            ));
        }
        // Entries copy the style of an existing entry, preferably of the same group.
        let any_style = lists.iter().find_map(|l| style_of(&lines, l));
        for ((list, group), slots) in lists.iter().zip(&meta.groups).zip(plan) {
            let count = match list {
                AgeList::Items { items, .. } => items.len(),
                _ => 0,
            };
            if count != group.age.len() {
                return Err(malformed(
                    "the sops block's age entries do not match its parsed metadata",
                ));
            }
            let nested = !meta.flat;
            let style = style_of(&lines, list).or(any_style).unwrap_or(Style {
                dash_offset: if nested { 2 } else { child_col },
                block_offset: 4,
                recipient_first: true,
            });
            let key_col = match list {
                AgeList::Items { key_col, .. }
                | AgeList::EmptyInline { key_col, .. }
                | AgeList::Missing { key_col, .. } => *key_col,
            };
            let dash = key_col + style.dash_offset;
            let mut new_text = String::new();
            for slot in slots {
                match slot {
                    Slot::Keep(index) => {
                        let AgeList::Items { items, .. } = list else {
                            return Err(malformed("internal: kept entry of an empty list"));
                        };
                        let item = items
                            .get(*index)
                            .ok_or_else(|| malformed("internal: age entry index"))?;
                        new_text.push_str(&text[lines[item.start].start..lines[item.end - 1].end]);
                    }
                    Slot::New { recipient, enc } => new_text.push_str(&item_text(
                        dash,
                        dash + style.block_offset,
                        style.recipient_first,
                        recipient,
                        enc,
                    )),
                }
            }
            match list {
                AgeList::Items {
                    key_line, items, ..
                } => {
                    let (first, last) = match (items.first(), items.last()) {
                        (Some(f), Some(l)) => (f, l),
                        _ => return Err(malformed("empty age list")),
                    };
                    let end = lines[last.end - 1].end;
                    if new_text.is_empty() {
                        // Every age key goes: drop the key (flat) or leave `age: []` (groups).
                        let key = &lines[*key_line];
                        let range = if nested {
                            let after_key = key.start
                                + key.indent
                                + key.content.find("age:").unwrap_or(0)
                                + "age:".len();
                            edits.push(Edit {
                                range: after_key..end,
                                replacement: " []\n".into(),
                            });
                            continue;
                        } else {
                            key.start..end
                        };
                        edits.push(Edit {
                            range,
                            replacement: String::new(),
                        });
                        continue;
                    }
                    let range = lines[first.start].start..end;
                    if !text[range.clone()].ends_with('\n') && new_text.ends_with('\n') {
                        new_text.pop();
                    }
                    edits.push(Edit {
                        range,
                        replacement: new_text,
                    });
                }
                _ if new_text.is_empty() => {}
                AgeList::EmptyInline { line, .. } => {
                    let l = &lines[*line];
                    let brackets = l.start + l.indent + l.content.rfind("[]").unwrap_or(0);
                    let colon = text[..brackets].rfind(':').map_or(brackets, |c| c + 1);
                    edits.push(Edit {
                        range: colon..l.end,
                        replacement: format!("\n{new_text}"),
                    });
                }
                AgeList::Missing { at, key_col } => {
                    let mut insert = format!("{}age:\n{new_text}", " ".repeat(*key_col));
                    if *at > 0 && !text[..*at].ends_with('\n') {
                        insert.insert(0, '\n');
                    }
                    edits.push(Edit {
                        range: *at..*at,
                        replacement: insert,
                    });
                }
            }
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

/// One key group's lines in a `sops:` block: the line range and the column of its keys (the
/// first key of a `key_groups` item sits on the dash line).
struct GroupLines {
    range: Range<usize>,
    key_col: usize,
    dash_line: Option<usize>,
}

fn group_lines(
    lines: &[Line<'_>],
    block: Range<usize>,
    meta: &Metadata,
) -> Result<Vec<GroupLines>, SopsError> {
    let child_col = block
        .clone()
        .find(|&i| !lines[i].blank())
        .map(|i| lines[i].indent)
        .ok_or_else(|| malformed("empty sops block"))?;
    if meta.flat {
        return Ok(vec![GroupLines {
            range: block,
            key_col: child_col,
            dash_line: None,
        }]);
    }
    let groups_line = find_key(lines, block.clone(), child_col, "key_groups")
        .ok_or_else(|| malformed("no `key_groups` in the sops block"))?;
    let values = value_lines(lines, groups_line, child_col, block.end);
    let (dash, groups) =
        items(lines, values).ok_or_else(|| malformed("`key_groups` is not a block sequence"))?;
    Ok(groups
        .into_iter()
        .map(|range| GroupLines {
            dash_line: Some(range.start),
            range,
            key_col: dash + 2,
        })
        .collect())
}

/// The edits that take the master key entries of `removals` out of every `sops:` block.
pub(crate) fn master_key_removals(
    text: &str,
    meta: &Metadata,
    removals: &[super::Removal],
) -> Result<Vec<Edit>, SopsError> {
    let lines = lines(text);
    let mut edits = Vec::new();
    for block in sops_blocks(&lines) {
        let groups = group_lines(&lines, block, meta)?;
        if groups.len() != meta.groups.len() {
            return Err(malformed(
                "the sops block's key groups do not match its parsed metadata",
            ));
        }
        for (index, group) in groups.iter().enumerate() {
            for (kind, indices) in super::removals_by_kind(removals, index) {
                let on_dash_line = group.dash_line.filter(|&d| {
                    key_is(lines[d].content.get(1..).unwrap_or("").trim_start(), kind)
                });
                let key_line = on_dash_line
                    .or_else(|| find_key(&lines, group.range.clone(), group.key_col, kind))
                    .ok_or_else(|| malformed(format!("no `{kind}` in key group {}", index + 1)))?;
                let values = value_lines(&lines, key_line, group.key_col, group.range.end);
                let (_, entries) = items(&lines, values.clone())
                    .ok_or_else(|| malformed(format!("`{kind}` is not a block sequence")))?;
                let span = |r: &Range<usize>| lines[r.start].start..lines[r.end - 1].end;
                if indices.iter().any(|i| *i >= entries.len()) {
                    return Err(malformed(format!("`{kind}` has fewer entries than parsed")));
                }
                if indices.len() < entries.len() {
                    for i in indices {
                        edits.push(Edit {
                            range: span(&entries[i]),
                            replacement: String::new(),
                        });
                    }
                    continue;
                }
                // Every entry goes: the key goes too.
                let end = lines[values.end - 1].end;
                let range = if on_dash_line.is_some() {
                    // `- pgp:` opens the group item: the next key moves up onto the dash line.
                    let next = lines
                        .get(values.end)
                        .filter(|l| values.end < group.range.end && l.indent == group.key_col)
                        .ok_or_else(|| SopsError::Unsupported {
                            action: format!("remove every `{kind}` key"),
                            reason: format!("key group {} would be left empty", index + 1),
                        })?;
                    let key_start = lines[key_line].start + group.key_col;
                    key_start..next.start + next.indent
                } else {
                    lines[key_line].start..end
                };
                edits.push(Edit {
                    range,
                    replacement: String::new(),
                });
            }
        }
    }
    Ok(edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sops_wrote_reads_a_tagged_value_as_its_value_and_refuses_a_non_string_key() {
        let raw: yaml_serde::Value = yaml_serde::from_str("a: !custom value\nl: [1, x]\n").unwrap();
        assert_eq!(
            convert(raw, 0).unwrap(),
            Value::Map(vec![
                ("a".into(), Value::Str("value".into())),
                (
                    "l".into(),
                    Value::List(vec![Value::Int(1), Value::Str("x".into())])
                ),
            ])
        );
        let raw: yaml_serde::Value = yaml_serde::from_str("1: a\n").unwrap();
        let error = convert(raw, 0).unwrap_err().to_string();
        assert!(error.contains("non-string key"), "{error}");
    }
}
