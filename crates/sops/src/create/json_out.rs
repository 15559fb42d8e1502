//! Writing a tree as sops 3.11's JSON store does: `"key": value` members re-indented by Go's
//! `json.Indent` (a tab per level by default), strings escaped like `json.Marshal` (HTML-safe),
//! numbers like `encoding/json` floats, and a final newline.

use super::go_number::json_float;
use crate::error::malformed;
use crate::tree::Value;
use crate::SopsError;

/// Writes `root` (a mapping) as a whole JSON document.
pub(crate) fn write_document(root: &[(String, Value)]) -> Result<String, SopsError> {
    let mut out = String::new();
    object(&mut out, root, 0)?;
    out.push('\n');
    Ok(out)
}

fn indent(out: &mut String, level: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n('\t', level));
}

fn object(out: &mut String, entries: &[(String, Value)], level: usize) -> Result<(), SopsError> {
    if entries.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    out.push('{');
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        indent(out, level + 1);
        out.push_str(&quote(key));
        out.push_str(": ");
        value_text(out, value, level + 1)?;
    }
    indent(out, level);
    out.push('}');
    Ok(())
}

pub(crate) fn value_text(out: &mut String, value: &Value, level: usize) -> Result<(), SopsError> {
    match value {
        Value::Map(entries) => object(out, entries, level)?,
        Value::List(items) if items.is_empty() => out.push_str("[]"),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, level + 1);
                value_text(out, item, level + 1)?;
            }
            indent(out, level);
            out.push(']');
        }
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) if f.is_finite() => out.push_str(&json_float(*f)),
        Value::Float(_) => return Err(malformed("JSON cannot hold NaN or infinity")),
        Value::Str(s) | Value::Time(s) => out.push_str(&quote(s)),
        Value::Bytes(_) => {
            return Err(malformed(
                "a non-UTF-8 value cannot be written unencrypted to JSON",
            ))
        }
    }
    Ok(())
}

/// A JSON string as Go's `json.Marshal` writes it (HTML-safe, `\b`/`\f` since Go 1.22).
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_are_tab_indented_like_json_indent() {
        let doc = vec![
            (
                "a".to_owned(),
                Value::Map(vec![
                    ("e".into(), Value::Map(vec![])),
                    ("l".into(), Value::List(vec![Value::Str("x".into())])),
                    ("el".into(), Value::List(vec![])),
                ]),
            ),
            ("n".to_owned(), Value::Float(1e21)),
            ("s".to_owned(), Value::Str("<&> \u{1}".into())),
        ];
        assert_eq!(
            write_document(&doc).unwrap(),
            "{\n\t\"a\": {\n\t\t\"e\": {},\n\t\t\"l\": [\n\t\t\t\"x\"\n\t\t],\n\t\t\"el\": []\n\t},\n\t\"n\": 1e+21,\n\t\"s\": \"\\u003c\\u0026\\u003e \\u0001\"\n}\n"
        );
    }
}
