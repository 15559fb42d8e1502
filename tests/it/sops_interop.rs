//! The interop matrix against the real sops 3.11: sops encrypts, hostage re-wraps or rotates,
//! sops decrypts (MAC checked) with the new identities and refuses the removed ones.

// Test helpers: a panic with the value is the right failure (clippy.toml allows unwrap in #[test] only).
#![allow(clippy::unwrap_used)]

use hostage_sops::{MacCheck, SopsError, SopsFile};

use crate::sops_support::{data_key, fixture, groups_of, mask_enc, Key, Sops, FORMATS};

#[derive(Clone, Copy, Debug)]
enum Op {
    Add,
    Remove,
    Replace,
    Rotate,
}

struct People {
    alice: Key,
    bob: Key,
    carol: Key,
    dave: Key,
}

fn people() -> People {
    People {
        alice: Key::generate(),
        bob: Key::generate(),
        carol: Key::generate(),
        dave: Key::generate(),
    }
}

/// `(initial groups, new groups, identity sets that must decrypt after, sets that must not)`.
type Case<'a> = (
    Vec<Vec<&'a Key>>,
    Vec<Vec<&'a Key>>,
    Vec<Vec<&'a Key>>,
    Vec<Vec<&'a Key>>,
);

fn case<'a>(p: &'a People, shamir: bool, op: Op) -> Case<'a> {
    let (a, b, c, d) = (&p.alice, &p.bob, &p.carol, &p.dave);
    match (shamir, op) {
        (false, Op::Add) => (
            vec![vec![a, b]],
            vec![vec![a, b, d]],
            vec![vec![d], vec![a]],
            vec![vec![c]],
        ),
        (false, Op::Remove) => (
            vec![vec![a, b]],
            vec![vec![a]],
            vec![vec![a]],
            vec![vec![b]],
        ),
        (false, Op::Replace) => (
            vec![vec![a, b]],
            vec![vec![a, d]],
            vec![vec![d]],
            vec![vec![b]],
        ),
        (false, Op::Rotate) => (
            vec![vec![a, b]],
            vec![vec![a, b]],
            vec![vec![a], vec![b]],
            vec![vec![c]],
        ),
        (true, Op::Add) => (
            vec![vec![a], vec![b, c]],
            vec![vec![a, d], vec![b, c]],
            vec![vec![d, c], vec![a, b]],
            vec![vec![d], vec![b, c]],
        ),
        (true, Op::Remove) => (
            vec![vec![a], vec![b, c]],
            vec![vec![a], vec![b]],
            vec![vec![a, b]],
            vec![vec![a, c]],
        ),
        (true, Op::Replace) => (
            vec![vec![a], vec![b, c]],
            vec![vec![d], vec![b, c]],
            vec![vec![d, b]],
            vec![vec![a, b]],
        ),
        (true, Op::Rotate) => (
            vec![vec![a], vec![b, c]],
            vec![vec![a], vec![b, c]],
            vec![vec![a, c], vec![a, b]],
            vec![vec![a]],
        ),
    }
}

fn ivs(text: &str) -> Vec<String> {
    text.split(",iv:")
        .skip(1)
        .map(|rest| rest.split(',').next().unwrap_or_default().to_owned())
        .collect()
}

