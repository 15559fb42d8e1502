//! New files written natively by `hostage_sops::create`, judged by the real sops 3.11: the same
//! plaintext encrypted by `sops -e` and by us has the same bytes once ciphertext, IVs, tags, the
//! date, the MAC and the age stanzas are masked; sops decrypts our files (identities on its
//! environment only) to what it decrypts from its own; we decrypt both the same way.

use hostage_sops::{
    create, create_from_tree, data_block_tree, EncryptionRule, Format, MacCheck, NewFileOptions,
    SopsFile,
};

use crate::sops_support::{data_key, fixture, groups_of, mask_enc, Key, Sops};

/// A YAML plaintext without comments (sops encrypts and moves comments; hostage refuses them):
/// nesting, every scalar type, empty and null values, and plaintext values whose quoting sops
/// decides (`_unencrypted`).
pub const YAML_PLAIN: &str = "app:\n  user: admin\n  port: 5432\n  ratio: 1.5\n  enabled: true\n  empty: \"\"\n  nothing: null\n  emap: {}\n  elist: []\n  list:\n    - one\n    - two: deux\n      three: 3\n      inner:\n        k: v\n    - - x\n      - y\nkeys_unencrypted:\n  colon: \"a: b\"\n  bool: \"true\"\n  hash: \"x #y\"\n  dash: -dash\n  multi: |\n    line1\n    line2\n  strip: \"no nl\\nsecond\"\n  lead: \" lead\"\n  int: 12\n  float: 2.50\n  quote: \"it's\"\n  yes: \"yes\"\n  n: \"n\"\n  tab: \"a\\tb\"\n  date: \"2024-01-02\"\n  unicode: \"é ünï\"\n\"quoted key: x\": v\nunicode_ключ: 値\ndata: |\n  -----BEGIN OPENSSH PRIVATE KEY-----\n  b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n  -----END OPENSSH PRIVATE KEY-----\n";

/// The formats `create` writes, with their plaintext fixtures.
fn cases() -> Vec<(&'static str, Format, Vec<u8>)> {
    vec![
        ("yaml", Format::Yaml, YAML_PLAIN.as_bytes().to_vec()),
        ("json", Format::Json, fixture("json")),
        ("dotenv", Format::Dotenv, fixture("dotenv")),
        ("binary", Format::Binary, fixture("binary")),
    ]
}

/// Replaces what is random or time-dependent by placeholders: each `ENC[…]` keeps only its
/// type, armored age blobs become `<ENC>`, RFC 3339 dates become `<DATE>`.
pub fn mask(bytes: &[u8]) -> String {
    let text = mask_enc(std::str::from_utf8(bytes).expect("sops files are UTF-8"));
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("ENC[AES256_GCM,") {
        out.push_str(&rest[..start]);
        let token = &rest[start..];
        let end = token.find(']').expect("ENC token ends") + 1;
        let kind = token[..end]
            .rsplit_once(",type:")
            .map_or("?", |(_, k)| k.trim_end_matches(']'));
        out.push_str(&format!("ENC[{kind}]"));
        rest = &token[end..];
    }
    out.push_str(rest);
    mask_dates(&out)
}

