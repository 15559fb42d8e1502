//! `SopsFile::set` judged by the real sops 3.11: the same change made by `sops set` and by us gives
//! the same masked bytes, sops decrypts our result and `--extract` gives the new value, and every
//! other `ENC[…]` and age `enc` stays byte-identical.

use hostage_sops::{
    create, EncryptionRule, Format, MacCheck, NewFileOptions, SetOutcome, SopsError, Value,
};

use crate::sops_create::{mask, YAML_PLAIN};
use crate::sops_support::{data_key, fixture, Key, Sops};

/// A format to test: `(sops type, format, plaintext, paths to set: existing and new ones)`.
type Case = (&'static str, Format, Vec<u8>, Vec<Vec<&'static str>>);

fn cases() -> Vec<Case> {
    vec![
        (
            "yaml",
            Format::Yaml,
            YAML_PLAIN.as_bytes().to_vec(),
            vec![
                vec!["app", "user"],
                vec!["data"],
                vec!["app", "new"],
                vec!["app", "list_unencrypted"],
                vec!["top"],
                vec!["keys_unencrypted", "colon"],
            ],
        ),
        (
            "json",
            Format::Json,
            fixture("json"),
            vec![
                vec!["app", "user"],
                vec!["app", "new"],
                vec!["top"],
                vec!["name_unencrypted"],
            ],
        ),
        (
            "dotenv",
            Format::Dotenv,
            fixture("dotenv"),
            vec![vec!["USER"], vec!["NEW"], vec!["NAME_unencrypted"]],
        ),
    ]
}

fn extract_path(path: &[&str]) -> String {
    path.iter().map(|k| format!("[\"{k}\"]")).collect()
}

fn owned(path: &[&str]) -> Vec<String> {
    path.iter().map(|k| (*k).to_owned()).collect()
}

/// The `ENC[…]` tokens and age blobs of `text` outside the one changed value and the MAC.
fn untouched_tokens(text: &str, except: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("ENC[AES256_GCM,") {
        let token = &rest[start..];
        let end = token.find(']').unwrap() + 1;
        if !except.contains(&&token[..end]) {
            out.push(token[..end].to_owned());
        }
        rest = &token[end..];
    }
    out.extend(
        text.split("-----BEGIN")
            .skip(1)
            .map(|blob| blob.split("-----END").next().unwrap().to_owned()),
    );
    out
}

fn sops_created_and_ours(
    sops: &Sops,
    kind: &str,
    format: Format,
    plain: &[u8],
    alice: &Key,
) -> [Vec<u8>; 2] {
    [
        sops.encrypt(kind, plain, &[vec![alice]]),
        create(
            plain,
            format,
            &NewFileOptions::for_recipients(vec![alice.recipient.clone()]),
        )
        .unwrap(),
    ]
}

#[test]
fn set_equals_sops_set_and_sops_extracts_the_new_value() {
    let alice = Key::generate();
    let sops = Sops::new();
    for (kind, format, plain, paths) in cases() {
        for original in sops_created_and_ours(&sops, kind, format, &plain, &alice) {
            for path in &paths {
                let (file, key) = data_key(&original, &[&alice]);
                let new_value = "n3w v@lue: #1\nsecond line";
                let outcome = file
                    .set(
                        &key,
                        &owned(path),
                        &Value::Str(new_value.into()),
                        MacCheck::Verify,
                    )
                    .unwrap();
                let ours = match outcome {
                    SetOutcome::Replaced(bytes) | SetOutcome::Added(bytes) => bytes,
                    SetOutcome::Unchanged => panic!("{kind} {path:?}: nothing changed"),
                };
                let theirs = sops
                    .set(
                        kind,
                        &original,
                        &extract_path(path),
                        &serde_json::to_string(new_value).unwrap(),
                        &[&alice],
                    )
                    .unwrap();
                assert_eq!(
                    mask(&ours),
                    mask(&theirs),
                    "{kind} {path:?}: differs from sops set"
                );
                let extracted = sops
                    .extract(kind, &ours, &extract_path(path), &[&alice])
                    .unwrap();
                assert_eq!(
                    String::from_utf8(extracted).unwrap().trim_end_matches('\n'),
                    new_value.trim_end_matches('\n'),
                    "{kind} {path:?}"
                );
                // Every other value and every age blob keeps its bytes.
                let (before, _) = data_key(&original, &[&alice]);
                let old_text = std::str::from_utf8(&original).unwrap();
                let new_text = std::str::from_utf8(&ours).unwrap();
                let mac = before.metadata().mac.clone();
                let (after, key) = data_key(&ours, &[&alice]);
                after.verify_mac(&key).unwrap();
                let new_mac = after.metadata().mac.clone();
                let old_tokens = untouched_tokens(old_text, &[&mac]);
                let new_tokens = untouched_tokens(new_text, &[&new_mac]);
                let kept = old_tokens.iter().filter(|t| new_tokens.contains(t)).count();
                assert!(
                    kept + 1 >= old_tokens.len(),
                    "{kind} {path:?}: more than the set value changed"
                );
                // sops decrypts the whole file, and only the set value differs.
                sops.decrypt(kind, &ours, &[&alice]).unwrap();
            }
        }
    }
}