fn run(kind: &str, shamir: bool, op: Op) {
    let p = people();
    let (initial, wanted, can, cannot) = case(&p, shamir, op);
    let sops = Sops::new();
    let plain = fixture(kind);
    let encrypted = sops.encrypt(kind, &plain, &initial);
    let opener: Vec<&Key> = initial.iter().map(|g| g[0]).collect();
    let expected = sops
        .decrypt(kind, &encrypted, &opener)
        .expect("sops decrypts its own file");

    let (file, key) = data_key(&encrypted, &opener);
    file.verify_mac(&key)
        .expect("the MAC of a sops-made file verifies");
    let output = match op {
        Op::Rotate => file.rotate(&key, &groups_of(&wanted), MacCheck::Verify),
        _ => file.rewrap(&key, &groups_of(&wanted), MacCheck::Verify),
    }
    .unwrap_or_else(|e| panic!("{kind} shamir={shamir} {op:?}: {e}"));

    for keys in &can {
        let got = sops.decrypt(kind, &output, keys).unwrap_or_else(|e| {
            panic!("{kind} shamir={shamir} {op:?}: sops refuses our output: {e}")
        });
        assert_eq!(
            got, expected,
            "{kind} shamir={shamir} {op:?}: plaintext changed"
        );
        let (ours, our_key) = data_key(&output, keys);
        ours.verify_mac(&our_key)
            .expect("our output verifies with hostage too");
    }
    for keys in &cannot {
        assert!(
            sops.decrypt(kind, &output, keys).is_err(),
            "{kind} shamir={shamir} {op:?}: a removed identity still decrypts"
        );
    }

    let before = String::from_utf8(encrypted.clone()).unwrap();
    let after = String::from_utf8(output.clone()).unwrap();
    let data_end = |t: &str| match kind {
        "yaml" => t.find("\nsops:").unwrap(),
        "dotenv" => t.find("sops_").unwrap(),
        "ini" => t.find("[sops]").unwrap(),
        _ => t.find("\"sops\"").unwrap(),
    };
    match op {
        Op::Rotate => {
            // Only `data` and `tag` change and enc blobs are Go-sized: as with sops rotate, every
            // size stays (lastmodified may move by a second, same length).
            assert_eq!(before.len(), after.len(), "{kind}: rotate changed the size");
            let (old, new) = (ivs(&before), ivs(&after));
            assert_eq!(old.len(), new.len());
            let changed = old.iter().zip(&new).filter(|(a, b)| a != b).count();
            assert!(
                changed <= 1,
                "{kind}: only the MAC's IV may change, {changed} did"
            );
            let rotated = SopsFile::parse(&output, None).unwrap();
            assert!(
                rotated.verify_mac(&key).is_err(),
                "{kind}: the old data key still works"
            );
        }
        _ => {
            // New enc blobs have exactly the size of the ones sops (Go age) writes.
            let rewrapped = SopsFile::parse(&output, None).unwrap();
            for group in &rewrapped.metadata().groups {
                let sizes: Vec<usize> = group.age.iter().map(|a| a.enc.len()).collect();
                assert!(sizes.windows(2).all(|w| w[0] == w[1]), "{kind}: {sizes:?}");
            }
            // Kept recipients keep their enc byte-for-byte.
            for (old_group, new_group) in file
                .metadata()
                .groups
                .iter()
                .zip(&rewrapped.metadata().groups)
            {
                for entry in &new_group.age {
                    if let Some(old) = old_group
                        .age
                        .iter()
                        .find(|o| o.recipient == entry.recipient)
                    {
                        assert_eq!(old.enc, entry.enc, "{kind}: a kept recipient's enc changed");
                    }
                }
            }
            // Outside the metadata nothing changed.
            assert_eq!(
                before[..data_end(&before)],
                after[..data_end(&after)],
                "{kind}: data changed"
            );
        }
    }
    if let Op::Add = op {
        let keys: Vec<&Key> = initial.iter().map(|g| g[0]).collect();
        let theirs = sops.updatekeys(kind, &encrypted, &wanted, &keys);
        let mut theirs = String::from_utf8(theirs).unwrap();
        if kind == "binary" {
            // sops 3.11 adds this to binary files on updatekeys; we keep the file as it was.
            theirs = theirs.replace(",\n\t\t\"unencrypted_suffix\": \"_unencrypted\"", "");
        }
        let (mut ours, mut theirs_masked) = (mask_enc(&after), mask_enc(&theirs));
        if kind == "ini" {
            // sops ≤ 3.12 writes the [sops] keys in random (Go map) order: compare them as a set.
            let sorted = |t: &str| {
                let (data, meta) = t.split_at(t.find("[sops]").unwrap());
                let mut lines: Vec<&str> = meta.lines().collect();
                lines.sort_unstable();
                format!("{data}{}", lines.join("\n"))
            };
            ours = sorted(&ours);
            theirs_masked = sorted(&theirs_masked);
        }
        assert_eq!(
            ours, theirs_masked,
            "{kind} shamir={shamir}: differs from sops updatekeys"
        );
        if !shamir {
            // sops rewrites the existing blobs; we keep them.
            let sops_file = SopsFile::parse(theirs.as_bytes(), None).unwrap();
            assert_ne!(
                sops_file.metadata().groups[0].age[0].enc,
                file.metadata().groups[0].age[0].enc
            );
        }
    }
}

