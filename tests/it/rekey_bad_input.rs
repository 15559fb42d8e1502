//! `hostage rekey` on bad input: a malformed `.sops.yaml`, an invalid recipient, a file no rule
//! matches, a file that cannot be read as sops, a missing path. Each is reported (file:line for
//! the config) and nothing is written; a tampered file is refused while the others are re-keyed.

use crate::rekey_support::{json, stderr, stdout, Repo};

const GOOD: &str =
    "{keys}\ncreation_rules:\n  - path_regex: hosts/.*\n    age: *web01\n  - age: *admin\n";

/// Two files (one per rule) and a pending change that would touch both.
fn repo() -> Repo {
    let repo = Repo::new(&["admin", "web01", "web02"]);
    repo.config(GOOD);
    repo.encrypt("hosts/web01.yaml", b"a: 1\n");
    repo.encrypt("shared.yaml", b"b: 2\n");
    repo
}

fn refuses_and_writes_nothing(repo: &Repo, config: &str, needle: &str) -> String {
    repo.config(config);
    let before = repo.snapshot();
    let out = repo.hostage(&["rekey"], &["admin", "web01"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(needle), "expected {needle:?} in:\n{all}");
    assert_eq!(repo.snapshot(), before, "something was written");
    assert!(!repo.path(".git/hostage/rekey-journal.jsonl").exists());
    let check = repo.hostage(&["rekey", "--check"], &[]);
    assert_eq!(check.status.code(), Some(1), "--check must fail too");
    all
}

#[test]
fn a_malformed_sops_yaml_is_reported_with_file_and_line_and_nothing_is_written() {
    let repo = repo();
    let broken = "{keys}\ncreation_rules:\n  - path_regex: hosts/.*\n    age: [*web01, *web02\n  - age: *admin\n";
    let all = refuses_and_writes_nothing(&repo, broken, ".sops.yaml:");
    assert!(all.contains("invalid YAML"), "{all}");
}

#[test]
fn a_rule_with_an_invalid_recipient_stops_the_run_before_anything_is_written() {
    let repo = repo();
    let bad = GOOD.replace("age: *web01\n", "age: [*web01, age1notarecipient]\n");
    let all = refuses_and_writes_nothing(
        &repo,
        &bad,
        ".sops.yaml:7: rule 0: invalid age recipient \"age1notarecipient\"",
    );
    // The other rule's file was fine, but the run is refused as a whole.
    assert!(all.contains("nothing was written"), "{all}");
}

#[test]
fn a_file_no_rule_matches_stops_the_run_before_anything_is_written() {
    let repo = repo();
    let narrow = "{keys}\ncreation_rules:\n  - path_regex: hosts/.*\n    age: [*web01, *web02]\n";
    let all = refuses_and_writes_nothing(&repo, narrow, "no creation rule");
    assert!(all.contains("shared.yaml"), "{all}");
}

#[test]
fn a_file_that_cannot_be_read_as_sops_stops_the_run_before_anything_is_written() {
    let repo = repo();
    let text = fs_err::read_to_string(repo.path("shared.yaml")).unwrap();
    // Cut the metadata in the middle of the MAC: still recognisably sops, no longer readable.
    let cut = text.find("    mac: ").unwrap();
    repo.write("shared.yaml", &text.as_bytes()[..cut]);
    let all = refuses_and_writes_nothing(
        &repo,
        &GOOD
            .replace("age: *admin", "age: [*admin, *web02]")
            .replace("age: *web01", "age: [*web01, *web02]"),
        "malformed sops file",
    );
    assert!(all.contains("shared.yaml"), "{all}");
}

#[test]
fn a_missing_path_is_an_error_and_nothing_is_written() {
    let repo = repo();
    repo.config(&GOOD.replace("age: *admin", "age: [*admin, *web02]"));
    let before = repo.snapshot();
    let out = repo.hostage(&["rekey", "shared.yaml", "no/such/dir"], &["admin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no/such/dir"), "{}", stderr(&out));
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn a_tampered_file_is_refused_for_its_mac_and_the_others_are_still_rekeyed() {
    let repo = Repo::new(&["admin", "web02"]);
    repo.config("{keys}\ncreation_rules:\n  - age: *admin\n");
    repo.encrypt("good.yaml", b"a: 1\n");
    repo.encrypt("tampered.yaml", b"a: 1\npublic_unencrypted: yes\n");
    let text = fs_err::read_to_string(repo.path("tampered.yaml")).unwrap();
    let tampered = text.replace("public_unencrypted: \"yes\"", "public_unencrypted: \"no\"");
    assert_ne!(text, tampered);
    repo.write("tampered.yaml", tampered.as_bytes());
    repo.config("{keys}\ncreation_rules:\n  - age: [*admin, *web02]\n");

    let dry = repo.hostage(&["--json", "rekey", "--dry-run"], &["admin"]);
    assert_eq!(dry.status.code(), Some(1));
    let doc = json(&dry);
    let file = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "tampered.yaml")
        .unwrap();
    assert_eq!(file["action"], "error");
    assert!(
        file["reason"].as_str().unwrap().contains("MAC mismatch"),
        "{file:#}"
    );

    let out = repo.hostage(&["rekey"], &["admin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("tampered.yaml  MAC mismatch"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        fs_err::read_to_string(repo.path("tampered.yaml")).unwrap(),
        tampered
    );
    assert!(repo.sops_says_up_to_date("good.yaml", "admin"));
}
