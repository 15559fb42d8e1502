//! Property tests of new files and `set`, in memory (the judgement by the real sops is in
//! `tests/it/sops_create.rs` and `sops_set.rs`): create → our decrypt gives the tree back with a
//! valid MAC; set → decrypt shows the new value and everything else unchanged.

use hostage_recipients::{AgeIdentity, IdentitySet, IdentitySource};
use proptest::prelude::*;
use zeroize::Zeroizing;

use crate::{
    create, create_from_tree, DataKey, EncryptionRule, Format, MacCheck, NewFileOptions,
    SetOutcome, SopsFile, Tree, Value,
};

fn identity() -> (AgeIdentity, String) {
    let mut scalar = Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, scalar.as_mut());
    let identity = AgeIdentity::from_scalar(scalar);
    let recipient = identity.recipient().to_string();
    (identity, recipient)
}

fn open(bytes: &[u8], identity: &AgeIdentity) -> (SopsFile, DataKey) {
    let file = SopsFile::parse(bytes, None).expect("our output parses");
    let set = IdentitySet::from_identities(IdentitySource::KeyVariable, vec![identity.clone()]);
    let key = file
        .data_key(&set, &mut ())
        .expect("our recipient opens it");
    file.verify_mac(&key).expect("the MAC verifies");
    (file, key)
}

/// Strings that exercise the YAML scalar styles (quoting, blocks, escapes, YAML 1.1 words).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 äö値#:'\"!&*@\\-?,\\[\\]{}|>%`=.\t]{0,14}",
        "[a-z ]{0,6}\n[a-z: ]{0,6}\n?",
        Just("yes".to_owned()),
        Just("null".to_owned()),
        Just("0x1F".to_owned()),
        Just("2024-01-02".to_owned()),
        Just("1_000".to_owned()),
        Just(" lead".to_owned()),
        Just("trail ".to_owned()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_ключ値]{1,8}",
        "[a-z]{1,5}_unencrypted",
        text().prop_filter("a key", |k| !k.is_empty() && !k.contains('\n')),
    ]
    .prop_filter("sops is the metadata key; `<<` a merge key", |k| {
        k != "sops" && k != "<<"
    })
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::Str),
        any::<i32>().prop_map(|i| Value::Int(i64::from(i))),
        (-1000i32..1000).prop_map(|f| Value::Float(f64::from(f) + 0.25)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    let map = |inner: BoxedStrategy<Value>| {
        proptest::collection::btree_map(key(), inner, 0..4)
            .prop_map(|m| Value::Map(m.into_iter().collect()))
    };
    let tree = leaf().prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            map(inner.clone().boxed()),
            proptest::collection::vec(inner, 0..4).prop_map(Value::List),
        ]
    });
    proptest::collection::btree_map(key(), tree, 1..5)
        .prop_map(|m| Value::Map(m.into_iter().collect()))
}

fn dotenv_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            ("[A-Z_]{1,6}", "[a-zA-Z0-9 =#:'\"]{0,10}").prop_map(|(k, v)| format!("{k}={v}")),
            "[a-z ]{0,8}".prop_map(|c| format!("#{c}")),
            Just("MULTI=a\\nb".to_owned()),
            Just(String::new()),
        ],
        1..6,
    )
    .prop_map(|lines| lines.join("\n") + "\n")
}

fn options(recipient: &str, encryption: EncryptionRule, mac_only: bool) -> NewFileOptions {
    NewFileOptions {
        encryption,
        mac_only_encrypted: mac_only,
        ..NewFileOptions::for_recipients(vec![recipient.to_owned()])
    }
}