fn matrix(shamir: bool, op: Op) {
    for kind in FORMATS {
        run(kind, shamir, op);
    }
}

#[test]
fn adding_a_recipient_one_group_every_format() {
    matrix(false, Op::Add);
}

#[test]
fn removing_a_recipient_one_group_every_format() {
    matrix(false, Op::Remove);
}

#[test]
fn replacing_a_recipient_one_group_every_format() {
    matrix(false, Op::Replace);
}

#[test]
fn rotating_one_group_every_format() {
    matrix(false, Op::Rotate);
}

#[test]
fn adding_a_recipient_shamir_every_format() {
    matrix(true, Op::Add);
}

#[test]
fn removing_a_recipient_shamir_every_format() {
    matrix(true, Op::Remove);
}

#[test]
fn replacing_a_recipient_shamir_every_format() {
    matrix(true, Op::Replace);
}

#[test]
fn rotating_shamir_every_format() {
    matrix(true, Op::Rotate);
}

#[test]
fn no_identity_error_lists_recipients_and_identities_tried() {
    let p = people();
    let sops = Sops::new();
    let encrypted = sops.encrypt("yaml", &fixture("yaml"), &[vec![&p.alice]]);
    let file = SopsFile::parse(&encrypted, None).unwrap();
    let error = file
        .data_key(&Key::identities(&[&p.bob]), &mut ())
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, SopsError::NoIdentity { .. }));
    assert!(text.contains(&p.alice.recipient), "{text}");
    assert!(text.contains(&p.bob.recipient), "{text}");
}

#[test]
fn tampered_values_and_macs_are_refused() {
    let p = people();
    let sops = Sops::new();
    for kind in ["yaml", "json", "dotenv"] {
        let encrypted =
            String::from_utf8(sops.encrypt(kind, &fixture(kind), &[vec![&p.alice]])).unwrap();
        let (_, key) = data_key(encrypted.as_bytes(), &[&p.alice]);
        // Flip one character of the first encrypted value's data.
        // (Comments are not covered by the MAC, in sops either: flip a value.)
        let value_at = ["=ENC[", ": ENC[", "\": \"ENC["]
            .iter()
            .filter_map(|p| encrypted.find(p).map(|i| i + p.len() - 4))
            .min()
            .unwrap();
        let at = value_at + 20;
        let mut flipped = encrypted.clone().into_bytes();
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        let file = SopsFile::parse(&flipped, None).unwrap();
        assert!(
            file.verify_mac(&key).is_err(),
            "{kind}: flipped value accepted"
        );
        assert!(file
            .rewrap(&key, &[vec![p.bob.recipient.clone()]], MacCheck::Verify)
            .is_err());
        assert!(file
            .rotate(&key, &[vec![p.alice.recipient.clone()]], MacCheck::Verify)
            .is_err());
        // Replace the MAC by one over other content.
        let mac_at = encrypted.rfind("ENC[AES256_GCM,data:").unwrap() + 20;
        let mut edited = encrypted.clone().into_bytes();
        edited[mac_at] = if edited[mac_at] == b'A' { b'B' } else { b'A' };
        let file = SopsFile::parse(&edited, None).unwrap();
        assert!(
            matches!(file.verify_mac(&key), Err(SopsError::MacMismatch)),
            "{kind}: edited mac accepted"
        );
        let refused = file.rewrap(&key, &[vec![p.bob.recipient.clone()]], MacCheck::Verify);
        assert!(matches!(refused, Err(SopsError::MacMismatch)));
        // The explicit override goes through.
        assert!(file
            .rewrap(
                &key,
                &[vec![p.alice.recipient.clone(), p.bob.recipient.clone()]],
                MacCheck::Ignore
            )
            .is_ok());
    }
}

