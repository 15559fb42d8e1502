//! Trust holes of the workflows (issue 12, items 2, 6 and 8), end to end against real sshd and
//! sops: a pin changes only through `rotate`; the infrastructure key hostage deploys must be the
//! one the inventory's recipient names, before and after `rotate-infra`; `export-host-key` writes
//! only inside the directory it is given.

use hostage_tests::SshKeyPair;

use crate::rekey_support::{stderr, stdout};
use crate::workflow_onboard::hostage_with_sops_tripwire;
use crate::workflow_support::{key_of_ssh, world, world_with, World, FILES};

#[test]
fn fetch_deploy_and_onboard_refuse_to_replace_an_inventory_pin_and_point_to_rotate() {
    let mut w = world();
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let index = w.rebuild(0);
    let new_fingerprint = w.fleet.hosts[index].fingerprint();

    let before = w.state();
    let h0_pin = format!("h0={new_fingerprint}");
    let attempts: [&[&str]; 4] = [
        &["fetch", "h0", "--expect-fingerprint", &new_fingerprint],
        &["fetch", "h0", "h1", "--expect-fingerprint", &h0_pin],
        &["deploy", "h0", "--expect-fingerprint", &new_fingerprint],
        // onboard changes a pin only for a host that has none.
        &["onboard", "h0", "--expect-fingerprint", &new_fingerprint],
    ];
    for args in attempts {
        let out = w.hostage(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("hostage rotate h0"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(w.state(), before, "{args:?} changed something");
        assert!(!w.deploy_path.exists(), "{args:?} deployed the key");
    }

    // The pin the inventory holds is still accepted, and still refuses the new key.
    let out = w.hostage(&["fetch", "h0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(w.state(), before);
}

#[test]
fn rotate_refuses_a_pin_replaced_outside_rotate_until_it_is_put_back_then_really_rotates() {
    let mut w = world();
    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let old_fingerprint = w.fleet.hosts[0].fingerprint();
    let old_recipient = w.repo.recipient("h0").to_owned();
    let index = w.rebuild(0);
    let new_fingerprint = w.fleet.hosts[index].fingerprint();
    let new_key = key_of_ssh(&w.fleet.hosts[index].host_key.as_ref().unwrap().private);
    w.repo.keys.insert("h0-new".into(), new_key.clone());

    // What `fetch h0 --expect-fingerprint NEW` used to do: the pin replaced, nothing else.
    let pinned_old = w.inventory_text();
    let repinned = pinned_old
        .replace(&old_fingerprint, &new_fingerprint)
        .replace(
            &format!("recipient: {old_recipient}"),
            &format!("recipient: {}", new_key.recipient),
        );
    assert_ne!(repinned, pinned_old);
    fs_err::write(&w.inventory, &repinned).unwrap();

    let before = w.state();
    let attempts: [&[&str]; 2] = [
        &["rotate", "h0"],
        &["rotate", "h0", "--expect-fingerprint", &new_fingerprint],
    ];
    for args in attempts {
        let out = w.hostage(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(!stdout(&out).contains("rotated"), "{}", stdout(&out));
        let error = stderr(&out);
        // The error names what disagrees, and the hint how to get out.
        assert!(
            error.contains(&old_recipient) && error.contains(&old_fingerprint),
            "{error}"
        );
        assert!(error.contains("hint:"), "{error}");
        assert_eq!(w.state(), before, "{args:?} changed something");
    }

    // As the hint says: the pin .sops.yaml was made for goes back, then rotate does the work.
    fs_err::write(&w.inventory, &pinned_old).unwrap();
    let out = w.hostage(&["rotate", "h0", "--expect-fingerprint", &new_fingerprint]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let config = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    assert!(
        config.contains(&format!("&h0 {}", new_key.recipient)) && !config.contains(&old_recipient),
        "{config}"
    );
    for file in FILES.iter().filter(|f| f.contains("/h0/")) {
        assert!(w.repo.decrypt(file, "h0-new").is_some(), "{file}");
        assert!(w.repo.decrypt(file, "h0").is_none(), "{file}");
    }
}

/// The inventory with its infrastructure key taken from `source` (`private_key_file: …` or
/// `private_key_sops: …`) instead of the world's key file.
fn with_private_key(w: &World, inventory: &str, source: &str) -> String {
    let text = inventory.replace(
        &format!("private_key_file: {}", w.infra.private.display()),
        source,
    );
    assert!(text.contains(source), "{text}");
    text
}

/// A sops file in the repo holding `private` (OpenSSH text) as `id_infrastructure`.
fn store_key_in_sops(w: &World, rel: &str, private: &str) {
    let yaml = format!(
        "id_infrastructure: |\n{}",
        private
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    w.repo.encrypt(rel, yaml.as_bytes());
}

#[test]
fn an_infrastructure_key_that_is_not_the_inventory_recipient_is_never_deployed() {
    let w = world();
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    // The operator's own key, named by an edit of the inventory (file) or of the repo (sops).
    let personal = SshKeyPair::generate(w.fleet.dir.path(), "id_ed25519", "", None);
    let personal_recipient = key_of_ssh(&personal.private).recipient;
    let infra_recipient = w.repo.recipient("infrastructure").to_owned();
    store_key_in_sops(
        &w,
        "secrets/infrastructure-key.yaml",
        &fs_err::read_to_string(&personal.private).unwrap(),
    );
    let sources = [
        format!("private_key_file: {}", personal.private.display()),
        "private_key_sops: secrets/infrastructure-key.yaml".to_owned(),
    ];
    let inventory = w.inventory_text();
    for source in &sources {
        fs_err::write(&w.inventory, with_private_key(&w, &inventory, source)).unwrap();
        let before = w.state();
        let attempts: [&[&str]; 2] = [&["deploy", "--all"], &["onboard", "h0"]];
        for args in attempts {
            let out = w.hostage(args);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{source}, {args:?}\n{}\n{}",
                stdout(&out),
                stderr(&out)
            );
            let error = stderr(&out);
            assert!(
                error.contains(&personal_recipient) && error.contains(&infra_recipient),
                "{source}, {args:?}: {error}"
            );
            assert!(!w.deploy_path.exists(), "{source}, {args:?}: deployed");
            assert_eq!(w.state(), before, "{source}, {args:?} changed something");
        }
    }
}

#[test]
fn the_operators_own_key_is_never_deployed_even_when_the_recipient_is_edited_to_match() {
    let w = world();
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    // hostage runs with HOME at the repo: this is the operator's ~/.ssh/id_ed25519, an identity
    // hostage decrypts with. A public key is all it takes to compute its recipient.
    let ssh_dir = w.repo.path(".ssh");
    fs_err::create_dir_all(&ssh_dir).unwrap();
    let personal = SshKeyPair::generate(&ssh_dir, "id_ed25519", "", None);
    let personal_recipient = key_of_ssh(&personal.private).recipient;
    let infra_recipient = w.repo.recipient("infrastructure").to_owned();
    let text = with_private_key(
        &w,
        &w.inventory_text(),
        "private_key_file: ~/.ssh/id_ed25519",
    )
    .replace(
        &format!("recipient: {infra_recipient}"),
        &format!("recipient: {personal_recipient}"),
    );
    fs_err::write(&w.inventory, text).unwrap();
    let before = w.state();
    let out = w.hostage(&["deploy", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("your own identity"),
        "{}",
        stderr(&out)
    );
    assert!(!w.deploy_path.exists(), "the operator's key was deployed");
    assert_eq!(w.state(), before);
}

#[test]
fn rotate_infra_refuses_the_operators_own_key_as_the_new_infrastructure_key() {
    let w = world();
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let ssh_dir = w.repo.path(".ssh");
    fs_err::create_dir_all(&ssh_dir).unwrap();
    let personal = SshKeyPair::generate(&ssh_dir, "id_ed25519", "", None);
    let before = w.state();
    let out = w.hostage(&[
        "rotate-infra",
        "--new-key",
        &personal.private.display().to_string(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("your own identity"),
        "{}",
        stderr(&out)
    );
    assert!(!w.deploy_path.exists(), "the operator's key was deployed");
    assert_eq!(w.state(), before);
}

/// rotate-infra on a one-host fleet whose inventory names the key by `source`; afterwards the
/// deployed key is removed, and a plain `hostage deploy` must push the new key again.
fn rotate_infra_then_deploy_pushes_the_new_key(
    source: impl FnOnce(&World) -> String,
) -> (World, SshKeyPair) {
    let w = world_with(&[true]);
    let source = source(&w);
    fs_err::write(
        &w.inventory,
        with_private_key(&w, &w.inventory_text(), &source),
    )
    .unwrap();
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let new = SshKeyPair::generate(w.fleet.dir.path(), "id_infrastructure.new", "", None);
    let new_recipient = key_of_ssh(&new.private).recipient;
    // sops on PATH: a key kept in sops is encrypted anew by it.
    let out = hostage_with_sops_tripwire(
        &w,
        &[
            "rotate-infra",
            "--new-key",
            &new.private.display().to_string(),
            "--ssh-config",
            &w.fleet.ssh_config().display().to_string(),
            "--known-hosts",
            &w.fleet.known_hosts().display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    // The inventory names the new recipient, and the key it names derives it.
    let inventory = w.fleet_inventory();
    let infra = inventory.inventory.infrastructure.as_ref().unwrap();
    assert_eq!(infra.recipient.to_string(), new_recipient);
    let named = inventory
        .infrastructure_key(&[w.workstation_key_file()], &mut ())
        .unwrap();
    assert_eq!(
        named.public_key().to_age_recipient().unwrap().to_string(),
        new_recipient,
        "{}",
        w.inventory_text()
    );
    fs_err::remove_file(&w.deploy_path).unwrap();
    let out = w.hostage(&["deploy", "--all"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        fs_err::read_to_string(&w.deploy_path).unwrap(),
        fs_err::read_to_string(&new.private).unwrap(),
        "a later deploy pushed another key than the new one"
    );
    (w, new)
}

#[test]
fn rotate_infra_points_a_quoted_private_key_file_at_the_new_key() {
    let _ = rotate_infra_then_deploy_pushes_the_new_key(|w| {
        format!("private_key_file: \"{}\"", w.infra.private.display())
    });
}

#[test]
fn rotate_infra_stores_the_new_key_in_the_private_key_sops_file() {
    let (w, new) = rotate_infra_then_deploy_pushes_the_new_key(|w| {
        store_key_in_sops(
            w,
            "secrets/infrastructure-key.yaml",
            &fs_err::read_to_string(&w.infra.private).unwrap(),
        );
        "private_key_sops: secrets/infrastructure-key.yaml".to_owned()
    });
    // The inventory keeps its form; the real sops reads the new key from the file.
    assert!(
        w.inventory_text()
            .contains("private_key_sops: secrets/infrastructure-key.yaml"),
        "{}",
        w.inventory_text()
    );
    let plain = w
        .repo
        .decrypt("secrets/infrastructure-key.yaml", "workstation")
        .unwrap();
    let plain = String::from_utf8(plain).unwrap();
    let body = |key: &std::path::Path| {
        let text = fs_err::read_to_string(key).unwrap();
        // Line 2 carries the public key (line 1 is the same in every ed25519 key).
        text.lines().nth(2).unwrap().to_owned()
    };
    assert!(plain.contains(&body(&new.private)), "{plain}");
    assert!(!plain.contains(&body(&w.infra.private)), "{plain}");
    // Written by hostage's own engine in sops 3.11's YAML layout (no `sops` binary ran).
    let stored = fs_err::read_to_string(w.repo.path("secrets/infrastructure-key.yaml")).unwrap();
    assert!(
        stored.starts_with("id_infrastructure: ENC[AES256_GCM,data:"),
        "{stored}"
    );
    assert!(stored.contains("\n    version: 3.11.0\n"), "{stored}");
}

#[test]
fn rotate_infra_refuses_a_private_key_sops_file_it_could_not_rewrite_before_changing_anything() {
    let w = world_with(&[true]);
    let private = fs_err::read_to_string(&w.infra.private).unwrap();
    // The key shares its sops file with another secret: encrypting the file anew with only the
    // new key would lose that secret.
    let yaml = format!(
        "id_infrastructure: |\n{}other: secret\n",
        private
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    w.repo
        .encrypt("secrets/infrastructure-key.yaml", yaml.as_bytes());
    let text = with_private_key(
        &w,
        &w.inventory_text(),
        "private_key_sops: secrets/infrastructure-key.yaml",
    );
    fs_err::write(&w.inventory, text).unwrap();
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let new = SshKeyPair::generate(w.fleet.dir.path(), "id_infrastructure.new", "", None);
    let before = w.state();
    let out = hostage_with_sops_tripwire(
        &w,
        &[
            "rotate-infra",
            "--new-key",
            &new.private.display().to_string(),
            "--ssh-config",
            &w.fleet.ssh_config().display().to_string(),
            "--known-hosts",
            &w.fleet.known_hosts().display().to_string(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("holds more than"), "{}", stderr(&out));
    assert_eq!(w.state(), before, "rotate-infra changed something");
    assert!(!w.deploy_path.exists(), "the new key was deployed");
}

#[test]
fn export_host_key_refuses_a_host_key_path_that_climbs_out_of_the_directory() {
    let w = world();
    let out = hostage_with_sops_tripwire(&w, &["onboard", "h1", "--generate-host-key"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let extra = w.fleet.dir.path().join("a").join("b").join("extra");
    // `/../../../escaped/…` joined under extra/ is fleet.dir/escaped/…
    let escaped = w.fleet.dir.path().join("escaped");
    let public_file = w.fleet.hosts[1].public_key_file().display().to_string();
    let text = w.inventory_text().replace(
        &format!("host_key_path: {public_file}"),
        "host_key_path: /../../../escaped/ssh_host_ed25519_key.pub",
    );
    assert!(text.contains("/escaped/"), "{text}");
    fs_err::write(&w.inventory, text).unwrap();
    let out =
        hostage_with_sops_tripwire(&w, &["export-host-key", "h1", &extra.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("host_key_path"), "{}", stderr(&out));
    assert!(
        !escaped.exists(),
        "export-host-key wrote outside its directory"
    );
}

/// Issue 13: `InventoryPins::record_verified` is the backstop behind the fleet verbs' up-front
/// pin check. The CLI cannot reach it (the check refuses first), so it is driven here through
/// the library: a host verified by its real key while the inventory the run holds pins it to
/// another key (what an inventory changed between the check and the recording would look
/// like). The pin is refused, not changed, and the run reports it as a pin error (which the
/// CLI turns into exit 1: `fleet::with_pin_errors`).
#[test]
fn the_pin_backstop_refuses_a_pin_change_and_reports_it_as_a_pin_error() {
    let w = world();
    let mut inventory = w.fleet_inventory();
    let other = hostage_recipients::Fingerprint::parse(&w.fleet.hosts[1].fingerprint()).unwrap();
    let other_recipient: hostage_recipients::AgeRecipient = w.repo.recipient("h1").parse().unwrap();
    inventory
        .record_pin("h0", &other, &other_recipient)
        .unwrap();
    let host = inventory.inventory.host("h0").unwrap().clone();
    let mut target = hostage_workflows::FleetInventory::target(&host);
    // Verified by the key h0 really presents.
    target.pin =
        Some(hostage_recipients::Fingerprint::parse(&w.fleet.hosts[0].fingerprint()).unwrap());
    let names = std::collections::HashMap::from([(target.spec.to_string(), "h0".to_owned())]);
    let mut pin_file =
        hostage_remote::PinFile::load(&w.fleet.dir.path().join("pins.json")).unwrap();
    let options = hostage_remote::FleetOptions {
        ssh_config: Some(w.fleet.ssh_config()),
        known_hosts: Some(w.fleet.known_hosts()),
        ..Default::default()
    };
    let mut recorder =
        hostage_workflows::InventoryPins::new(Some(&mut inventory), names, &mut pin_file);
    let run =
        hostage_workflows::fleet::fetch(vec![target], &options, &mut recorder, &|_| {}).unwrap();
    let hostage_workflows::fleet::FleetRun::Finished {
        results,
        pin_errors,
    } = run
    else {
        panic!("the run was interrupted");
    };
    assert!(results[0].outcome.is_ok(), "{:?}", results[0].outcome);
    assert_eq!(pin_errors.len(), 1, "{pin_errors:?}");
    assert!(
        pin_errors[0].contains("only rotate changes a pin"),
        "{pin_errors:?}"
    );
    // Refused, not re-pinned: the inventory on disk keeps the pin it had.
    let pin = w
        .fleet_inventory()
        .inventory
        .host("h0")
        .unwrap()
        .pin
        .clone();
    assert_eq!(pin.map(|p| p.fingerprint), Some(other));
}
