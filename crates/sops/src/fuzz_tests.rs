//! Fuzz-style property tests over the readers and editors: arbitrary and mutated input never
//! panics (it parses, or it is an error).

use proptest::prelude::*;

use crate::{DataKey, MacCheck, SopsFile};

fn enc_value(kind: &str) -> String {
    format!(
        "ENC[AES256_GCM,data:AAAA,iv:{},tag:{},type:{kind}]",
        "A".repeat(43) + "=",
        "A".repeat(22) + "=="
    )
}

const ARMOR: &str = "-----BEGIN AGE ENCRYPTED FILE-----\nYWJj\n-----END AGE ENCRYPTED FILE-----\n";

fn recipient() -> String {
    use age::secrecy::ExposeSecret as _;
    let identity = age::x25519::Identity::generate();
    let _ = identity.to_string().expose_secret().len();
    identity.to_public().to_string()
}

fn samples(r: &str) -> Vec<String> {
    let e = enc_value("str");
    let mac = enc_value("str");
    let yaml = format!(
        "#{c}\na: {e}\nb:\n    - {e}\n    - c: {e}\nsops:\n    age:\n        - recipient: {r}\n          enc: |\n            -----BEGIN AGE ENCRYPTED FILE-----\n            YWJj\n            -----END AGE ENCRYPTED FILE-----\n    lastmodified: \"2026-11-24T00:52:42Z\"\n    mac: {mac}\n    unencrypted_suffix: _unencrypted\n    version: 3.11.0\n",
        c = enc_value("comment")
    );
    let groups = format!(
        "a: {e}\nsops:\n    shamir_threshold: 2\n    key_groups:\n        - hc_vault: []\n          age:\n            - recipient: {r}\n              enc: |\n                -----BEGIN AGE ENCRYPTED FILE-----\n                YWJj\n                -----END AGE ENCRYPTED FILE-----\n        - hc_vault: []\n          age:\n            - recipient: {r}\n              enc: |\n                -----BEGIN AGE ENCRYPTED FILE-----\n                YWJj\n                -----END AGE ENCRYPTED FILE-----\n    lastmodified: \"2026-11-24T00:52:42Z\"\n    mac: {mac}\n    version: 3.11.0\n"
    );
    let json = format!(
        "{{\n\t\"a\": \"{e}\",\n\t\"n\": 1.5,\n\t\"sops\": {{\n\t\t\"age\": [\n\t\t\t{{\n\t\t\t\t\"recipient\": \"{r}\",\n\t\t\t\t\"enc\": {armor}\n\t\t\t}}\n\t\t],\n\t\t\"lastmodified\": \"2026-11-24T00:52:42Z\",\n\t\t\"mac\": \"{mac}\",\n\t\t\"version\": \"3.11.0\"\n\t}}\n}}\n",
        armor = crate::format::json::quote(ARMOR)
    );
    let dotenv = format!(
        "#{c}\nA={e}\nsops_age__list_0__map_enc={armor}\nsops_age__list_0__map_recipient={r}\nsops_lastmodified=2026-11-24T00:52:42Z\nsops_mac={mac}\nsops_version=3.11.0\n",
        c = enc_value("comment"),
        armor = ARMOR.replace('\n', "\\n")
    );
    let ini = format!(
        "; {c}\n[db]\nuser = {e}\n\n[sops]\nage__list_0__map_enc       = {armor}\nage__list_0__map_recipient = {r}\nlastmodified               = 2026-11-24T00:52:42Z\nmac                        = {mac}\nversion                    = 3.11.0\n",
        c = enc_value("comment"),
        armor = ARMOR.replace('\n', "\\n")
    );
    vec![yaml, groups, json, dotenv, ini]
}

/// Everything a caller may do with an untrusted file, none of which may panic.
fn exercise(bytes: &[u8], r: &str) {
    let Ok(file) = SopsFile::parse(bytes, None) else {
        return;
    };
    let _ = file.recipients();
    let groups = file.metadata().groups.len();
    let Ok(key) = DataKey::generate(groups, file.metadata().threshold.max(1)) else {
        return;
    };
    let _ = file.verify_mac(&key);
    let _ = file.decrypt(&key);
    let wanted: Vec<Vec<String>> = (0..groups).map(|_| vec![r.to_owned()]).collect();
    let _ = file.rewrap(&key, &wanted, MacCheck::Ignore);
    let _ = file.rotate(&key, &wanted, MacCheck::Ignore);
}

