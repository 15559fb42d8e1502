//! `hostage rekey --check` / `--dry-run` / `--json`: the plan, per key group and by recipient,
//! with host names from `.sops.yaml` anchors, computed without writing anything.

use crate::rekey_support::{action_of, json, stderr, stdout, Repo};

const TWO_RULES: &str = "{keys}\ncreation_rules:\n  - path_regex: secrets/hosts/.*\n    key_groups:\n      - age: [*admin, *web01]\n  - age: *admin\n";

/// A repo with a host file (admin + web01) and two shared files (admin), made by sops.
fn repo() -> Repo {
    let repo = Repo::new(&["admin", "web01", "web02"]);
    repo.config(TWO_RULES);
    repo.encrypt(
        "secrets/hosts/web01.yaml",
        b"db:\n  password: hunter2\n  user: app\n",
    );
    repo.encrypt("secrets/shared.json", b"{\"token\": \"t0k3n\"}\n");
    repo.encrypt("secrets/app.env", b"API_KEY=abc\n");
    repo
}

#[test]
fn check_needs_no_private_key_and_exits_0_when_every_file_matches() {
    let repo = repo();
    let out = repo.hostage(&["rekey", "--check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("3 sops file(s): 3 unchanged, 0 rewrap, 0 rotate, 0 error"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_reports_drift_by_host_name_and_exits_3_without_writing() {
    let repo = repo();
    repo.config(
        &TWO_RULES
            .replace("[*admin, *web01]", "[*admin, *web02]")
            .replace("- age: *admin\n", "- age: [*admin, *web02]\n"),
    );
    let before = repo.snapshot();
    let out = repo.hostage(&["rekey", "--check"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("rotate    secrets/hosts/web01.yaml  +web02 -web01"),
        "{text}"
    );
    assert!(text.contains("rewrap    secrets/shared.json"), "{text}");
    assert!(text.contains("rewrap    secrets/app.env"), "{text}");
    assert!(
        !text.contains(repo.recipient("web02")),
        "names, not bare keys, in the plan lines:\n{text}"
    );
    // The exposure report names the removed host, the file and the values it could read.
    assert!(text.contains("web01 ("), "{text}");
    assert!(
        text.contains("secrets/hosts/web01.yaml: db.password, db.user"),
        "{text}"
    );
    assert_eq!(repo.snapshot(), before, "--check wrote something");
}

#[test]
fn json_plan_lists_every_file_with_groups_names_and_exposure() {
    let repo = repo();
    repo.config(&TWO_RULES.replace("[*admin, *web01]", "[*admin, *web02]"));
    let out = repo.hostage(&["--json", "rekey", "--check"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["mode"], "check");
    assert_eq!(action_of(&doc, "secrets/hosts/web01.yaml"), "rotate");
    assert_eq!(action_of(&doc, "secrets/shared.json"), "unchanged");
    assert_eq!(doc["summary"]["rotate"], 1);
    assert_eq!(doc["summary"]["unchanged"], 2);
    let host = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "secrets/hosts/web01.yaml")
        .unwrap();
    assert_eq!(host["rule"], 0);
    assert_eq!(host["groups"][0]["added"][0]["name"], "web02");
    assert_eq!(
        host["groups"][0]["added"][0]["recipient"],
        repo.recipient("web02")
    );
    assert_eq!(host["groups"][0]["removed"][0]["name"], "web01");
    assert_eq!(host["groups"][0]["kept"][0]["name"], "admin");
    assert_eq!(doc["exposure"][0]["name"], "web01");
    assert_eq!(
        doc["exposure"][0]["files"][0]["path"],
        "secrets/hosts/web01.yaml"
    );
    assert_eq!(
        doc["exposure"][0]["files"][0]["key_paths"],
        serde_json::json!(["db.password", "db.user"])
    );
}

#[test]
fn recipients_are_compared_as_sets_so_order_and_duplicates_change_nothing() {
    let repo = repo();
    repo.config(
        &TWO_RULES
            .replace("[*admin, *web01]", "[*web01, *admin, *web01]")
            .replace("- age: *admin\n", "- age: $admin, $admin\n"),
    );
    let out = repo.hostage(&["--json", "rekey", "--check"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn no_rotate_turns_a_removal_into_a_rewrap_with_a_warning() {
    let repo = repo();
    repo.config(&TWO_RULES.replace("[*admin, *web01]", "[*admin]"));
    let out = repo.hostage(&["--json", "rekey", "--check", "--no-rotate"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(action_of(&json(&out), "secrets/hosts/web01.yaml"), "rewrap");
    assert!(stderr(&out).contains("--no-rotate"), "{}", stderr(&out));
}

#[test]
fn shamir_key_groups_are_planned_group_by_group() {
    let repo = Repo::new(&["admin", "backup", "web01", "web02"]);
    let shamir = "{keys}\ncreation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [*admin]\n      - age: [*backup, *web01]\n";
    repo.config(shamir);
    repo.encrypt("s.yaml", b"a: 1\n");
    repo.config(&shamir.replace("[*backup, *web01]", "[*backup, *web02]"));
    let out = repo.hostage(&["rekey", "--check"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("rotate    s.yaml  group 2: +web02 -web01"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("s.yaml [one Shamir share only]: a"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn gitignored_and_non_sops_files_are_not_planned() {
    let repo = repo();
    repo.write(".gitignore", b"ignored/\n");
    fs_err::create_dir_all(repo.path("ignored")).unwrap();
    fs_err::copy(
        repo.path("secrets/shared.json"),
        repo.path("ignored/copy.json"),
    )
    .unwrap();
    repo.write("README.md", b"# not a secret\n");
    repo.write("plain.yaml", b"sopsy: no\n");
    repo.config(&TWO_RULES.replace("- age: *admin\n", "- age: [*admin, *web02]\n"));
    let out = repo.hostage(&["--json", "rekey", "--check"], &[]);
    let doc = json(&out);
    let paths: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "secrets/app.env",
            "secrets/hosts/web01.yaml",
            "secrets/shared.json"
        ]
    );
    assert_eq!(doc["summary"]["skipped_not_sops"], 3, "{doc:#}");
}

#[test]
fn paths_limit_the_plan_to_the_files_under_them() {
    let repo = repo();
    repo.config(&TWO_RULES.replace("- age: *admin\n", "- age: [*admin, *web02]\n"));
    let out = repo.hostage(
        &[
            "--json",
            "rekey",
            "--check",
            "secrets/shared.json",
            "secrets/hosts",
        ],
        &[],
    );
    let doc = json(&out);
    assert_eq!(doc["files"].as_array().unwrap().len(), 2, "{doc:#}");
    assert_eq!(action_of(&doc, "secrets/shared.json"), "rewrap");
}

#[test]
fn dry_run_checks_the_keys_and_reports_files_no_identity_opens() {
    let repo = repo();
    repo.config(
        &TWO_RULES
            .replace("[*admin, *web01]", "[*admin, *web01, *web02]")
            .replace("- age: *admin\n", "- age: [*admin, *web02]\n"),
    );
    let before = repo.snapshot();
    // web01 opens only the host file: the shared ones are errors, with sops' recipients listed.
    let out = repo.hostage(&["--json", "rekey", "--dry-run"], &["web01"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["mode"], "dry-run");
    assert_eq!(action_of(&doc, "secrets/hosts/web01.yaml"), "rewrap");
    assert_eq!(action_of(&doc, "secrets/shared.json"), "error");
    let shared = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "secrets/shared.json")
        .unwrap();
    assert!(
        shared["reason"]
            .as_str()
            .unwrap()
            .contains("no identity can decrypt"),
        "{shared:#}"
    );
    assert_eq!(repo.snapshot(), before, "--dry-run wrote something");
    let ok = repo.hostage(&["rekey", "--dry-run"], &["admin"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("(nothing written)"));
    assert_eq!(repo.snapshot(), before, "--dry-run wrote something");
}

#[test]
fn exposure_names_list_elements_by_index_in_text_and_json() {
    let repo = repo();
    repo.encrypt(
        "secrets/hosts/lists.yaml",
        b"a_list:\n  - one\n  - two\n  - name: three\n    pass: four\nplain: x\n",
    );
    repo.encrypt(
        "secrets/hosts/lists.json",
        b"{\"a_list\": [\"one\", {\"b\": \"c\"}], \"n\": [[\"x\"]]}\n",
    );
    repo.config(&TWO_RULES.replace("[*admin, *web01]", "[*admin]"));
    let expected_yaml = "a_list[0], a_list[1], a_list[2].name, a_list[2].pass, plain";
    let expected_json = "a_list[0], a_list[1].b, n[0][0]";

    let out = repo.hostage(&["rekey", "--check"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("secrets/hosts/lists.yaml: {expected_yaml}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("secrets/hosts/lists.json: {expected_json}")),
        "{text}"
    );

    let out = repo.hostage(&["--json", "rekey", "--check"], &[]);
    let doc = json(&out);
    let files = doc["exposure"][0]["files"].as_array().unwrap();
    let paths_of = |name: &str| {
        files
            .iter()
            .find(|f| f["path"] == name)
            .map(|f| f["key_paths"].clone())
            .unwrap()
    };
    let list = |joined: &str| serde_json::json!(joined.split(", ").collect::<Vec<_>>());
    assert_eq!(paths_of("secrets/hosts/lists.yaml"), list(expected_yaml));
    assert_eq!(paths_of("secrets/hosts/lists.json"), list(expected_json));
}
