//! A small positional YAML tree built from yaml-edit's lossless CST: every node keeps its byte range,
//! its anchor and (for aliases) the node it points to, so the semantic layer can resolve aliases and
//! merge keys itself while the editor splices bytes at exact positions.

use std::collections::HashMap;
use std::ops::Range;

use rowan::ast::AstNode as _;
use rowan::NodeOrToken;
use yaml_edit::{Lang, SyntaxKind, YamlFile};

type SyntaxNode = rowan::SyntaxNode<Lang>;

/// Index of a node in [`Tree::nodes`].
pub(crate) type NodeId = usize;

/// What a scalar resolved to (YAML 1.2 core schema, as yaml.v3 resolves untyped values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScalarKind {
    Str,
    Null,
    Bool,
    Int,
    Float,
}

/// A scalar with its decoded value.
#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    pub value: String,
    pub kind: ScalarKind,
    /// The value as a YAML parser reads it (for the cross-check against yaml_serde).
    pub parsed: yaml_serde::Value,
}

/// One item of a sequence.
#[derive(Clone, Debug)]
pub(crate) struct SeqItem {
    pub node: NodeId,
    /// Byte offset of the `-` of a block item.
    pub dash: Option<usize>,
}

/// One `key: value` pair of a mapping.
#[derive(Clone, Debug)]
pub(crate) struct MapEntry {
    pub key: String,
    pub key_range: Range<usize>,
    pub value: NodeId,
    /// The whole entry, key to end of value (without the trailing line break).
    pub range: Range<usize>,
}

/// The shape of a node.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq {
        items: Vec<SeqItem>,
        flow: bool,
    },
    Map {
        entries: Vec<MapEntry>,
        flow: bool,
    },
    Alias {
        name: String,
        target: Option<NodeId>,
    },
    /// An empty value (`key:` with nothing after it).
    Empty,
}

/// A node: its shape, its bytes, its anchor.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Byte range of the node's content (anchor excluded, trailing line break excluded).
    pub range: Range<usize>,
    pub anchor: Option<String>,
    /// Byte range of the `&anchor` token.
    pub anchor_range: Option<Range<usize>>,
}

/// The whole document.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    pub root: NodeId,
    /// Every anchor definition in document order.
    pub anchors: Vec<(String, NodeId)>,
}

/// Why the CST could not be turned into a tree.
#[derive(Debug)]
pub(crate) struct TreeError {
    pub offset: usize,
    pub message: String,
}

impl Tree {
    /// Builds the tree of the first document of `text`.
    pub(crate) fn build(text: &str) -> Result<Tree, TreeError> {
        let parsed = YamlFile::parse(text);
        if let Some(first) = parsed.positioned_errors().first() {
            return Err(TreeError {
                offset: first.range.start as usize,
                message: first.message.clone(),
            });
        }
        let file = parsed.tree();
        let mut builder = Builder {
            text,
            nodes: Vec::new(),
            anchors: Vec::new(),
            current: HashMap::new(),
        };
        let root = match file
            .syntax()
            .children()
            .find(|n| n.kind() == SyntaxKind::DOCUMENT)
        {
            Some(doc) => builder.holder(&doc, 0)?,
            None => builder.push(Kind::Empty, 0..0, None),
        };
        Ok(Tree {
            nodes: builder.nodes,
            root,
            anchors: builder.anchors,
        })
    }

    /// The node, following aliases to their targets.
    pub(crate) fn resolve(&self, mut id: NodeId) -> NodeId {
        for _ in 0..64 {
            match &self.nodes[id].kind {
                Kind::Alias {
                    target: Some(target),
                    ..
                } => id = *target,
                _ => return id,
            }
        }
        id
    }

    /// The anchor name when `id` is an alias.
    pub(crate) fn alias_name(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[id].kind {
            Kind::Alias { name, .. } => Some(name),
            _ => None,
        }
    }
}

struct Builder<'a> {
    text: &'a str,
    nodes: Vec<Node>,
    anchors: Vec<(String, NodeId)>,
    current: HashMap<String, NodeId>,
}

