//! `hostage onboard` and the inventory-driven fleet verbs, end to end: real sshd hosts on
//! loopback, a secrets repo of files made by the real sops 3.11, and sops itself as the judge of
//! who can decrypt what afterwards.

use std::path::Path;

use hostage_recipients::OpenSshPrivateKey;
use hostage_tests::sshd::SshdFleet;
use hostage_tests::SshKeyPair;

use crate::rekey_support::{json, stderr, stdout, Repo};
use crate::sops_support::Key;

/// The age key an OpenSSH ed25519 private key converts to.
fn key_of_ssh(private: &Path) -> Key {
    let text = fs_err::read_to_string(private).unwrap();
    let seed = OpenSshPrivateKey::parse(&text)
        .unwrap()
        .unlock(&mut ())
        .unwrap();
    let identity = seed.to_age_identity();
    Key {
        recipient: identity.recipient().to_string(),
        secret: identity.to_secret_string().to_string(),
    }
}

/// A repo with a workstation and an infrastructure key, a seed-style `.sops.yaml` (catch-all for
/// both) and files of mixed formats; an inventory naming the fleet's hosts.
struct World {
    fleet: SshdFleet,
    infra: SshKeyPair,
    repo: Repo,
    inventory: std::path::PathBuf,
    deploy_path: std::path::PathBuf,
}

const FILES: &[&str] = &[
    "secrets/hosts/h0/db.yaml",
    "secrets/hosts/h0/wifi.env",
    "secrets/hosts/h1/api.json",
    "secrets/common/smtp.yaml",
    "secrets/workstation-only.json",
];

fn world() -> World {
    world_with(&[true, false])
}

/// A world whose host `i` receives the infrastructure key when `infrastructure[i]`.
fn world_with(infrastructure: &[bool]) -> World {
    let fleet = SshdFleet::start(infrastructure.len());
    let mut repo = Repo::new(&["workstation"]);
    let infra = SshKeyPair::generate(fleet.dir.path(), "id_infrastructure", "", None);
    repo.keys
        .insert("infrastructure".into(), key_of_ssh(&infra.private));
    for (i, host) in fleet.hosts.iter().enumerate() {
        let key = key_of_ssh(&host.host_key.as_ref().unwrap().private);
        repo.keys.insert(format!("h{i}"), key);
    }
    let ws = repo.recipient("workstation").to_owned();
    let infra_recipient = repo.recipient("infrastructure").to_owned();
    repo.write(
        ".sops.yaml",
        format!(
            "# Recipients:\n#   workstation    - the operator\n#   infrastructure - shared key\n\
             keys:\n  - &workstation {ws}\n  - &infrastructure {infra_recipient}\n\
             creation_rules:\n  - path_regex: secrets/workstation-only\\.json$\n    key_groups:\n      - age:\n          - *workstation\n\
             \x20 - path_regex: .*\n    key_groups:\n      - age:\n          - *workstation\n          - *infrastructure\n"
        )
        .as_bytes(),
    );
    for file in FILES {
        let plain: &[u8] = match crate::rekey_support::sops_type(file) {
            "yaml" => b"password: hunter2\nnested:\n  token: abc\n",
            "json" => b"{\"key\": \"value\", \"n\": 1}\n",
            "dotenv" => b"SSID=home\nPSK=secret\n",
            _ => b"binary\n",
        };
        repo.encrypt(file, plain);
    }
    let deploy_path = fleet.dir.path().join("deployed").join("id_infrastructure");
    fs_err::create_dir_all(deploy_path.parent().unwrap()).unwrap();
    let mut hosts = String::new();
    for (i, host) in fleet.hosts.iter().enumerate() {
        let infra_host = infrastructure[i];
        hosts.push_str(&format!(
            "  h{i}:\n    address: {}\n    port: {}\n    host_key_path: {}\n    per_host_recipient: true\n    infrastructure_key: {infra_host}\n    secrets:\n      - secrets/hosts/h{i}/.*\n",
            host.address,
            host.port,
            host.public_key_file().display()
        ));
    }
    let inventory = fleet.dir.path().join("fleet.yaml");
    fs_err::write(
        &inventory,
        format!(
            "# the test fleet\nsecrets_repo: {}\nrecipients:\n  workstation:\n    recipient: {ws}\n  infrastructure:\n    recipient: {infra_recipient}\n    private_key_file: {}\n    deploy_path: {}\nhosts:\n{hosts}",
            repo.dir.path().display(),
            infra.private.display(),
            deploy_path.display()
        ),
    )
    .unwrap();
    World {
        fleet,
        infra,
        repo,
        inventory,
        deploy_path,
    }
}

