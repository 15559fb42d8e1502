//! `hostage rekey` end to end against the real sops 3.11: edit `.sops.yaml` by hand, re-key, and
//! sops must find every file already up to date, decrypt it with each intended identity, and
//! refuse the removed ones.

use crate::rekey_support::{json, stderr, stdout, Repo};

const BEFORE: &str = "\
{keys}
creation_rules:
  - path_regex: secrets/hosts/web01/.*
    key_groups:
      - age: [*admin, *web01]
  - path_regex: secrets/vault/.*
    shamir_threshold: 2
    key_groups:
      - age: [*admin]
      - age: [*backup, *web01]
  - age: *admin
";

/// The hand edit: web01 leaves (replaced by web02), ci joins the catch-all.
fn after() -> String {
    BEFORE
        .replace("web01/.*", "web02/.*")
        .replace("[*admin, *web01]", "[*admin, *web02]")
        .replace("[*backup, *web01]", "[*backup, *web02]")
        .replace("- age: *admin\n", "- age: [*admin, *ci]\n")
}

const FILES: &[(&str, &[u8])] = &[
    (
        "secrets/hosts/web01/db.yaml",
        b"db:\n  password: hunter2 # comment\n  user: app\nlist:\n  - one\n  - two\n",
    ),
    (
        "secrets/hosts/web01/tls.json",
        b"{\"cert\": \"c\", \"key\": {\"pem\": \"k\"}}\n",
    ),
    ("secrets/vault/root.yaml", b"root_token: s.abc\n"),
    ("secrets/shared/app.env", b"API_KEY=abc\nOTHER=1\n"),
    ("secrets/shared/blob.bin", b"\x00\x01binary\xff"),
];

fn repo() -> Repo {
    let repo = Repo::new(&["admin", "backup", "ci", "web01", "web02"]);
    repo.config(BEFORE);
    for (path, plain) in FILES {
        repo.encrypt(path, plain);
    }
    repo
}