fn mask_dates(text: &str) -> String {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:ddZ";
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                other => other == b,
            });
        if fits {
            out.push_str("<DATE>");
            i += shape.len();
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn options(groups: &[Vec<&Key>]) -> NewFileOptions {
    NewFileOptions {
        key_groups: groups_of(groups),
        shamir_threshold: (groups.len() > 1).then_some(2),
        ..NewFileOptions::for_recipients(Vec::new())
    }
}

/// Our file and sops' file for the same plaintext and rule have the same masked bytes, sops
/// decrypts ours like its own, and we decrypt both to the same tree.
fn assert_like_sops(
    sops: &Sops,
    (kind, format, plain): &(&str, Format, Vec<u8>),
    groups: &[Vec<&Key>],
    options: &NewFileOptions,
    rule_extra: &str,
) {
    let theirs = sops.encrypt_with(kind, plain, groups, rule_extra);
    let ours = create(plain, *format, options).unwrap();
    assert_eq!(
        mask(&ours),
        mask(&theirs),
        "{kind}: our layout differs from sops -e ({} groups, rule extra {rule_extra:?})",
        groups.len()
    );
    let every_group: Vec<&Key> = groups.iter().map(|g| g[0]).collect();
    let decrypted_ours = sops.decrypt(kind, &ours, &every_group).unwrap();
    let decrypted_theirs = sops.decrypt(kind, &theirs, &every_group).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&decrypted_ours),
        String::from_utf8_lossy(&decrypted_theirs),
        "{kind}: sops decrypts our file differently"
    );
    if *format == Format::Binary {
        assert_eq!(&decrypted_ours, plain, "binary content round trip");
    }
    let (our_file, our_key) = data_key(&ours, &every_group);
    our_file.verify_mac(&our_key).unwrap();
    let (their_file, their_key) = data_key(&theirs, &every_group);
    assert_eq!(
        our_file.decrypt(&our_key).unwrap(),
        their_file.decrypt(&their_key).unwrap(),
        "{kind}: hostage decrypts the two files differently"
    );
}

#[test]
fn new_files_have_sops_layout_and_decrypt_with_sops_one_group() {
    let (alice, bob) = (Key::generate(), Key::generate());
    let sops = Sops::new();
    let groups = vec![vec![&alice, &bob]];
    for case in cases() {
        assert_like_sops(&sops, &case, &groups, &options(&groups), "");
    }
}

#[test]
fn new_files_have_sops_layout_and_decrypt_with_sops_shamir_groups() {
    let (alice, bob, carol) = (Key::generate(), Key::generate(), Key::generate());
    let sops = Sops::new();
    let groups = vec![vec![&alice], vec![&bob, &carol], vec![&carol]];
    for case in cases() {
        assert_like_sops(&sops, &case, &groups, &options(&groups), "");
    }
}

#[test]
fn crypt_rules_and_mac_only_encrypted_are_written_like_sops() {
    let alice = Key::generate();
    let sops = Sops::new();
    let groups = vec![vec![&alice]];
    let rules = [
        (
            EncryptionRule::EncryptedRegex("^(data|user|PASSWORD)$".into()),
            "    encrypted_regex: ^(data|user|PASSWORD)$\n",
        ),
        (
            EncryptionRule::UnencryptedRegex("^(port|USER)$".into()),
            "    unencrypted_regex: ^(port|USER)$\n",
        ),
        (
            EncryptionRule::EncryptedSuffix("_secret".into()),
            "    encrypted_suffix: _secret\n",
        ),
    ];
    for (rule, extra) in rules {
        for mac_only in [false, true] {
            let options = NewFileOptions {
                encryption: rule.clone(),
                mac_only_encrypted: mac_only,
                ..options(&groups)
            };
            let extra = if mac_only {
                format!("{extra}    mac_only_encrypted: true\n")
            } else {
                extra.to_owned()
            };
            for case in cases() {
                assert_like_sops(&sops, &case, &groups, &options, &extra);
            }
        }
    }
}