fn range_of(node: &SyntaxNode) -> Range<usize> {
    let r = node.text_range();
    usize::from(r.start())..usize::from(r.end())
}

fn is_value_node(kind: SyntaxKind) -> bool {
    matches!(
        kind,
        SyntaxKind::SCALAR
            | SyntaxKind::SEQUENCE
            | SyntaxKind::MAPPING
            | SyntaxKind::ALIAS
            | SyntaxKind::TAGGED_NODE
    )
}

impl Builder<'_> {
    fn push(
        &mut self,
        kind: Kind,
        range: Range<usize>,
        anchor: Option<(String, Range<usize>)>,
    ) -> NodeId {
        let id = self.nodes.len();
        let (anchor, anchor_range) = match anchor {
            Some((name, r)) => (Some(name), Some(r)),
            None => (None, None),
        };
        self.nodes.push(Node {
            kind,
            range,
            anchor,
            anchor_range,
        });
        id
    }

    fn register(&mut self, id: NodeId) {
        if let Some(name) = self.nodes[id].anchor.clone() {
            self.current.insert(name.clone(), id);
            self.anchors.push((name, id));
        }
    }

    /// A container (document, sequence entry, key, value) holding at most one node plus an anchor.
    fn holder(&mut self, holder: &SyntaxNode, empty_at: usize) -> Result<NodeId, TreeError> {
        let mut anchor = None;
        for child in holder.children_with_tokens() {
            match child {
                NodeOrToken::Token(token) => {
                    if token.kind() == SyntaxKind::ANCHOR {
                        let r = token.text_range();
                        let name = token.text().trim_start_matches('&').to_owned();
                        anchor = Some((name, usize::from(r.start())..usize::from(r.end())));
                    }
                }
                NodeOrToken::Node(node) => {
                    if node.kind() == SyntaxKind::ERROR {
                        return Err(TreeError {
                            offset: range_of(&node).start,
                            message: "unexpected content".into(),
                        });
                    }
                    if is_value_node(node.kind()) {
                        return self.node(&node, anchor);
                    }
                }
            }
        }
        let at = anchor.as_ref().map(|(_, r)| r.end).unwrap_or(empty_at);
        let id = self.push(Kind::Empty, at..at, anchor);
        self.register(id);
        Ok(id)
    }

    fn node(
        &mut self,
        node: &SyntaxNode,
        anchor: Option<(String, Range<usize>)>,
    ) -> Result<NodeId, TreeError> {
        let range = range_of(node);
        match node.kind() {
            SyntaxKind::TAGGED_NODE => {
                // `!!str x` and friends: keep the inner node (tags do not matter to sops' rules).
                match node.children().find(|n| is_value_node(n.kind())) {
                    Some(inner) => self.node(&inner, anchor),
                    None => {
                        let id = self.push(Kind::Empty, range, anchor);
                        self.register(id);
                        Ok(id)
                    }
                }
            }
            SyntaxKind::ALIAS => {
                let name = node
                    .text()
                    .to_string()
                    .trim()
                    .trim_start_matches('*')
                    .to_owned();
                let target = self.current.get(&name).copied();
                let range = trim_range(self.text, range);
                Ok(self.push(Kind::Alias { name, target }, range, anchor))
            }
            SyntaxKind::SCALAR => {
                let range = trim_range(self.text, range);
                let scalar = decode_scalar(&self.text[range.clone()]);
                let id = self.push(Kind::Scalar(scalar), range, anchor);
                self.register(id);
                Ok(id)
            }
            SyntaxKind::SEQUENCE => {
                let flow = node
                    .children_with_tokens()
                    .any(|c| c.kind() == SyntaxKind::LEFT_BRACKET);
                let id = self.push(
                    Kind::Seq {
                        items: Vec::new(),
                        flow,
                    },
                    trim_range(self.text, range),
                    anchor,
                );
                self.register(id);
                let mut items = Vec::new();
                for entry in node.children() {
                    if entry.kind() == SyntaxKind::ERROR {
                        return Err(TreeError {
                            offset: range_of(&entry).start,
                            message: "unexpected content in a sequence".into(),
                        });
                    }
                    if entry.kind() != SyntaxKind::SEQUENCE_ENTRY {
                        continue;
                    }
                    let dash = entry
                        .children_with_tokens()
                        .find(|c| c.kind() == SyntaxKind::DASH)
                        .map(|c| usize::from(c.text_range().start()));
                    let entry_start = range_of(&entry).start;
                    let item = self.holder(&entry, entry_start)?;
                    items.push(SeqItem { node: item, dash });
                }
                if let Kind::Seq { items: slot, .. } = &mut self.nodes[id].kind {
                    *slot = items;
                }
                Ok(id)
            }
            SyntaxKind::MAPPING => {
                let flow = node
                    .children_with_tokens()
                    .any(|c| c.kind() == SyntaxKind::LEFT_BRACE);
                let id = self.push(
                    Kind::Map {
                        entries: Vec::new(),
                        flow,
                    },
                    trim_range(self.text, range),
                    anchor,
                );
                self.register(id);
                let mut entries = Vec::new();
                for entry in node.children() {
                    if entry.kind() == SyntaxKind::ERROR {
                        return Err(TreeError {
                            offset: range_of(&entry).start,
                            message: "unexpected content in a mapping".into(),
                        });
                    }
                    if entry.kind() != SyntaxKind::MAPPING_ENTRY {
                        continue;
                    }
                    entries.push(self.entry(&entry)?);
                }
                if let Kind::Map { entries: slot, .. } = &mut self.nodes[id].kind {
                    *slot = entries;
                }
                Ok(id)
            }
            _ => Err(TreeError {
                offset: range.start,
                message: "unexpected node".into(),
            }),
        }
    }

    fn entry(&mut self, entry: &SyntaxNode) -> Result<MapEntry, TreeError> {
        let entry_range = range_of(entry);
        let key_holder = entry.children().find(|n| n.kind() == SyntaxKind::KEY);
        let (key, key_range) = match &key_holder {
            Some(holder) => {
                let key_id = self.holder(holder, range_of(holder).start)?;
                let key_range = self.nodes[key_id].range.clone();
                let key = match &self.nodes[key_id].kind {
                    Kind::Scalar(s) => s.value.clone(),
                    Kind::Alias { target, .. } => match target.map(|t| &self.nodes[t].kind) {
                        Some(Kind::Scalar(s)) => s.value.clone(),
                        _ => String::new(),
                    },
                    _ => String::new(),
                };
                (key, key_range)
            }
            None => (String::new(), entry_range.start..entry_range.start),
        };
        let value_holder = entry.children().find(|n| n.kind() == SyntaxKind::VALUE);
        let colon_end = entry
            .children_with_tokens()
            .find(|c| c.kind() == SyntaxKind::COLON)
            .map(|c| usize::from(c.text_range().end()))
            .unwrap_or(key_range.end);
        let value = match &value_holder {
            Some(holder) => self.holder(holder, colon_end)?,
            None => self.push(Kind::Empty, colon_end..colon_end, None),
        };
        let end = self.nodes[value]
            .range
            .end
            .max(key_range.end)
            .max(colon_end);
        Ok(MapEntry {
            key,
            key_range: key_range.clone(),
            value,
            range: key_range.start..end,
        })
    }
}