#[test]
fn after_rekey_sops_finds_every_file_up_to_date_and_each_intended_identity_decrypts() {
    let repo = repo();
    // The web02 rule now matches the web02 directory; move the host's files there by hand too.
    fs_err::create_dir_all(repo.path("secrets/hosts/web02")).unwrap();
    for name in ["db.yaml", "tls.json"] {
        fs_err::rename(
            repo.path(&format!("secrets/hosts/web01/{name}")),
            repo.path(&format!("secrets/hosts/web02/{name}")),
        )
        .unwrap();
    }
    repo.config(&after());
    // admin opens every file; the Shamir file also needs a second group (backup).
    let out = repo.hostage(&["--json", "rekey"], &["admin", "backup"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let doc = json(&out);
    assert_eq!(doc["summary"]["written"], 5, "{doc:#}");
    assert_eq!(doc["summary"]["rotate"], 3, "{doc:#}");
    assert_eq!(doc["summary"]["rewrap"], 2, "{doc:#}");

    let files = [
        (
            "secrets/hosts/web02/db.yaml",
            FILES[0].1,
            vec!["admin", "web02"],
            vec!["web01"],
        ),
        (
            "secrets/hosts/web02/tls.json",
            FILES[1].1,
            vec!["admin", "web02"],
            vec!["web01"],
        ),
        (
            "secrets/shared/app.env",
            FILES[3].1,
            vec!["admin", "ci"],
            vec!["web01", "web02"],
        ),
        (
            "secrets/shared/blob.bin",
            FILES[4].1,
            vec!["admin", "ci"],
            vec!["web01"],
        ),
    ];
    for (path, plain, can, cannot) in &files {
        assert!(
            repo.sops_says_up_to_date(path, "admin"),
            "sops would still change {path}"
        );
        for key in can {
            let decrypted = repo
                .decrypt(path, key)
                .unwrap_or_else(|| panic!("{key} cannot decrypt {path}"));
            if !path.ends_with(".yaml") && !path.ends_with(".json") {
                assert_eq!(&decrypted, plain, "{path}");
            }
        }
        for key in cannot {
            assert!(
                repo.decrypt(path, key).is_none(),
                "{key} can still decrypt {path}"
            );
        }
    }
    // Shamir: one group alone is not enough, admin + web02 (groups 1 and 2) is.
    let vault = "secrets/vault/root.yaml";
    assert!(
        repo.sops_says_up_to_date(vault, "admin"),
        "sops would still change {vault}"
    );
    let out = repo.sops(&["decrypt", vault], &["admin", "web02"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "root_token: s.abc\n");
    assert!(
        !repo
            .sops(&["decrypt", vault], &["admin", "web01"])
            .status
            .success(),
        "web01 still holds a share"
    );
    assert!(repo
        .sops(&["decrypt", vault], &["admin", "backup"])
        .status
        .success());

    // A second run has nothing to do.
    let again = repo.hostage(&["rekey", "--check"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn rewrap_keeps_every_other_byte_and_rotation_changes_the_data_key() {
    let repo = repo();
    repo.config(
        &BEFORE
            .replace("- age: *admin\n", "- age: [*admin, *ci]\n")
            .replace("[*admin, *web01]", "[*admin]"),
    );
    let env_before = fs_err::read_to_string(repo.path("secrets/shared/app.env")).unwrap();
    let db_before = fs_err::read_to_string(repo.path("secrets/hosts/web01/db.yaml")).unwrap();
    let out = repo.hostage(&["rekey"], &["admin"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let env_after = fs_err::read_to_string(repo.path("secrets/shared/app.env")).unwrap();
    // Re-wrap: every value and the MAC are the same bytes.
    for line in env_before
        .lines()
        .filter(|l| l.starts_with("API_KEY=") || l.starts_with("sops_mac="))
    {
        assert!(env_after.contains(line), "{line} changed");
    }
    let db_after = fs_err::read_to_string(repo.path("secrets/hosts/web01/db.yaml")).unwrap();
    let password = |t: &str| {
        t.lines()
            .find(|l| l.contains("password:"))
            .unwrap()
            .to_owned()
    };
    assert_ne!(
        password(&db_before),
        password(&db_after),
        "a removal must rotate the data key"
    );
    let decrypted = String::from_utf8(
        repo.decrypt("secrets/hosts/web01/db.yaml", "admin")
            .unwrap(),
    )
    .unwrap();
    assert!(decrypted.contains("password: hunter2"), "{decrypted}");
    assert!(repo
        .decrypt("secrets/hosts/web01/db.yaml", "web01")
        .is_none());
}

#[test]
fn a_file_no_identity_opens_is_reported_and_the_others_are_still_rekeyed() {
    let repo = repo();
    repo.config(
        &BEFORE
            .replace("[*admin, *web01]", "[*admin, *web01, *web02]")
            .replace("- age: *admin\n", "- age: [*admin, *ci]\n"),
    );
    // web01 opens only its own host files.
    let out = repo.hostage(&["--json", "rekey"], &["web01"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["summary"]["written"], 2, "{doc:#}");
    assert_eq!(doc["summary"]["failed"], 2, "{doc:#}");
    let failed = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "secrets/shared/app.env")
        .unwrap();
    assert_eq!(failed["outcome"], "failed", "{doc:#}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("no identity can decrypt"),
        "{doc:#}"
    );
    assert!(repo.sops_says_up_to_date("secrets/hosts/web01/db.yaml", "admin"));
    assert!(
        !repo.sops_says_up_to_date("secrets/shared/app.env", "admin"),
        "sops had to add ci itself"
    );
    // The failed files are untouched and still decrypt as before.
    assert!(repo.decrypt("secrets/shared/blob.bin", "admin").is_some());
    assert!(repo.decrypt("secrets/shared/blob.bin", "ci").is_none());
}

#[test]
fn a_passphrase_protected_ssh_identity_from_a_passphrase_file_rekeys_every_file() {
    let repo = Repo::new(&["web01"]);
    let dir = tempfile::tempdir().unwrap();
    let ssh = hostage_tests::SshKeyPair::generate(dir.path(), "admin", "correct horse", None);
    let converted = repo.hostage(&["convert", ssh.public.to_str().unwrap()], &[]);
    let admin = stdout(&converted)
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .unwrap()
        .to_owned();
    repo.config(&format!("{{keys}}\ncreation_rules:\n  - age: {admin}\n"));
    for i in 0..20 {
        repo.encrypt(&format!("s{i}.yaml"), b"a: 1\n");
    }
    repo.config(&format!(
        "{{keys}}\ncreation_rules:\n  - age: {admin},$web01\n"
    ));
    let pass = dir.path().join("pass");
    fs_err::write(&pass, "correct horse\n").unwrap();
    let out = repo.hostage(
        &[
            "rekey",
            "--identity",
            ssh.private.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("20 written"), "{}", stdout(&out));
    assert!(repo.decrypt("s7.yaml", "web01").is_some());
}

/// Issue 12 item 3 for re-keyed files: `link` is a committed symlink to a directory outside the
/// repository. Naming `link/app.yaml` must not make hostage rewrite the file outside: that file
/// is refused (naming the link), and it keeps its bytes.
#[test]
fn a_file_reached_through_a_symlink_out_of_the_repo_is_not_rewritten() {
    let repo = Repo::new(&["admin", "ci"]);
    repo.config("{keys}\ncreation_rules:\n  - age: *admin\n");
    repo.encrypt("elsewhere/app.yaml", b"token: abc\n");
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("app.yaml");
    fs_err::rename(repo.path("elsewhere/app.yaml"), &target).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path("link")).unwrap();
    let before = fs_err::read(&target).unwrap();
    repo.config("{keys}\ncreation_rules:\n  - age: [*admin, *ci]\n");

    let out = repo.hostage(&["rekey", "link/app.yaml"], &["admin"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("points outside"), "{text}");
    assert_eq!(fs_err::read(&target).unwrap(), before);
}
