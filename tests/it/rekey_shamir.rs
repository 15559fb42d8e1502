//! Shamir shares and `hostage rekey` (issue 12, item 1): sops before 3.10 wrote shares at random
//! x coordinates, and sops 3.11 still reads such files. A member added to a key group must get
//! exactly the point the group already holds; a second point of the same polynomial would let
//! two members of one group recover the data key without any other group.

use std::io::{Read as _, Write as _};

use hostage_sops::SopsFile;

use crate::rekey_support::{stderr, stdout, Repo};

const CONFIG: &str = "\
{keys}
creation_rules:
  - shamir_threshold: 2
    key_groups:
      - age: [*alice]
      - age: [*bob]
";

/// Multiplication in GF(2^8) with the AES polynomial (0x11b), as sops' vendored Vault code does.
/// Written again here on purpose: the test must not trust the code it judges.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

fn gf_inverse(a: u8) -> u8 {
    (1..=255u8)
        .find(|b| gf_mul(a, *b) == 1)
        .expect("every non-zero element has an inverse")
}

/// The secret (value at x = 0) of the line through two shares (`y… x`).
fn secret_of(first: &[u8], second: &[u8]) -> Vec<u8> {
    let (x1, x2) = (first[first.len() - 1], second[second.len() - 1]);
    let denominator = gf_inverse(x1 ^ x2);
    // Lagrange at 0 in characteristic 2: y1·x2/(x1+x2) + y2·x1/(x1+x2).
    let l1 = gf_mul(x2, denominator);
    let l2 = gf_mul(x1, denominator);
    first[..first.len() - 1]
        .iter()
        .zip(&second[..second.len() - 1])
        .map(|(y1, y2)| gf_mul(*y1, l1) ^ gf_mul(*y2, l2))
        .collect()
}

/// The share at `x` of the line `secret + slope·x`.
fn share_at(secret: &[u8], slope: &[u8], x: u8) -> Vec<u8> {
    let mut share: Vec<u8> = secret
        .iter()
        .zip(slope)
        .map(|(s, c)| s ^ gf_mul(*c, x))
        .collect();
    share.push(x);
    share
}

fn open(enc: &str, secret_key: &str) -> Vec<u8> {
    let identity: age::x25519::Identity = secret_key.parse().unwrap();
    let decryptor =
        age::Decryptor::new_buffered(age::armor::ArmoredReader::new(enc.as_bytes())).unwrap();
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    out
}

/// Encrypts `payload` to `recipient` with Go age (armored, as sops writes `enc`).
fn go_age_encrypt(recipient: &str, payload: &[u8]) -> String {
    let age = hostage_tests::require(hostage_tests::AGE);
    let mut child = std::process::Command::new(age)
        .args(["--encrypt", "--armor", "--recipient", recipient])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "age encrypts the share");
    String::from_utf8(out.stdout).unwrap()
}

/// Replaces the YAML block scalar holding `old` (an armored blob) with `new`, same indentation.
fn replace_blob(text: &str, old: &str, new: &str) -> String {
    let marker = old.lines().nth(1).unwrap();
    let line_start = text[..text.find(marker).unwrap()].rfind('\n').unwrap() + 1;
    let indent = &text[line_start..text.find(marker).unwrap()];
    let indented =
        |blob: &str| -> String { blob.lines().map(|l| format!("{indent}{l}\n")).collect() };
    let before = indented(old);
    assert!(text.contains(&before), "the blob is found in the file");
    text.replacen(&before, &indented(new), 1)
}

