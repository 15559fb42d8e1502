//! The `sudo -n` paths of `backup-host-key`, `rotate --from-backup` and the infrastructure key's
//! deploy, end to end: the host's login user is not root, and root is reached through the
//! machine's real `sudo` with a sudoers entry that exists only in that sshd's private mount
//! namespace (`hostage_tests::sshd::Login`); a user without that entry is refused by sudo, and
//! hostage says so.

use hostage_tests::sshd::{Login, SshdOptions, SUDO_USER};
use hostage_tests::SshKeyPair;

use crate::rekey_support::{stderr, stdout};
use crate::workflow_support::{rebuild_host_with, world_with, World};

/// Moves inventory host `h{host}` to a new sshd whose sessions log in as [`SUDO_USER`] with
/// `login`'s sudo rights (`user:` in the inventory); returns the new sshd's index.
fn move_to_sudo_user(w: &mut World, host: usize, login: Login) -> usize {
    let options = SshdOptions {
        login,
        ..SshdOptions::default()
    };
    let user = format!("    user: {SUDO_USER}\n");
    rebuild_host_with(&mut w.fleet, &w.inventory, host, options, &user)
}

/// What `path` holds, read as root (the host's files are root's, 0600).
fn read(path: &std::path::Path) -> String {
    fs_err::read_to_string(path).unwrap()
}

#[test]
fn a_non_root_login_backs_up_restores_and_deploys_through_sudo() {
    let mut w = world_with(&[true, false]);
    let infra = move_to_sudo_user(&mut w, 0, Login::SudoUser);
    let web = move_to_sudo_user(&mut w, 1, Login::SudoUser);

    // Onboarding the infrastructure host deploys the key as root, through sudo -n.
    for host in ["h0", "h1"] {
        let out = w.hostage(&["onboard", host, "--trust-new"]);
        assert!(
            out.status.success(),
            "{host}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
    }
    assert_eq!(read(&w.deploy_path), read(&w.infra.private));
    let owner = std::os::unix::fs::MetadataExt::uid(&fs_err::metadata(&w.deploy_path).unwrap());
    assert_eq!(owner, 0, "written by root (sudo), not by {SUDO_USER}");
    assert!(
        w.fleet.hosts[infra]
            .log_text()
            .contains(&format!("for {SUDO_USER} from")),
        "sessions log in as {SUDO_USER}: {}",
        w.fleet.hosts[infra].log_text()
    );

    // The private host key is root's, 0600: only sudo -n cat reads it.
    let public_file = w.fleet.hosts[web].public_key_file();
    let private_file = public_file.with_extension("");
    let original = read(&private_file);
    let out = w.hostage(&["backup-host-key", "h1"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let backup = w.repo.sops(
        &[
            "decrypt",
            "--input-type",
            "yaml",
            "--extract",
            "[\"data\"]",
            "secrets/hosts/h1/ssh_host_ed25519_key",
        ],
        &["workstation"],
    );
    assert_eq!(String::from_utf8(backup.stdout).unwrap(), original);

    // The reinstall, then the identity put back as root through sudo.
    let fresh = SshKeyPair::generate(w.fleet.dir.path(), "rebuilt", "", None);
    fs_err::copy(&fresh.private, &private_file).unwrap();
    fs_err::copy(&fresh.public, &public_file).unwrap();
    let rebuilt = hostage_tests::sshd::fingerprint_of(&public_file);
    let out = w.hostage(&[
        "rotate",
        "h1",
        "--from-backup",
        "--expect-fingerprint",
        &rebuilt,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(read(&private_file), original);
    let metadata = fs_err::metadata(&private_file).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&metadata), 0);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn a_non_root_login_that_sudo_refuses_is_reported_and_nothing_is_written() {
    let mut w = world_with(&[true, false]);
    move_to_sudo_user(&mut w, 1, Login::UserWithoutSudo);
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let before = w.state();
    let out = w.hostage(&["backup-host-key", "h1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let error = stderr(&out);
    assert!(
        error.contains("on the host: sudo: a password is required"),
        "{error}"
    );
    // What to do: passwordless sudo for the commands hostage runs as root, or a root login.
    let hint = error
        .lines()
        .find_map(|line| line.strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("no hint: {error}"));
    for named in ["`cat`", "`sh`", "NOPASSWD", "user: root"] {
        assert!(
            hint.contains(named),
            "{named} missing from the hint: {hint}"
        );
    }
    assert_eq!(w.state(), before);
}

#[test]
fn an_infrastructure_host_whose_login_sudo_refuses_gets_the_sudo_hint_from_onboard_and_deploy() {
    let mut w = world_with(&[true, false]);
    move_to_sudo_user(&mut w, 0, Login::UserWithoutSudo);
    let before = w.state();
    // Onboarding looks at the key in place (`sudo -n test`) before any write: a refusal there
    // stops it with nothing changed (it used to pass for "no key there", and the run failed
    // only at the deploy, after the repository was changed).
    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let error = stderr(&out);
    assert!(error.contains("sudo: a password is required"), "{error}");
    let hint = error
        .lines()
        .find_map(|line| line.strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("no hint: {error}"));
    assert!(
        hint.contains("NOPASSWD") && hint.contains("user: root"),
        "{hint}"
    );
    assert_eq!(
        w.state(),
        before,
        "onboard wrote before finding sudo refuses"
    );
    // The fleet verb: the host's line says it (text), and its JSON error carries it.
    let out = w.hostage(&["deploy", "h0", "--trust-new"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("      hint: the login user is not root"),
        "{}",
        stdout(&out)
    );
    let out = w.hostage(&["--json", "deploy", "h0", "--trust-new"]);
    let host = stdout(&out)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|doc| doc["type"] == "host")
        .unwrap();
    assert!(
        host["data"]["error"]["hint"]
            .as_str()
            .is_some_and(|hint| hint.contains("NOPASSWD")),
        "{host:#}"
    );
    assert!(!w.deploy_path.exists(), "nothing was deployed");
}