#[test]
fn the_samples_parse() {
    let r = recipient();
    for sample in samples(&r) {
        let file = SopsFile::parse(sample.as_bytes(), None).unwrap();
        assert!(!file.metadata().groups.is_empty());
        let key =
            DataKey::generate(file.metadata().groups.len(), file.metadata().threshold).unwrap();
        let wanted: Vec<Vec<String>> = file
            .metadata()
            .groups
            .iter()
            .map(|_| vec![r.clone(), recipient()])
            .collect();
        let out = file.rewrap(&key, &wanted, MacCheck::Ignore).unwrap();
        let again = SopsFile::parse(&out, None).unwrap();
        assert_eq!(again.metadata().groups[0].age.len(), 2);
        assert_eq!(
            again.metadata().groups[0].age[0],
            file.metadata().groups[0].age[0]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes, "age1qqqq");
    }

    #[test]
    fn mutated_sops_files_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec(
            (any::<prop::sample::Index>(), 0u8..3, prop::sample::select(b" \n\t:-,[]{}\"'#=|>&*!a1Z\\".to_vec()), 1usize..40),
            0..6,
        ),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let r = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        let mut bytes = samples(r).swap_remove(which).into_bytes();
        for (index, op, byte, len) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = index.index(bytes.len());
            match op {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => {
                    let end = (at + len).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
        if let Some(cut) = cut {
            let at = cut.index(bytes.len().max(1));
            bytes.truncate(at);
        }
        exercise(&bytes, r);
    }
}

#[test]
fn rewrap_with_the_same_recipients_changes_no_byte() {
    let r = recipient();
    for sample in samples(&r) {
        let file = SopsFile::parse(sample.as_bytes(), None).unwrap();
        let key =
            DataKey::generate(file.metadata().groups.len(), file.metadata().threshold).unwrap();
        let same: Vec<Vec<String>> = file
            .metadata()
            .groups
            .iter()
            .map(|g| g.age.iter().map(|a| a.recipient.clone()).collect())
            .collect();
        let out = file.rewrap(&key, &same, MacCheck::Ignore).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), sample);
    }
}

#[test]
fn two_space_and_unindented_yaml_sequences_keep_their_layout() {
    let r = recipient();
    let mac = enc_value("str");
    for (age_line, dash, block) in [
        ("  age:\n", "    ", "        "),
        ("  age:\n", "  ", "      "),
    ] {
        let text = format!(
            "a: b\nsops:\n{age_line}{dash}- recipient: {r}\n{dash}  enc: |\n{block}-----BEGIN AGE ENCRYPTED FILE-----\n{block}YWJj\n{block}-----END AGE ENCRYPTED FILE-----\n  lastmodified: \"2026-11-24T00:52:42Z\"\n  mac: {mac}\n  version: 3.11.0\n"
        );
        let file = SopsFile::parse(text.as_bytes(), None).unwrap();
        let key = DataKey::generate(1, 1).unwrap();
        let added = recipient();
        let out = file
            .rewrap(&key, &[vec![r.clone(), added.clone()]], MacCheck::Ignore)
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        let expected_head = format!("{dash}- recipient: {added}\n{dash}  enc: |\n{block}-----BEGIN AGE ENCRYPTED FILE-----\n");
        assert!(out.contains(&expected_head), "{out}");
        assert!(out.starts_with(&text[..text.find("  lastmodified").unwrap()]));
        assert!(out.ends_with(&text[text.find("  lastmodified").unwrap()..]));
    }
}

#[test]
fn json_entries_in_3_13_order_stay_enc_first() {
    let r = recipient();
    let mac = enc_value("str");
    let armor = crate::format::json::quote(ARMOR);
    let text = format!(
        "{{\n\t\"a\": \"b\",\n\t\"sops\": {{\n\t\t\"age\": [\n\t\t\t{{\n\t\t\t\t\"enc\": {armor},\n\t\t\t\t\"recipient\": \"{r}\"\n\t\t\t}}\n\t\t],\n\t\t\"lastmodified\": \"2026-11-24T00:52:42Z\",\n\t\t\"mac\": \"{mac}\",\n\t\t\"version\": \"3.13.0\"\n\t}}\n}}\n"
    );
    let file = SopsFile::parse(text.as_bytes(), None).unwrap();
    let key = DataKey::generate(1, 1).unwrap();
    let added = recipient();
    let out = file
        .rewrap(&key, &[vec![added.clone()]], MacCheck::Ignore)
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains(&r));
    assert!(
        out.contains("\t\t\t{\n\t\t\t\t\"enc\": \"-----BEGIN"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "\",\n\t\t\t\t\"recipient\": \"{added}\"\n\t\t\t}}\n\t\t],"
        )),
        "{out}"
    );
}

