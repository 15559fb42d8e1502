//! A scanner for the block YAML sops writes, so reading a sops file does not build a full YAML
//! event stream through libyaml (half of a re-key's parsing time in issue 14's profile).
//!
//! It accepts a strict subset — one document whose root is a mapping; block mappings and
//! sequences indented by spaces; plain keys; `ENC[…]` values, decimal integers, `true`/`false`,
//! plain words, quotes without escapes, `[]`/`{}`, `|` literal blocks; whole-line comments — and
//! answers `None` for anything else (tabs, `\r`, anchors, tags, flow collections, folded or
//! chomped blocks, documents markers, trailing comments, duplicate keys, …). The caller then
//! parses with the full YAML reader, so what the scanner does not understand is read (or
//! refused) exactly as before. Where it answers, its tree equals the full reader's; the tests
//! check that on sops' own output and on generated and mutated documents.

use crate::tree::Value;

/// Nesting deeper than this is left to the full reader (which refuses beyond 256).
const MAX_DEPTH: usize = 64;

#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    /// The line without its indentation (never empty for a significant line).
    content: &'a str,
}

struct Scanner<'a> {
    /// Every line, as written (without its `\n`).
    raw: Vec<&'a str>,
    at: usize,
}

/// The documents of `text` (one), or `None` when `text` is outside the subset.
pub(crate) fn scan(text: &str) -> Option<Vec<Value>> {
    // Without a final newline a literal block's last line has no line break to clip.
    if !text.ends_with('\n') || text.contains(['\r', '\t', '\u{feff}']) {
        return None;
    }
    let mut scanner = Scanner {
        raw: text.split('\n').collect(),
        at: 0,
    };
    let first = scanner.peek()?;
    if first.indent != 0 || first.content.starts_with("- ") || first.content == "-" {
        return None;
    }
    let root = scanner.map(0, None, 0)?;
    if scanner.peek().is_some() {
        return None;
    }
    Some(vec![root])
}

impl<'a> Scanner<'a> {
    /// The next significant line (skipping blank and comment lines), without consuming it.
    fn peek(&mut self) -> Option<Line<'a>> {
        while let Some(raw) = self.raw.get(self.at) {
            let content = raw.trim_start_matches(' ');
            if content.is_empty() || content.starts_with('#') {
                self.at += 1;
                continue;
            }
            return Some(Line {
                indent: raw.len() - content.len(),
                content,
            });
        }
        None
    }

    /// A block mapping whose keys sit at column `indent`; `first` is the rest of a `- key: …`
    /// line whose key opens the mapping (already consumed).
    fn map(&mut self, indent: usize, first: Option<&'a str>, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut entries: Vec<(String, Value)> = Vec::new();
        let mut pending = first;
        loop {
            let content = match pending.take() {
                Some(content) => content,
                None => {
                    let Some(line) = self.peek() else { break };
                    if line.indent < indent {
                        break;
                    }
                    if line.indent > indent || line.content.starts_with('-') {
                        return None;
                    }
                    self.at += 1;
                    line.content
                }
            };
            let (key, rest) = split_key(content)?;
            if entries.iter().any(|(k, _)| k == key) {
                return None;
            }
            let value = self.value_after_key(indent, rest, depth)?;
            entries.push((key.to_owned(), value));
        }
        Some(Value::Map(entries))
    }

    /// The value of a key at column `indent` whose line continues with `rest`.
    fn value_after_key(&mut self, indent: usize, rest: &'a str, depth: usize) -> Option<Value> {
        if rest == "|" {
            return self.literal(indent);
        }
        if !rest.is_empty() {
            return scalar(rest);
        }
        match self.peek() {
            Some(child) if child.indent > indent => {
                if child.content.starts_with("- ") {
                    self.list(child.indent, depth + 1)
                } else if child.content.starts_with('-') {
                    None
                } else {
                    self.map(child.indent, None, depth + 1)
                }
            }
            // `key:` then a sequence at the key's own column: valid YAML, not what sops writes.
            Some(next) if next.indent == indent && next.content.starts_with('-') => None,
            _ => Some(Value::Null),
        }
    }

    /// A block sequence whose dashes sit at column `indent`.
    fn list(&mut self, indent: usize, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let item = line.content.strip_prefix("- ")?;
            self.at += 1;
            if item.starts_with(' ') {
                return None;
            }
            if split_key(item).is_some() {
                items.push(self.map(indent + 2, Some(item), depth + 1)?);
            } else if item == "|" || item.starts_with('-') {
                return None;
            } else {
                items.push(scalar(item)?);
            }
        }
        Some(Value::List(items))
    }

    /// A `|` literal block scalar (clip chomping) under a key at column `indent`.
    fn literal(&mut self, indent: usize) -> Option<Value> {
        let start = self.at;
        let mut block_indent = None;
        let mut end = start;
        while let Some(raw) = self.raw.get(end) {
            let content = raw.trim_start_matches(' ');
            let spaces = raw.len() - content.len();
            if content.is_empty() {
                // A line of spaces only: content only if it reaches past the block's indent,
                // which is rare enough to leave to the full reader.
                if block_indent.is_some_and(|b| spaces > b) || block_indent.is_none() && spaces > 0
                {
                    return None;
                }
                end += 1;
                continue;
            }
            match block_indent {
                None if spaces > indent => block_indent = Some(spaces),
                None => return None,
                Some(b) if spaces >= b => {}
                Some(_) => break,
            }
            end += 1;
        }
        let block = block_indent?;
        // Trailing empty lines are not part of the value (clip) and not consumed here.
        while end > start && self.raw[end - 1].trim_start_matches(' ').is_empty() {
            end -= 1;
        }
        let mut text = String::new();
        for raw in &self.raw[start..end] {
            text.push_str(raw.get(block..).unwrap_or(""));
            text.push('\n');
        }
        self.at = end;
        Some(Value::Str(text))
    }
}