/// Rewrites a 3.11 YAML sops block in sops 3.13's alphabetical order.
fn to_alphabetical(text: &str) -> String {
    let start = text.find("\nsops:\n").unwrap() + 1;
    let (data, block) = text.split_at(start);
    let lines: Vec<&str> = block.lines().collect();
    let mut entries: Vec<(String, Vec<String>)> = Vec::new();
    let mut top: Vec<(String, String)> = Vec::new();
    let mut i = 1;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("    ") && !line.starts_with("     ") {
            let key = line.trim().split(':').next().unwrap().to_owned();
            let mut body = line.to_owned() + "\n";
            i += 1;
            if key == "age" {
                while i < lines.len() && lines[i].starts_with("     ") {
                    let item_start = i;
                    i += 1;
                    while i < lines.len() && lines[i].starts_with("          ") {
                        i += 1;
                    }
                    let item: Vec<&str> = lines[item_start..i].to_vec();
                    let recipient = item[0].trim_start().trim_start_matches("- ").to_owned();
                    let enc: Vec<String> = item[1..].iter().map(|l| l.to_string()).collect();
                    let mut e = vec![format!("        - {}", enc[0].trim_start())];
                    e.extend(enc[1..].iter().cloned());
                    e.push(format!("          {recipient}"));
                    entries.push((recipient, e));
                }
                for (_, e) in &entries {
                    body.push_str(&e.join("\n"));
                    body.push('\n');
                }
            } else {
                while i < lines.len() && lines[i].starts_with("     ") {
                    body.push_str(lines[i]);
                    body.push('\n');
                    i += 1;
                }
            }
            top.push((key, body));
        } else {
            i += 1;
        }
    }
    top.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = data.to_owned() + "sops:\n";
    for (_, body) in top {
        out.push_str(&body);
    }
    out
}

#[test]
fn sops_3_13_alphabetical_layout_is_kept() {
    let p = people();
    let sops = Sops::new();
    let encrypted =
        String::from_utf8(sops.encrypt("yaml", &fixture("yaml"), &[vec![&p.alice]])).unwrap();
    let alphabetical = to_alphabetical(&encrypted);
    assert!(
        alphabetical.contains("        - enc: |\n"),
        "{alphabetical}"
    );
    let expected = sops
        .decrypt("yaml", encrypted.as_bytes(), &[&p.alice])
        .unwrap();
    assert_eq!(
        sops.decrypt("yaml", alphabetical.as_bytes(), &[&p.alice])
            .unwrap(),
        expected
    );

    let (file, key) = data_key(alphabetical.as_bytes(), &[&p.alice]);
    let output = file
        .rewrap(
            &key,
            &[vec![p.alice.recipient.clone(), p.bob.recipient.clone()]],
            MacCheck::Verify,
        )
        .unwrap();
    let output = String::from_utf8(output).unwrap();
    assert!(output.starts_with(&alphabetical[..alphabetical.find("          recipient:").unwrap()]));
    assert!(
        output.contains(&format!(
            "          recipient: {}\n    lastmodified",
            p.bob.recipient
        )),
        "{output}"
    );
    assert_eq!(output.matches("        - enc: |\n").count(), 2);
    assert_eq!(
        sops.decrypt("yaml", output.as_bytes(), &[&p.bob]).unwrap(),
        expected
    );
}

