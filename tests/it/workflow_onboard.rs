//! `hostage onboard` and the inventory-driven fleet verbs, end to end: real sshd hosts on
//! loopback, files made by the real sops 3.11, and sops itself as the judge of who can decrypt what.

use crate::rekey_support::{json, stderr, stdout};
use crate::workflow_support::{key_of_ssh, world, World, FILES};

#[test]
fn onboarding_gives_the_host_exactly_its_files_records_the_pin_and_is_then_a_noop() {
    let w = world();
    let before_config = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();

    // The plan changes nothing.
    let before = w.state();
    let out = w.hostage(&["--json", "onboard", "h0", "--trust-new", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "save-public-key",
            "add-anchor",
            "add-rule",
            "rekey",
            "deploy-infrastructure-key",
            "record-pin"
        ],
        "{plan:#}"
    );
    assert_eq!(w.state(), before, "--dry-run wrote something");
    // h0's files move from the catch-all to h0's own rule: the shared key is taken off them.
    let exposed = &plan["exposure"][0];
    assert_eq!(exposed["recipient"]["name"], "infrastructure", "{plan:#}");
    assert_eq!(exposed["files"].as_array().unwrap().len(), 2, "{plan:#}");
    assert!(!w.deploy_path.exists());

    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("sops.age.sshKeyPaths"),
        "{}",
        stdout(&out)
    );

    // .sops.yaml: the anchor and a per-host rule above the catch-all; nothing else changed.
    let config = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    let h0 = w.repo.recipient("h0").to_owned();
    assert!(config.contains(&format!("  - &h0 {h0}\n")), "{config}");
    let rule = config
        .find("path_regex: secrets/hosts/h0/.*")
        .expect(&config);
    assert!(rule < config.find("path_regex: .*\n").unwrap(), "{config}");
    // Seed style: the host's own rule is the workstation and the host, not the shared key.
    let block = &config[rule..config[rule..].find("  - path_regex: .*\n").unwrap() + rule];
    assert!(
        block.contains("*workstation") && block.contains("*h0"),
        "{config}"
    );
    assert!(!block.contains("*infrastructure"), "{config}");
    assert!(before_config
        .lines()
        .all(|l| config.lines().any(|m| m == l)));

    // pubkeys/h0.pub is the host's key; the pin is in the inventory; the key is deployed.
    let pubkey = fs_err::read_to_string(w.repo.path("pubkeys/h0.pub")).unwrap();
    let host_pub = fs_err::read_to_string(w.fleet.hosts[0].public_key_file()).unwrap();
    assert!(host_pub.starts_with(
        pubkey
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
            .as_str()
    ));
    let inventory = w.inventory_text();
    assert!(
        inventory.contains(&format!("fingerprint: {}", w.fleet.hosts[0].fingerprint())),
        "{inventory}"
    );
    assert!(inventory.starts_with("# the test fleet\n"));
    assert!(w.deploy_path.exists(), "the infrastructure key is deployed");

    // sops decides: h0's own key opens exactly its files; the workstation still opens all.
    for file in FILES {
        let h0_reads = w.repo.decrypt(file, "h0").is_some();
        assert_eq!(h0_reads, file.contains("/h0/"), "h0 and {file}");
        assert!(w.repo.decrypt(file, "workstation").is_some(), "{file}");
        assert!(w.repo.sops_says_up_to_date(file, "workstation"), "{file}");
        assert!(w.repo.decrypt(file, "h1").is_none(), "h1 and {file}");
    }

    // Again: nothing to do, nothing written.
    let after = w.state();
    let deployed = fs_err::read(&w.deploy_path).unwrap();
    let out = w.hostage(&["onboard", "h0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    assert_eq!(w.state(), after, "a second onboard changed something");
    assert_eq!(fs_err::read(&w.deploy_path).unwrap(), deployed);
}

#[test]
fn a_host_key_that_contradicts_the_expected_fingerprint_changes_nothing() {
    let w = world();
    let before = w.state();
    // A MITM: the fingerprint read on the console is not the key the network shows.
    let wrong = w.fleet.hosts[0].fingerprint();
    let out = w.hostage(&["onboard", "h1", "--expect-fingerprint", &wrong]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.state(), before);
    // Unverified (no pin, no known_hosts, no --trust-new): refused as well.
    let out = w.hostage(&["onboard", "h1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(w.state(), before);
}

#[test]
fn an_onboarding_stopped_between_steps_is_finished_by_the_next_run() {
    let w = world();
    // Through the library: the stop is an apply option, not something the binary reads.
    let stopped = |step: &str| {
        use hostage_workflows::onboard;
        let mut inventory = w.fleet_inventory();
        let options = onboard::OnboardOptions {
            trust_new: true,
            ..w.onboard_options()
        };
        let mut plan = onboard::plan(&inventory, "h0", &options, &mut (), None).unwrap();
        let stop = hostage_workflows::session::ApplyOptions {
            stop_after: Some(step.to_owned()),
        };
        onboard::apply(&mut inventory, &mut plan, &mut (), &stop, &|_| {})
    };
    // Stopped once .sops.yaml names h0 but before any file is re-keyed: the rule edit alone no
    // longer shows which files are h0's to finish; the journal does.
    let error = stopped("add-rule").unwrap_err();
    assert!(
        matches!(error, hostage_workflows::WorkflowError::StoppedAfter { .. }),
        "{error}"
    );
    let config = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    assert!(config.contains("&h0 "), "{config}");
    assert!(w.repo.decrypt("secrets/hosts/h0/db.yaml", "h0").is_none());

    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    for file in FILES {
        assert_eq!(
            w.repo.decrypt(file, "h0").is_some(),
            file.contains("/h0/"),
            "h0 and {file}"
        );
        assert!(w.repo.sops_says_up_to_date(file, "workstation"), "{file}");
    }
    let after = w.state();
    let out = w.hostage(&["onboard", "h0"]);
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    assert_eq!(w.state(), after);
}

#[test]
fn fetch_all_uses_the_inventory_and_records_pins_in_it() {
    let w = world();
    let before = w.inventory_text();
    let out = w.hostage(&["--json", "fetch", "--all", "--trust-new", "--dry-run"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(w.inventory_text(), before, "--dry-run recorded pins");
    let out = w.hostage(&["--json", "fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let inventory = w.inventory_text();
    for host in &w.fleet.hosts {
        assert!(
            inventory.contains(&format!("fingerprint: {}", host.fingerprint())),
            "{inventory}"
        );
    }
    assert!(!w.repo.path("hostage.pins").exists(), "no interim pin file");
    // Pinned now: without --trust-new the hosts verify by their inventory pins.
    let out = w.hostage(&["--json", "fetch", "h0", "h1"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).matches("\"verified_by\":\"pin\"").count(),
        2,
        "{}",
        stdout(&out)
    );
    assert_eq!(
        w.inventory_text(),
        inventory,
        "re-verifying rewrote the pins"
    );

    // deploy --all: the inventory's key and deploy path, to the infrastructure hosts only (h0).
    let out = w.hostage(&["--json", "deploy", "--all"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out).matches("\"type\":\"host\"").count(),
        1,
        "{}",
        stdout(&out)
    );
    assert_eq!(
        fs_err::read_to_string(&w.deploy_path).unwrap(),
        fs_err::read_to_string(&w.infra.private).unwrap()
    );
}

/// Runs hostage like [`World::hostage`] with a tripwire `sops` first on its `PATH`: the verbs that
/// write new sops files (`--generate-host-key`, rotate-infra's `private_key_sops`) do it natively,
/// and a run that started `sops` would fail.
pub(crate) fn hostage_with_sops_tripwire(w: &World, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--inventory".to_owned(), w.inventory.display().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    duct::cmd(hostage_tests::hostage_bin(), &all)
        .dir(w.repo.dir.path())
        .env("HOME", w.repo.dir.path())
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("SOPS_AGE_KEY", &w.repo.keys["workstation"].secret)
        .env("PATH", hostage_tests::path_with_sops_tripwire())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap()
}

#[test]
fn a_generated_host_key_is_registered_stored_encrypted_and_exported_so_the_first_boot_decrypts() {
    let w = world();
    // h1 does not exist yet: no SSH at all.
    let out = hostage_with_sops_tripwire(&w, &["--json", "onboard", "h1", "--generate-host-key"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["verified"]["verified_by"], "generated", "{doc:#}");
    let steps = doc["steps"].to_string();
    assert!(
        steps.contains("store-host-key") && steps.contains("rekey"),
        "{doc:#}"
    );
    // Backed up in the seed's format, written natively, at the backup path the host's own rule
    // covers (`secrets/hosts/h1/.*` here): sops reads it as YAML whose one key `data` is the
    // OpenSSH key as a literal block.
    let stored = "secrets/hosts/h1/ssh_host_ed25519_key";
    assert!(fs_err::read_to_string(w.repo.path(stored))
        .unwrap()
        .contains("data: ENC[AES256_GCM"));
    let out = w.repo.sops(
        &[
            "decrypt",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            stored,
        ],
        &["workstation"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("data: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n"),
        "sops does not read the seed's data: | shape"
    );

    // export-host-key writes the --extra-files tree at the host's key path.
    let extra = w.fleet.dir.path().join("extra");
    let out =
        hostage_with_sops_tripwire(&w, &["export-host-key", "h1", &extra.display().to_string()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let key_path = w.fleet.hosts[1].public_key_file();
    let rel = key_path.strip_prefix("/").unwrap().with_extension("");
    let private = extra.join(&rel);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs_err::metadata(&private).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let exported_pub = fs_err::read_to_string(extra.join(rel.with_extension("pub"))).unwrap();
    let saved_pub = fs_err::read_to_string(w.repo.path("pubkeys/h1.pub")).unwrap();
    assert_eq!(
        exported_pub.split(' ').nth(1),
        saved_pub.split(' ').nth(1),
        "exported and registered keys differ"
    );

    // The new machine's key opens exactly h1's files, as its first boot will.
    for file in FILES {
        let opens = decrypt_with(&w, file, &key_of_ssh(&private).secret);
        assert_eq!(opens, file.contains("/h1/"), "generated key and {file}");
    }

    // Again: nothing to do, nothing regenerated.
    let after = w.state();
    let out = hostage_with_sops_tripwire(&w, &["onboard", "h1", "--generate-host-key"]);
    assert!(
        stdout(&out).contains("nothing to do"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(w.state(), after);
}

/// Whether sops decrypts `file` of the world's repo with the age identity `secret`.
pub(crate) fn decrypt_with(w: &World, file: &str, secret: &str) -> bool {
    let kind = crate::rekey_support::sops_type(file);
    duct::cmd(
        hostage_tests::sops(),
        ["decrypt", "--input-type", kind, "--output-type", kind, file],
    )
    .dir(w.repo.dir.path())
    .env("HOME", w.repo.dir.path())
    .env("SOPS_DISABLE_VERSION_CHECK", "1")
    .env("SOPS_AGE_KEY", secret)
    .env_remove("SOPS_AGE_KEY_FILE")
    .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
    .stdout_null()
    .stderr_null()
    .unchecked()
    .run()
    .unwrap()
    .status
    .success()
}

#[test]
fn deploy_reads_an_infrastructure_key_kept_in_a_sops_file_in_memory() {
    let w = world();
    let private = fs_err::read_to_string(&w.infra.private).unwrap();
    let yaml = format!(
        "id_infrastructure: |\n{}",
        private
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    w.repo
        .encrypt("secrets/infrastructure-key.yaml", yaml.as_bytes());
    let text = w.inventory_text().replace(
        &format!("private_key_file: {}", w.infra.private.display()),
        "private_key_sops: secrets/infrastructure-key.yaml",
    );
    assert!(text.contains("private_key_sops"), "{text}");
    fs_err::write(&w.inventory, text).unwrap();
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let out = w.hostage(&["deploy", "--all"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(fs_err::read_to_string(&w.deploy_path).unwrap(), private);
}

/// Runs `hostage ARGS…` on a pseudo-terminal (`script`), waits for the host-key question and
/// answers `answer`; returns the whole screen.
fn onboard_on_a_terminal(w: &World, host: &str, answer: &str) -> String {
    let command = format!(
        "{} --inventory {} onboard {host} --ssh-config {} --known-hosts {}",
        hostage_tests::hostage_bin().display(),
        w.inventory.display(),
        w.fleet.ssh_config().display(),
        w.fleet.known_hosts().display()
    );
    hostage_tests::answer_on_terminal(
        &command,
        |script| {
            script
                .current_dir(w.repo.dir.path())
                .env("HOME", w.repo.dir.path())
                .env("SOPS_DISABLE_VERSION_CHECK", "1")
                .env("SOPS_AGE_KEY", &w.repo.keys["workstation"].secret)
                .env_remove("SOPS_AGE_KEY_FILE")
                .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE");
        },
        "[y/N]",
        answer,
    )
}

#[test]
fn onboarding_an_unvouched_host_on_a_terminal_shows_its_fingerprint_and_needs_a_yes() {
    let w = world();
    let fingerprint = w.fleet.hosts[1].fingerprint();

    // No terminal: refused as before, nothing changed.
    let before = w.state();
    let out = w.hostage(&["onboard", "h1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(w.state(), before);

    // On a terminal, "no" changes nothing.
    let screen = onboard_on_a_terminal(&w, "h1", "n");
    assert!(screen.contains(&fingerprint), "{screen}");
    assert!(screen.contains("not confirmed"), "{screen}");
    assert_eq!(w.state(), before);

    // "yes" onboards it and pins the key that was shown.
    let screen = onboard_on_a_terminal(&w, "h1", "y");
    assert!(screen.contains("onboarded h1"), "{screen}");
    assert!(w
        .inventory_text()
        .contains(&format!("fingerprint: {fingerprint}")));
    for file in FILES {
        assert_eq!(
            w.repo.decrypt(file, "h1").is_some(),
            file.contains("/h1/"),
            "{file}"
        );
    }
}

#[test]
fn a_passphrase_protected_workstation_key_unlocks_the_infrastructure_key_sops_file() {
    let w = world();
    let ssh = hostage_tests::SshKeyPair::generate(w.fleet.dir.path(), "id_ws", "open sesame", None);
    let recipient = hostage_recipients::OpenSshPrivateKey::parse(
        &fs_err::read_to_string(&ssh.private).unwrap(),
    )
    .unwrap()
    .public_key()
    .to_age_recipient()
    .unwrap()
    .to_string();
    let private = fs_err::read_to_string(&w.infra.private).unwrap();
    let yaml = format!(
        "id_infrastructure: |\n{}",
        private
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    // Only the protected SSH key can open it.
    let rel = "secrets/infrastructure-key.yaml";
    w.repo.write(rel, yaml.as_bytes());
    let out = w
        .repo
        .sops(&["encrypt", "-i", "--age", &recipient, rel], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = w
        .inventory_text()
        .replace(
            &format!("private_key_file: {}", w.infra.private.display()),
            &format!("private_key_sops: {rel}"),
        )
        .replace(
            "  workstation:\n",
            &format!("  workstation:\n    identity: {}\n", ssh.private.display()),
        );
    assert!(text.contains("identity:"), "{text}");
    fs_err::write(&w.inventory, text).unwrap();
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));

    let deploy = |passphrase: &str| {
        let mut args = vec![
            "--inventory".to_owned(),
            w.inventory.display().to_string(),
            "deploy".to_owned(),
            "--all".to_owned(),
        ];
        args.extend([
            "--ssh-config".to_owned(),
            w.fleet.ssh_config().display().to_string(),
            "--known-hosts".to_owned(),
            w.fleet.known_hosts().display().to_string(),
        ]);
        duct::cmd(hostage_tests::hostage_bin(), &args)
            .dir(w.repo.dir.path())
            .env("HOME", w.repo.dir.path())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
            .env_remove("SSH_TO_AGE_PASSPHRASE")
            .env("HOSTAGE_SSH_PASSPHRASE", passphrase)
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .unwrap()
    };
    let out = deploy("wrong");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!w.deploy_path.exists());
    let out = deploy("open sesame");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(fs_err::read_to_string(&w.deploy_path).unwrap(), private);
}

#[test]
fn an_onboarding_planned_before_another_host_was_onboarded_refuses_instead_of_undoing_it() {
    use hostage_workflows::onboard;
    let w = world();
    let options = onboard::OnboardOptions {
        trust_new: true,
        ..w.onboard_options()
    };
    // Both plans read .sops.yaml and the inventory before either is applied.
    let mut first_inventory = w.fleet_inventory();
    let mut second_inventory = w.fleet_inventory();
    let mut first = onboard::plan(&first_inventory, "h0", &options, &mut (), None).unwrap();
    let mut second = onboard::plan(&second_inventory, "h1", &options, &mut (), None).unwrap();
    let apply = hostage_workflows::session::ApplyOptions::default();
    onboard::apply(&mut first_inventory, &mut first, &mut (), &apply, &|_| {}).unwrap();
    let after_first = w.state();
    let error =
        onboard::apply(&mut second_inventory, &mut second, &mut (), &apply, &|_| {}).unwrap_err();
    assert!(
        matches!(&error, hostage_workflows::WorkflowError::ChangedBySomeoneElse { path } if path.ends_with(".sops.yaml")),
        "{error}"
    );
    assert!(
        error.to_string().contains("changed by someone else"),
        "{error}"
    );
    assert!(error.hint().is_some_and(|h| h.contains("again")), "{error}");
    assert_eq!(w.state(), after_first, "the refused run wrote something");
    // Run again, it plans from the new content: both hosts are in.
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let config = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    assert!(
        config.contains("&h0 ") && config.contains("&h1 "),
        "{config}"
    );
}

#[test]
fn two_concurrent_onboardings_of_different_hosts_both_land_or_one_refuses_cleanly() {
    let w = world();
    let inventory = w.inventory.display().to_string();
    let ssh_config = w.fleet.ssh_config().display().to_string();
    let known_hosts = w.fleet.known_hosts().display().to_string();
    let onboard = |host: &'static str| {
        let args = [
            "--inventory",
            inventory.as_str(),
            "onboard",
            host,
            "--trust-new",
            "--ssh-config",
            ssh_config.as_str(),
            "--known-hosts",
            known_hosts.as_str(),
        ];
        w.repo.spawn_hostage(&args, &["workstation"])
    };
    let runs = [("h0", onboard("h0")), ("h1", onboard("h1"))];
    for (host, run) in &runs {
        let out = run.wait().unwrap();
        if out.status.success() {
            continue;
        }
        // Refused cleanly: the lock was held, or what it read changed; it says so, then a rerun
        // finishes it.
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(1), "{host}: {err}");
        assert!(
            err.contains("changed by someone else") || err.contains("is running in this repo"),
            "{host}: {err}"
        );
        let again = w.hostage(&["onboard", host, "--trust-new"]);
        assert!(again.status.success(), "{host}: {}", stderr(&again));
    }
    let config = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    assert!(
        config.contains("&h0 ") && config.contains("&h1 "),
        "{config}"
    );
    for file in FILES {
        for host in ["h0", "h1"] {
            assert_eq!(
                w.repo.decrypt(file, host).is_some(),
                file.contains(&format!("/{host}/")),
                "{host} and {file}"
            );
        }
        assert!(w.repo.sops_says_up_to_date(file, "workstation"), "{file}");
    }
    let pins = w.inventory_text();
    for host in &w.fleet.hosts {
        assert!(pins.contains(&host.fingerprint()), "{pins}");
    }
}