#[test]
fn set_follows_the_files_crypt_rule_mac_only_and_shamir_groups_like_sops_set() {
    let (alice, bob) = (Key::generate(), Key::generate());
    let sops = Sops::new();
    let options = NewFileOptions {
        key_groups: vec![vec![alice.recipient.clone()], vec![bob.recipient.clone()]],
        shamir_threshold: Some(2),
        encryption: EncryptionRule::EncryptedRegex("^(user|data|secret)$".into()),
        mac_only_encrypted: true,
    };
    for (kind, format, plain, _) in cases() {
        let original = create(&plain, format, &options).unwrap();
        for path in [vec!["secret"], vec!["visible"]] {
            let (file, key) = data_key(&original, &[&alice, &bob]);
            let SetOutcome::Added(ours) = file
                .set(
                    &key,
                    &owned(&path),
                    &Value::Str("v".into()),
                    MacCheck::Verify,
                )
                .unwrap()
            else {
                panic!("{kind} {path:?} was not added");
            };
            let theirs = sops
                .set(
                    kind,
                    &original,
                    &extract_path(&path),
                    "\"v\"",
                    &[&alice, &bob],
                )
                .unwrap();
            assert_eq!(mask(&ours), mask(&theirs), "{kind} {path:?}");
            let extracted = sops.extract(kind, &ours, &extract_path(&path), &[&alice, &bob]);
            assert_eq!(extracted.unwrap(), b"v", "{kind} {path:?}");
        }
    }
}

#[test]
fn setting_the_current_value_changes_nothing() {
    let alice = Key::generate();
    let sops = Sops::new();
    let original = sops.encrypt("yaml", YAML_PLAIN.as_bytes(), &[vec![&alice]]);
    let (file, key) = data_key(&original, &[&alice]);
    let outcome = file
        .set(
            &key,
            &owned(&["app", "user"]),
            &Value::Str("admin".into()),
            MacCheck::Verify,
        )
        .unwrap();
    assert_eq!(outcome, SetOutcome::Unchanged);
}

#[test]
fn set_replaces_a_binary_files_content() {
    let alice = Key::generate();
    let sops = Sops::new();
    let original = sops.encrypt("binary", &fixture("binary"), &[vec![&alice]]);
    let (file, key) = data_key(&original, &[&alice]);
    let SetOutcome::Replaced(ours) = file
        .set(
            &key,
            &owned(&["data"]),
            &Value::Str("new content\n".into()),
            MacCheck::Verify,
        )
        .unwrap()
    else {
        panic!("the data was not replaced");
    };
    assert_eq!(
        sops.decrypt("binary", &ours, &[&alice]).unwrap(),
        b"new content\n"
    );
}

#[test]
fn set_refuses_what_it_cannot_do_and_says_why() {
    let alice = Key::generate();
    let sops = Sops::new();
    let original = sops.encrypt("yaml", YAML_PLAIN.as_bytes(), &[vec![&alice]]);
    let (file, key) = data_key(&original, &[&alice]);
    let value = Value::Str("x".into());
    for (path, expected) in [
        (
            vec!["missing", "child"],
            "`missing` is not an existing mapping",
        ),
        (vec!["app", "list"], "holds a mapping or list"),
        (vec!["data", "below"], "`data` is not a mapping"),
        (vec![], "the path is empty"),
    ] {
        let err = file
            .set(&key, &owned(&path), &value, MacCheck::Verify)
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{path:?}: {err}");
    }
    // A tampered file is refused before anything is written.
    let tampered = String::from_utf8(original.clone()).unwrap().replace(
        "keys_unencrypted:\n    colon: 'a: b'",
        "keys_unencrypted:\n    colon: 'a: c'",
    );
    let (file, key) = data_key(tampered.as_bytes(), &[&alice]);
    let err = file
        .set(&key, &owned(&["app", "user"]), &value, MacCheck::Verify)
        .unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
}