impl World {
    /// `hostage --inventory … ARGS… --ssh-config … --known-hosts …` with the workstation key.
    fn hostage(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec![
            "--inventory".to_owned(),
            self.inventory.display().to_string(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all.extend([
            "--ssh-config".to_owned(),
            self.fleet.ssh_config().display().to_string(),
            "--known-hosts".to_owned(),
            self.fleet.known_hosts().display().to_string(),
        ]);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.repo.hostage(&refs, &["workstation"])
    }

    fn inventory_text(&self) -> String {
        fs_err::read_to_string(&self.inventory).unwrap()
    }

    /// Every file of the repo and the inventory.
    fn state(
        &self,
    ) -> (
        std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
        String,
    ) {
        (self.repo.snapshot(), self.inventory_text())
    }
}

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
fn fetch_all_uses_the_inventory_and_records_pins_in_it() {
    let w = world();
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
}

#[test]
fn status_shows_drift_until_every_host_is_onboarded_then_who_reads_what() {
    let w = world();
    let status = |online: bool| {
        let mut args = vec!["--json", "status"];
        if online {
            args.push("--online");
        }
        // status takes no ssh options unless online; pass them only then.
        let mut all = vec!["--inventory".to_owned(), w.inventory.display().to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        if online {
            all.extend([
                "--ssh-config".to_owned(),
                w.fleet.ssh_config().display().to_string(),
                "--known-hosts".to_owned(),
                w.fleet.known_hosts().display().to_string(),
            ]);
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        w.repo.hostage(&refs, &[])
    };
    let out = status(false);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc = json(&out);
    let drift = doc["drift"].to_string();
    assert!(drift.contains("h0 has no pin"), "{drift}");
    assert!(
        drift.contains("h1 cannot read secrets/hosts/h1/api.json"),
        "{drift}"
    );

    for host in ["h0", "h1"] {
        let out = w.hostage(&["onboard", host, "--trust-new"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = status(true);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let doc = json(&out);
    let readers = |path: &str| -> Vec<String> {
        doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap()["readers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(readers("secrets/hosts/h0/db.yaml"), ["workstation", "h0"]);
    assert_eq!(readers("secrets/hosts/h1/api.json"), ["workstation", "h1"]);
    // The catch-all still has the shared key, and h0 receives it.
    assert_eq!(
        readers("secrets/common/smtp.yaml"),
        ["workstation", "infrastructure", "h0"]
    );
    assert_eq!(readers("secrets/workstation-only.json"), ["workstation"]);
    for host in doc["hosts"].as_array().unwrap() {
        assert!(
            host["online"].as_str().unwrap().starts_with("ok"),
            "{doc:#}"
        );
    }
}

#[test]
fn rotating_a_rebuilt_host_replaces_its_recipient_and_locks_the_old_key_out() {
    let mut w = world();
    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // h0 is rebuilt: same name, a new machine with a new host key.
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
fn an_onboarding_stopped_between_steps_is_finished_by_the_next_run() {
    let w = world();
    let stopped = |step: &str| {
        let mut args = vec![
            "--inventory".to_owned(),
            w.inventory.display().to_string(),
            "onboard".to_owned(),
            "h0".to_owned(),
            "--trust-new".to_owned(),
            "--ssh-config".to_owned(),
            w.fleet.ssh_config().display().to_string(),
        ];
        args.push("--known-hosts".to_owned());
        args.push(w.fleet.known_hosts().display().to_string());
        duct::cmd(hostage_tests::hostage_bin(), &args)
            .dir(w.repo.dir.path())
            .env("HOME", w.repo.dir.path())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY", &w.repo.keys["workstation"].secret)
            .env("HOSTAGE_WORKFLOW_STOP_AFTER", step)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .unwrap()
    };
    // Stopped once .sops.yaml names h0 but before any file is re-keyed: the rule edit alone no
    // longer shows which files are h0's to finish; the journal does.
    let out = stopped("add-rule");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
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
    let _ = &w.infra;
}
