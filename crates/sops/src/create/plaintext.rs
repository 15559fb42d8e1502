//! The plaintext of a new file as sops' stores read it, and its encrypted form ready to write.

use zeroize::Zeroize as _;

use super::{dotenv_out, json_out, yaml_out, MetadataText, NilSlice, Sealer};
use crate::format::{json, yaml, Format};
use crate::tree::{Tree, Value};
use crate::SopsError;

/// One line of a dotenv file: sops keeps comments (encrypted) and entries, in order.
#[derive(Clone)]
pub(crate) enum DotenvLine {
    /// `#text` (the text after `#`).
    Comment(String),
    /// `KEY=value` (the value with `\n` escapes already turned into newlines).
    Entry(String, Value),
}

/// A new file's content before encryption. Wiped when dropped.
pub(crate) enum Plaintext {
    /// YAML documents or a JSON object (each a mapping).
    Documents(Vec<Value>),
    /// dotenv lines.
    Dotenv(Vec<DotenvLine>),
    /// The binary store's raw bytes.
    Binary(Vec<u8>),
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        let wipe = |v: &mut Value| {
            // `Tree`'s drop wipes every string and number of a value.
            drop(Tree {
                documents: vec![std::mem::replace(v, Value::Null)],
            });
        };
        match self {
            Self::Documents(documents) => documents.iter_mut().for_each(wipe),
            Self::Dotenv(lines) => {
                for line in lines.iter_mut() {
                    match line {
                        DotenvLine::Comment(text) => text.zeroize(),
                        DotenvLine::Entry(key, value) => {
                            key.zeroize();
                            wipe(value);
                        }
                    }
                }
            }
            Self::Binary(bytes) => bytes.zeroize(),
        }
    }
}

fn unsupported(reason: impl Into<String>) -> SopsError {
    SopsError::Unsupported {
        action: "encrypt the plaintext".into(),
        reason: reason.into(),
    }
}

fn no_ini() -> SopsError {
    unsupported("new INI files are not written natively (sops 3.11 orders INI metadata at random)")
}

fn invalid(format: Format, reason: impl std::fmt::Display) -> SopsError {
    SopsError::Malformed {
        what: format!("the {} plaintext is not valid: {reason}", format.name()),
    }
}

impl Plaintext {
    /// Reads `bytes` as sops' store for `format` would.
    pub(crate) fn read(bytes: &[u8], format: Format) -> Result<Self, SopsError> {
        let text = || {
            std::str::from_utf8(bytes).map_err(|e| {
                invalid(
                    format,
                    format!(
                        "not UTF-8 (byte {}); use the binary format",
                        e.valid_up_to()
                    ),
                )
            })
        };
        match format {
            Format::Binary => Ok(Self::Binary(bytes.to_vec())),
            Format::Ini => Err(no_ini()),
            Format::Yaml => read_yaml(text()?),
            Format::Json => {
                let mut root = json::parse(text()?).map_err(|e| invalid(format, e))?;
                let value = root.to_value();
                wipe_json(&mut root);
                if !matches!(value, Value::Map(_)) {
                    return Err(invalid(format, "the top level is not an object"));
                }
                Ok(Self::Documents(vec![value]))
            }
            Format::Dotenv => read_dotenv(text()?),
        }
    }

    /// Takes a tree already in memory.
    pub(crate) fn from_tree(tree: &Tree, format: Format) -> Result<Self, SopsError> {
        let documents = &tree.documents;
        let single_map = || match documents.as_slice() {
            [Value::Map(entries)] => Ok(entries),
            _ => Err(invalid(format, "expected exactly one document, a mapping")),
        };
        match format {
            Format::Yaml => {
                if documents.is_empty() || !documents.iter().all(|d| matches!(d, Value::Map(_))) {
                    return Err(invalid(format, "every document must be a mapping"));
                }
                Ok(Self::Documents(documents.clone()))
            }
            Format::Json => {
                single_map()?;
                Ok(Self::Documents(documents.clone()))
            }
            Format::Dotenv => {
                let mut lines = Vec::new();
                for (key, value) in single_map()? {
                    if !matches!(value, Value::Str(_)) {
                        return Err(invalid(
                            format,
                            format!("`{key}` is not a string (dotenv values are strings)"),
                        ));
                    }
                    check_dotenv_key(key)?;
                    lines.push(DotenvLine::Entry(key.clone(), value.clone()));
                }
                Ok(Self::Dotenv(lines))
            }
            Format::Binary => match single_map()?.as_slice() {
                [(key, Value::Str(s))] if key == "data" => Ok(Self::Binary(s.as_bytes().to_vec())),
                [(key, Value::Bytes(b))] if key == "data" => Ok(Self::Binary(b.clone())),
                _ => Err(invalid(format, "a binary tree is `{data: <content>}`")),
            },
            Format::Ini => Err(no_ini()),
        }
    }

