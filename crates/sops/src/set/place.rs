//! Where a value goes in each format's text: the span of an existing plaintext value, or the
//! place a new key is added (the end of its mapping, before the `sops` metadata at the top
//! level), with the indentation of its siblings.

use std::ops::Range;

use crate::create::{json_out, yaml_out};
use crate::error::malformed;
use crate::format::{json, spanned_lines, Edit, Format};
use crate::tree::{plain_bytes, Value};
use crate::SopsError;

/// sops' YAML indentation (a literal block's lines sit this much deeper than its key).
const YAML_INDENT: usize = 4;

fn unsupported(reason: impl Into<String>) -> SopsError {
    SopsError::Unsupported {
        action: "set the value".into(),
        reason: reason.into(),
    }
}

/// The stored text of a leaf on one line, as each format writes it.
fn leaf_text(format: Format, value: &Value) -> Result<String, SopsError> {
    match format {
        Format::Yaml => yaml_out::inline_leaf(value)?.ok_or_else(|| {
            unsupported("a multi-line value left unencrypted by the crypt rule cannot be set")
        }),
        Format::Json | Format::Binary => {
            let mut out = String::new();
            json_out::value_text(&mut out, value, 0)?;
            Ok(out)
        }
        Format::Dotenv => {
            let bytes = plain_bytes(value).unwrap_or_default();
            let text =
                String::from_utf8(bytes).map_err(|_| malformed("a dotenv value is not UTF-8"))?;
            Ok(text.replace('\n', "\\n"))
        }
        Format::Ini => Err(unsupported("setting values in INI files is not supported")),
    }
}

/// The edit that replaces a value stored in plaintext (not an `ENC[…]` token).
pub(super) fn replace_plain(
    text: &str,
    format: Format,
    meta: &[Range<usize>],
    path: &[String],
    value: &Value,
) -> Result<Edit, SopsError> {
    let (range, replacement) = match format {
        Format::Yaml => {
            let lines = yaml_lines(text, meta);
            let (line, col, key_len) = yaml_find(&lines, path)
                .ok_or_else(|| unsupported("cannot locate the value in the YAML text"))?;
            let l = &lines[line];
            let rest = &l.content[key_len + 1..];
            if rest.trim().is_empty() {
                return Err(unsupported(
                    "the current value is a mapping or list, not a single value",
                ));
            }
            let start = l.start + l.indent + key_len + 1 + (rest.len() - rest.trim_start().len());
            // A block scalar's lines (and the blank lines a `|+` keeps) go with it.
            let end = if rest.trim_start().starts_with(['|', '>']) {
                lines[children(&lines, line, col).end - 1].end
            } else {
                l.end
            };
            (start..end, yaml_out::leaf_lines(value, col + YAML_INDENT)?)
        }
        Format::Json | Format::Binary => {
            let root = json::parse(text)?;
            let node = path
                .iter()
                .try_fold(&root, |node, key| node.member(key))
                .ok_or_else(|| unsupported("cannot locate the value in the JSON text"))?;
            (node.span.clone(), leaf_text(format, value)?)
        }
        Format::Dotenv => {
            let line = dotenv_line(text, &path[0])
                .ok_or_else(|| unsupported("cannot locate the value in the dotenv text"))?;
            (
                line.start + path[0].len() + 1..line.end,
                leaf_text(format, value)?,
            )
        }
        Format::Ini => return Err(unsupported("setting values in INI files is not supported")),
    };
    Ok(Edit { range, replacement })
}

