//! `hostage rotate` and `hostage rotate-infra`, end to end against real sshd and sops.

use hostage_tests::SshKeyPair;

use crate::rekey_support::{json, stderr, stdout};
use crate::workflow_support::{key_of_ssh, kill_hostage_when, world, world_with, World, FILES};

#[test]
fn rotating_a_rebuilt_host_replaces_its_recipient_and_locks_the_old_key_out() {
    let mut w = world();
    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // h0 is rebuilt: same name, a new machine with a new host key.
    let index = w.rebuild(0);
    let new_host = &w.fleet.hosts[index];
    let new_key = key_of_ssh(&new_host.host_key.as_ref().unwrap().private);
    let new_fingerprint = new_host.fingerprint();
    w.repo.keys.insert("h0-new".into(), new_key.clone());

    // Without --expect-fingerprint and no terminal to ask on: refused, nothing changed.
    let before = w.state();
    let out = w.hostage(&["rotate", "h0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("--expect-fingerprint"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.state(), before);

    let out = w.hostage(&[
        "--json",
        "rotate",
        "h0",
        "--expect-fingerprint",
        &new_fingerprint,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    let exposed = doc["exposure"].to_string();
    assert!(exposed.contains("secrets/hosts/h0/db.yaml"), "{doc:#}");

    let config = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    assert!(
        config.contains(&format!("&h0 {}", new_key.recipient)),
        "{config}"
    );
    assert!(!config.contains(w.repo.recipient("h0")), "{config}");
    for file in FILES {
        let mine = file.contains("/h0/");
        assert_eq!(
            w.repo.decrypt(file, "h0-new").is_some(),
            mine,
            "new key and {file}"
        );
        assert!(
            w.repo.decrypt(file, "h0").is_none(),
            "the old key still opens {file}"
        );
        assert!(w.repo.decrypt(file, "workstation").is_some(), "{file}");
    }
    assert!(w
        .inventory_text()
        .contains(&format!("fingerprint: {new_fingerprint}")));
    let pubkey = fs_err::read_to_string(w.repo.path("pubkeys/h0.pub")).unwrap();
    let new_pub = fs_err::read_to_string(new_host_pub(&w, index)).unwrap();
    assert!(new_pub.starts_with(&pubkey.split(' ').take(2).collect::<Vec<_>>().join(" ")));

    // Again: the pin matches, nothing to do.
    let after = w.state();
    let out = w.hostage(&["rotate", "h0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.state(), after);
}

fn new_host_pub(w: &World, index: usize) -> std::path::PathBuf {
    w.fleet.hosts[index].public_key_file()
}

#[test]
fn rotate_infra_stops_before_removing_the_old_key_while_a_host_is_unreachable_then_resumes() {
    let mut w = world_with(&[true, true]);
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let new = SshKeyPair::generate(w.fleet.dir.path(), "id_infrastructure.new", "", None);
    w.repo
        .keys
        .insert("infrastructure-new".into(), key_of_ssh(&new.private));
    let old_recipient = w.repo.recipient("infrastructure").to_owned();
    let new_recipient = w.repo.recipient("infrastructure-new").to_owned();
    let catch_all_files: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| !f.contains("workstation-only"))
        .collect();

    // h1 is down during phase 2.
    let inventory = w.inventory_text();
    let h1 = &w.fleet.hosts[1];
    let closed = hostage_tests::sshd::free_port(h1.address);
    let down = inventory.replace(
        &format!("port: {}\n", h1.port),
        &format!("port: {closed}\n"),
    );
    fs_err::write(&w.inventory, &down).unwrap();
    let new_key = new.private.display().to_string();
    // The plan: nothing written, the down host named.
    let before = w.state();
    let out = w.hostage(&[
        "--json",
        "rotate-infra",
        "--new-key",
        &new_key,
        "--dry-run",
        "--timeout",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    assert_eq!(
        plan["phase1_files"].as_array().unwrap().len(),
        catch_all_files.len(),
        "{plan:#}"
    );
    assert_eq!(plan["phase3_files"], plan["phase1_files"], "{plan:#}");
    assert!(
        plan["hosts"][0][1].as_str().unwrap().starts_with("would"),
        "{plan:#}"
    );
    assert!(
        plan["hosts"][1][1]
            .as_str()
            .unwrap()
            .starts_with("unreachable"),
        "{plan:#}"
    );
    assert_eq!(w.state(), before, "--dry-run wrote something");
    let out = w.hostage(&["rotate-infra", "--new-key", &new_key, "--timeout", "5"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("phase 2: stopped"),
        "{}",
        stdout(&out)
    );
    // The failed hosts: one line per cause with its hosts, then what the first one said.
    assert!(
        stdout(&out).contains(
            "not deployed:\n  1 host(s) failed, unreachable: h1\n    e.g. h1: unreachable: "
        ),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("run the same command again"),
        "{}",
        stderr(&out)
    );
    // Phase 3 did not run: both keys open every catch-all file; the inventory is unchanged.
    for file in &catch_all_files {
        assert!(
            w.repo.decrypt(file, "infrastructure").is_some(),
            "old key and {file}"
        );
        assert!(
            w.repo.decrypt(file, "infrastructure-new").is_some(),
            "new key and {file}"
        );
    }
    assert!(w.inventory_text().contains(&old_recipient));

    // h1 is back: the same command resumes and finishes.
    let back = w.inventory_text().replace(
        &format!("port: {closed}\n"),
        &format!("port: {}\n", w.fleet.hosts[1].port),
    );
    fs_err::write(&w.inventory, back).unwrap();
    let out = w.hostage(&["rotate-infra", "--new-key", &new_key]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        !stdout(&out).contains("phase 1"),
        "phase 1 ran twice: {}",
        stdout(&out)
    );
    for file in &catch_all_files {
        assert!(
            w.repo.decrypt(file, "infrastructure").is_none(),
            "old key still opens {file}"
        );
        assert!(
            w.repo.decrypt(file, "infrastructure-new").is_some(),
            "new key and {file}"
        );
        assert!(w.repo.sops_says_up_to_date(file, "workstation"), "{file}");
    }
    let config = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    assert!(
        config.contains(&format!("&infrastructure {new_recipient}")),
        "{config}"
    );
    assert!(
        !config.contains(&old_recipient) && !config.contains("infrastructure_next"),
        "{config}"
    );
    let inventory = w.inventory_text();
    assert!(
        inventory.contains(&new_recipient) && inventory.contains(&new_key),
        "{inventory}"
    );
    let deployed = fs_err::read_to_string(&w.deploy_path).unwrap();
    assert_eq!(deployed, fs_err::read_to_string(&new.private).unwrap());
}

#[test]
fn rotate_infra_stopped_after_each_phase_resumes_at_the_next() {
    let w = world_with(&[true, false]);
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let new = SshKeyPair::generate(w.fleet.dir.path(), "id_infrastructure.new", "", None);
    let new_key = new.private.display().to_string();
    // Through the library: the stop is an apply option, not something the binary reads.
    let options = hostage_workflows::rotate_infra::RotateInfraOptions {
        new_key: new.private.clone(),
        ssh_config: Some(w.fleet.ssh_config()),
        known_hosts: None,
        timeout: std::time::Duration::from_secs(30),
        identities: vec![w.workstation_key_file()],
    };
    for phase in 1..=3 {
        let mut inventory = w.fleet_inventory();
        let ran = std::cell::RefCell::new(Vec::new());
        let stop = hostage_workflows::session::ApplyOptions {
            stop_after: Some(format!("phase-{phase}")),
        };
        let error = hostage_workflows::rotate_infra::run(
            &mut inventory,
            &options,
            &stop,
            &mut (),
            &|n, _| ran.borrow_mut().push(n),
        )
        .unwrap_err();
        assert!(
            matches!(&error, hostage_workflows::WorkflowError::StoppedAfter { step } if *step == format!("phase-{phase}")),
            "phase {phase}: {error}"
        );
        // Each run did exactly one phase: the next one starts where it stopped.
        assert_eq!(ran.into_inner(), vec![phase], "phase {phase}");
    }
    // After phase 3 the files have only the new key; phase 4 (the inventory) is still to do.
    assert!(w
        .inventory_text()
        .contains(w.repo.recipient("infrastructure")));
    let out = w.hostage(&["rotate-infra", "--new-key", &new_key]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("phase 4") && !stdout(&out).contains("phase 3"),
        "{}",
        stdout(&out)
    );
    assert!(!w
        .inventory_text()
        .contains(w.repo.recipient("infrastructure")));
    for file in FILES.iter().filter(|f| !f.contains("workstation-only")) {
        assert!(w.repo.decrypt(file, "infrastructure").is_none(), "{file}");
    }
}

#[test]
fn restoring_a_rebuilt_host_from_its_backup_installs_the_old_key_and_leaves_the_repo_alone() {
    use crate::workflow_onboard::{decrypt_with, hostage_with_sops_tripwire};
    let w = world();
    // h1's identity was made here and backed up; the machine then came up with another key
    // (the fleet's own), as a rebuilt host does.
    let out = hostage_with_sops_tripwire(&w, &["onboard", "h1", "--generate-host-key"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let extra = w.fleet.dir.path().join("backup");
    let out =
        hostage_with_sops_tripwire(&w, &["export-host-key", "h1", &extra.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public_file = w.fleet.hosts[1].public_key_file();
    let private_file = public_file.with_extension("");
    let backup =
        fs_err::read_to_string(extra.join(private_file.strip_prefix("/").unwrap())).unwrap();
    let rebuilt = w.fleet.hosts[1].fingerprint();
    let rebuilt_private = fs_err::read_to_string(&private_file).unwrap();
    assert_ne!(backup, rebuilt_private);
    let before = w.state();

    // Nothing vouches for the rebuilt key and there is no terminal: refused, nothing written.
    let out = w.hostage(&["rotate", "h1", "--from-backup"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("--expect-fingerprint"),
        "{}",
        stderr(&out)
    );
    let out = w.hostage(&[
        "--json",
        "rotate",
        "h1",
        "--from-backup",
        "--expect-fingerprint",
        &rebuilt,
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["action"], "would-restore", "{}", stdout(&out));
    assert_eq!(
        fs_err::read_to_string(&private_file).unwrap(),
        rebuilt_private
    );

    let out = w.hostage(&[
        "--json",
        "rotate",
        "h1",
        "--from-backup",
        "--expect-fingerprint",
        &rebuilt,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["action"], "restored", "{doc:#}");
    assert_eq!(doc["presented"]["fingerprint"], rebuilt.as_str(), "{doc:#}");
    assert!(
        doc["next_steps"].to_string().contains("restart sshd"),
        "{doc:#}"
    );

    // The host holds the backup, private and 0600, with its .pub; the repo and pin are untouched.
    assert_eq!(fs_err::read_to_string(&private_file).unwrap(), backup);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs_err::metadata(&private_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let installed_pub = fs_err::read_to_string(&public_file).unwrap();
    let saved_pub = fs_err::read_to_string(w.repo.path("pubkeys/h1.pub")).unwrap();
    assert_eq!(installed_pub.split(' ').nth(1), saved_pub.split(' ').nth(1));
    assert_eq!(w.state(), before);
    let leftovers: Vec<_> = fs_err::read_dir(private_file.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".hostage-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The host's files still decrypt with the key now on the host, and only its files.
    let restored = key_of_ssh(&private_file);
    for file in FILES {
        assert_eq!(
            decrypt_with(&w, file, &restored.secret),
            file.contains("/h1/"),
            "restored key and {file}"
        );
    }

    // Once sshd presents the restored key (this sshd loads it per connection), nothing to do.
    let out = w.hostage(&["--json", "rotate", "h1", "--from-backup"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(json(&out)["action"], "unchanged", "{}", stdout(&out));
    assert_eq!(w.state(), before);
}

/// Every `hostage-atomic` temp file under `dir` (the repo, its `.git/hostage` state included).
fn temp_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in fs_err::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                todo.push(path);
            } else if entry
                .file_name()
                .to_string_lossy()
                .contains(".hostage-tmp.")
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn rotate_infra_killed_between_phases_leaves_no_temp_file_after_the_rerun() {
    let w = world_with(&[true, false]);
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let new = SshKeyPair::generate(w.fleet.dir.path(), "id_infrastructure.new", "", None);
    let new_key = new.private.display().to_string();
    let inventory = w.inventory.display().to_string();
    let ssh_config = w.fleet.ssh_config().display().to_string();
    let args = [
        "--inventory",
        &inventory,
        "rotate-infra",
        "--new-key",
        &new_key,
        "--ssh-config",
        &ssh_config,
    ];
    // SIGKILL once phase 1 is recorded (the run is deploying or re-keying then).
    let state = hostage_rekey::state_dir(w.repo.dir.path());
    let record = state.join("rotate-infra.json");
    let workstation = std::ffi::OsStr::new(&w.repo.keys["workstation"].secret);
    kill_hostage_when(
        w.repo.dir.path(),
        &args,
        &[
            ("SOPS_DISABLE_VERSION_CHECK", "1".as_ref()),
            ("SOPS_AGE_KEY", workstation),
        ],
        &record,
    );
    // What a SIGKILL inside an atomic write leaves: the temp file beside its target (the kill
    // above may land between writes; these make sure the rerun meets some).
    for stray in [
        w.repo
            .dir
            .path()
            .join(".sops.yaml.hostage-tmp.999999999.0.0"),
        state.join(".rotate-infra.json.hostage-tmp.999999999.0.0"),
    ] {
        fs_err::write(&stray, "half-written").unwrap();
    }

    let out = w.hostage(&["rotate-infra", "--new-key", &new_key]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        temp_files_under(w.repo.dir.path()),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(
        !record.exists(),
        "the rotation record outlived a complete rotation"
    );
    assert!(!w
        .inventory_text()
        .contains(w.repo.recipient("infrastructure")));
    for file in FILES.iter().filter(|f| !f.contains("workstation-only")) {
        assert!(w.repo.decrypt(file, "infrastructure").is_none(), "{file}");
        assert!(w.repo.sops_says_up_to_date(file, "workstation"), "{file}");
    }
}

/// Issue 12 item 3: a pull request commits `pubkeys/<host>.pub` as a symlink to a file outside
/// the repository (think `~/.ssh/authorized_keys`); the operator's next rotate must refuse to
/// write through it and leave that file alone.
#[test]
fn rotate_refuses_a_public_key_file_symlinked_out_of_the_repo_and_leaves_its_target_alone() {
    let mut w = world();
    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let index = w.rebuild(0);
    let new_host = &w.fleet.hosts[index];
    let new_fingerprint = new_host.fingerprint();

    let outside = w.fleet.dir.path().join("authorized_keys");
    fs_err::write(&outside, "ssh-ed25519 AAAA the operator's own key\n").unwrap();
    let link = w.repo.path("pubkeys/h0.pub");
    fs_err::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let config_before = fs_err::read(w.repo.path(".sops.yaml")).unwrap();

    let out = w.hostage(&["rotate", "h0", "--expect-fingerprint", &new_fingerprint]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pubkeys/h0.pub") && err.contains("points outside"),
        "{err}"
    );
    assert_eq!(
        fs_err::read_to_string(&outside).unwrap(),
        "ssh-ed25519 AAAA the operator's own key\n"
    );
    assert_eq!(
        fs_err::read(w.repo.path(".sops.yaml")).unwrap(),
        config_before
    );
}