fn rule() -> impl Strategy<Value = EncryptionRule> {
    prop_oneof![
        Just(EncryptionRule::default()),
        Just(EncryptionRule::EncryptedRegex("^[a-m]".into())),
        Just(EncryptionRule::UnencryptedRegex("[n-z]".into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn create_then_decrypt_is_the_identity_for_yaml_and_json(
        doc in document(),
        rule in rule(),
        mac_only in any::<bool>(),
    ) {
        let (identity, recipient) = identity();
        let tree = Tree { documents: vec![doc] };
        for format in [Format::Yaml, Format::Json] {
            let Some(bytes) = created(&tree, format, &options(&recipient, rule.clone(), mac_only)) else {
                continue;
            };
            let (file, key) = open(&bytes, &identity);
            let back = file.decrypt(&key).expect("decrypt");
            if format == Format::Json {
                // JSON numbers are floats in sops 3.11: compare through that lens.
                prop_assert_eq!(as_json_numbers(&back.documents[0]), as_json_numbers(&tree.documents[0]));
            } else {
                prop_assert_eq!(&back, &tree);
            }
        }
    }

    #[test]
    fn create_then_decrypt_is_the_identity_for_dotenv_and_binary(
        env in dotenv_text(),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let (identity, recipient) = identity();
        let opts = options(&recipient, EncryptionRule::default(), false);
        let file = create(env.as_bytes(), Format::Dotenv, &opts).expect("create dotenv");
        let (file, key) = open(&file, &identity);
        let back = file.decrypt(&key).expect("decrypt");
        let expected: Vec<(String, Value)> = env
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), Value::Str(v.replace("\\n", "\n"))))
            .collect();
        prop_assert_eq!(&back.documents, &vec![Value::Map(expected)]);

        let file = create(&bytes, Format::Binary, &opts).expect("create binary");
        let (file, key) = open(&file, &identity);
        let back = file.decrypt(&key).expect("decrypt");
        let data = back.documents[0].get("data").expect("data");
        let content = match data {
            Value::Str(s) => s.as_bytes().to_vec(),
            Value::Bytes(b) => b.clone(),
            _ => Vec::new(),
        };
        prop_assert_eq!(content, bytes);
    }

    #[test]
    fn set_shows_the_new_value_and_leaves_the_rest(
        doc in document(),
        new_value in leaf(),
        pick in any::<prop::sample::Index>(),
        new_key in key(),
    ) {
        let (identity, recipient) = identity();
        let tree = Tree { documents: vec![doc] };
        for format in [Format::Yaml, Format::Json] {
            let Some(bytes) = created(&tree, format, &options(&recipient, EncryptionRule::default(), false)) else {
                continue;
            };
            let (file, key) = open(&bytes, &identity);
            let before = file.decrypt(&key).expect("decrypt");
            let Value::Map(entries) = &before.documents[0] else { unreachable!() };
            // Replace a top-level scalar, or add a new top-level key.
            let scalar_keys: Vec<&String> = entries
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Map(_) | Value::List(_)))
                .map(|(k, _)| k)
                .collect();
            let add = scalar_keys.is_empty() || pick.index(2) == 0;
            let target = if add {
                if entries.iter().any(|(k, _)| *k == new_key) {
                    continue;
                }
                new_key.clone()
            } else {
                scalar_keys[pick.index(scalar_keys.len())].clone()
            };
            let outcome = file.set(&key, std::slice::from_ref(&target), &new_value, MacCheck::Verify).expect("set");
            let after_bytes = match outcome {
                SetOutcome::Unchanged => bytes.clone(),
                SetOutcome::Replaced(b) | SetOutcome::Added(b) => b,
            };
            let (after, after_key) = open(&after_bytes, &identity);
            let after = after.decrypt(&after_key).expect("decrypt after set");
            let mut expected = entries.clone();
            match expected.iter_mut().find(|(k, _)| *k == target) {
                Some((_, v)) => *v = new_value.clone(),
                None => expected.push((target.clone(), new_value.clone())),
            }
            let expected = Value::Map(expected);
            if format == Format::Json {
                prop_assert_eq!(as_json_numbers(&after.documents[0]), as_json_numbers(&expected));
            } else {
                prop_assert_eq!(&after.documents[0], &expected);
            }
        }
    }
}