/// `key: rest` or `key:` with a plain key the full reader reads as a string.
fn split_key(content: &str) -> Option<(&str, &str)> {
    let colon = content.find(':')?;
    let (key, after) = (&content[..colon], &content[colon + 1..]);
    if !plain_word(key) {
        return None;
    }
    if after.is_empty() {
        return Some((key, ""));
    }
    let rest = after.strip_prefix(' ')?;
    if rest.starts_with(' ') || rest.ends_with(' ') {
        return None;
    }
    Some((key, rest))
}

/// A plain scalar made of `[A-Za-z0-9_./-]`, starting with a letter or `_`, that no YAML schema
/// reads as anything but a string.
fn plain_word(text: &str) -> bool {
    const NOT_STRINGS: &[&str] = &[
        "null", "true", "false", "y", "n", "yes", "no", "on", "off", "inf", "infinity", "nan",
    ];
    let Some(first) = text.bytes().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'_')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
        && !NOT_STRINGS.iter().any(|w| w.eq_ignore_ascii_case(text))
}

/// One scalar after `key: ` or `- `, or `None` when the full reader must decide.
fn scalar(text: &str) -> Option<Value> {
    if let Some(token) = text.strip_prefix(crate::cipher::ENC_PREFIX) {
        let ok = token.ends_with(']')
            && token[..token.len() - 1].bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b',' | b':' | b'_')
            });
        return ok.then(|| Value::Str(text.to_owned()));
    }
    match text {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "[]" => return Some(Value::List(Vec::new())),
        "{}" => return Some(Value::Map(Vec::new())),
        _ => {}
    }
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return (!inner.contains(['"', '\\'])).then(|| Value::Str(inner.to_owned()));
    }
    if let Some(inner) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return (!inner.contains('\'')).then(|| Value::Str(inner.to_owned()));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0')) {
        return text
            .parse::<i64>()
            .ok()
            .filter(|_| text.len() < 19)
            .map(Value::Int);
    }
    (plain_word(text) || version(text)).then(|| Value::Str(text.to_owned()))
}

/// `3.11.0`: numbers joined by two or more dots, a string in every YAML schema (sops' `version`).
fn version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What the full reader makes of `text` (documents before the `sops` key is taken out).
    fn full(text: &str) -> Option<Vec<Value>> {
        use serde::Deserialize as _;
        let mut out = Vec::new();
        for document in yaml_serde::Deserializer::from_str(text) {
            let raw = yaml_serde::Value::deserialize(document).ok()?;
            out.push(super::super::yaml::convert_for_tests(raw)?);
        }
        Some(out)
    }

    fn agrees(text: &str) -> bool {
        match scan(text) {
            None => true,
            Some(scanned) => full(text).as_ref() == Some(&scanned),
        }
    }

    const SOPS_MADE: &str = "#ENC[AES256_GCM,data:L1zToVFv,iv:Nleqe9sr,tag:lFcMU9NU,type:comment]
