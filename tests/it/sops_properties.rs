//! Property tests against the real sops: random trees (nested maps, lists, comments, unicode keys,
//! empty strings, numbers, booleans) survive sops encrypt → hostage rotate/re-wrap → sops decrypt.

// Test helpers: a panic with the value is the right failure (clippy.toml allows unwrap in #[test] only).
#![allow(clippy::unwrap_used)]

use hostage_sops::{MacCheck, SopsFile};
use proptest::prelude::*;

use crate::sops_support::{data_key, Key, Sops};

#[derive(Clone, Debug)]
enum Node {
    Str(String),
    Int(i64),
    Float(i32),
    Bool(bool),
    Null,
    Map(Vec<(String, Node, bool)>),
    List(Vec<(Node, bool)>),
}

fn tree() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 äöü値ключ!?._-]{0,12}".prop_map(Node::Str),
        any::<i32>().prop_map(|i| Node::Int(i64::from(i))),
        any::<i32>().prop_map(Node::Float),
        any::<bool>().prop_map(Node::Bool),
        Just(Node::Null),
    ];
    let map = |inner: BoxedStrategy<Node>| {
        proptest::collection::btree_map(
            "[a-zA-Z_ключ値]{1,8}".prop_filter("sops is the metadata key", |k| k != "sops"),
            (inner, any::<bool>()),
            1..4,
        )
        .prop_map(|m| Node::Map(m.into_iter().map(|(k, (v, c))| (k, v, c)).collect()))
    };
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            map(inner.clone().boxed()),
            proptest::collection::vec((inner, any::<bool>()), 1..4).prop_map(Node::List),
        ]
    })
    .prop_flat_map(move |root| match root {
        Node::Map(_) => Just(root).boxed(),
        other => Just(Node::Map(vec![("root".into(), other, true)])).boxed(),
    })
}

fn json_scalar(node: &Node) -> String {
    match node {
        Node::Str(s) => serde_json::to_string(s).unwrap(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => format!("{}.25", f / 4),
        Node::Bool(b) => b.to_string(),
        Node::Null => "null".into(),
        Node::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v, _)| format!(
                    "{}: {}",
                    serde_json::to_string(k).unwrap(),
                    json_scalar(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Node::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|(v, _)| json_scalar(v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn yaml(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(entries) => {
            for (i, (key, value, comment)) in entries.iter().enumerate() {
                if *comment {
                    out.push_str(&format!("{pad}# comment {i} ü\n"));
                }
                let key = serde_json::to_string(key).unwrap();
                match value {
                    Node::Map(_) | Node::List(_) => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml(value, indent + 4, out);
                    }
                    scalar => out.push_str(&format!("{pad}{key}: {}\n", json_scalar(scalar))),
                }
            }
        }
        Node::List(items) => {
            for (item, comment) in items {
                if *comment {
                    out.push_str(&format!("{pad}# in a list\n"));
                }
                out.push_str(&format!("{pad}- {}\n", json_scalar(item)));
            }
        }
        scalar => out.push_str(&format!("{pad}{}\n", json_scalar(scalar))),
    }
}

fn round_trip(kind: &str, plain: &str, keys: &(Key, Key, Key)) {
    let (alice, bob, carol) = keys;
    let sops = Sops::new();
    let encrypted = sops.encrypt(kind, plain.as_bytes(), &[vec![alice, bob]]);
    let expected = sops.decrypt(kind, &encrypted, &[alice]).unwrap();
    let (file, key) = data_key(&encrypted, &[alice]);
    file.verify_mac(&key).unwrap();
    file.decrypt(&key).unwrap();
    let groups = vec![vec![alice.recipient.clone(), carol.recipient.clone()]];
    let rotated = file.rotate(&key, &groups, MacCheck::Verify).unwrap();
    assert_eq!(
        sops.decrypt(kind, &rotated, &[carol]).unwrap(),
        expected,
        "{plain}"
    );
    assert!(sops.decrypt(kind, &rotated, &[bob]).is_err());
    let (file, key) = data_key(&rotated, &[carol]);
    let rewrapped = file
        .rewrap(&key, &[vec![bob.recipient.clone()]], MacCheck::Verify)
        .unwrap();
    assert_eq!(
        sops.decrypt(kind, &rewrapped, &[bob]).unwrap(),
        expected,
        "{plain}"
    );
    SopsFile::parse(&rewrapped, None).unwrap();
}

fn keys() -> &'static (Key, Key, Key) {
    static KEYS: std::sync::OnceLock<(Key, Key, Key)> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| (Key::generate(), Key::generate(), Key::generate()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn random_yaml_trees_survive_rotate_and_rewrap(root in tree()) {
        let mut text = String::from("# header\n");
        yaml(&root, 0, &mut text);
        round_trip("yaml", &text, keys());
    }

    #[test]
    fn random_json_trees_survive_rotate_and_rewrap(root in tree()) {
        round_trip("json", &json_scalar(&root), keys());
    }

    #[test]
    fn random_dotenv_files_survive_rotate_and_rewrap(
        entries in proptest::collection::btree_map(
            "[A-Z][A-Z0-9_]{0,8}",
            ("[a-zA-Z0-9 äöü値=:/+.-]{0,16}", any::<bool>()),
            1..8,
        )
    ) {
        let mut text = String::new();
        for (key, (value, comment)) in &entries {
            if *comment {
                text.push_str(&format!("# about {key}\n"));
            }
            text.push_str(&format!("{key}={value}\n"));
        }
        round_trip("dotenv", &text, keys());
    }

    #[test]
    fn random_ini_files_survive_rotate_and_rewrap(
        sections in proptest::collection::btree_map(
            "[a-z][a-z0-9]{0,6}".prop_filter("sops is the metadata section", |s| s != "sops"),
            proptest::collection::btree_map("[a-z][a-z0-9_]{0,8}", ("[a-zA-Z0-9 äöü値/+.-]{0,16}", any::<bool>()), 1..5),
            1..4,
        )
    ) {
        let mut text = String::new();
        for (section, entries) in &sections {
            text.push_str(&format!("[{section}]\n"));
            for (key, (value, comment)) in entries {
                if *comment {
                    text.push_str(&format!("; about {key}\n"));
                }
                text.push_str(&format!("{key} = {value}\n"));
            }
            text.push('\n');
        }
        round_trip("ini", &text, keys());
    }
}