/// The new file, or `None` for the one refusal a random tree can hit (a plaintext multi-line
/// value that sops 3.11 would write misindented).
fn created(tree: &Tree, format: Format, options: &NewFileOptions) -> Option<Vec<u8>> {
    match create_from_tree(tree, format, options) {
        Ok(bytes) => Some(bytes),
        Err(crate::SopsError::Unsupported { reason, .. }) if reason.contains("misindented") => None,
        Err(e) => panic!("create: {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn any_plaintext_is_encrypted_or_refused_never_a_panic(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            r#"[a-z:#'"\-\[\]{}|>&*!%@ \n\t0-9.=_]{0,80}"#.prop_map(String::into_bytes),
        ],
    ) {
        let (_, recipient) = identity();
        let options = NewFileOptions::for_recipients(vec![recipient]);
        for format in [Format::Yaml, Format::Json, Format::Dotenv, Format::Ini, Format::Binary] {
            let _ = create(&bytes, format, &options);
        }
    }

    #[test]
    fn set_on_any_path_and_value_is_done_or_refused_never_a_panic(
        doc in document(),
        path in proptest::collection::vec(key(), 0..3),
        value in leaf(),
    ) {
        let (identity, recipient) = identity();
        let tree = Tree { documents: vec![doc] };
        for format in [Format::Yaml, Format::Json] {
            let Some(bytes) = created(&tree, format, &options(&recipient, EncryptionRule::default(), false)) else {
                continue;
            };
            let (file, key) = open(&bytes, &identity);
            if let Ok(SetOutcome::Replaced(after) | SetOutcome::Added(after)) =
                file.set(&key, &path, &value, MacCheck::Verify)
            {
                open(&after, &identity);
            }
        }
    }
}

/// A tree as a sops 3.11 JSON file holds it: every number a float.
fn as_json_numbers(value: &Value) -> Value {
    match value {
        Value::Int(i) => Value::Float(*i as f64),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), as_json_numbers(v)))
                .collect(),
        ),
        Value::List(items) => Value::List(items.iter().map(as_json_numbers).collect()),
        other => other.clone(),
    }
}

#[test]
fn a_single_value_file_decrypts_to_that_value_at_its_path() {
    let (identity, recipient) = identity();
    let path = vec!["db".to_owned(), "password".to_owned()];
    let tree = crate::single_value_tree(&path, Value::Str("s3cr3t".into()));
    for format in [Format::Yaml, Format::Json] {
        let bytes = create_from_tree(
            &tree,
            format,
            &NewFileOptions::for_recipients(vec![recipient.clone()]),
        )
        .expect("create");
        let (file, key) = open(&bytes, &identity);
        let back = file.decrypt(&key).expect("decrypt");
        assert_eq!(
            back.documents[0]
                .get("db")
                .and_then(|db| db.get("password")),
            Some(&Value::Str("s3cr3t".into()))
        );
    }
    assert_eq!(
        crate::format_for_new_file(std::path::Path::new("secrets/host/a/key.sops")),
        Format::Binary
    );
    assert_eq!(
        crate::format_for_new_file(std::path::Path::new("a.sops.yaml")),
        Format::Yaml
    );
}

#[test]
fn the_data_block_backup_round_trips() {
    let (identity, recipient) = identity();
    let secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n";
    let bytes = create_from_tree(
        &crate::data_block_tree(secret),
        Format::Yaml,
        &NewFileOptions::for_recipients(vec![recipient]),
    )
    .expect("create");
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(text.starts_with("data: ENC[AES256_GCM,"), "{text}");
    let (file, key) = open(&bytes, &identity);
    let back = file.decrypt(&key).expect("decrypt");
    assert_eq!(
        back.documents[0].get("data"),
        Some(&Value::Str(secret.into()))
    );
}