/// Drops trailing white space, line breaks and comments the CST may have attached to a node.
fn trim_range(text: &str, range: Range<usize>) -> Range<usize> {
    let slice = &text[range.clone()];
    let trimmed = slice.trim_end_matches([' ', '\t', '\r', '\n']);
    range.start..range.start + trimmed.len()
}

/// Decodes one scalar's source text exactly as a YAML parser would, by parsing it on its own.
fn decode_scalar(source: &str) -> Scalar {
    let parsed: yaml_serde::Value = yaml_serde::from_str(source)
        .unwrap_or_else(|_| yaml_serde::Value::String(source.trim().to_owned()));
    let (value, kind) = match &parsed {
        yaml_serde::Value::String(s) => (s.clone(), ScalarKind::Str),
        yaml_serde::Value::Null => (String::new(), ScalarKind::Null),
        yaml_serde::Value::Bool(b) => (b.to_string(), ScalarKind::Bool),
        yaml_serde::Value::Number(n) => {
            let kind = if n.is_f64() {
                ScalarKind::Float
            } else {
                ScalarKind::Int
            };
            (source.trim().to_owned(), kind)
        }
        _ => (source.trim().to_owned(), ScalarKind::Str),
    };
    Scalar {
        value,
        kind,
        parsed,
    }
}

