//! `--commit` end to end with real git: exactly the paths a run changed are committed with the
//! seed's message, a hand edit stays out, a run that changes nothing commits nothing, and an
//! index with staged changes is refused before anything changes.

use std::path::Path;

use crate::rekey_support::{json, stderr, stdout, Repo};
use crate::workflow_support::{git, initial_commit, world};

fn head(dir: &Path) -> String {
    git(dir, &["rev-parse", "HEAD"]).trim().to_owned()
}

fn files_of_head(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = git(dir, &["show", "--name-only", "--format=", "HEAD"])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    files.sort();
    files
}

#[test]
fn onboard_commit_commits_exactly_what_it_changed_with_the_seeds_message() {
    let w = world();
    let dir = w.repo.dir.path();
    w.repo.write("README.md", b"# secrets\n");
    initial_commit(dir);
    // The operator's own uncommitted work: stays out of hostage's commit.
    w.repo.write("README.md", b"# secrets, edited by hand\n");
    w.repo.write("notes.txt", b"todo\n");

    let out = w.hostage(&["onboard", "h0", "--trust-new", "--commit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("committed "), "{text}");
    assert!(text.contains("nix flake update secrets"), "{text}");
    assert_eq!(
        git(dir, &["log", "-1", "--format=%s"]).trim(),
        "feat(h0): add host SSH key as sops recipient"
    );
    let committed = files_of_head(dir);
    assert!(
        committed.contains(&".sops.yaml".to_owned()),
        "{committed:?}"
    );
    assert!(
        committed.contains(&"pubkeys/h0.pub".to_owned()),
        "{committed:?}"
    );
    assert!(
        committed.contains(&"secrets/hosts/h0/db.yaml".to_owned()),
        "{committed:?}"
    );
    // Everything the run changed is committed; only the hand edits are left.
    let left = git(dir, &["status", "--porcelain", "--untracked-files=all"]);
    let mut left: Vec<&str> = left.lines().map(|l| &l[3..]).collect();
    left.sort();
    assert_eq!(left, ["README.md", "notes.txt"], "{committed:?}");

    // A second run changes nothing and commits nothing.
    let before = head(dir);
    let out = w.hostage(&["onboard", "h0", "--commit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(head(dir), before);

    // Staged changes that are not hostage's: refused before anything changes.
    git(dir, &["add", "notes.txt"]);
    let config = fs_err::read(w.repo.path(".sops.yaml")).unwrap();
    let out = w.hostage(&["onboard", "h1", "--trust-new", "--commit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("already holds staged changes (notes.txt)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs_err::read(w.repo.path(".sops.yaml")).unwrap(), config);
    assert_eq!(head(dir), before);
}

#[test]
fn rekey_commit_commits_the_rekeyed_files_and_reports_the_commit_in_json() {
    let repo = Repo::new(&["admin", "ci"]);
    let dir = repo.dir.path();
    repo.config("{keys}\ncreation_rules:\n  - path_regex: secrets/.*\n    age: *admin\n");
    repo.encrypt("secrets/a.yaml", b"a: 1\n");
    repo.encrypt("secrets/b.yaml", b"b: 2\n");
    initial_commit(dir);
    // The operator adds ci and commits that edit; hostage commits the re-key.
    let text = fs_err::read_to_string(repo.path(".sops.yaml")).unwrap();
    repo.write(
        ".sops.yaml",
        text.replace("age: *admin", "age: [*admin, *ci]").as_bytes(),
    );
    git(dir, &["commit", "-qam", "feat(ci): add the ci key"]);

    let out = repo.hostage(&["--json", "rekey", "--commit"], &["admin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(
        doc["commit"]["message"], "chore(secrets): re-key sops files to match .sops.yaml",
        "{doc:#}"
    );
    assert_eq!(doc["commit"]["commit"], head(dir), "{doc:#}");
    assert_eq!(
        files_of_head(dir),
        ["secrets/a.yaml", "secrets/b.yaml"],
        "{doc:#}"
    );
    assert!(repo.sops_says_up_to_date("secrets/a.yaml", "admin"));

    // Nothing left to re-key: no commit, and the JSON says so.
    let before = head(dir);
    let doc = json(&repo.hostage(&["--json", "rekey", "--commit"], &["admin"]));
    assert_eq!(doc["commit"]["commit"], serde_json::Value::Null, "{doc:#}");
    assert_eq!(head(dir), before);
}

#[test]
fn commit_outside_a_git_work_tree_is_refused_and_conflicts_with_dry_run() {
    let repo = Repo::new(&["admin"]);
    repo.config("{keys}\ncreation_rules:\n  - path_regex: secrets/.*\n    age: *admin\n");
    let out = repo.hostage(&["rekey", "--dry-run", "--commit"], &["admin"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    fs_err::remove_dir_all(repo.path(".git")).unwrap();
    let out = repo.hostage(&["rekey", "--commit"], &["admin"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not in a git work tree"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rotate_infra_commit_commits_the_finished_rotation_and_leaves_a_clean_work_tree() {
    let w = crate::workflow_support::world_with(&[true, false]);
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let dir = w.repo.dir.path();
    initial_commit(dir);
    let new =
        hostage_tests::SshKeyPair::generate(w.fleet.dir.path(), "id_infrastructure.new", "", None);
    let new_key = new.private.display().to_string();
    let out = w.hostage(&["--json", "rotate-infra", "--new-key", &new_key, "--commit"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(
        git(dir, &["log", "-1", "--format=%s"]).trim(),
        "feat(infrastructure): rotate the infrastructure key"
    );
    assert_eq!(doc["commit"]["commit"], head(dir), "{doc:#}");
    let committed = files_of_head(dir);
    assert!(
        committed.contains(&".sops.yaml".to_owned()),
        "{committed:?}"
    );
    assert!(
        committed.contains(&"secrets/common/smtp.yaml".to_owned()),
        "{committed:?}"
    );
    assert_eq!(
        git(dir, &["status", "--porcelain", "--untracked-files=all"]),
        "",
        "{committed:?}"
    );
}

#[test]
fn rotate_commit_commits_the_replaced_recipient_with_its_own_message() {
    let mut w = world();
    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = w.repo.dir.path().to_owned();
    initial_commit(&dir);
    // h0 is rebuilt: a new machine with a new host key under the same name.
    let index = w.rebuild(0);
    let new_host = &w.fleet.hosts[index];
    let fingerprint = new_host.fingerprint();
    let out = w.hostage(&[
        "rotate",
        "h0",
        "--expect-fingerprint",
        &fingerprint,
        "--commit",
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        git(&dir, &["log", "-1", "--format=%s"]).trim(),
        "feat(h0): replace host SSH key as sops recipient"
    );
    let committed = files_of_head(&dir);
    assert!(
        committed.contains(&".sops.yaml".to_owned()),
        "{committed:?}"
    );
    assert!(
        committed.contains(&"pubkeys/h0.pub".to_owned()),
        "{committed:?}"
    );
    assert_eq!(
        git(&dir, &["status", "--porcelain", "--untracked-files=all"]),
        ""
    );
    // --from-backup changes nothing in the repo: --commit there is refused.
    let out = w.hostage(&["rotate", "h0", "--from-backup", "--commit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("--from-backup changes nothing"),
        "{}",
        stderr(&out)
    );
}

/// The paths `git status` still shows in `dir` (what no commit took), sorted.
fn left_over(dir: &Path) -> Vec<String> {
    let mut left: Vec<String> = git(dir, &["status", "--porcelain", "--untracked-files=all"])
        .lines()
        .map(|l| l[3..].to_owned())
        .collect();
    left.sort();
    left
}

#[test]
fn backup_host_key_and_offboard_commit_what_they_changed_removals_included() {
    let w = world();
    let dir = w.repo.dir.path();
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}", stderr(&out));
    initial_commit(dir);
    w.repo.write("notes.txt", b"todo\n");

    let out = w.hostage(&["backup-host-key", "h1", "--commit"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("nix flake update secrets"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        git(dir, &["log", "-1", "--format=%s"]).trim(),
        "feat(h1): back up host SSH key, sops-encrypted"
    );
    assert_eq!(
        files_of_head(dir),
        ["secrets/hosts/h1/ssh_host_ed25519_key"]
    );
    assert_eq!(left_over(dir), ["notes.txt"]);
    // The same key again: nothing written, nothing committed.
    let before = head(dir);
    let doc = json(&w.hostage(&["--json", "backup-host-key", "h1", "--commit"]));
    assert_eq!(doc["commit"]["commit"], serde_json::Value::Null, "{doc:#}");
    assert_eq!(head(dir), before);

    let out = w.hostage(&["--json", "offboard", "h1", "--commit"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(
        git(dir, &["log", "-1", "--format=%s"]).trim(),
        "feat(h1): remove host SSH key from sops recipients"
    );
    assert_eq!(doc["commit"]["commit"], head(dir), "{doc:#}");
    // The rules, the re-keyed file, and the two removed files: deletions are committed too.
    assert_eq!(
        files_of_head(dir),
        [
            ".sops.yaml",
            "pubkeys/h1.pub",
            "secrets/hosts/h1/api.json",
            "secrets/hosts/h1/ssh_host_ed25519_key",
        ],
        "{doc:#}"
    );
    let deleted = git(
        dir,
        &[
            "show",
            "--diff-filter=D",
            "--name-only",
            "--format=",
            "HEAD",
        ],
    );
    assert_eq!(
        deleted.lines().collect::<Vec<_>>(),
        ["pubkeys/h1.pub", "secrets/hosts/h1/ssh_host_ed25519_key"]
    );
    assert_eq!(left_over(dir), ["notes.txt"]);
    // Again: nothing to do, nothing committed.
    let before = head(dir);
    let out = w.hostage(&["offboard", "h1", "--commit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("commit: nothing changed, nothing committed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(head(dir), before);
}

#[test]
fn offboard_and_backup_with_commit_refuse_a_staged_index_before_changing_anything() {
    let w = world();
    let dir = w.repo.dir.path();
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}", stderr(&out));
    initial_commit(dir);
    w.repo.write("notes.txt", b"todo\n");
    git(dir, &["add", "notes.txt"]);
    let before = w.state();
    for args in [
        &["backup-host-key", "h1", "--commit"][..],
        &["offboard", "h1", "--commit"][..],
    ] {
        let out = w.hostage(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("already holds staged changes (notes.txt)"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(w.state(), before, "{args:?}");
    }
}

#[test]
fn offboard_rotate_infra_commit_makes_one_commit_per_verb() {
    let w = crate::workflow_support::world_with(&[true, true]);
    for host in ["h0", "h1"] {
        let out = w.hostage(&["onboard", host, "--trust-new"]);
        assert!(out.status.success(), "{host}: {}", stderr(&out));
    }
    let dir = w.repo.dir.path();
    initial_commit(dir);
    let start = head(dir);
    let new = hostage_tests::SshKeyPair::generate(w.fleet.dir.path(), "id_infra.new", "", None);
    let new_key = new.private.display().to_string();
    let out = w.hostage(&[
        "--json",
        "offboard",
        "h1",
        "--rotate-infra",
        "--new-key",
        &new_key,
        "--commit",
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(
        git(dir, &["log", "--format=%s", &format!("{start}..HEAD")]),
        "feat(infrastructure): rotate the infrastructure key\n\
         feat(h1): remove host SSH key from sops recipients\n"
    );
    assert_eq!(
        doc["rotate_infra"]["commit"]["commit"],
        head(dir),
        "{doc:#}"
    );
    assert_eq!(
        doc["commit"]["commit"],
        git(dir, &["rev-parse", "HEAD~1"]).trim(),
        "{doc:#}"
    );
    assert_eq!(left_over(dir), Vec::<String>::new());
}

#[test]
fn set_commit_commits_the_one_file_with_the_key_and_file_in_the_message() {
    let repo = Repo::new(&["admin"]);
    let dir = repo.dir.path();
    repo.config("{keys}\ncreation_rules:\n  - path_regex: secrets/.*\n    age: *admin\n");
    repo.encrypt("secrets/a.yaml", b"a: 1\n");
    initial_commit(dir);
    repo.write("notes.txt", b"todo\n");

    let file = "secrets/hosts/web02/db.yaml";
    let out = repo.hostage_with_stdin(
        &["set", file, "db_password", "--commit"],
        b"pw\n",
        &["admin"],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("committed "), "{}", stdout(&out));
    assert_eq!(
        git(dir, &["log", "-1", "--format=%s"]).trim(),
        "feat(secrets): set db_password in secrets/hosts/web02/db.yaml"
    );
    assert_eq!(files_of_head(dir), [file]);
    assert_eq!(left_over(dir), ["notes.txt"]);

    // The same value: nothing written, nothing committed.
    let before = head(dir);
    let out = repo.hostage_with_stdin(
        &["--json", "set", file, "db_password", "--commit"],
        b"pw\n",
        &["admin"],
    );
    assert_eq!(json(&out)["commit"]["commit"], serde_json::Value::Null);
    assert_eq!(head(dir), before);

    // A staged index: refused before stdin is read or anything is written.
    git(dir, &["add", "notes.txt"]);
    let bytes = fs_err::read(repo.path(file)).unwrap();
    let out = repo.hostage_with_stdin(
        &["set", file, "db_password", "--commit"],
        b"new\n",
        &["admin"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("already holds staged changes (notes.txt)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs_err::read(repo.path(file)).unwrap(), bytes);
    assert_eq!(head(dir), before);
}