#[test]
fn multi_document_yaml_rewraps_and_rotates_every_sops_block() {
    let p = people();
    let sops = Sops::new();
    let plain = b"a: 1\nb: two\n---\nc: [x, y]\nd:\n    e: f\n";
    let encrypted = sops.encrypt("yaml", plain, &[vec![&p.alice]]);
    assert_eq!(
        String::from_utf8_lossy(&encrypted)
            .matches("\nsops:\n")
            .count(),
        2
    );
    let expected = sops.decrypt("yaml", &encrypted, &[&p.alice]).unwrap();
    let (file, key) = data_key(&encrypted, &[&p.alice]);
    file.verify_mac(&key).unwrap();
    let rewrapped = file
        .rewrap(
            &key,
            &[vec![p.alice.recipient.clone(), p.bob.recipient.clone()]],
            MacCheck::Verify,
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&rewrapped)
            .matches(&p.bob.recipient)
            .count(),
        2
    );
    assert_eq!(
        sops.decrypt("yaml", &rewrapped, &[&p.bob]).unwrap(),
        expected
    );
    let (file, key) = data_key(&rewrapped, &[&p.bob]);
    let rotated = file
        .rotate(
            &key,
            &[vec![p.alice.recipient.clone(), p.bob.recipient.clone()]],
            MacCheck::Verify,
        )
        .unwrap();
    assert_eq!(
        sops.decrypt("yaml", &rotated, &[&p.alice]).unwrap(),
        expected
    );
}

#[test]
fn decrypted_tree_matches_the_plaintext() {
    let p = people();
    let sops = Sops::new();
    let encrypted = sops.encrypt("json", &fixture("json"), &[vec![&p.alice]]);
    let (file, key) = data_key(&encrypted, &[&p.alice]);
    let tree = file.decrypt(&key).unwrap();
    let app = tree.documents[0].get("app").unwrap();
    assert_eq!(app.get("user").unwrap().as_str(), Some("admin"));
    assert_eq!(app.get("port"), Some(&hostage_sops::Value::Float(5432.0)));
    assert_eq!(
        tree.documents[0].get("ключ").unwrap().as_str(),
        Some("値 <&>")
    );
}

#[test]
fn pgp_keys_are_kept_verbatim_and_rotation_refuses_them() {
    let p = people();
    let sops = Sops::new();
    let encrypted =
        String::from_utf8(sops.encrypt("yaml", &fixture("yaml"), &[vec![&p.alice]])).unwrap();
    // A pgp master key as sops 3.11 writes it (after `mac`), whose blob nobody here can open.
    let pgp = "    pgp:\n        - created_at: \"2026-01-01T00:00:00Z\"\n          enc: |-\n            -----BEGIN PGP MESSAGE-----\n\n            hQEMA5l1bC6vYkNOAQf/not-a-real-message\n            =abcd\n            -----END PGP MESSAGE-----\n          fp: 0123456789ABCDEF0123456789ABCDEF01234567\n";
    let at = encrypted.find("    unencrypted_suffix:").unwrap();
    let with_pgp = format!("{}{pgp}{}", &encrypted[..at], &encrypted[at..]);
    let expected = sops
        .decrypt("yaml", encrypted.as_bytes(), &[&p.alice])
        .unwrap();

    let (file, key) = data_key(with_pgp.as_bytes(), &[&p.alice]);
    assert_eq!(file.recipients()[0].len(), 2);
    assert_eq!(file.recipients()[0][1].kind, "pgp");
    let wanted = [vec![p.alice.recipient.clone(), p.bob.recipient.clone()]];
    let output = String::from_utf8(file.rewrap(&key, &wanted, MacCheck::Verify).unwrap()).unwrap();
    assert!(output.contains(pgp), "the pgp entry changed");
    assert_eq!(
        sops.decrypt("yaml", output.as_bytes(), &[&p.bob]).unwrap(),
        expected
    );

    let refused = file.rotate(&key, &wanted, MacCheck::Verify).unwrap_err();
    assert!(matches!(refused, SopsError::Unsupported { .. }));
    assert!(refused.to_string().contains("pgp"), "{refused}");
}

