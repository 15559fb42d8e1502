//! Trust holes of the workflows (issue 12, items 2, 6 and 8), end to end against real sshd and
//! sops: a pin changes only through `rotate`; the infrastructure key hostage deploys must be the
//! one the inventory's recipient names, before and after `rotate-infra`; `export-host-key` writes
//! only inside the directory it is given.

use crate::rekey_support::{stderr, stdout};
use crate::workflow_support::{key_of_ssh, world, World, FILES};

/// Host `host` is rebuilt: a new sshd (a new host key) takes its place in the inventory, as in
/// the rotate suite. Returns the new sshd's index in the fleet.
fn rebuild(w: &mut World, host: usize) -> usize {
    let index = w.fleet.add(hostage_tests::sshd::SshdOptions::default());
    let (old_host, new_host) = (&w.fleet.hosts[host], &w.fleet.hosts[index]);
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
    index
}

#[test]
fn fetch_and_deploy_refuse_to_replace_an_inventory_pin_and_point_to_rotate() {
    let mut w = world();
    let out = w.hostage(&["fetch", "--all", "--trust-new"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let index = rebuild(&mut w, 0);
    let new_fingerprint = w.fleet.hosts[index].fingerprint();

    let before = w.state();
    let h0_pin = format!("h0={new_fingerprint}");
    let attempts: [&[&str]; 3] = [
        &["fetch", "h0", "--expect-fingerprint", &new_fingerprint],
        &["fetch", "h0", "h1", "--expect-fingerprint", &h0_pin],
        &["deploy", "h0", "--expect-fingerprint", &new_fingerprint],
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
    let index = rebuild(&mut w, 0);
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
