//! Writing dotenv as sops 3.11 does: the data lines in order (comments as `#ENC[…]`, newlines in
//! values as `\n`), then the metadata flattened to `sops_…` keys (`__map_`, `__list_N`, nils
//! dropped, booleans and numbers as text) in `sort.Strings` order.

use std::collections::BTreeMap;

use super::plaintext::DotenvLine;
use super::{MetadataText, NilSlice};
use crate::error::malformed;
use crate::tree::{plain_bytes, Value};
use crate::SopsError;

pub(crate) fn write(
    lines: &[DotenvLine],
    metadata: &MetadataText<'_>,
) -> Result<String, SopsError> {
    let mut out = String::new();
    for line in lines {
        match line {
            DotenvLine::Comment(text) => {
                out.push('#');
                out.push_str(text);
            }
            DotenvLine::Entry(key, value) => {
                out.push_str(key);
                out.push('=');
                out.push_str(&text_of(value)?.replace('\n', "\\n"));
            }
        }
        out.push('\n');
    }
    let mut flat = BTreeMap::new();
    flatten(&metadata.to_value(NilSlice::Absent), "sops", &mut flat)?;
    for (key, value) in flat {
        out.push_str(&key);
        out.push('=');
        out.push_str(&value.replace('\n', "\\n"));
        out.push('\n');
    }
    Ok(out)
}

fn text_of(value: &Value) -> Result<String, SopsError> {
    let bytes = plain_bytes(value).unwrap_or_default();
    String::from_utf8(bytes).map_err(|_| malformed("a dotenv value is not UTF-8"))
}

fn flatten(
    value: &Value,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
) -> Result<(), SopsError> {
    match value {
        Value::Map(entries) => {
            for (key, child) in entries {
                let name = if prefix == "sops" {
                    format!("sops_{key}")
                } else {
                    format!("{prefix}__map_{key}")
                };
                flatten(child, &name, out)?;
            }
        }
        Value::List(items) => {
            for (i, child) in items.iter().enumerate() {
                flatten(child, &format!("{prefix}__list_{i}"), out)?;
            }
        }
        Value::Null => {}
        Value::Bool(b) => {
            out.insert(prefix.to_owned(), b.to_string());
        }
        leaf => {
            out.insert(prefix.to_owned(), text_of(leaf)?);
        }
    }
    Ok(())
}