key_00: ENC[AES256_GCM,data:EY7mYoJM+hj6WUenLLmcAAw==,iv:g2WpNaLV/oD0eN9p2Jb4Lm1MP8SDiMnlqP0IGEkdboD8=,tag:CO0wZNOug7o0pVGEi3soeA==,type:str]
db:
    user: ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]
    ports:
        - ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:int]
        - name: ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]
          other: ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:bool]
sops:
    age:
        - recipient: age1ykym7cmpjjzsryd6apgq9eghg5cgqfswhcx25zl7y9k025erg5zqe8p5ae
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSA5Y2RIOFBqT0c1Qm02RW1y
            -----END AGE ENCRYPTED FILE-----
    key_groups:
        - hc_vault: []
          pgp: {}
    lastmodified: \"2026-11-30T18:13:58Z\"
    mac: ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]
    shamir_threshold: 2
    mac_only_encrypted: true
    unencrypted_suffix: _unencrypted
    version: 3.11.0
";

    #[test]
    fn sops_made_yaml_is_scanned_to_the_full_readers_tree() {
        let scanned = scan(SOPS_MADE).expect("sops' own layout is in the subset");
        assert_eq!(Some(scanned), full(SOPS_MADE));
    }

    #[test]
    fn what_the_scanner_does_not_understand_goes_to_the_full_reader() {
        for text in [
            "a: &x ENC[AES256_GCM,data:A,iv:B,tag:C,type:str]\nb: *x\n",
            "a: {b: 1}\n",
            "a: 1 # trailing comment\n",
            "---\na: 1\n---\nb: 2\n",
            "a:\n- 1\n",
            "a: >\n  folded\n",
            "a: |-\n  stripped\n",
            "a: 0x1F\n",
            "a: 1.5\n",
            "a: yes\n",
            "a: Null\n",
            "\"quoted key\": 1\n",
            "a: 1\na: 2\n",
            "a:\r\n  b: 1\n",
            "a:\n\tb: 1\n",
            "- 1\n- 2\n",
            "a: !!str 1\n",
            "a: \"esc\\n\"\n",
            "a:\n    b: 1\n  c: 2\n",
        ] {
            assert_eq!(scan(text), None, "{text:?}");
        }
    }

    #[test]
    fn literal_blocks_keep_their_lines_and_clip_the_end() {
        let text = "a: |\n    one\n      two\n\n    three\n\n\nb: x\n";
        assert!(agrees(text));
        assert_eq!(
            scan(text).unwrap()[0].get("a"),
            Some(&Value::Str("one\n  two\n\nthree\n".into()))
        );
    }

    /// A small grammar of block YAML, with scalars from both sides of the subset's border.
    fn document() -> impl Strategy<Value = String> {
        let scalar = prop::sample::select(vec![
            "ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]",
            "0",
            "01",
            "12",
            "-3",
            "true",
            "True",
            "false",
            "null",
            "~",
            "x",
            "word.with-dots_1",
            "3.11.0",
            "1.2",
            "1..2",
            "1e5",
            "\"quoted\"",
            "'single'",
            "[]",
            "{}",
            "yes",
            "inf",
            ".nan",
            "a b",
            "",
        ]);
        let key = prop::sample::select(vec!["a", "b", "sops", "key_01", "n", "on", "1", "_x"]);
        let line = (0usize..4, key, scalar, 0usize..4).prop_map(|(depth, key, value, shape)| {
            let pad = "    ".repeat(depth);
            match shape {
                0 => format!("{pad}{key}: {value}"),
                1 => format!("{pad}{key}:"),
                2 => format!("{pad}- {value}"),
                _ => format!("{pad}- {key}: {value}"),
            }
        });
        prop::collection::vec(line, 1..12).prop_map(|lines| lines.join("\n") + "\n")
    }

    proptest! {
        #[test]
        fn where_the_scanner_answers_it_agrees_with_the_full_reader(text in document()) {
            prop_assert!(agrees(&text), "{text:?}");
        }

        #[test]
        fn mutated_sops_files_scan_to_the_full_readers_tree_or_to_nothing(
            at in 0usize..SOPS_MADE.len(),
            insert in prop::sample::select(vec![" ", "\n", "-", ":", "#", "|", "\"", "  ", "x: 1\n", "- ", "\n  "]),
            cut in 0usize..3,
        ) {
            let mut text = SOPS_MADE.to_owned();
            if text.is_char_boundary(at) {
                let end = (at + cut).min(text.len());
                if text.is_char_boundary(end) {
                    text.replace_range(at..end, insert);
                }
            }
            prop_assert!(agrees(&text), "{text:?}");
        }
    }
}