#[test]
fn a_host_key_backup_is_the_seed_data_block_and_sops_extracts_the_key() {
    let (workstation, host) = (Key::generate(), Key::generate());
    let sops = Sops::new();
    let secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";
    let groups = vec![vec![&workstation, &host]];
    let ours = create_from_tree(&data_block_tree(secret), Format::Yaml, &options(&groups)).unwrap();
    let plain = format!(
        "data: |\n{}",
        secret
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let theirs = sops.encrypt("yaml", plain.as_bytes(), &groups);
    assert_eq!(mask(&ours), mask(&theirs));
    assert_eq!(
        String::from_utf8(sops.decrypt("yaml", &ours, &[&host]).unwrap()).unwrap(),
        plain
    );
    let extracted = sops.extract("yaml", &ours, "[\"data\"]", &[&host]).unwrap();
    assert_eq!(String::from_utf8(extracted).unwrap(), secret);
}

#[test]
fn multi_document_yaml_gets_the_same_sops_block_in_every_document() {
    let (alice, bob) = (Key::generate(), Key::generate());
    let sops = Sops::new();
    let groups = vec![vec![&alice], vec![&bob]];
    let plain =
        "a: 1\nquoted: \"2024-01-02\"\n---\nb: x\nc_unencrypted: visible\n---\nd:\n    - e\n"
            .as_bytes()
            .to_vec();
    assert_like_sops(
        &sops,
        &("yaml", Format::Yaml, plain),
        &groups,
        &options(&groups),
        "",
    );
}

#[test]
fn we_decrypt_our_new_files_with_a_verified_mac() {
    let alice = Key::generate();
    let groups = vec![vec![&alice]];
    for (_, format, plain) in cases() {
        let ours = create(&plain, format, &options(&groups)).unwrap();
        let file = SopsFile::parse(&ours, None).unwrap();
        assert_eq!(file.format(), format);
        let (file, key) = data_key(&ours, &[&alice]);
        file.verify_mac(&key).unwrap();
        // A re-wrap of our file works like one of a sops file.
        let bob = Key::generate();
        let rewrapped = file
            .rewrap(&key, &groups_of(&[vec![&alice, &bob]]), MacCheck::Verify)
            .unwrap();
        let (again, key) = data_key(&rewrapped, &[&bob]);
        again.verify_mac(&key).unwrap();
    }
}

#[test]
fn plaintext_the_engine_cannot_write_faithfully_is_refused_with_the_reason() {
    let alice = Key::generate();
    let options = options(&[vec![&alice]]);
    for (plain, format, expected) in [
        ("a: 1 # note\n", Format::Yaml, "comments"),
        ("a: 1\nd: 2024-01-02\n", Format::Yaml, "quote it"),
        ("a: 017\n", Format::Yaml, "quote it"),
        ("- a\n", Format::Yaml, "not a mapping"),
        ("a: [\n", Format::Yaml, "line"),
        ("[1]", Format::Json, "not an object"),
        ("NOEQUALS\n", Format::Dotenv, "line 1"),
        ("[s]\na = b\n", Format::Ini, "INI"),
    ] {
        let err = create(plain.as_bytes(), format, &options)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{plain:?}: {err}");
        assert!(
            !err.contains("note"),
            "the error quotes the plaintext: {err}"
        );
    }
    let bad_groups = NewFileOptions {
        key_groups: vec![vec![alice.recipient.clone()], vec![]],
        ..options.clone()
    };
    let err = create(b"a: b\n", Format::Yaml, &bad_groups).unwrap_err();
    assert!(
        err.to_string().contains("key group 2 has no age recipient"),
        "{err}"
    );
    let ssh =
        NewFileOptions::for_recipients(vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBr".into()]);
    let err = create(b"a: b\n", Format::Yaml, &ssh).unwrap_err();
    assert!(err.to_string().contains("age X25519"), "{err}");
}

/// A random document of strings, booleans and nulls (the values JSON and YAML read alike), with
/// keys and strings that exercise YAML's quoting, and `_unencrypted` keys so some stay visible.
fn random_document() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let text = prop_oneof![
        "[a-zA-Z0-9 äö値#:'\"!&*@?,\\[\\]{}|>%=.-]{0,12}",
        "[a-z ]{0,5}\n[a-z: ]{0,5}\n?",
        Just("yes".to_owned()),
        Just("2024-01-02".to_owned()),
        Just("0x1F".to_owned()),
    ];
    let key = prop_oneof![
        "[a-zA-Z_値]{1,6}",
        "[a-z]{1,4}_unencrypted",
        "[a-z:# ']{1,6}",
    ]
    .prop_filter("sops is the metadata key", |k| k != "sops");
    let leaf = prop_oneof![
        text.prop_map(serde_json::Value::String),
        any::<bool>().prop_map(serde_json::Value::Bool),
        Just(serde_json::Value::Null),
    ];
    let tree = leaf.prop_recursive(3, 16, 3, move |inner| {
        prop_oneof![
            proptest::collection::btree_map(key.clone(), inner.clone(), 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            proptest::collection::vec(inner, 0..3).prop_map(serde_json::Value::Array),
        ]
    });
    proptest::collection::btree_map("[a-z]{1,4}(_unencrypted)?", tree, 1..4)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

fn tree_of(json: &serde_json::Value) -> hostage_sops::Value {
    use hostage_sops::Value;
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(tree_of).collect()),
        serde_json::Value::Object(members) => Value::Map(
            members
                .iter()
                .map(|(k, v)| (k.clone(), tree_of(v)))
                .collect(),
        ),
    }
}

proptest::proptest! {
    // sops runs several times per case: a handful of cases.
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 8, .. Default::default() })]

    #[test]
    fn random_documents_are_laid_out_like_sops_and_sops_decrypts_them(doc in random_document()) {
        let alice = Key::generate();
        let sops = Sops::new();
        let groups = vec![vec![&alice]];
        let config = sops.config(&groups);
        let json_text = serde_json::to_string(&doc).unwrap();
        let tree = hostage_sops::Tree { documents: vec![tree_of(&doc)] };
        for (kind, format) in [("yaml", Format::Yaml), ("json", Format::Json)] {
            let ours = match create_from_tree(&tree, format, &options(&groups)) {
                Ok(bytes) => bytes,
                // A plaintext block sops 3.11 would write misindented: refused, nothing to compare.
                Err(e) if e.to_string().contains("misindented") => continue,
                Err(e) => panic!("{e}"),
            };
            let theirs = sops.encrypt_converting("json", kind, json_text.as_bytes(), &config);
            proptest::prop_assert_eq!(mask(&ours), mask(&theirs), "{} layout", kind);
            let decrypted = sops.decrypt_converting(kind, "json", &ours, &[&alice]);
            let decrypted: serde_json::Value = serde_json::from_slice(&decrypted).unwrap();
            proptest::prop_assert_eq!(&decrypted, &doc, "{} plaintext", kind);
        }
    }
}