#[test]
fn diff_reports_kept_added_and_removed_recipients() {
    let r = recipient();
    let sample = &samples(&r)[0];
    let file = SopsFile::parse(sample.as_bytes(), None).unwrap();
    let added = recipient();
    let diff = file.diff(&[vec![format!(" {added} ")]]);
    assert_eq!(diff.len(), 1);
    assert_eq!(diff[0].added, vec![added]);
    assert_eq!(diff[0].removed, vec![r.clone()]);
    assert!(diff[0].kept.is_empty());
    assert!(file.diff(&[vec![r]]).iter().all(crate::GroupDiff::is_empty));
}

fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN AGE") {
        out.push_str(&rest[..start]);
        let end = rest.find("-----END AGE ENCRYPTED FILE-----").unwrap() + 32;
        out.push_str("<ENC>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn a_shamir_group_keeping_only_pgp_gets_an_empty_age_list_and_can_regain_one() {
    let r = recipient();
    let mac = enc_value("str");
    let armor = crate::format::json::quote(ARMOR);
    // The second group also has a pgp key (3.11 order: pgp, hc_vault, age).
    let original = samples(&r)[1].clone();
    let at = original.rfind("        - hc_vault: []").unwrap();
    let pgp = "        - pgp:\n            - fp: ABC\n          hc_vault: []";
    let yaml = format!(
        "{}{pgp}{}",
        &original[..at],
        &original[at + "        - hc_vault: []".len()..]
    );
    let json = format!(
        "{{\n\t\"a\": \"{e}\",\n\t\"sops\": {{\n\t\t\"shamir_threshold\": 2,\n\t\t\"key_groups\": [\n\t\t\t{{\n\t\t\t\t\"hc_vault\": null,\n\t\t\t\t\"age\": [\n\t\t\t\t\t{{\n\t\t\t\t\t\t\"recipient\": \"{r}\",\n\t\t\t\t\t\t\"enc\": {armor}\n\t\t\t\t\t}}\n\t\t\t\t]\n\t\t\t}},\n\t\t\t{{\n\t\t\t\t\"pgp\": [\n\t\t\t\t\t{{\n\t\t\t\t\t\t\"fp\": \"ABC\"\n\t\t\t\t\t}}\n\t\t\t\t],\n\t\t\t\t\"hc_vault\": null,\n\t\t\t\t\"age\": [\n\t\t\t\t\t{{\n\t\t\t\t\t\t\"recipient\": \"{r}\",\n\t\t\t\t\t\t\"enc\": {armor}\n\t\t\t\t\t}}\n\t\t\t\t]\n\t\t\t}}\n\t\t],\n\t\t\"lastmodified\": \"2026-11-24T00:52:42Z\",\n\t\t\"mac\": \"{mac}\",\n\t\t\"version\": \"3.11.0\"\n\t}}\n}}\n",
        e = enc_value("str")
    );
    for (text, empty) in [(yaml, "          age: []\n"), (json, "\"age\": null")] {
        let file = SopsFile::parse(text.as_bytes(), None).unwrap();
        assert_eq!(file.metadata().groups[1].others.len(), 1);
        let key = DataKey::generate(2, 2).unwrap();
        let emptied = file
            .rewrap(&key, &[vec![r.clone()], vec![]], MacCheck::Ignore)
            .unwrap();
        let emptied = String::from_utf8(emptied).unwrap();
        assert!(emptied.contains(empty), "{emptied}");
        let again = SopsFile::parse(emptied.as_bytes(), None).unwrap();
        assert!(again.metadata().groups[1].age.is_empty());
        let regained = again
            .rewrap(&key, &[vec![r.clone()], vec![r.clone()]], MacCheck::Ignore)
            .unwrap();
        assert_eq!(mask(&String::from_utf8(regained).unwrap()), mask(&text));
    }
}

#[test]
fn formats_are_named_like_sops_input_types() {
    for name in ["yaml", "json", "dotenv", "ini", "binary"] {
        assert_eq!(
            crate::Format::from_name(name).map(crate::Format::name),
            Some(name)
        );
    }
    assert_eq!(crate::Format::from_name("YAML"), Some(crate::Format::Yaml));
    assert!(crate::Format::from_name("toml").is_none());
}

#[test]
fn a_json_file_whose_data_is_an_object_is_json_not_binary() {
    let r = recipient();
    let json = samples(&r)[2]
        .replace("\t\"a\": \"", "\t\"data\": {\"x\": \"")
        .replace("\",\n\t\"n\": 1.5,", "\"},");
    let file = SopsFile::parse(json.as_bytes(), None).unwrap();
    assert_eq!(file.format(), crate::Format::Json);
    let binary = samples(&r)[2]
        .replace("\t\"a\":", "\t\"data\":")
        .replace("\t\"n\": 1.5,\n", "");
    assert_eq!(
        SopsFile::parse(binary.as_bytes(), None).unwrap().format(),
        crate::Format::Binary
    );
}
