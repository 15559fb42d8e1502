//! The document tree: what the format readers produce (values still `ENC[…]` strings) and what
//! [`crate::SopsFile::decrypt`] returns (plaintext, wiped when dropped).

use std::fmt;

use zeroize::Zeroize as _;

/// One node of a sops document, in document order.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// `null` / `~` (never encrypted, not in the MAC).
    Null,
    /// A boolean (`type:bool`).
    Bool(bool),
    /// An integer (`type:int`).
    Int(i64),
    /// A float (`type:float`; every JSON number up to sops 3.13.1).
    Float(f64),
    /// A string (`type:str`), or an `ENC[…]` string before decryption.
    Str(String),
    /// Bytes that are not UTF-8 (binary files, `type:bytes`).
    Bytes(Vec<u8>),
    /// A timestamp (`type:time`), as RFC 3339 text.
    Time(String),
    /// A mapping, keys in file order.
    Map(Vec<(String, Value)>),
    /// A sequence.
    List(Vec<Value>),
}

impl Value {
    /// The member `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn wipe(&mut self) {
        match self {
            Value::Str(s) | Value::Time(s) => s.zeroize(),
            Value::Bytes(b) => b.zeroize(),
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    k.zeroize();
                    v.wipe();
                }
            }
            Value::List(items) => items.iter_mut().for_each(Value::wipe),
            Value::Int(i) => *i = 0,
            Value::Float(f) => *f = 0.0,
            Value::Bool(b) => *b = false,
            Value::Null => {}
        }
    }
}

/// Values are plaintext after decryption: `Debug` shows the shape only.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Map(entries) => f
                .debug_map()
                .entries(entries.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::List(items) => f.debug_list().entries(items).finish(),
            Value::Null => f.write_str("null"),
            _ => f.write_str("[REDACTED]"),
        }
    }
}

/// A decrypted file: one root value per document (YAML may have several). Wiped when dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// The documents, without their `sops` metadata.
    pub documents: Vec<Value>,
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.documents.iter_mut().for_each(Value::wipe);
    }
}

/// The callback of [`walk_leaves`].
pub(crate) type LeafVisitor<'v, 'a> =
    dyn FnMut(&[String], &'a Value) -> Result<(), crate::SopsError> + 'v;

/// Calls `visit(path, leaf)` for every leaf, depth first in document order. List indices are not
/// part of the path (as in sops' AAD).
pub(crate) fn walk_leaves<'a>(
    value: &'a Value,
    path: &mut Vec<String>,
    visit: &mut LeafVisitor<'_, 'a>,
) -> Result<(), crate::SopsError> {
    match value {
        Value::Map(entries) => {
            for (key, child) in entries {
                path.push(key.clone());
                walk_leaves(child, path, visit)?;
                path.pop();
            }
            Ok(())
        }
        Value::List(items) => {
            for child in items {
                walk_leaves(child, path, visit)?;
            }
            Ok(())
        }
        leaf => visit(path, leaf),
    }
}

/// Calls `visit(path)` for every mapping and sequence (the places comments can live).
pub(crate) fn walk_containers(
    value: &Value,
    path: &mut Vec<String>,
    visit: &mut dyn FnMut(&[String]),
) {
    match value {
        Value::Map(entries) => {
            visit(path);
            for (key, child) in entries {
                path.push(key.clone());
                walk_containers(child, path, visit);
                path.pop();
            }
        }
        Value::List(items) => {
            visit(path);
            for child in items {
                walk_containers(child, path, visit);
            }
        }
        _ => {}
    }
}

/// The bytes sops' `ToBytes` gives for an unencrypted leaf (`None` for null).
pub(crate) fn plain_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Null | Value::Map(_) | Value::List(_) => None,
        Value::Bool(true) => Some(b"True".to_vec()),
        Value::Bool(false) => Some(b"False".to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Float(f) => Some(format_float(*f).into_bytes()),
        Value::Str(s) | Value::Time(s) => Some(s.as_bytes().to_vec()),
        Value::Bytes(b) => Some(b.clone()),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{f}")
    }
}