#[test]
fn a_creation_rules_options_give_the_file_sops_writes_for_that_path() {
    let (workstation, host) = (Key::generate(), Key::generate());
    let sops = Sops::new();
    let config = sops.path(".sops.yaml");
    fs_err::write(
        &config,
        format!(
            "keys:\n  - &workstation {w}\n  - &host {h}\ncreation_rules:\n  - path_regex: secrets/host/.*\n    encrypted_regex: ^(data|password)$\n    key_groups:\n      - age: [*workstation]\n      - age: [*host]\n  - path_regex: secrets/.*\n    age: {w}\n",
            w = workstation.recipient,
            h = host.recipient
        ),
    )
    .unwrap();
    let rules = hostage_sops::rules::SopsConfig::load(&config).unwrap();
    for (path, plain) in [
        ("secrets/host/a/db.yaml", "password: s3cr3t\nuser: app\n"),
        ("secrets/app.yaml", "token: t0k3n\n"),
    ] {
        let (_, rule) = rules.rule_for(&sops.path(path)).unwrap();
        let options = NewFileOptions::from_rule(&rules, rule).unwrap();
        let ours = create(plain.as_bytes(), Format::Yaml, &options).unwrap();
        fs_err::create_dir_all(sops.path(path).parent().unwrap()).unwrap();
        fs_err::write(sops.path(path), plain).unwrap();
        let theirs = duct::cmd!(
            hostage_tests::sops(),
            "--config",
            &config,
            "encrypt",
            sops.path(path)
        )
        .dir(sops.dir.path())
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("HOME", sops.dir.path())
        .env("XDG_CONFIG_HOME", sops.dir.path())
        .stdout_capture()
        .run()
        .unwrap()
        .stdout;
        assert_eq!(mask(&ours), mask(&theirs), "{path}");
        let both: Vec<&Key> = vec![&workstation, &host];
        assert_eq!(
            String::from_utf8(sops.decrypt("yaml", &ours, &both).unwrap()).unwrap(),
            plain,
            "{path}"
        );
    }
}
