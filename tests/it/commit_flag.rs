//! `--commit` end to end with real git: exactly the paths a run changed are committed with the
//! seed's message, a hand edit stays out, a run that changes nothing commits nothing, and an
//! index with staged changes is refused before anything changes.

use std::path::Path;

use crate::rekey_support::{json, stderr, stdout, Repo};
use crate::workflow_support::world;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = duct::cmd(hostage_tests::require(hostage_tests::GIT), args)
        .dir(dir)
        .env("HOME", dir)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Commits everything in `repo` as the starting point, with a local identity (the runs have
/// HOME pointing into the repo, so there is no global one).
fn initial_commit(dir: &Path) {
    git(dir, &["config", "user.name", "operator"]);
    git(dir, &["config", "user.email", "operator@example.invalid"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "initial"]);
}

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
    let index = w.fleet.add(hostage_tests::sshd::SshdOptions::default());
    let (old_host, new_host) = (&w.fleet.hosts[0], &w.fleet.hosts[index]);
    let text = w
        .inventory_text()
        .replace(
            &format!(
                "address: {}\n    port: {}\n",
                old_host.address, old_host.port
            ),
            &format!(
                "address: {}\n    port: {}\n",
                new_host.address, new_host.port
            ),
        )
        .replace(
            &old_host.public_key_file().display().to_string(),
            &new_host.public_key_file().display().to_string(),
        );
    fs_err::write(&w.inventory, text).unwrap();
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