impl Tree {
    /// Checks that this tree means what a YAML parser reads from the same text; returns the node
    /// where they first differ. Guards every edit against a misreading by the lossless parser.
    ///
    /// Only `creation_rules` is compared (with every alias it uses resolved): that is all sops
    /// reads, and other top-level keys may hold shapes the lossless parser reads loosely (an
    /// anchor spelled `&hosts:` in a `keys:` list, say) without any effect on the rules.
    pub(crate) fn first_difference(&self, expected: &yaml_serde::Value) -> Option<NodeId> {
        let mut budget = 100_000usize;
        let Kind::Map { entries, .. } = &self.nodes[self.resolve(self.root)].kind else {
            return self.differs(self.root, expected, &mut budget);
        };
        let entry = entries.iter().rev().find(|e| e.key == "creation_rules")?;
        match expected.get("creation_rules") {
            Some(value) => self.differs(entry.value, value, &mut budget),
            None => Some(entry.value),
        }
    }

    fn differs(
        &self,
        id: NodeId,
        expected: &yaml_serde::Value,
        budget: &mut usize,
    ) -> Option<NodeId> {
        use yaml_serde::Value;
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        let here = self.resolve(id);
        let expected = match expected {
            Value::Tagged(tagged) => &tagged.value,
            other => other,
        };
        match (&self.nodes[here].kind, expected) {
            (Kind::Empty, Value::Null) => None,
            (Kind::Scalar(s), value) => (s.parsed != *value).then_some(id),
            (Kind::Seq { items, .. }, Value::Sequence(values)) => {
                if items.len() != values.len() {
                    return Some(id);
                }
                items
                    .iter()
                    .zip(values)
                    .find_map(|(item, value)| self.differs(item.node, value, budget))
            }
            (Kind::Map { entries, .. }, Value::Mapping(map)) => {
                if entries.len() != map.len() {
                    return Some(id);
                }
                for (entry, (key, value)) in entries.iter().zip(map.iter()) {
                    let key_text = match key {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => return Some(entry.value),
                    };
                    let same_key = entry.key == key_text
                        || matches!(key, Value::Number(_))
                            && entry.key.parse::<f64>().ok() == key_text.parse::<f64>().ok();
                    if !same_key {
                        return Some(entry.value);
                    }
                    if let Some(diff) = self.differs(entry.value, value, budget) {
                        return Some(diff);
                    }
                }
                None
            }
            _ => Some(id),
        }
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_the_latest_anchor_before_them() {
        let text = "a: &x one\nb: *x\nc: &x two\nd: *x\n";
        let tree = Tree::build(text).unwrap();
        let Kind::Map { entries, .. } = &tree.nodes[tree.root].kind else {
            panic!("not a map")
        };
        let value = |i: usize| match &tree.nodes[tree.resolve(entries[i].value)].kind {
            Kind::Scalar(s) => s.value.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(value(1), "one");
        assert_eq!(value(3), "two");
    }

    #[test]
    fn folded_and_quoted_scalars_decode_like_yaml() {
        let text = "a: >-\n  x,\n  y\nb: \"p\\x41\"\nc: 'it''s'\n";
        let tree = Tree::build(text).unwrap();
        let Kind::Map { entries, .. } = &tree.nodes[tree.root].kind else {
            panic!("not a map")
        };
        let values: Vec<String> = entries
            .iter()
            .map(|e| match &tree.nodes[e.value].kind {
                Kind::Scalar(s) => s.value.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, ["x, y", "pA", "it's"]);
    }
}
