//! Snapshots (insta) of what every verb prints on stdout, as text and as JSON, dry run and
//! apply, on one fixture world: a seed-style repo made by the real sops, two real sshd hosts,
//! keys generated at test time. What changes from run to run (recipients, fingerprints, temp
//! paths, ports, addresses, times, the user) is redacted; everything else must stay as it is,
//! so a change of wording or of a JSON member shows up as a reviewable diff
//! (`INSTA_UPDATE=always cargo test -p hostage-tests --test it output_snapshots`, or
//! `cargo insta review`).

use crate::rekey_support::{stderr, stdout};
use crate::sops_support::Key;
use crate::workflow_support::{world_with, World};

/// The redactions, most specific first.
fn filters(w: &World) -> Vec<(String, String)> {
    let mut filters = vec![
        (
            regex::escape(&w.repo.dir.path().display().to_string()),
            "[REPO]".to_owned(),
        ),
        (
            regex::escape(&w.fleet.dir.path().display().to_string()),
            "[FLEET]".to_owned(),
        ),
    ];
    for (pattern, replacement) in [
        (r"[A-Za-z0-9_.-]+@127\.0\.0\.\d+(:\d+)?", "[USER@HOST]"),
        (r"\[127\.0\.0\.\d+\]:\d+", "[HOST-NAME]"),
        (r"127\.0\.0\.\d+", "[ADDRESS]"),
        (r#""port": ?\d+"#, r#""port": "[PORT]""#),
        (r#""user": ?"[^"]*""#, r#""user": "[USER]""#),
        (r"age1[0-9a-z]{58}", "[RECIPIENT]"),
        (r"SHA256:[A-Za-z0-9+/]{43}", "[FINGERPRINT]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]"),
        (r"pid \d+", "pid [PID]"),
    ] {
        filters.push((pattern.to_owned(), replacement.to_owned()));
    }
    filters
}

/// Snapshots `output`'s stdout as `name` (the run must have succeeded, or exited `code`).
fn snapshot(w: &World, name: &str, output: &std::process::Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{name}: {}\n{}",
        stdout(output),
        stderr(output)
    );
    let filters = filters(w);
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in &filters {
        settings.add_filter(pattern, replacement.as_str());
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, stdout(output)));
}

/// `hostage --inventory … [--json] ARGS…` in the repo, with the workstation key (no ssh options:
/// for the verbs that do not reach hosts).
fn offline(w: &World, json: bool, args: &[&str]) -> std::process::Output {
    let inventory = w.inventory.display().to_string();
    let mut all = vec!["--inventory", inventory.as_str()];
    if json {
        all.push("--json");
    }
    all.extend_from_slice(args);
    w.repo.hostage(&all, &["workstation"])
}

/// Like [`offline`], with the fleet's ssh config and known_hosts.
fn online(w: &World, json: bool, args: &[&str]) -> std::process::Output {
    let mut all = Vec::new();
    if json {
        all.push("--json");
    }
    all.extend_from_slice(args);
    w.hostage(&all)
}