    /// Encrypts every value (and dotenv comment) in document order, feeding the MAC.
    pub(crate) fn seal(&self, sealer: &mut Sealer<'_>) -> Result<Sealed, SopsError> {
        Ok(match self {
            Self::Documents(documents) => Sealed::Documents(
                documents
                    .iter()
                    .map(|d| sealer.seal_value(d, &mut Vec::new()))
                    .collect::<Result<_, _>>()?,
            ),
            Self::Dotenv(lines) => Sealed::Dotenv(
                lines
                    .iter()
                    .map(|line| {
                        Ok(match line {
                            DotenvLine::Comment(text) => {
                                DotenvLine::Comment(sealer.seal_comment(text, &[])?)
                            }
                            DotenvLine::Entry(key, value) => DotenvLine::Entry(
                                key.clone(),
                                sealer.seal_leaf(value, std::slice::from_ref(key))?,
                            ),
                        })
                    })
                    .collect::<Result<_, SopsError>>()?,
            ),
            Self::Binary(bytes) => {
                let data = String::from("data");
                // The raw bytes, as sops encrypts them (`str`, not base64).
                let value = Value::Bytes(bytes.clone());
                let sealed = sealer.seal_leaf(&value, std::slice::from_ref(&data));
                drop(Plaintext::Documents(vec![value]));
                Sealed::Documents(vec![Value::Map(vec![(data, sealed?)])])
            }
        })
    }
}

/// Wipes the strings of a parsed JSON plaintext (the tree took copies of them).
fn wipe_json(node: &mut json::Spanned) {
    match &mut node.kind {
        json::Kind::Object(members) => {
            for (key, value) in members.iter_mut() {
                key.zeroize();
                wipe_json(value);
            }
        }
        json::Kind::Array(items) => items.iter_mut().for_each(wipe_json),
        json::Kind::Str(s) | json::Kind::Number(s) => s.zeroize(),
        json::Kind::Bool(_) | json::Kind::Null => {}
    }
}

/// sops' dotenv reader: `#` lines are comments, blank lines are dropped, every other line is
/// `KEY=value` split at the first `=`, and `\n` in a value is a newline.
fn read_dotenv(text: &str) -> Result<Plaintext, SopsError> {
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            lines.push(DotenvLine::Comment(comment.to_owned()));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(invalid(
                Format::Dotenv,
                format!("line {} is not KEY=value", number + 1),
            ));
        };
        check_dotenv_key(key)?;
        lines.push(DotenvLine::Entry(
            key.to_owned(),
            Value::Str(value.replace("\\n", "\n")),
        ));
    }
    Ok(Plaintext::Dotenv(lines))
}

fn check_dotenv_key(key: &str) -> Result<(), SopsError> {
    if key.is_empty() || key.starts_with("sops_") || key.contains(['\n', '=']) {
        return Err(invalid(
            Format::Dotenv,
            format!("`{key}` cannot be a key (empty, contains `=`, or starts with `sops_`)"),
        ));
    }
    Ok(())
}

fn read_yaml(text: &str) -> Result<Plaintext, SopsError> {
    use serde::Deserialize as _;
    // sops encrypts YAML comments and moves them; we do not write them yet, and dropping them
    // silently would lose part of the plaintext.
    if yaml_edit::lex(text)
        .iter()
        .any(|(kind, _)| *kind == yaml_edit::SyntaxKind::COMMENT)
    {
        return Err(unsupported(
            "the YAML has comments, which hostage does not encrypt yet; remove them",
        ));
    }
    let mut documents = Vec::new();
    for document in yaml_serde::Deserializer::from_str(text) {
        let raw = yaml_serde::Value::deserialize(document).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            invalid(Format::Yaml, format!("cannot parse it{at}"))
        })?;
        documents.push(yaml::tree(raw, 0, &PLAINTEXT)?);
    }
    if documents.is_empty() {
        return Err(invalid(Format::Yaml, "it is empty"));
    }
    if !documents.iter().all(|d| matches!(d, Value::Map(_))) {
        return Err(invalid(
            Format::Yaml,
            "a document's top level is not a mapping",
        ));
    }
    let plaintext = Plaintext::Documents(documents);
    if let Plaintext::Documents(documents) = &plaintext {
        for document in documents {
            check_yaml11_scalars(document, text)?;
        }
    }
    Ok(plaintext)
}