/// The edit that adds `path`'s last key with `value` at the end of its (existing) mapping.
pub(super) fn insert(
    text: &str,
    format: Format,
    meta: &[Range<usize>],
    path: &[String],
    value: &Value,
) -> Result<Edit, SopsError> {
    let key = &path[path.len() - 1];
    let parent = &path[..path.len() - 1];
    match format {
        Format::Yaml => {
            let lines = yaml_lines(text, meta);
            let (region, col) = match parent {
                [] => (0..lines.len(), 0),
                _ => {
                    let (line, col, _) = yaml_find(&lines, parent)
                        .ok_or_else(|| unsupported("cannot locate the mapping in the YAML text"))?;
                    let region = children(&lines, line, col);
                    let child_col = region
                        .clone()
                        .find(|&i| !lines[i].blank())
                        .map(|i| lines[i].indent)
                        .filter(|c| *c > col)
                        .ok_or_else(|| {
                            unsupported("the mapping is empty (`{}`); hostage adds keys to mappings that have some")
                        })?;
                    (region, child_col)
                }
            };
            let last = region
                .clone()
                .rev()
                .find(|&i| !lines[i].blank())
                .ok_or_else(|| unsupported("the document has no keys"))?;
            if lines[last].content.starts_with('-') && lines[last].indent == col {
                return Err(unsupported("the parent is a list, not a mapping"));
            }
            // After any trailing blank lines too: they belong to a `|+` block scalar above.
            let at = lines[region.end - 1].end;
            Ok(Edit {
                range: at..at,
                replacement: format!(
                    "{}{}: {}",
                    " ".repeat(col),
                    yaml_out::mapping_key(key),
                    yaml_out::leaf_lines(value, col + YAML_INDENT)?
                ),
            })
        }
        Format::Json => {
            let leaf = leaf_text(format, value)?;
            let root = json::parse(text)?;
            let object = parent
                .iter()
                .try_fold(&root, |node, k| node.member(k))
                .ok_or_else(|| unsupported("cannot locate the object in the JSON text"))?;
            let json::Kind::Object(members) = &object.kind else {
                return Err(unsupported("the parent is not a JSON object"));
            };
            let (last_key, last) = members
                .iter()
                .rev()
                .find(|(k, _)| !(parent.is_empty() && k == "sops"))
                .ok_or_else(|| {
                    unsupported("the object is empty; hostage adds keys to objects that have some")
                })?;
            let key_at = text[..last.span.start]
                .rfind(&json_out::quote(last_key))
                .ok_or_else(|| malformed("cannot locate a JSON member"))?;
            let line_start = text[..key_at].rfind('\n').map_or(0, |i| i + 1);
            let indent = &text[line_start..key_at];
            Ok(Edit {
                range: last.span.end..last.span.end,
                replacement: format!(",\n{indent}{}: {leaf}", json_out::quote(key)),
            })
        }
        Format::Dotenv => {
            if !parent.is_empty() {
                return Err(unsupported("dotenv files are flat: the path is one key"));
            }
            if key.is_empty() || key.contains(['=', '\n']) || key.starts_with("sops_") {
                return Err(unsupported(format!("`{key}` cannot be a dotenv key")));
            }
            let leaf = leaf_text(format, value)?;
            let at = meta
                .first()
                .map(|m| m.start)
                .ok_or_else(|| malformed("no sops_ lines"))?;
            Ok(Edit {
                range: at..at,
                replacement: format!("{key}={leaf}\n"),
            })
        }
        Format::Binary => Err(unsupported("a binary file has one value, `data`")),
        Format::Ini => Err(unsupported("setting values in INI files is not supported")),
    }
}

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

/// The data lines of a single-document YAML file (up to its `sops:` key).
fn yaml_lines<'t>(text: &'t str, meta: &[Range<usize>]) -> Vec<Line<'t>> {
    let data_end = meta.first().map_or(text.len(), |m| {
        text[..m.start]
            .trim_end_matches('\n')
            .rfind('\n')
            .map_or(0, |i| i + 1)
    });
    spanned_lines(&text[..data_end])
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

/// The lines below `line` that belong to its value (deeper indentation, or blank).
fn children(lines: &[Line<'_>], line: usize, col: usize) -> Range<usize> {
    let mut end = line + 1;
    while end < lines.len() && (lines[end].blank() || lines[end].indent > col) {
        end += 1;
    }
    line + 1..end
}

/// The line and column of the key at `path` (mapping keys only), and the length of the key as
/// written (quoted or not).
fn yaml_find(lines: &[Line<'_>], path: &[String]) -> Option<(usize, usize, usize)> {
    let mut region = 0..lines.len();
    let mut found = None;
    for key in path {
        let col = region
            .clone()
            .find(|&i| !lines[i].blank())
            .map(|i| lines[i].indent)?;
        let written = yaml_out::mapping_key(key);
        let (line, key_len) = region.clone().find_map(|i| {
            if lines[i].indent != col {
                return None;
            }
            [written.as_str(), key.as_str()].iter().find_map(|k| {
                let rest = lines[i].content.strip_prefix(k)?;
                rest.starts_with(':').then_some((i, k.len()))
            })
        })?;
        found = Some((line, col, key_len));
        region = children(lines, line, col);
    }
    found
}

fn dotenv_line(text: &str, key: &str) -> Option<Range<usize>> {
    spanned_lines(text)
        .find(|(_, _, line)| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with('='))
        })
        .map(|(start, _, line)| start..start + line.len())
}