#[test]
fn every_verb_prints_the_same_text_and_json_for_the_same_fixture() {
    let w = world_with(&[true, false]);
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        // Before anything is onboarded: drift, exit code 3.
        snapshot(
            &w,
            &format!("status_before_{kind}"),
            &offline(&w, json, &["status"]),
            3,
        );
        snapshot(
            &w,
            &format!("check_before_{kind}"),
            &offline(&w, json, &["check"]),
            3,
        );
        snapshot(
            &w,
            &format!("rekey_check_{kind}"),
            &offline(&w, json, &["rekey", "--check"]),
            0,
        );
        snapshot(
            &w,
            &format!("rekey_dry_run_{kind}"),
            &offline(&w, json, &["rekey", "--dry-run"]),
            0,
        );
        snapshot(
            &w,
            &format!("rekey_apply_nothing_to_do_{kind}"),
            &offline(&w, json, &["rekey"]),
            0,
        );
        snapshot(
            &w,
            &format!("fetch_dry_run_{kind}"),
            &online(&w, json, &["fetch", "h0", "--trust-new", "--dry-run"]),
            0,
        );
        snapshot(
            &w,
            &format!("deploy_dry_run_{kind}"),
            &online(&w, json, &["deploy", "h0", "--trust-new", "--dry-run"]),
            0,
        );
        snapshot(
            &w,
            &format!("onboard_dry_run_{kind}"),
            &online(&w, json, &["onboard", "h0", "--trust-new", "--dry-run"]),
            0,
        );
    }
    // Apply: h0 in text, h1 in JSON; then both see nothing to do.
    snapshot(
        &w,
        "onboard_apply_text",
        &online(&w, false, &["onboard", "h0", "--trust-new"]),
        0,
    );
    snapshot(
        &w,
        "onboard_apply_json",
        &online(&w, true, &["onboard", "h1", "--trust-new"]),
        0,
    );
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        snapshot(
            &w,
            &format!("onboard_nothing_to_do_{kind}"),
            &online(&w, json, &["onboard", "h0"]),
            0,
        );
        snapshot(
            &w,
            &format!("status_after_{kind}"),
            &offline(&w, json, &["status"]),
            0,
        );
        snapshot(
            &w,
            &format!("check_after_{kind}"),
            &offline(&w, json, &["check"]),
            0,
        );
        snapshot(
            &w,
            &format!("fetch_apply_{kind}"),
            &online(&w, json, &["fetch", "h0"]),
            0,
        );
        snapshot(
            &w,
            &format!("deploy_apply_{kind}"),
            &online(&w, json, &["deploy", "h0"]),
            0,
        );
    }

    // rotate-infra: dry run in both forms, then one rotation per form.
    let first = hostage_tests::SshKeyPair::generate(w.fleet.dir.path(), "id_infra.2", "", None);
    let second = hostage_tests::SshKeyPair::generate(w.fleet.dir.path(), "id_infra.3", "", None);
    let first_key = first.private.display().to_string();
    let second_key = second.private.display().to_string();
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        snapshot(
            &w,
            &format!("rotate_infra_dry_run_{kind}"),
            &online(
                &w,
                json,
                &["rotate-infra", "--new-key", &first_key, "--dry-run"],
            ),
            0,
        );
    }
    snapshot(
        &w,
        "rotate_infra_apply_text",
        &online(&w, false, &["rotate-infra", "--new-key", &first_key]),
        0,
    );
    snapshot(
        &w,
        "rotate_infra_apply_json",
        &online(&w, true, &["rotate-infra", "--new-key", &second_key]),
        0,
    );
}

/// Host `h{host}` is rebuilt with a new key; returns the new key's fingerprint.
fn rebuild(w: &mut World, host: usize) -> String {
    let index = w.rebuild(host);
    w.fleet.hosts[index].fingerprint()
}

#[test]
fn rotate_prints_the_same_report_for_its_dry_run_and_its_apply() {
    let mut w = world_with(&[true, false]);
    for host in ["h0", "h1"] {
        let out = online(&w, false, &["onboard", host, "--trust-new"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // h1 is rebuilt with a new key; the operator read its fingerprint on the console. Hosts are
    // added to the fleet, so the first rebuilt host is index 2.
    let fingerprint = rebuild(&mut w, 1);
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        snapshot(
            &w,
            &format!("rotate_dry_run_{kind}"),
            &online(
                &w,
                json,
                &[
                    "rotate",
                    "h1",
                    "--expect-fingerprint",
                    &fingerprint,
                    "--dry-run",
                ],
            ),
            0,
        );
    }
    snapshot(
        &w,
        "rotate_apply_text",
        &online(
            &w,
            false,
            &["rotate", "h1", "--expect-fingerprint", &fingerprint],
        ),
        0,
    );
    let fingerprint = rebuild(&mut w, 2);
    snapshot(
        &w,
        "rotate_apply_json",
        &online(
            &w,
            true,
            &["rotate", "h1", "--expect-fingerprint", &fingerprint],
        ),
        0,
    );
}

#[test]
fn convert_and_identities_print_the_same_text_and_json_for_the_same_fixture() {
    let w = world_with(&[false]);
    let public = w.fleet.hosts[0].public_key_file().display().to_string();
    let file = "secrets/hosts/h0/db.yaml";
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        snapshot(
            &w,
            &format!("convert_{kind}"),
            &offline(&w, json, &["convert", &public]),
            0,
        );
        snapshot(
            &w,
            &format!("identities_{kind}"),
            &offline(&w, json, &["identities"]),
            0,
        );
        snapshot(
            &w,
            &format!("identities_of_a_file_{kind}"),
            &offline(&w, json, &["identities", file]),
            0,
        );
    }
}

#[test]
fn a_generated_host_key_prints_the_same_report_for_dry_run_apply_and_export() {
    use crate::workflow_onboard::hostage_with_sops_tripwire;
    let w = world_with(&[false, false]);
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        let mut args = vec!["onboard", "h1", "--generate-host-key", "--dry-run"];
        if json {
            args.insert(0, "--json");
        }
        snapshot(
            &w,
            &format!("onboard_generate_host_key_dry_run_{kind}"),
            &hostage_with_sops_tripwire(&w, &args),
            0,
        );
    }
    snapshot(
        &w,
        "onboard_generate_host_key_apply_json",
        &hostage_with_sops_tripwire(&w, &["--json", "onboard", "h1", "--generate-host-key"]),
        0,
    );
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        let dir = w.fleet.dir.path().join(format!("extra-{kind}"));
        let dir = dir.display().to_string();
        let mut args = vec!["export-host-key", "h1", dir.as_str()];
        if json {
            args.insert(0, "--json");
        }
        snapshot(
            &w,
            &format!("export_host_key_{kind}"),
            &hostage_with_sops_tripwire(&w, &args),
            0,
        );
    }
}