#[test]
fn encrypted_regex_and_mac_only_encrypted_files_verify_rewrap_and_rotate() {
    let p = people();
    let sops = Sops::new();
    let rules = [
        "    encrypted_regex: ^(password|port|b)$\n",
        "    encrypted_regex: ^(password|port|b)$\n    mac_only_encrypted: true\n",
        "    unencrypted_suffix: _plain\n    mac_only_encrypted: true\n",
    ];
    for rule in rules {
        for kind in ["yaml", "json"] {
            let encrypted = sops.encrypt_with(kind, &fixture(kind), &[vec![&p.alice]], rule);
            let expected = sops.decrypt(kind, &encrypted, &[&p.alice]).unwrap();
            let (file, key) = data_key(&encrypted, &[&p.alice]);
            file.verify_mac(&key)
                .unwrap_or_else(|e| panic!("{kind} {rule}: {e}"));
            let wanted = [vec![p.alice.recipient.clone(), p.bob.recipient.clone()]];
            let rewrapped = file.rewrap(&key, &wanted, MacCheck::Verify).unwrap();
            assert_eq!(sops.decrypt(kind, &rewrapped, &[&p.bob]).unwrap(), expected);
            let rotated = file.rotate(&key, &wanted, MacCheck::Verify).unwrap();
            assert_eq!(sops.decrypt(kind, &rotated, &[&p.bob]).unwrap(), expected);
        }
    }
}

#[test]
fn unencrypted_timestamps_count_in_the_mac_like_go_times() {
    let p = people();
    let sops = Sops::new();
    let plain = "a: secret\nwhen_unencrypted: 2024-01-02T03:04:05.500+02:00\nday_unencrypted: 2024-01-02\nquoted_unencrypted: \"2024-01-02\"\n";
    let encrypted = sops.encrypt("yaml", plain.as_bytes(), &[vec![&p.alice]]);
    let (file, key) = data_key(&encrypted, &[&p.alice]);
    file.verify_mac(&key).unwrap();
}

/// Adds a (fake) pgp master key to a flat sops file, where sops 3.11 would write it.
fn with_fake_pgp(kind: &str, text: &str) -> String {
    let armor = "-----BEGIN PGP MESSAGE-----\n\nhQEMA5l1bC6vYkNOAQf/not-a-real-message\n=abcd\n-----END PGP MESSAGE-----";
    let fp = "0123456789ABCDEF0123456789ABCDEF01234567";
    let (anchor, insert) = match kind {
        "yaml" => (
            "    unencrypted_suffix:",
            format!(
                "    pgp:\n        - created_at: \"2026-01-01T00:00:00Z\"\n          enc: |-\n{}\n          fp: {fp}\n",
                armor.lines().map(|l| if l.is_empty() { String::new() } else { format!("            {l}") }).collect::<Vec<_>>().join("\n")
            ),
        ),
        "json" => (
            "\t\t\"unencrypted_suffix\"",
            format!(
                "\t\t\"pgp\": [\n\t\t\t{{\n\t\t\t\t\"created_at\": \"2026-01-01T00:00:00Z\",\n\t\t\t\t\"enc\": {},\n\t\t\t\t\"fp\": \"{fp}\"\n\t\t\t}}\n\t\t],\n",
                serde_json::to_string(armor).unwrap()
            ),
        ),
        "dotenv" => (
            "sops_unencrypted_suffix=",
            format!(
                "sops_pgp__list_0__map_created_at=2026-01-01T00:00:00Z\nsops_pgp__list_0__map_enc={}\nsops_pgp__list_0__map_fp={fp}\n",
                armor.replace('\n', "\\n")
            ),
        ),
        "ini" => (
            "unencrypted_suffix ",
            format!(
                "pgp__list_0__map_created_at = 2026-01-01T00:00:00Z\npgp__list_0__map_enc = {}\npgp__list_0__map_fp = {fp}\n",
                armor.replace('\n', "\\n")
            ),
        ),
        other => panic!("{other}"),
    };
    let at = text.find(anchor).unwrap();
    format!("{}{insert}{}", &text[..at], &text[at..])
}