#[test]
fn a_member_added_to_a_group_gets_the_groups_existing_share_even_at_a_random_x() {
    let repo = Repo::new(&["alice", "bob", "carol"]);
    repo.config(CONFIG);
    let plain = b"db:\n    password: hunter2\n";
    repo.encrypt("secrets/vault.yaml", plain);

    // Re-split the data key as sops < 3.10 did: x = 37 for group 1, x = 200 for group 2.
    let text = fs_err::read_to_string(repo.path("secrets/vault.yaml")).unwrap();
    let file = SopsFile::parse(text.as_bytes(), None).unwrap();
    let groups = &file.metadata().groups;
    let (alice_enc, bob_enc) = (&groups[0].age[0].enc, &groups[1].age[0].enc);
    let secret = secret_of(
        &open(alice_enc, &repo.keys["alice"].secret),
        &open(bob_enc, &repo.keys["bob"].secret),
    );
    assert_eq!(secret.len(), 32);
    let slope: Vec<u8> = (0..32).map(|_| rand::random::<u8>() | 1).collect();
    let share_37 = share_at(&secret, &slope, 37);
    let share_200 = share_at(&secret, &slope, 200);
    let text = replace_blob(
        &text,
        alice_enc,
        &go_age_encrypt(repo.recipient("alice"), &share_37),
    );
    let text = replace_blob(
        &text,
        bob_enc,
        &go_age_encrypt(repo.recipient("bob"), &share_200),
    );
    repo.write("secrets/vault.yaml", text.as_bytes());
    let out = repo.sops(&["decrypt", "secrets/vault.yaml"], &["alice", "bob"]);
    assert!(
        out.status.success(),
        "sops 3.11 decrypts shares at x=37 and x=200: {}",
        stderr(&out)
    );
    assert_eq!(out.stdout, plain);

    // carol joins group 1.
    repo.config(&CONFIG.replace("[*alice]", "[*alice, *carol]"));
    let out = repo.hostage(&["rekey"], &["alice", "bob"]);
    assert!(out.status.success(), "hostage rekey: {}", stderr(&out));

    let text = fs_err::read_to_string(repo.path("secrets/vault.yaml")).unwrap();
    let file = SopsFile::parse(text.as_bytes(), None).unwrap();
    let group = &file.metadata().groups[0];
    assert_eq!(group.age.len(), 2);
    assert_eq!(group.age[1].recipient, repo.recipient("carol"));
    let carols = open(&group.age[1].enc, &repo.keys["carol"].secret);
    assert_eq!(
        carols.last(),
        Some(&37),
        "carol must hold group 1's point (x=37), not a second point of the polynomial"
    );
    assert_eq!(carols, share_37, "carol holds exactly alice's share");
    assert_eq!(
        open(&group.age[0].enc, &repo.keys["alice"].secret),
        share_37,
        "alice keeps her share"
    );
    // alice and carol together cannot get past the threshold (they hold the same point).
    let out = repo.sops(&["decrypt", "secrets/vault.yaml"], &["alice", "carol"]);
    assert!(
        !out.status.success(),
        "two members of one group must not decrypt alone"
    );
    let out = repo.sops(&["decrypt", "secrets/vault.yaml"], &["carol", "bob"]);
    assert!(
        out.status.success(),
        "sops decrypts with carol and bob: {}",
        stderr(&out)
    );
    assert_eq!(out.stdout, plain);
}

#[test]
fn a_group_no_identity_opens_gets_no_new_member_and_dry_run_says_so() {
    let repo = Repo::new(&["alice", "bob", "carol", "dave"]);
    let config = "{keys}\ncreation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [*alice]\n      - age: [*bob]\n      - age: [*carol]\n";
    repo.config(config);
    repo.encrypt("secrets/vault.yaml", b"root: token\n");
    // dave joins group 3, but only alice's and bob's identities are at hand: group 3's share is
    // unknown, and a computed one might be a second point.
    repo.config(&config.replace("[*carol]", "[*carol, *dave]"));
    let before = repo.snapshot();
    for args in [&["rekey", "--dry-run"][..], &["rekey"][..]] {
        let out = repo.hostage(args, &["alice", "bob"]);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(all.contains("key group 3"), "{args:?}: {all}");
        assert!(all.contains("identity of key group 3"), "{args:?}: {all}");
        assert_eq!(repo.snapshot(), before, "{args:?} wrote something");
    }
    // With carol's identity at hand, dave gets group 3's share.
    let out = repo.hostage(&["rekey"], &["alice", "carol"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = repo.sops(&["decrypt", "secrets/vault.yaml"], &["alice", "dave"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
