//! `hostage rotate-key NAME` and `rotate-infra` on the seed layout exactly (`workflow_seed`'s
//! repo: header labels, flat comma `age:` strings, the `secrets/.*` catch-all), end to end with
//! real sshd hosts and the real sops 3.11 as the judge.

// Test code: a panic with the value is the right failure.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use hostage_tests::SshKeyPair;

use crate::rekey_support::{json, stderr, stdout};
use crate::sops_support::Key;
use crate::workflow_seed::{seed, with_gnomeregan, Seed, FILES};
use crate::workflow_support::{git, initial_commit, key_of_ssh, kill_hostage_when};

/// `secret` in a file only the owner reads (an age identity file).
fn identity_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(name);
    fs_err::write(&path, format!("{secret}\n")).unwrap();
    fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The seed with gnomeregan onboarded (its header label and rules), as an operator's repo is.
fn onboarded_seed() -> Seed {
    let s = seed();
    let out = s.hostage(&["onboard", "gnomeregan", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    s
}

/// Every file of the repo and the inventory.
fn state(s: &Seed) -> (std::collections::BTreeMap<PathBuf, Vec<u8>>, String) {
    (
        s.repo.snapshot(),
        fs_err::read_to_string(&s.inventory).unwrap(),
    )
}

/// rotate-key workstation through the library, stopped after `phase` (the crash seam); returns
/// the phases it ran.
fn run_until(
    s: &Seed,
    options: &hostage_workflows::rotate_key::RotateKeyOptions,
    phase: u8,
) -> Vec<u8> {
    let mut inventory = hostage_workflows::FleetInventory::load(&s.inventory).unwrap();
    let ran = std::cell::RefCell::new(Vec::new());
    let stop = hostage_workflows::session::ApplyOptions {
        stop_after: Some(format!("phase-{phase}")),
    };
    let error =
        hostage_workflows::rotate_key::run(&mut inventory, options, &stop, &mut (), &|n, _| {
            ran.borrow_mut().push(n)
        })
        .unwrap_err();
    assert!(
        matches!(&error, hostage_workflows::WorkflowError::StoppedAfter { step } if *step == format!("phase-{phase}")),
        "phase {phase}: {error}"
    );
    ran.into_inner()
}

#[test]
fn rotate_key_workstation_on_the_seed_layout_moves_every_file_to_the_new_identity_resumes_after_each_phase_and_a_second_run_changes_nothing(
) {
    let mut s = onboarded_seed();
    let old = s.repo.recipient("workstation").to_owned();
    let new = Key::generate();
    let new_file = identity_file(s.fleet.dir.path(), "workstation-2026.txt", &new.secret);
    let old_file = identity_file(
        s.fleet.dir.path(),
        "workstation-old.txt",
        &s.repo.keys["workstation"].secret,
    );
    s.repo.keys.insert("workstation-new".into(), new.clone());
    let config_before = s.config();
    let new_arg = new_file.display().to_string();

    // The plan: every file (the workstation is on all of them) in phases 1 and 3; nothing written.
    let before = state(&s);
    let out = s.hostage(&[
        "--json",
        "rotate-key",
        "workstation",
        "--new-identity",
        &new_arg,
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    assert_eq!(plan["key"], "workstation", "{plan:#}");
    assert_eq!(plan["old_recipient"], old.as_str(), "{plan:#}");
    assert_eq!(plan["new_recipient"], new.recipient.as_str(), "{plan:#}");
    assert_eq!(
        plan["phase1_files"].as_array().unwrap().len(),
        FILES.len(),
        "{plan:#}"
    );
    assert_eq!(plan["phase3_files"], plan["phase1_files"], "{plan:#}");
    assert_eq!(state(&s), before, "--dry-run wrote something");

    // Stopped after each phase (a crash there), the next run resumes at the next phase.
    let options = hostage_workflows::rotate_key::RotateKeyOptions {
        name: "workstation".into(),
        new_identity: Some(new_file.clone()),
        identities: vec![old_file],
        timeout: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    assert_eq!(run_until(&s, &options, 1), [1]);
    // Both keys on every file, the new one labelled workstation_next for the while.
    let config = s.config();
    assert!(
        config.contains(&format!("# workstation_next: {}\n", new.recipient)),
        "{config}"
    );
    for file in FILES {
        assert!(
            s.repo.decrypt(file, "workstation").is_some(),
            "old key and {file}"
        );
        assert!(
            s.repo.decrypt(file, "workstation-new").is_some(),
            "new key and {file}"
        );
    }
    assert_eq!(run_until(&s, &options, 2), [2]);
    assert_eq!(run_until(&s, &options, 3), [3]);
    // .sops.yaml reads exactly as before, only the old key replaced (its header label included).
    assert_eq!(s.config(), config_before.replace(&old, &new.recipient));
    assert!(fs_err::read_to_string(&s.inventory).unwrap().contains(&old));

    // The binary finishes phase 4 only.
    let out = s.hostage(&["rotate-key", "workstation", "--new-identity", &new_arg]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("phase 4") && !stdout(&out).contains("phase 3"),
        "{}",
        stdout(&out)
    );
    let inventory = fs_err::read_to_string(&s.inventory).unwrap();
    assert!(
        inventory.contains(&format!("recipient: {}", new.recipient))
            && inventory.contains(&format!("identity: {new_arg}"))
            && !inventory.contains(&old),
        "{inventory}"
    );
    let config = s.config();
    assert!(
        config.contains(&format!("# workstation:    {}\n", new.recipient)),
        "{config}"
    );
    assert!(
        !config.contains(&old) && !config.contains("_next"),
        "{config}"
    );

    // sops: the new identity opens every file, the old one none; updatekeys has nothing to do.
    let old_key = s
        .repo
        .keys
        .insert("workstation".into(), new.clone())
        .unwrap();
    s.repo.keys.remove("workstation-new");
    s.repo.keys.insert("workstation-old".into(), old_key);
    s.assert_sops_agrees(&with_gnomeregan, "after rotating the workstation key");

    // status agrees: nothing drifts about the workstation, no recipient is unknown.
    let out = s.hostage(&["--json", "status"]);
    let doc = json(&out);
    let drift = doc["drift"].as_array().unwrap();
    assert!(
        drift
            .iter()
            .all(|d| d["subject"] != "workstation" && d["kind"] != "unknown-recipient"),
        "{doc:#}"
    );

    // Again, with the new key: nothing to do, not one byte changes.
    let after = state(&s);
    let out = s.hostage(&["rotate-key", "workstation", "--new-identity", &new_arg]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("nothing to rotate"),
        "{}",
        stdout(&out)
    );
    assert_eq!(state(&s), after, "a second run changed something");
}

#[test]
fn rotate_key_refuses_unknown_names_hosts_a_key_already_a_recipient_and_an_unproven_bare_recipient_for_the_workstation(
) {
    let s = onboarded_seed();
    let before = state(&s);
    let fresh = Key::generate();
    let fresh_file = identity_file(s.fleet.dir.path(), "fresh.txt", &fresh.secret);
    let fresh_arg = fresh_file.display().to_string();
    let refused = |args: &[&str], says: &[&str]| {
        let out = s.hostage(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        for text in says {
            assert!(stderr(&out).contains(text), "{args:?}: {}", stderr(&out));
        }
        assert_eq!(state(&s), before, "{args:?} changed something");
    };
    refused(
        &["rotate-key", "nobody", "--new-identity", &fresh_arg],
        &[
            "no key is named nobody",
            "rotate one of: infrastructure, workstation",
        ],
    );
    refused(
        &["rotate-key", "gnomeregan", "--new-identity", &fresh_arg],
        &["gnomeregan is a host", "hostage rotate gnomeregan"],
    );
    // The new key is already gnomeregan's (the seed's own header label names it).
    let gnomeregan = identity_file(
        s.fleet.dir.path(),
        "gnomeregan.txt",
        &s.repo.keys["gnomeregan"].secret,
    );
    refused(
        &[
            "rotate-key",
            "workstation",
            "--new-identity",
            &gnomeregan.display().to_string(),
        ],
        &["already a recipient, named gnomeregan"],
    );
    refused(
        &[
            "rotate-key",
            "workstation",
            "--new-recipient",
            &fresh.recipient,
        ],
        &["--new-recipient cannot rotate the workstation key"],
    );
    // The current key given as the new one: nothing to do, nothing changed.
    let current = identity_file(
        s.fleet.dir.path(),
        "current.txt",
        &s.repo.keys["workstation"].secret,
    );
    let out = s.hostage(&[
        "rotate-key",
        "workstation",
        "--new-identity",
        &current.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("nothing to rotate"),
        "{}",
        stdout(&out)
    );
    assert_eq!(state(&s), before);
}

#[test]
fn rotate_key_of_a_colleagues_header_label_with_only_their_new_recipient_replaces_it_everywhere() {
    let mut s = onboarded_seed();
    // alice reads the catch-all: her header label under the others, her key on `secrets/.*`.
    let alice = Key::generate();
    let config = s
        .config()
        .replace(
            "creation_rules:\n",
            &format!("# alice:          {}\ncreation_rules:\n", alice.recipient),
        )
        .replace(
            &format!("age: {}\n", s.repo.recipient("workstation")),
            &format!(
                "age: {},{}\n",
                s.repo.recipient("workstation"),
                alice.recipient
            ),
        );
    s.repo.write(".sops.yaml", config.as_bytes());
    s.repo.keys.insert("alice".into(), alice);
    let out = s.repo.hostage(&["rekey"], &["workstation"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let alice_reads =
        |file: &str| !file.contains("/gnomeregan/") && !file.ends_with("-storage.sops.yaml");
    for file in FILES {
        assert_eq!(
            s.repo.decrypt(file, "alice").is_some(),
            alice_reads(file),
            "{file}"
        );
    }

    let new = Key::generate();
    let config_before = s.config();
    let inventory_before = fs_err::read_to_string(&s.inventory).unwrap();
    let out = s.hostage(&[
        "--json",
        "rotate-key",
        "alice",
        "--new-recipient",
        &new.recipient,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["key"], "named", "{doc:#}");
    assert_eq!(doc["complete"], true, "{doc:#}");
    assert!(
        doc["phases"][1][1]
            .as_str()
            .unwrap()
            .starts_with("not proven"),
        "{doc:#}"
    );
    assert!(
        doc["exposure"].to_string().contains("the old key of alice"),
        "{doc:#}"
    );
    assert_eq!(
        s.config(),
        config_before.replace(s.repo.recipient("alice"), &new.recipient)
    );
    assert_eq!(
        fs_err::read_to_string(&s.inventory).unwrap(),
        inventory_before
    );
    s.repo.keys.insert("alice-new".into(), new);
    for file in FILES {
        assert!(
            s.repo.decrypt(file, "alice").is_none(),
            "the old key still opens {file}"
        );
        assert_eq!(
            s.repo.decrypt(file, "alice-new").is_some(),
            alice_reads(file),
            "{file}"
        );
        assert!(s.repo.sops_says_up_to_date(file, "workstation"), "{file}");
    }
}

/// The seed's hosts both receive the infrastructure key, deployed under the fleet's directory.
fn with_infrastructure_hosts(s: &Seed) -> PathBuf {
    let deploy_path = s
        .fleet
        .dir
        .path()
        .join("deployed")
        .join("id_infrastructure");
    fs_err::create_dir_all(deploy_path.parent().unwrap()).unwrap();
    let text = fs_err::read_to_string(&s.inventory).unwrap();
    let mut edited = String::new();
    for line in text.split_inclusive('\n') {
        edited.push_str(line);
        if line.trim_start().starts_with("host_key_path:") {
            edited.push_str("    infrastructure_key: true\n");
        }
        if line.trim_start().starts_with("private_key_file:") {
            edited.push_str(&format!("    deploy_path: {}\n", deploy_path.display()));
        }
    }
    fs_err::write(&s.inventory, edited).unwrap();
    deploy_path
}

/// The deployed key read back from host `i` over SSH (`ssh … cat`), as its age identity.
fn deployed_over_ssh(s: &Seed, i: usize, deploy_path: &Path) -> Key {
    let host = &s.fleet.hosts[i];
    let text = duct::cmd!(
        hostage_tests::require(hostage_tests::SSH),
        "-F",
        s.fleet.ssh_config(),
        "-p",
        host.port.to_string(),
        host.address.to_string(),
        "cat",
        deploy_path
    )
    .stdin_null()
    .read()
    .unwrap();
    let file = s.fleet.dir.path().join(format!("read-back-{i}"));
    fs_err::write(&file, format!("{text}\n")).unwrap();
    key_of_ssh(&file)
}

#[test]
fn rotate_infra_on_the_seed_layout_killed_mid_run_is_finished_by_a_rerun_and_every_infrastructure_host_decrypts_with_the_new_key_over_ssh(
) {
    let mut s = onboarded_seed();
    let deploy_path = with_infrastructure_hosts(&s);
    let out = s.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let out = s.hostage(&["deploy", "--all"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    s.fleet.trust_all_in_known_hosts();
    let old = s.repo.recipient("infrastructure").to_owned();
    let new = SshKeyPair::generate(s.fleet.dir.path(), "id_infrastructure.new", "", None);
    let new_key = key_of_ssh(&new.private);
    let new_arg = new.private.display().to_string();
    // The seed documents every recipient in pubkeys/: the rotation keeps it in step.
    let old_public = SshKeyPair {
        private: s.fleet.dir.path().join("id_infrastructure"),
        public: s.fleet.dir.path().join("id_infrastructure.pub"),
    }
    .public_line();
    s.repo.write(
        "pubkeys/infrastructure.pub",
        format!("{old_public}\n").as_bytes(),
    );
    let config_before = s.config();

    // The plan: the files infrastructure reads, both hosts reached; nothing written.
    let before = state(&s);
    let out = s.hostage(&[
        "--json",
        "rotate-key",
        "infrastructure",
        "--new-identity",
        &new_arg,
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    assert_eq!(plan["key"], "infrastructure", "{plan:#}");
    let readers: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| with_gnomeregan(f).contains(&"infrastructure"))
        .collect();
    assert_eq!(
        plan["phase1_files"].as_array().unwrap().len(),
        readers.len(),
        "{plan:#}"
    );
    assert_eq!(plan["hosts"].as_array().unwrap().len(), 2, "{plan:#}");
    assert_eq!(state(&s), before, "--dry-run wrote something");

    // rotate-key infrastructure is rotate-infra: killed (SIGKILL) once phase 1 is recorded, the
    // run is then deploying over SSH or re-keying.
    let record = hostage_rekey::state_dir(s.repo.dir.path()).join("rotate-infra.json");
    let inventory = s.inventory.display().to_string();
    let ssh_config = s.fleet.ssh_config().display().to_string();
    let known_hosts = s.fleet.known_hosts().display().to_string();
    let workstation = std::ffi::OsStr::new(&s.repo.keys["workstation"].secret);
    kill_hostage_when(
        s.repo.dir.path(),
        &[
            "--inventory",
            &inventory,
            "rotate-key",
            "infrastructure",
            "--new-identity",
            &new_arg,
            "--ssh-config",
            &ssh_config,
            "--known-hosts",
            &known_hosts,
        ],
        &[
            ("SOPS_DISABLE_VERSION_CHECK", "1".as_ref()),
            ("SOPS_AGE_KEY", workstation),
        ],
        &record,
    );

    // rotate-infra resumes what rotate-key started (one record, one code path).
    let out = s.hostage(&["rotate-infra", "--new-key", &new_arg]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(!record.exists());
    assert_eq!(s.config(), config_before.replace(&old, &new_key.recipient));
    assert!(
        s.config()
            .contains(&format!("# infrastructure: {}\n", new_key.recipient)),
        "{}",
        s.config()
    );
    let inventory = fs_err::read_to_string(&s.inventory).unwrap();
    assert!(
        inventory.contains(&new_key.recipient) && !inventory.contains(&old),
        "{inventory}"
    );
    let public = fs_err::read_to_string(s.repo.path("pubkeys/infrastructure.pub")).unwrap();
    let key_part = |line: &str| {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(key_part(&public), key_part(&new.public_line()), "{public}");

    // Each infrastructure host holds the new key (read over SSH) and it opens exactly the
    // files infrastructure reads; the old key opens nothing.
    for i in 0..2 {
        let deployed = deployed_over_ssh(&s, i, &deploy_path);
        assert_eq!(deployed.recipient, new_key.recipient, "host {i}");
    }
    let old_key = s
        .repo
        .keys
        .insert("infrastructure".into(), new_key)
        .unwrap();
    s.repo.keys.insert("infrastructure-old".into(), old_key);
    s.assert_sops_agrees(&with_gnomeregan, "after rotating the infrastructure key");

    // Again: nothing to do (rotate-key says so; rotate-infra keeps its refusal), no byte changes.
    let after = state(&s);
    let out = s.hostage(&["rotate-key", "infrastructure", "--new-identity", &new_arg]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("nothing to rotate"),
        "{}",
        stdout(&out)
    );
    assert_eq!(state(&s), after);
}

#[test]
fn rotate_key_of_an_anchored_ssh_key_proves_the_new_identity_updates_its_pubkey_and_commits_with_the_seeds_style(
) {
    let mut w = crate::workflow_support::world();
    let dir = w.repo.dir.path().to_owned();
    // alice: an SSH key, named by an anchor, on the catch-all, her public key in pubkeys/.
    let alice_old = SshKeyPair::generate(w.fleet.dir.path(), "alice_old", "", None);
    let old = key_of_ssh(&alice_old.private);
    let config = fs_err::read_to_string(w.repo.path(".sops.yaml"))
        .unwrap()
        .replace(
            "creation_rules:\n",
            &format!("  - &alice {}\ncreation_rules:\n", old.recipient),
        )
        .replace(
            "          - *infrastructure\n",
            "          - *infrastructure\n          - *alice\n",
        );
    w.repo.write(".sops.yaml", config.as_bytes());
    w.repo.write(
        "pubkeys/alice.pub",
        format!("{}\n", alice_old.public_line()).as_bytes(),
    );
    w.repo.keys.insert("alice".into(), old.clone());
    let out = w.repo.hostage(&["rekey"], &["workstation"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    initial_commit(&dir);
    let catch_all: Vec<&str> = crate::workflow_support::FILES
        .iter()
        .copied()
        .filter(|f| !f.contains("workstation-only"))
        .collect();
    let config_before = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();

    // A bare recipient cannot keep pubkeys/alice.pub in step: refused, nothing changed.
    let before = w.state();
    let fresh = Key::generate();
    let out = w.hostage(&["rotate-key", "alice", "--new-recipient", &fresh.recipient]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("pubkeys/alice.pub"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.state(), before);

    let alice_new = SshKeyPair::generate(w.fleet.dir.path(), "alice_new", "", None);
    let new = key_of_ssh(&alice_new.private);
    let out = w.hostage(&[
        "--json",
        "rotate-key",
        "alice",
        "--new-identity",
        &alice_new.private.display().to_string(),
        "--commit",
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["key"], "named", "{doc:#}");
    assert_eq!(
        doc["phases"][1][1],
        format!(
            "the new identity opens all {} file(s) the old key is on",
            catch_all.len()
        ),
        "{doc:#}"
    );
    assert_eq!(
        git(&dir, &["log", "-1", "--format=%s"]).trim(),
        "feat(alice): rotate the alice key"
    );
    assert_eq!(
        git(&dir, &["status", "--porcelain", "--untracked-files=all"]),
        "",
        "the commit left changes behind"
    );
    // The anchor holds the new key; nothing else in .sops.yaml moved.
    assert_eq!(
        fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap(),
        config_before.replace(&old.recipient, &new.recipient)
    );
    let public = fs_err::read_to_string(w.repo.path("pubkeys/alice.pub")).unwrap();
    assert_eq!(
        public.split(' ').nth(1),
        alice_new.public_line().split(' ').nth(1),
        "{public}"
    );
    w.repo.keys.insert("alice-new".into(), new);
    for file in &catch_all {
        assert!(
            w.repo.decrypt(file, "alice").is_none(),
            "the old key opens {file}"
        );
        assert!(
            w.repo.decrypt(file, "alice-new").is_some(),
            "the new key and {file}"
        );
        assert!(w.repo.sops_says_up_to_date(file, "workstation"), "{file}");
    }
}

#[test]
fn rotate_key_workstation_stops_before_removing_the_old_key_when_the_new_identity_does_not_open_a_file_and_resumes_once_it_is_fixed(
) {
    let s = onboarded_seed();
    let old = s.repo.recipient("workstation").to_owned();
    // stormwind's files move to the infrastructure key alone; its file still has the
    // workstation (nobody re-keyed it): a file the old key is on whose rule does not have it, so
    // the rule edits never give it the new key.
    let stray = "secrets/host/stormwind/db.sops.yaml";
    let infra = s.repo.recipient("infrastructure").to_owned();
    let config = s.config().replace(
        "  - path_regex: secrets/.*\n",
        &format!("  - path_regex: secrets/host/stormwind/.*\n    age: {infra}\n  - path_regex: secrets/.*\n"),
    );
    s.repo.write(".sops.yaml", config.as_bytes());
    let new = Key::generate();
    let new_file = identity_file(s.fleet.dir.path(), "workstation-2026.txt", &new.secret);
    let new_arg = new_file.display().to_string();

    let out = s.hostage(&["rotate-key", "workstation", "--new-identity", &new_arg]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("not opened by the new identity:\n  {stray}: ")),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("phase 2: stopped"),
        "{}",
        stdout(&out)
    );
    // Phase 3 did not run: the old key is still on every file and in .sops.yaml.
    assert!(
        s.config().contains(&format!("# workstation:    {old}\n")),
        "{}",
        s.config()
    );
    for file in FILES {
        assert!(
            s.repo.decrypt(file, "workstation").is_some(),
            "old key and {file}"
        );
    }
    assert!(fs_err::read_to_string(&s.inventory).unwrap().contains(&old));

    // The operator brings the file in line with .sops.yaml; the same command then finishes.
    let out = s.repo.hostage(&["rekey", stray], &["workstation"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let out = s.hostage(&["rotate-key", "workstation", "--new-identity", &new_arg]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(!stdout(&out).contains("phase 1"), "{}", stdout(&out));
    assert!(!s.config().contains(&old), "{}", s.config());
}

#[test]
fn rotate_key_workstation_killed_by_sigkill_in_its_prove_phase_is_finished_by_the_same_command() {
    let s = onboarded_seed();
    let dir = s.fleet.dir.path().to_owned();
    let old = s.repo.recipient("workstation").to_owned();
    let new = Key::generate();
    let new_arg = identity_file(&dir, "workstation-2026.txt", &new.secret)
        .display()
        .to_string();
    identity_file(
        &dir,
        "workstation-key.txt",
        &s.repo.keys["workstation"].secret,
    );
    // The workstation key comes from SOPS_AGE_KEY_CMD, which hostage runs once when it starts
    // and again in phase 2 (the prove phase loads the operator's identities): the second time it
    // blocks, so the SIGKILL lands in phase 2, after phase 1 is recorded, every time.
    let script = dir.join("key-cmd.sh");
    fs_err::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e '{d}/key-cmd-ran' ]; then\n  echo $$ > '{d}/key-cmd-blocked.tmp'\n  mv '{d}/key-cmd-blocked.tmp' '{d}/key-cmd-blocked'\n  exec sleep 600\nfi\ntouch '{d}/key-cmd-ran'\ncat '{d}/workstation-key.txt'\n",
            d = dir.display()
        ),
    )
    .unwrap();
    fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let inventory = s.inventory.display().to_string();
    let blocked = dir.join("key-cmd-blocked");
    kill_hostage_when(
        s.repo.dir.path(),
        &[
            "--inventory",
            &inventory,
            "rotate-key",
            "workstation",
            "--new-identity",
            &new_arg,
        ],
        &[("SOPS_AGE_KEY_CMD", script.as_os_str())],
        &blocked,
    );
    // The blocked key command outlives its parent: end it too.
    let sleeper = fs_err::read_to_string(&blocked).unwrap();
    let _ = std::process::Command::new("kill")
        .arg(sleeper.trim())
        .status();

    let record = hostage_rekey::state_dir(s.repo.dir.path()).join("rotate-key-workstation.json");
    let saved: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(saved["done"], 1, "{saved:#}");
    assert!(
        s.config().contains("# workstation_next: "),
        "{}",
        s.config()
    );

    let out = s.hostage(&["rotate-key", "workstation", "--new-identity", &new_arg]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let said = stdout(&out);
    assert!(
        !said.contains("phase 1") && said.contains("phase 2") && said.contains("phase 4"),
        "{said}"
    );
    assert!(!record.exists());
    assert!(
        !s.config().contains(&old) && !s.config().contains("_next"),
        "{}",
        s.config()
    );
    for file in FILES {
        assert!(
            s.repo.decrypt(file, "workstation").is_none(),
            "the old key opens {file}"
        );
    }
}

/// The repository is untrusted: a pull request replaces `pubkeys/alice.pub` with a link to a file
/// outside it; rotate-key refuses before changing anything and leaves that file alone.
#[test]
fn rotate_key_refuses_a_public_key_file_linked_out_of_the_repo_before_changing_anything() {
    let w = crate::workflow_support::world();
    let alice = SshKeyPair::generate(w.fleet.dir.path(), "alice", "", None);
    let old = key_of_ssh(&alice.private);
    let config = fs_err::read_to_string(w.repo.path(".sops.yaml"))
        .unwrap()
        .replace(
            "creation_rules:\n",
            &format!("  - &alice {}\ncreation_rules:\n", old.recipient),
        );
    w.repo.write(".sops.yaml", config.as_bytes());
    let outside = w.fleet.dir.path().join("authorized_keys");
    let outside_text = format!("{}\n", alice.public_line());
    fs_err::write(&outside, &outside_text).unwrap();
    fs_err::create_dir_all(w.repo.path("pubkeys")).unwrap();
    std::os::unix::fs::symlink(&outside, w.repo.path("pubkeys/alice.pub")).unwrap();
    let before = w.state();
    let new = SshKeyPair::generate(w.fleet.dir.path(), "alice_new", "", None);
    let out = w.hostage(&[
        "rotate-key",
        "alice",
        "--new-identity",
        &new.private.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("pubkeys/alice.pub (or pubkeys/) is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.state(), before);
    assert_eq!(fs_err::read_to_string(&outside).unwrap(), outside_text);
}
