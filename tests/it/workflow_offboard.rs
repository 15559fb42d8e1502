//! `hostage offboard` end to end: real sshd hosts onboarded first, the result judged by sops 3.11
//! (who decrypts what, `updatekeys` finding every file up to date).

use crate::rekey_support::{json, stderr, stdout};
use crate::workflow_support::{key_of_ssh, world, world_with, World, FILES};

/// `hostage --inventory … ARGS…` with the workstation key (offboard takes no SSH options).
fn hostage(w: &World, args: &[&str]) -> std::process::Output {
    let inventory = w.inventory.display().to_string();
    let mut all = vec!["--inventory", inventory.as_str()];
    all.extend_from_slice(args);
    w.repo.hostage(&all, &["workstation"])
}

/// Onboards h1 (and backs up its key), returning `.sops.yaml` as it was before.
fn onboarded(w: &World) -> Vec<u8> {
    let before = fs_err::read(w.repo.path(".sops.yaml")).unwrap();
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let out = w.hostage(&["backup-host-key", "h1"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(w.repo.decrypt("secrets/hosts/h1/api.json", "h1").is_some());
    before
}

/// Offboarding is done: `.sops.yaml` is `original` byte for byte, h1 opens nothing, the
/// workstation everything, every file has the recipients its rule gives, h1's files are gone.
fn offboarded(w: &World, original: &[u8]) {
    assert_eq!(
        String::from_utf8(fs_err::read(w.repo.path(".sops.yaml")).unwrap()).unwrap(),
        String::from_utf8(original.to_vec()).unwrap()
    );
    for file in FILES {
        assert!(
            w.repo.decrypt(file, "h1").is_none(),
            "h1 still opens {file}"
        );
        assert!(w.repo.decrypt(file, "workstation").is_some(), "{file}");
        assert!(w.repo.sops_says_up_to_date(file, "workstation"), "{file}");
    }
    assert!(!w.repo.path("pubkeys/h1.pub").exists());
    assert!(!w
        .repo
        .path("secrets/hosts/h1/ssh_host_ed25519_key")
        .exists());
    let inventory = w.fleet_inventory();
    assert!(inventory.inventory.host("h1").is_none());
    assert!(inventory.inventory.host("h0").is_some());
}

#[test]
fn onboard_then_offboard_gives_back_sops_yaml_byte_for_byte_and_locks_the_host_out() {
    let w = world();
    let original = onboarded(&w);

    let before = w.state();
    let out = hostage(&w, &["--json", "offboard", "h1", "--dry-run"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["dry_run"], true);
    assert_eq!(
        doc["rekeyed"],
        serde_json::json!(["secrets/hosts/h1/api.json"]),
        "{doc:#}"
    );
    assert_eq!(
        doc["removed"],
        serde_json::json!(["pubkeys/h1.pub", "secrets/hosts/h1/ssh_host_ed25519_key"]),
        "{doc:#}"
    );
    assert_eq!(doc["inventory_entry_removed"], true);
    assert!(doc["exposure"].to_string().contains("api.json"), "{doc:#}");
    assert_eq!(w.state(), before, "a dry run writes nothing");

    let out = hostage(&w, &["offboard", "h1"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("api.json"), "{}", stdout(&out));
    offboarded(&w, &original);

    // Again: nothing to do, no byte changes.
    let after = w.state();
    let out = hostage(&w, &["offboard", "h1"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(w.state(), after);
}

/// Where a killed offboarding dies: strace sends SIGKILL when the real binary's main thread
/// enters a system call (before the call runs), so each kill lands at one exact point between
/// two writes, with no test hook in the product (docs/ARCHITECTURE.md, "Crash tests"). strace
/// matches `unlink` by path (`-P`); `rename`, which its path filter does not see, by count.
struct KillPoint {
    /// What strace injects the kill into: `/^unlink` (with `path`) or `/^rename:when=N`.
    inject: &'static str,
    /// The path an `unlink` is of, relative to the repository.
    path: Option<&'static str>,
    /// What a kill there interrupts.
    between: &'static str,
    /// What the killed run left: (`.sops.yaml` edited, `api.json` re-keyed, journal present,
    /// `pubkeys/h1.pub` present, backup present, h1 still in the inventory).
    left: (bool, bool, bool, bool, bool, bool),
}

const KILL_POINTS: &[KillPoint] = &[
    KillPoint {
        inject: "/^rename:when=2",
        path: None,
        between: "the journal and the .sops.yaml edit",
        left: (false, false, true, true, true, true),
    },
    KillPoint {
        inject: "/^rename:when=3",
        path: None,
        between: "the .sops.yaml edit and the re-key (step edit-rules)",
        left: (true, false, true, true, true, true),
    },
    KillPoint {
        inject: "/^unlink",
        path: Some("pubkeys/h1.pub"),
        between: "the re-key and the removals (step rekey)",
        left: (true, true, true, true, true, true),
    },
    KillPoint {
        inject: "/^unlink",
        path: Some("secrets/hosts/h1/ssh_host_ed25519_key"),
        between: "the public key's removal and the backup's",
        left: (true, true, true, false, true, true),
    },
    KillPoint {
        inject: "/^rename:when=4",
        path: None,
        between: "the removals and the inventory (step remove-files)",
        left: (true, true, true, false, false, true),
    },
    KillPoint {
        inject: "/^unlink",
        path: Some(".git/hostage/rekey-journal.jsonl"),
        between: "the inventory and the journal's removal",
        left: (true, true, true, false, false, false),
    },
];

/// The killed run left every file either as it was or as the run writes it (a sops file
/// parses, verifies its MAC and opens with the workstation key), at the point `point` says.
fn killed_at(w: &World, point: &KillPoint, original: &[u8], onboarded: &[u8], api: &[u8]) {
    let between = point.between;
    let (edited, rekeyed, journal, public_key, backup, in_inventory) = point.left;
    let config = fs_err::read(w.repo.path(".sops.yaml")).unwrap();
    assert_eq!(
        config,
        if edited { original } else { onboarded },
        "{between}: .sops.yaml"
    );
    for file in FILES {
        assert!(
            w.repo.decrypt(file, "workstation").is_some(),
            "{between}: {file} is torn"
        );
    }
    let api_now = fs_err::read(w.repo.path("secrets/hosts/h1/api.json")).unwrap();
    assert_eq!(api_now != api, rekeyed, "{between}: api.json re-keyed");
    let state = hostage_rekey::state_dir(w.repo.dir.path());
    assert_eq!(
        state.join("rekey-journal.jsonl").exists(),
        journal,
        "{between}: journal"
    );
    assert_eq!(
        w.repo.path("pubkeys/h1.pub").exists(),
        public_key,
        "{between}: pubkeys/h1.pub"
    );
    assert_eq!(
        w.repo
            .path("secrets/hosts/h1/ssh_host_ed25519_key")
            .exists(),
        backup,
        "{between}: backup"
    );
    assert_eq!(
        w.fleet_inventory().inventory.host("h1").is_some(),
        in_inventory,
        "{between}: inventory"
    );
}

#[test]
fn an_offboarding_sigkilled_between_any_two_writes_is_finished_by_the_next_run() {
    let strace = hostage_tests::require(hostage_tests::STRACE);
    // An uninterrupted run: the files it leaves and its inventory, to compare with.
    let uninterrupted = {
        let w = world();
        onboarded(&w);
        let out = hostage(&w, &["offboard", "h1"]);
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        let files: Vec<_> = w.repo.snapshot().into_keys().collect();
        (files, w.inventory_text())
    };
    for point in KILL_POINTS {
        let between = point.between;
        let w = world();
        let original = onboarded(&w);
        let onboarded = fs_err::read(w.repo.path(".sops.yaml")).unwrap();
        let api = fs_err::read(w.repo.path("secrets/hosts/h1/api.json")).unwrap();
        let inventory = w.inventory.display().to_string();
        // Without -f: only the main thread is traced (and counted), not git's processes.
        let mut wrapper: Vec<std::ffi::OsString> = vec![
            strace.clone().into(),
            "-qq".into(),
            "-o".into(),
            "/dev/null".into(),
        ];
        if let Some(path) = point.path {
            wrapper.extend(["-P".into(), w.repo.path(path).into()]);
        }
        wrapper.extend([
            "-e".into(),
            format!("inject={}:signal=KILL", point.inject).into(),
        ]);
        let out = w.repo.hostage_wrapped(
            &wrapper,
            &["--inventory", &inventory, "offboard", "h1"],
            &["workstation"],
        );
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{between}: the run was not killed\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        killed_at(&w, point, &original, &onboarded, &api);

        let out = hostage(&w, &["offboard", "h1"]);
        assert!(
            out.status.success(),
            "{between}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        // The exposure report is not lost with the killed run.
        assert!(
            stdout(&out)
                .contains("1 file(s) it could read (data keys rotated): secrets/hosts/h1/api.json"),
            "{between}: {}",
            stdout(&out)
        );
        offboarded(&w, &original);
        let files: Vec<_> = w.repo.snapshot().into_keys().collect();
        assert_eq!(files, uninterrupted.0, "{between}");
        let text = w.inventory_text();
        // The inventories differ only in the fleet's ports and key paths: compare their lines
        // of host names.
        let hosts = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(hosts(&text), hosts(&uninterrupted.1), "{between}");
        assert!(
            !hostage_rekey::state_dir(w.repo.dir.path())
                .join("rekey-journal.jsonl")
                .exists(),
            "{between}: the journal outlived the run that finished it"
        );
        // And again: nothing changes.
        let after = w.state();
        let out = hostage(&w, &["offboard", "h1"]);
        assert!(out.status.success(), "{between}: {}", stderr(&out));
        assert_eq!(w.state(), after, "{between}");
    }
}

#[test]
fn offboard_refuses_a_host_holding_the_infrastructure_key_and_keeps_the_backup_when_asked() {
    let w = world();
    let before = w.state();
    let out = hostage(&w, &["offboard", "h0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("infrastructure key"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("hint: run `hostage offboard h0 --rotate-infra --new-key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.state(), before);

    onboarded(&w);
    let out = hostage(&w, &["offboard", "h1", "--keep-backup"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(w
        .repo
        .path("secrets/hosts/h1/ssh_host_ed25519_key")
        .exists());
    assert!(!w.repo.path("pubkeys/h1.pub").exists());
}

#[test]
fn onboard_then_offboard_on_the_seed_layout_gives_back_sops_yaml_byte_for_byte() {
    let w = world();
    // The seed's conventions (shared docs/seed-layout.md): recipients named by header labels,
    // flat comma strings, no anchors; the same readers as the world's files already have.
    let ws = w.repo.recipient("workstation").to_owned();
    let infra = w.repo.recipient("infrastructure").to_owned();
    let seed = format!(
        "# SOPS configuration file\n#\n# Public AGE keys:\n# workstation:    {ws}\n# infrastructure: {infra}\ncreation_rules:\n  - path_regex: secrets/workstation-only\\.json$\n    age: {ws}\n  - path_regex: .*\n    age: {ws},{infra}\n"
    );
    w.repo.write(".sops.yaml", seed.as_bytes());
    for file in FILES {
        assert!(w.repo.sops_says_up_to_date(file, "workstation"), "{file}");
    }
    let original = onboarded(&w);
    let onboarded_text = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    assert!(
        onboarded_text.contains("# h1:"),
        "a header label: {onboarded_text}"
    );
    assert!(
        !onboarded_text.contains('&'),
        "no anchors: {onboarded_text}"
    );

    let out = hostage(&w, &["offboard", "h1"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    offboarded(&w, &original);
}

#[test]
fn offboarding_an_infrastructure_host_with_rotate_infra_retires_the_old_infrastructure_key() {
    let mut w = world_with(&[true, true]);
    for host in ["h0", "h1"] {
        let out = w.hostage(&["onboard", host, "--trust-new"]);
        assert!(
            out.status.success(),
            "{host}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
    }
    let new = hostage_tests::SshKeyPair::generate(w.fleet.dir.path(), "id_infra.new", "", None);
    w.repo
        .keys
        .insert("infrastructure-new".into(), key_of_ssh(&new.private));
    let new_key = new.private.display().to_string();
    let old_opens: Vec<bool> = FILES
        .iter()
        .map(|f| w.repo.decrypt(f, "infrastructure").is_some())
        .collect();
    let out = w.hostage(&[
        "--json",
        "offboard",
        "h1",
        "--rotate-infra",
        "--new-key",
        &new_key,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["rotate_infra"]["complete"], true, "{doc:#}");
    assert_eq!(doc["inventory_entry_removed"], true, "{doc:#}");
    // h1's own key and the infrastructure key it held open nothing; the new key what the old did,
    // and h1's files, which fell from h1's own rule to the catch-all.
    for (file, opened) in FILES.iter().zip(old_opens) {
        assert!(w.repo.decrypt(file, "h1").is_none(), "h1 and {file}");
        assert!(
            w.repo.decrypt(file, "infrastructure").is_none(),
            "old key and {file}"
        );
        assert_eq!(
            w.repo.decrypt(file, "infrastructure-new").is_some(),
            opened || file.contains("/h1/"),
            "new key and {file}"
        );
    }
    assert!(
        new_key_opens_any(&w),
        "the infrastructure key still has files"
    );
    // h0 got the new key; the inventory names it and no longer knows h1.
    let deployed = fs_err::read_to_string(&w.deploy_path).unwrap();
    assert_eq!(deployed, fs_err::read_to_string(&new.private).unwrap());
    let text = w.inventory_text();
    assert!(
        text.contains(w.repo.recipient("infrastructure-new")),
        "{text}"
    );
    assert!(!text.contains("\n  h1:"), "{text}");
    // Again: nothing to do.
    let after = w.state();
    let out = w.hostage(&["offboard", "h1", "--rotate-infra", "--new-key", &new_key]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(w.state(), after);
}

/// Whether the new infrastructure key opens some file (the rotation moved something).
fn new_key_opens_any(w: &World) -> bool {
    FILES
        .iter()
        .any(|f| w.repo.decrypt(f, "infrastructure-new").is_some())
}

#[test]
fn wipe_remote_deletes_the_infrastructure_key_deployed_on_the_offboarded_host() {
    let w = world();
    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        w.deploy_path.exists(),
        "onboard deployed the infrastructure key"
    );
    let new = hostage_tests::SshKeyPair::generate(w.fleet.dir.path(), "id_infra.new", "", None);
    let new_key = new.private.display().to_string();
    let deploy_path = w.deploy_path.display().to_string();

    let before = w.state();
    let args = [
        "--json",
        "offboard",
        "h0",
        "--rotate-infra",
        "--new-key",
        &new_key,
    ];
    let out = w.hostage(&[&args[..], &["--wipe-remote", "--dry-run"]].concat());
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        json(&out)["wiped"],
        serde_json::json!([deploy_path, "would-remove"])
    );
    assert!(w.deploy_path.exists());
    assert_eq!(w.state(), before);

    let out = w.hostage(&[&args[..], &["--wipe-remote"]].concat());
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(
        doc["wiped"],
        serde_json::json!([deploy_path, "removed"]),
        "{doc:#}"
    );
    assert!(
        !w.deploy_path.exists(),
        "the deployed key is gone from the host"
    );
    assert_eq!(doc["rotate_infra"]["complete"], true, "{doc:#}");
}