/// sops (yaml.v3) reads some unquoted scalars as numbers or times that `yaml_serde` reads as
/// strings (`017`, `1_000`, `2024-01-02`); writing them as strings would differ from sops, so
/// such a value written unquoted is refused with the fix (quote it). A quoted one is a string
/// for both.
fn check_yaml11_scalars(value: &Value, text: &str) -> Result<(), SopsError> {
    match value {
        Value::Map(entries) => entries
            .iter()
            .try_for_each(|(_, v)| check_yaml11_scalars(v, text)),
        Value::List(items) => items.iter().try_for_each(|v| check_yaml11_scalars(v, text)),
        Value::Str(s) if yaml_out::yaml_v3_types_plain_string(s) => {
            let unquoted = text.match_indices(s.as_str()).any(|(at, _)| {
                !text[..at].ends_with(['"', '\'']) && !text[at + s.len()..].starts_with(['"', '\''])
            });
            if unquoted {
                return Err(unsupported(
                    "an unquoted value reads as a number or timestamp in sops (YAML 1.1: octal `017`, `1_000`, dates) but as a string here; quote it to keep it a string",
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A plaintext to encrypt: refused where hostage would not write back what sops writes (merge
/// keys, tags) and where it is not a mapping of string keys.
const PLAINTEXT: yaml::TreeReading = yaml::TreeReading {
    too_deep: || invalid(Format::Yaml, "nesting deeper than 256 levels"),
    key: |key| {
        let yaml_serde::Value::String(key) = key else {
            return Err(invalid(Format::Yaml, "a mapping key is not a string"));
        };
        if key == "<<" {
            return Err(unsupported(
                "YAML merge keys (`<<`) are not written natively",
            ));
        }
        Ok(key)
    },
    tagged: || {
        Err(unsupported(
            "tagged YAML values (`!tag`) are not written natively",
        ))
    },
};

/// The encrypted content, ready to be written with the metadata.
pub(crate) enum Sealed {
    Documents(Vec<Value>),
    Dotenv(Vec<DotenvLine>),
}

impl Sealed {
    pub(crate) fn write(
        &self,
        metadata: &MetadataText<'_>,
        format: Format,
    ) -> Result<Vec<u8>, SopsError> {
        let text = match (self, format) {
            (Self::Documents(documents), Format::Yaml) => {
                let sops = metadata.to_value(NilSlice::EmptyList);
                let mut out = String::new();
                for (i, document) in documents.iter().enumerate() {
                    if i > 0 {
                        out.push_str("---\n");
                    }
                    let Value::Map(entries) = document else {
                        return Err(invalid(format, "a document is not a mapping"));
                    };
                    let mut entries = entries.clone();
                    entries.push(("sops".into(), sops.clone()));
                    yaml_out::write_mapping(&mut out, &entries)?;
                }
                out
            }
            (Self::Documents(documents), Format::Json | Format::Binary) => {
                let [Value::Map(entries)] = documents.as_slice() else {
                    return Err(invalid(format, "expected one object"));
                };
                let mut entries = entries.clone();
                entries.push(("sops".into(), metadata.to_value(NilSlice::Null)));
                json_out::write_document(&entries)?
            }
            (Self::Dotenv(lines), Format::Dotenv) => dotenv_out::write(lines, metadata)?,
            _ => return Err(invalid(format, "internal: content and format disagree")),
        };
        Ok(text.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(yaml: &str) -> String {
        match Plaintext::read(yaml.as_bytes(), Format::Yaml) {
            Ok(_) => panic!("read {yaml:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_yaml_plaintext_with_merge_keys_tags_non_string_keys_or_deep_nesting_is_refused_with_what_it_holds(
    ) {
        assert!(
            refusal("base: &b {a: 1}\nother:\n  <<: *b\n").contains("merge keys (`<<`)"),
            "merge key"
        );
        assert!(
            refusal("a: !custom value\n").contains("tagged YAML values"),
            "tag"
        );
        assert!(
            refusal("1: a\n").contains("a mapping key is not a string"),
            "number key"
        );
        // Deeper than the reader's limit: refused (by the YAML parser's own limit first).
        refusal(&format!("a: {}1{}\n", "[".repeat(300), "]".repeat(300)));
    }

    #[test]
    fn a_yaml_plaintext_reads_scalars_lists_and_maps_as_sops_does() {
        let plain = Plaintext::read(
            b"s: text\nn: 3\nf: 1.5\nb: true\nz: null\nl: [1, two]\nm:\n  k: v\n",
            Format::Yaml,
        )
        .unwrap();
        let Plaintext::Documents(documents) = &plain else {
            panic!("not documents");
        };
        assert_eq!(
            documents,
            &[Value::Map(vec![
                ("s".into(), Value::Str("text".into())),
                ("n".into(), Value::Int(3)),
                ("f".into(), Value::Float(1.5)),
                ("b".into(), Value::Bool(true)),
                ("z".into(), Value::Null),
                (
                    "l".into(),
                    Value::List(vec![Value::Int(1), Value::Str("two".into())])
                ),
                (
                    "m".into(),
                    Value::Map(vec![("k".into(), Value::Str("v".into()))])
                ),
            ])]
        );
    }
}
