//! `hostage set FILE KEY` end to end: the real binary, the value on stdin, judged by sops 3.11
//! (`sops decrypt --extract`) with each recipient's own key.

use crate::rekey_support::{json, stderr, stdout, Repo};

const CONFIG: &str = "{keys}
creation_rules:
  - path_regex: secrets/hosts/web/.*
    key_groups:
      - age:
          - *workstation
          - *web
  - path_regex: .*
    age: *workstation
";

fn repo() -> Repo {
    let repo = Repo::new(&["workstation", "web", "db"]);
    repo.config(CONFIG);
    repo
}

/// sops' `--extract` of `key` (a top-level key) from `file`, decrypted with `identity`.
fn extract(repo: &Repo, file: &str, kind: &str, key: &str, identity: &str) -> Option<String> {
    let path = format!("[\"{key}\"]");
    let out = repo.sops(
        &["decrypt", "--input-type", kind, "--extract", &path, file],
        &[identity],
    );
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

#[test]
fn set_creates_an_absent_file_for_its_rules_recipients_and_sops_reads_the_value() {
    let repo = repo();
    let file = "secrets/hosts/web/db.yaml";
    let out = repo.hostage_with_stdin(&["set", file, "db_password"], b"s3cret-value\n", &[]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("created"), "{}", stdout(&out));
    for reader in ["workstation", "web"] {
        assert_eq!(
            extract(&repo, file, "yaml", "db_password", reader).as_deref(),
            Some("s3cret-value"),
            "{reader}"
        );
    }
    assert_eq!(extract(&repo, file, "yaml", "db_password", "db"), None);
    // The value never appears in the file or the output.
    let text = fs_err::read_to_string(repo.path(file)).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!stdout(&out).contains("s3cret") && !stderr(&out).contains("s3cret"));
}

#[test]
fn set_replaces_a_value_of_a_sops_written_file_keeping_the_others_and_a_rerun_changes_nothing() {
    let repo = repo();
    let file = "secrets/hosts/web/app.yaml";
    repo.encrypt(file, b"api_token: old-token\nport: 8080\n");
    let before = fs_err::read_to_string(repo.path(file)).unwrap();
    let port_line = before
        .lines()
        .find(|l| l.starts_with("port:"))
        .unwrap()
        .to_owned();
    let out = repo.hostage_with_stdin(&["set", file, "api_token"], b"new-token", &["workstation"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        extract(&repo, file, "yaml", "api_token", "web").as_deref(),
        Some("new-token")
    );
    let after = fs_err::read(repo.path(file)).unwrap();
    assert!(
        String::from_utf8_lossy(&after).contains(&port_line),
        "the other value keeps its ciphertext"
    );
    // sops agrees the file's recipients are still those of its rule.
    assert!(repo.sops_says_up_to_date(file, "workstation"));

    let again = repo.hostage_with_stdin(
        &["--json", "set", file, "api_token"],
        b"new-token\n",
        &["workstation"],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(json(&again)["action"], "unchanged");
    assert_eq!(
        fs_err::read(repo.path(file)).unwrap(),
        after,
        "no byte changed"
    );
}

#[test]
fn set_adds_a_nested_key_and_creates_seed_sops_files_as_yaml() {
    let repo = repo();
    let file = "secrets/hosts/web/app.yaml";
    repo.encrypt(file, b"db:\n  user: app\n");
    let out = repo.hostage_with_stdin(
        &["set", file, "[\"db\"][\"password\"]"],
        b"pw\n",
        &["workstation"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plain = repo.decrypt(file, "web").unwrap();
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        "db:\n    user: app\n    password: pw\n"
    );

    let seed = "secrets/hosts/web/wifi.sops";
    let out = repo.hostage_with_stdin(&["set", seed, "psk"], b"hunter2\n", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        extract(&repo, seed, "yaml", "psk", "web").as_deref(),
        Some("hunter2")
    );
}

#[test]
fn set_dry_run_writes_nothing_and_reports_in_json() {
    let repo = repo();
    let before = repo.snapshot();
    let out = repo.hostage_with_stdin(
        &[
            "--json",
            "set",
            "--dry-run",
            "secrets/hosts/web/db.yaml",
            "pw",
        ],
        b"x",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["action"], "create");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(
        doc["key_groups"][0],
        serde_json::json!([repo.recipient("workstation"), repo.recipient("web")])
    );
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn set_refuses_a_file_it_cannot_open_or_outside_the_repository_and_changes_nothing() {
    let repo = repo();
    let file = "secrets/hosts/web/app.yaml";
    repo.encrypt(file, b"a: b\n");
    let outside = tempfile::tempdir().unwrap();
    let before = fs_err::read(repo.path(file)).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path("secrets/out")).unwrap();
    let cases: [(&[&str], &[&str], &str); 3] = [
        (
            &["set", file, "a"],
            &["db"],
            "cannot decrypt secrets/hosts/web/app.yaml",
        ),
        (
            &["set", "secrets/out/x.yaml", "a"],
            &[],
            "outside the repository",
        ),
        (&["set", file, "[\"a\""], &["workstation"], "hint:"),
    ];
    for (args, keys, expected) in cases {
        let out = repo.hostage_with_stdin(args, b"v", keys);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(fs_err::read(repo.path(file)).unwrap(), before);
    assert!(fs_err::read_dir(outside.path()).unwrap().next().is_none());
}

/// A `set` killed (SIGKILL, sent by strace as the binary enters the rename that would publish
/// the file: no hook in the product) leaves the file as it was, never torn; running the same
/// command again finishes the job and leaves no temporary file behind.
#[test]
fn a_set_sigkilled_before_publishing_leaves_the_old_file_and_the_same_command_finishes_it() {
    let strace = hostage_tests::require(hostage_tests::STRACE);
    let repo = repo();
    let file = "secrets/hosts/web/app.yaml";
    repo.encrypt(file, b"api_token: old-token\n");
    let before = repo.snapshot();
    let args = ["set", file, "api_token"];
    let wrapper: Vec<std::ffi::OsString> = [
        strace.as_os_str(),
        "-qq".as_ref(),
        "-o".as_ref(),
        "/dev/null".as_ref(),
        "-e".as_ref(),
        "inject=/^rename:when=1:signal=KILL".as_ref(),
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    let out = repo.hostage_wrapped_with_stdin(&wrapper, &args, b"new-token", &["workstation"]);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "the run was not killed\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        fs_err::read(repo.path(file)).unwrap(),
        before[std::path::Path::new(file)],
        "the killed run changed the file"
    );
    assert_eq!(
        extract(&repo, file, "yaml", "api_token", "web").as_deref(),
        Some("old-token")
    );

    let out = repo.hostage_with_stdin(&args, b"new-token", &["workstation"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        extract(&repo, file, "yaml", "api_token", "web").as_deref(),
        Some("new-token")
    );
    let files: Vec<_> = repo.snapshot().into_keys().collect();
    let expected: Vec<_> = before.into_keys().collect();
    assert_eq!(files, expected, "a temporary file was left behind");
}