#[test]
fn a_group_left_with_only_pgp_can_lose_and_regain_age_keys() {
    let p = people();
    let sops = Sops::new();
    for kind in ["yaml", "json", "dotenv"] {
        let encrypted =
            String::from_utf8(sops.encrypt(kind, &fixture(kind), &[vec![&p.alice]])).unwrap();
        let expected = sops
            .decrypt(kind, encrypted.as_bytes(), &[&p.alice])
            .unwrap();
        let with_pgp = with_fake_pgp(kind, &encrypted);
        let (file, key) = data_key(with_pgp.as_bytes(), &[&p.alice]);

        // Remove every age key: only the pgp key is left.
        let pgp_only = file.rewrap(&key, &[vec![]], MacCheck::Verify).unwrap();
        let pgp_file = SopsFile::parse(&pgp_only, None).unwrap();
        assert!(pgp_file.metadata().groups[0].age.is_empty(), "{kind}");
        assert_eq!(pgp_file.metadata().groups[0].others.len(), 1, "{kind}");
        assert!(!String::from_utf8_lossy(&pgp_only).contains(&p.alice.recipient));

        // Add one back: the layout is exactly the one sops wrote (recipient aside).
        let regained = pgp_file
            .rewrap(&key, &[vec![p.bob.recipient.clone()]], MacCheck::Verify)
            .unwrap();
        let regained = String::from_utf8(regained).unwrap();
        assert_eq!(
            mask_enc(&regained).replace(&p.bob.recipient, &p.alice.recipient),
            mask_enc(&with_pgp),
            "{kind}: the re-added age key is not where sops puts it"
        );
        assert_eq!(
            sops.decrypt(kind, regained.as_bytes(), &[&p.bob]).unwrap(),
            expected
        );
    }
}

#[test]
fn leaving_pgp_keys_go_from_the_metadata_exactly_as_sops_leaves_them_and_rotation_follows() {
    let p = people();
    let sops = Sops::new();
    for kind in ["yaml", "json", "dotenv", "ini"] {
        let encrypted =
            String::from_utf8(sops.encrypt(kind, &fixture(kind), &[vec![&p.alice]])).unwrap();
        let expected = sops
            .decrypt(kind, encrypted.as_bytes(), &[&p.alice])
            .unwrap();
        let with_pgp = with_fake_pgp(kind, &encrypted);
        let (file, key) = data_key(with_pgp.as_bytes(), &[&p.alice]);
        let pgp = file.recipients()[0][1].clone();
        assert_eq!(pgp.kind, "pgp");
        assert_eq!(
            pgp.id, "0123456789ABCDEF0123456789ABCDEF01234567",
            "{kind}: a pgp key is named by its fingerprint"
        );
        assert!(pgp.is_rule_key("pgp", "0123 4567 89ab cdef 0123456789ABCDEF01234567"));

        // While the pgp key stays, rotation is refused and names it.
        let wanted = [vec![p.bob.recipient.clone()]];
        let refused = file.rotate(&key, &wanted, MacCheck::Verify).unwrap_err();
        assert!(refused.to_string().contains(&pgp.id), "{refused}");

        // Without it, the metadata is byte for byte what sops wrote before the key was added.
        let without = file.without_master_keys(&[vec![pgp.clone()]]).unwrap();
        let rotated = without.rotate(&key, &wanted, MacCheck::Verify).unwrap();
        let rotated_text = String::from_utf8(rotated.clone()).unwrap();
        assert!(!rotated_text.contains("PGP MESSAGE"), "{kind}");
        assert!(!rotated_text.contains(&pgp.id), "{kind}");
        assert_eq!(sops.decrypt(kind, &rotated, &[&p.bob]).unwrap(), expected);
        assert!(sops.decrypt(kind, &rotated, &[&p.alice]).is_err(), "{kind}");
        let rewrapped = String::from_utf8(
            without
                .rewrap(&key, &[vec![p.alice.recipient.clone()]], MacCheck::Verify)
                .unwrap(),
        )
        .unwrap();
        if kind == "ini" {
            // sops writes INI metadata keys in a random order (Go map iteration), and a re-wrap
            // writes the stanza in one order: compare the lines, not their order.
            let lines = |text: &str| {
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                lines.sort();
                lines
            };
            assert_eq!(
                lines(&rewrapped),
                lines(&encrypted),
                "{kind}: removing the pgp key does not give back sops' own lines"
            );
        } else {
            assert_eq!(
                rewrapped, encrypted,
                "{kind}: removing the pgp key does not give back sops' own bytes"
            );
        }
    }
}