#[test]
fn restoring_a_backed_up_host_key_prints_the_same_report_for_dry_run_and_apply() {
    use crate::workflow_onboard::hostage_with_sops_tripwire;
    let w = world_with(&[false, false]);
    // h1's key was generated here and backed up; the machine came up with another key.
    let out = hostage_with_sops_tripwire(&w, &["onboard", "h1", "--generate-host-key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rebuilt = w.fleet.hosts[1].fingerprint();
    let restore = [
        "rotate",
        "h1",
        "--from-backup",
        "--expect-fingerprint",
        &rebuilt,
    ];
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        let mut args = restore.to_vec();
        args.push("--dry-run");
        snapshot(
            &w,
            &format!("rotate_from_backup_dry_run_{kind}"),
            &online(&w, json, &args),
            0,
        );
    }
    snapshot(
        &w,
        "rotate_from_backup_apply_text",
        &online(&w, false, &restore),
        0,
    );
    // The host holds its backed-up key now: nothing to do, in JSON.
    let pinned = fs_err::read_to_string(&w.inventory).unwrap();
    let pinned = regex::Regex::new(r"fingerprint: (SHA256:\S+)")
        .unwrap()
        .captures_iter(&pinned)
        .last()
        .unwrap()[1]
        .to_owned();
    snapshot(
        &w,
        "rotate_from_backup_nothing_to_do_json",
        &online(
            &w,
            true,
            &[
                "rotate",
                "h1",
                "--from-backup",
                "--expect-fingerprint",
                &pinned,
            ],
        ),
        0,
    );
}

/// `hostage --inventory … [--json] ARGS…` in the repo with `value` on stdin (for `set`).
fn with_stdin(w: &World, json: bool, args: &[&str], value: &[u8]) -> std::process::Output {
    let inventory = w.inventory.display().to_string();
    let mut all = vec!["--inventory", inventory.as_str()];
    if json {
        all.push("--json");
    }
    all.extend_from_slice(args);
    w.repo.hostage_with_stdin(&all, value, &["workstation"])
}

/// backup-host-key, set and offboard on h1, dry run, apply and the re-run that has nothing to
/// do, all in text or all in JSON (a world each: the runs change the repo).
fn snapshot_backup_host_key_set_and_offboard(json: bool) {
    let kind = if json { "json" } else { "text" };
    let w = world_with(&[true, false]);
    let out = online(&w, false, &["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}", stderr(&out));

    snapshot(
        &w,
        &format!("backup_host_key_dry_run_{kind}"),
        &online(&w, json, &["backup-host-key", "h1", "--dry-run"]),
        0,
    );
    snapshot(
        &w,
        &format!("backup_host_key_apply_{kind}"),
        &online(&w, json, &["backup-host-key", "h1"]),
        0,
    );
    snapshot(
        &w,
        &format!("backup_host_key_nothing_to_do_{kind}"),
        &online(&w, json, &["backup-host-key", "h1"]),
        0,
    );

    let file = "secrets/hosts/h1/db.yaml";
    snapshot(
        &w,
        &format!("set_create_dry_run_{kind}"),
        &with_stdin(
            &w,
            json,
            &["set", file, "db_password", "--dry-run"],
            b"first\n",
        ),
        0,
    );
    snapshot(
        &w,
        &format!("set_create_apply_{kind}"),
        &with_stdin(&w, json, &["set", file, "db_password"], b"first\n"),
        0,
    );
    snapshot(
        &w,
        &format!("set_replace_dry_run_{kind}"),
        &with_stdin(
            &w,
            json,
            &["set", file, "db_password", "--dry-run"],
            b"second\n",
        ),
        0,
    );
    snapshot(
        &w,
        &format!("set_replace_apply_{kind}"),
        &with_stdin(&w, json, &["set", file, "db_password"], b"second\n"),
        0,
    );
    snapshot(
        &w,
        &format!("set_add_apply_{kind}"),
        &with_stdin(&w, json, &["set", file, "db_user"], b"app\n"),
        0,
    );
    snapshot(
        &w,
        &format!("set_nothing_to_do_{kind}"),
        &with_stdin(&w, json, &["set", file, "db_password"], b"second\n"),
        0,
    );

    snapshot(
        &w,
        &format!("offboard_dry_run_{kind}"),
        &offline(&w, json, &["offboard", "h1", "--dry-run"]),
        0,
    );
    snapshot(
        &w,
        &format!("offboard_apply_{kind}"),
        &offline(&w, json, &["offboard", "h1"]),
        0,
    );
    snapshot(
        &w,
        &format!("offboard_nothing_to_do_{kind}"),
        &offline(&w, json, &["offboard", "h1"]),
        0,
    );
}

#[test]
fn backup_host_key_set_and_offboard_print_the_same_text_for_dry_run_and_apply() {
    snapshot_backup_host_key_set_and_offboard(false);
}

#[test]
fn backup_host_key_set_and_offboard_print_the_same_json_for_dry_run_and_apply() {
    snapshot_backup_host_key_set_and_offboard(true);
}

#[test]
fn rotate_key_workstation_prints_the_same_report_for_dry_run_apply_and_the_rerun() {
    let mut w = world_with(&[true, false]);
    let first = Key::generate();
    let second = Key::generate();
    let first_file = age_identity_file(&w, "workstation-2026.txt", &first);
    let second_file = age_identity_file(&w, "workstation-2027.txt", &second);
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        snapshot(
            &w,
            &format!("rotate_key_dry_run_{kind}"),
            &online(
                &w,
                json,
                &[
                    "rotate-key",
                    "workstation",
                    "--new-identity",
                    &first_file,
                    "--dry-run",
                ],
            ),
            0,
        );
    }
    snapshot(
        &w,
        "rotate_key_apply_text",
        &online(
            &w,
            false,
            &["rotate-key", "workstation", "--new-identity", &first_file],
        ),
        0,
    );
    // The operator now holds the first new key (in SOPS_AGE_KEY) and rotates on to the second.
    w.repo.keys.insert("workstation".into(), first);
    snapshot(
        &w,
        "rotate_key_apply_json",
        &online(
            &w,
            true,
            &["rotate-key", "workstation", "--new-identity", &second_file],
        ),
        0,
    );
    w.repo.keys.insert("workstation".into(), second);
    for json in [false, true] {
        let kind = if json { "json" } else { "text" };
        snapshot(
            &w,
            &format!("rotate_key_nothing_to_do_{kind}"),
            &online(
                &w,
                json,
                &["rotate-key", "workstation", "--new-identity", &second_file],
            ),
            0,
        );
    }
}

/// `key`'s secret in an age identity file only the owner reads, in the fleet's temp dir (so the
/// snapshots see it as `[FLEET]/NAME`); returns its path.
fn age_identity_file(w: &World, name: &str, key: &Key) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = w.fleet.dir.path().join(name);
    fs_err::write(&path, format!("{}\n", key.secret)).unwrap();
    fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}
