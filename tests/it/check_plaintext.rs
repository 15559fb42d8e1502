//! The plaintext guard end to end: `hostage check`, `rekey --check` and `status` on a real git
//! repo whose encrypted files the real sops made, and the shipped `.pre-commit-hooks.yaml` driven
//! by the real `pre-commit` tool.

use std::path::Path;

use crate::rekey_support::{json, stderr, stdout, Repo};

const CONFIG: &str = "{keys}\ncreation_rules:\n  - path_regex: secrets/.*\n    age: *admin\n";

/// A repo with one encrypted secret, the seed's plaintext Nix module and a README outside every
/// rule: nothing to find.
fn clean_repo() -> Repo {
    let repo = Repo::new(&["admin"]);
    repo.config(CONFIG);
    repo.encrypt("secrets/db.yaml", b"password: hunter2\n");
    repo.write(
        "secrets/default.nix",
        b"{ db = ./db.yaml; }\n", // the seed's name -> path module: plaintext by design
    );
    repo.write("README.md", b"# secrets\n");
    repo
}

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    duct::cmd(hostage_tests::require(hostage_tests::GIT), args)
        .dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("HOME", dir)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap()
}

#[test]
fn check_passes_a_clean_repo_and_reports_a_plaintext_secret_with_exit_3() {
    let repo = clean_repo();
    let out = repo.hostage(&["check"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("nothing found"), "{}", stdout(&out));

    repo.write("secrets/api.yaml", b"token: s3cr3t\n");
    let out = repo.hostage(&["check"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("secrets/api.yaml is plaintext but .sops.yaml:4"),
        "{text}"
    );
    // The value itself never reaches the report.
    assert!(!text.contains("s3cr3t"), "{text}");

    let doc = json(&repo.hostage(&["--json", "check"], &[]));
    assert_eq!(doc["format_version"], 1, "{doc:#}");
    assert_eq!(doc["plaintext"][0]["path"], "secrets/api.yaml", "{doc:#}");
    assert_eq!(doc["plaintext"][0]["path_regex"], "secrets/.*", "{doc:#}");
    assert_eq!(doc["plaintext"].as_array().unwrap().len(), 1, "{doc:#}");

    // Encrypted by the real sops, the same file passes.
    repo.encrypt("secrets/api.yaml", b"token: s3cr3t\n");
    let out = repo.hostage(&["check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn check_skips_git_ignored_files_and_allowed_patterns() {
    let repo = clean_repo();
    repo.write(".gitignore", b"secrets/local/\n");
    repo.write("secrets/local/scratch.yaml", b"token: s3cr3t\n");
    repo.write("secrets/db.yaml.template", b"password: CHANGEME\n");
    let out = repo.hostage(&["--json", "check"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc = json(&out);
    let paths: Vec<&str> = doc["plaintext"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    // The ignored file is not there; the template is, until it is allowed.
    assert_eq!(paths, ["secrets/db.yaml.template"], "{doc:#}");
    let out = repo.hostage(&["check", "--allow", "*.template"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn check_names_a_recipient_nobody_named_and_files_that_lag_behind() {
    let repo = Repo::new(&["admin", "stranger"]);
    repo.config(CONFIG);
    repo.encrypt("secrets/db.yaml", b"password: hunter2\n");
    // A hand edit adds a bare recipient nobody named: files lag, and it is unknown.
    let stranger = repo.recipient("stranger").to_owned();
    let text = fs_err::read_to_string(repo.path(".sops.yaml")).unwrap();
    let text = text
        .replace(&format!("  - &stranger {stranger}\n"), "")
        .replace("age: *admin", &format!("age: [*admin, {stranger}]"));
    repo.write(".sops.yaml", text.as_bytes());
    let out = repo.hostage(&["--json", "check"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(
        doc["unknown_recipients"][0]["recipient"], stranger,
        "{doc:#}"
    );
    assert_eq!(
        doc["unknown_recipients"][0]["places"][0], ".sops.yaml:5",
        "{doc:#}"
    );
    assert_eq!(doc["drift"][0]["kind"], "files-lag-behind", "{doc:#}");
}

#[test]
fn rekey_check_and_status_report_a_plaintext_secret() {
    let repo = clean_repo();
    repo.write("secrets/api.yaml", b"token: s3cr3t\n");
    let out = repo.hostage(&["rekey", "--check"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("plaintext secrets/api.yaml is plaintext"),
        "{}",
        stdout(&out)
    );
    let doc = json(&repo.hostage(&["--json", "rekey", "--check"], &[]));
    assert_eq!(doc["plaintext"][0]["path"], "secrets/api.yaml", "{doc:#}");

    let inventory = repo.path("fleet.yaml");
    fs_err::write(
        &inventory,
        format!(
            "secrets_repo: .\nrecipients:\n  workstation:\n    recipient: {}\nhosts: {{}}\n",
            repo.recipient("admin")
        ),
    )
    .unwrap();
    let inventory = inventory.display().to_string();
    let out = repo.hostage(&["--json", "--inventory", &inventory, "status"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc = json(&out);
    let drift = doc["drift"].as_array().unwrap();
    assert!(
        drift
            .iter()
            .any(|d| d["kind"] == "plaintext-secret" && d["subject"] == "secrets/api.yaml"),
        "{doc:#}"
    );
    let out = repo.hostage(
        &[
            "--inventory",
            &inventory,
            "status",
            "--allow",
            "secrets/api.*",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn pre_commit_hook_blocks_a_plaintext_secret_and_passes_an_encrypted_one() {
    // The shipped hook file, in a repository of its own, as pre-commit users reference it.
    let hooks = tempfile::tempdir().unwrap();
    fs_err::copy(
        hostage_tests::workspace_root().join(".pre-commit-hooks.yaml"),
        hooks.path().join(".pre-commit-hooks.yaml"),
    )
    .unwrap();
    assert!(git(hooks.path(), &["init", "-q"]).status.success());
    assert!(git(hooks.path(), &["add", "."]).status.success());
    assert!(git(hooks.path(), &["commit", "-qm", "hooks"])
        .status
        .success());
    let rev = String::from_utf8(git(hooks.path(), &["rev-parse", "HEAD"]).stdout).unwrap();

    let repo = clean_repo();
    let dir = repo.dir.path();
    repo.write(
        ".pre-commit-config.yaml",
        format!(
            "repos:\n  - repo: file://{}\n    rev: {}\n    hooks:\n      - id: hostage-check\n",
            hooks.path().display(),
            rev.trim()
        )
        .as_bytes(),
    );
    let cache = tempfile::tempdir().unwrap();
    let bin_dir = hostage_tests::hostage_bin().parent().unwrap().to_owned();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let install = hostage_tests::pre_commit(&["install"])
        .dir(dir)
        .env("PRE_COMMIT_HOME", cache.path())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap();
    assert!(install.status.success(), "{}", stderr(&install));
    let commit = |message: &str| {
        duct::cmd(
            hostage_tests::require(hostage_tests::GIT),
            ["commit", "-qm", message],
        )
        .dir(dir)
        .env("PRE_COMMIT_HOME", cache.path())
        .env("PATH", &path)
        .env("PYTHONPATH", hostage_tests::pre_commit_dir())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("HOME", dir)
        .env_remove("SOPS_CONFIG")
        .env_remove("HOSTAGE_INVENTORY")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap()
    };
    assert!(git(dir, &["add", "."]).status.success());
    let out = commit("the encrypted secrets");
    assert!(
        out.status.success(),
        "an encrypted repo must pass: {}{}",
        stdout(&out),
        stderr(&out)
    );

    repo.write("secrets/api.yaml", b"token: s3cr3t\n");
    assert!(git(dir, &["add", "secrets/api.yaml"]).status.success());
    let out = commit("a plaintext secret");
    assert!(!out.status.success(), "a plaintext secret must be blocked");
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("hostage check"), "{said}");
    assert!(said.contains("secrets/api.yaml is plaintext"), "{said}");
    let log = String::from_utf8(git(dir, &["log", "--format=%s"]).stdout).unwrap();
    assert_eq!(log.trim(), "the encrypted secrets", "{log}");

    repo.encrypt("secrets/api.yaml", b"token: s3cr3t\n");
    assert!(git(dir, &["add", "secrets/api.yaml"]).status.success());
    let out = commit("the secret, encrypted");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn a_plaintext_file_with_a_fake_sops_key_or_a_symlink_does_not_slip_through() {
    let repo = clean_repo();
    // A hostile (or careless) file that looks like sops at a glance: not a sops file, reported.
    repo.write("secrets/fake.yaml", b"password: s3cr3t\nsops: nope\n");
    let out = repo.hostage(&["--json", "check"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc = json(&out);
    let found = format!("{}{}", doc["plaintext"], doc["drift"]);
    assert!(found.contains("secrets/fake.yaml"), "{doc:#}");
    assert!(!found.contains("s3cr3t"), "{doc:#}");
    fs_err::remove_file(repo.path("secrets/fake.yaml")).unwrap();

    // A symlink is never followed (git stores the link, not what it points to).
    repo.write("outside.txt", b"not under a rule\n");
    std::os::unix::fs::symlink("../outside.txt", repo.path("secrets/link.yaml")).unwrap();
    let out = repo.hostage(&["check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}
