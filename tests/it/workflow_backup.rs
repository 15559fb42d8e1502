//! `hostage backup-host-key` end to end: real sshd hosts, the backup judged by sops 3.11, and
//! `rotate --from-backup` putting the backed-up identity back on a rebuilt host.

use hostage_tests::SshKeyPair;

use crate::rekey_support::{json, stderr, stdout};
use crate::workflow_support::{world, World};

/// `sops decrypt --extract '["data"]'` of the backup, as the workstation (`None` when refused).
fn backed_up_key(w: &World, host: &str, identity: &str) -> Option<String> {
    let rel = format!("secrets/hosts/{host}/ssh_host_ed25519_key");
    let out = w.repo.sops(
        &[
            "decrypt",
            "--input-type",
            "yaml",
            "--extract",
            "[\"data\"]",
            &rel,
        ],
        &[identity],
    );
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

#[test]
fn backup_host_key_stores_the_pinned_key_as_the_seeds_data_block_and_a_rerun_changes_nothing() {
    let w = world();
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let private_file = w.fleet.hosts[1].public_key_file().with_extension("");
    let private = fs_err::read_to_string(&private_file).unwrap();
    let rel = "secrets/hosts/h1/ssh_host_ed25519_key";

    // Dry run: the key is read and checked, nothing is written.
    let before = w.state();
    let out = w.hostage(&["--json", "backup-host-key", "h1", "--dry-run"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["action"], "create", "{doc:#}");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["path"], rel);
    assert_eq!(doc["fingerprint"], w.fleet.hosts[1].fingerprint().as_str());
    assert_eq!(w.state(), before);

    let out = w.hostage(&["backup-host-key", "h1"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("backed up"), "{}", stdout(&out));
    let text = fs_err::read_to_string(w.repo.path(rel)).unwrap();
    // The seed's shape (YAML, one key `data`), and the key never in plaintext, output or errors.
    assert!(text.starts_with("data: ENC[AES256_GCM,data:"), "{text}");
    assert!(text.contains("    version: 3.11.0\n"), "{text}");
    let body = private.lines().nth(2).unwrap();
    for shown in [text.as_str(), &stdout(&out), &stderr(&out)] {
        assert!(!shown.contains(body));
    }
    // sops decrypts it to the very file on the host, with the workstation key and the host's own,
    // and the plaintext document is the `data: |` literal block.
    assert_eq!(
        backed_up_key(&w, "h1", "workstation").as_deref(),
        Some(private.as_str())
    );
    assert_eq!(
        backed_up_key(&w, "h1", "h1").as_deref(),
        Some(private.as_str())
    );
    assert_eq!(backed_up_key(&w, "h1", "h0"), None);
    let out = w.repo.sops(
        &[
            "decrypt",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            rel,
        ],
        &["workstation"],
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("data: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n"));

    // Again: the backup already holds the pinned key; no byte changes.
    let after = w.state();
    let out = w.hostage(&["--json", "backup-host-key", "h1"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(json(&out)["action"], "unchanged");
    assert_eq!(w.state(), after);

    // export-host-key reads the same backup.
    let extra = w.fleet.dir.path().join("extra");
    let inventory = w.inventory.display().to_string();
    let args = [
        "--inventory",
        &inventory,
        "export-host-key",
        "h1",
        &extra.display().to_string(),
    ];
    let out = w.repo.hostage(&args, &["workstation"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exported = extra.join(private_file.strip_prefix("/").unwrap());
    assert_eq!(fs_err::read_to_string(exported).unwrap(), private);
}

#[test]
fn a_host_rebuilt_after_backup_host_key_gets_its_identity_back_with_rotate_from_backup() {
    let w = world();
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let out = w.hostage(&["backup-host-key", "h1"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let public_file = w.fleet.hosts[1].public_key_file();
    let private_file = public_file.with_extension("");
    let original = fs_err::read_to_string(&private_file).unwrap();

    // The reinstall: the host comes up with a fresh key.
    let fresh = SshKeyPair::generate(w.fleet.dir.path(), "rebuilt", "", None);
    fs_err::copy(&fresh.private, &private_file).unwrap();
    fs_err::copy(&fresh.public, &public_file).unwrap();
    let rebuilt = hostage_tests::sshd::fingerprint_of(&public_file);
    let before = w.state();

    let out = w.hostage(&[
        "--json",
        "rotate",
        "h1",
        "--from-backup",
        "--expect-fingerprint",
        &rebuilt,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(json(&out)["action"], "restored", "{}", stdout(&out));
    assert_eq!(fs_err::read_to_string(&private_file).unwrap(), original);
    assert_eq!(w.state(), before, "the repo and the pin do not change");
}

#[test]
fn backup_host_key_refuses_an_unpinned_host_and_a_backup_of_another_key_writing_nothing() {
    let w = world();
    let before = w.state();
    let out = w.hostage(&["backup-host-key", "h1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("has no pin"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hint: run `hostage onboard h1` first"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.state(), before);

    // A stale backup (another identity) is not overwritten.
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let stale = SshKeyPair::generate(w.fleet.dir.path(), "stale", "", None);
    let stale_text = fs_err::read_to_string(&stale.private).unwrap();
    let yaml = format!(
        "data: |\n{}",
        stale_text
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    w.repo.write(
        "secrets/hosts/h1/ssh_host_ed25519_key.yaml",
        yaml.as_bytes(),
    );
    w.repo.encrypt(
        "secrets/hosts/h1/ssh_host_ed25519_key.yaml",
        yaml.as_bytes(),
    );
    fs_err::rename(
        w.repo.path("secrets/hosts/h1/ssh_host_ed25519_key.yaml"),
        w.repo.path("secrets/hosts/h1/ssh_host_ed25519_key"),
    )
    .unwrap();
    let before = w.state();
    let out = w.hostage(&["backup-host-key", "h1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("already holds another host key"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("git rm"), "{}", stderr(&out));
    assert_eq!(w.state(), before);
}

/// A backup killed (SIGKILL, sent by strace as the binary enters the rename that would publish
/// the encrypted key: no hook in the product) leaves no backup and only its own temp file, never
/// a torn one; running the same command again writes the backup and clears the temp file.
#[test]
fn a_backup_sigkilled_before_publishing_leaves_no_backup_and_the_same_command_finishes_it() {
    let strace = hostage_tests::require(hostage_tests::STRACE);
    let w = world();
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let private_file = w.fleet.hosts[1].public_key_file().with_extension("");
    let private = fs_err::read_to_string(&private_file).unwrap();
    let dir = w.repo.path("secrets/hosts/h1");
    let temp_files = || -> Vec<String> {
        fs_err::read_dir(&dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".ssh_host_ed25519_key.hostage-tmp."))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = w.state();

    let inventory = w.inventory.display().to_string();
    let ssh_config = w.fleet.ssh_config().display().to_string();
    let known_hosts = w.fleet.known_hosts().display().to_string();
    let wrapper: Vec<std::ffi::OsString> = [
        strace.as_os_str(),
        "-qq".as_ref(),
        "-o".as_ref(),
        "/dev/null".as_ref(),
        "-e".as_ref(),
        "inject=/^rename:when=1:signal=KILL".as_ref(),
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    let out = w.repo.hostage_wrapped(
        &wrapper,
        &[
            "--inventory",
            &inventory,
            "backup-host-key",
            "h1",
            "--ssh-config",
            &ssh_config,
            "--known-hosts",
            &known_hosts,
        ],
        &["workstation"],
    );
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "the run was not killed\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    // Killed at the backup's own rename: its temp file is there, the backup is not.
    assert_eq!(temp_files().len(), 1, "{:?}", temp_files());
    assert_eq!(backed_up_key(&w, "h1", "workstation"), None);

    let out = w.hostage(&["backup-host-key", "h1"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        backed_up_key(&w, "h1", "workstation").as_deref(),
        Some(private.as_str())
    );
    assert!(temp_files().is_empty(), "{:?}", temp_files());
    // Nothing but the backup changed.
    let without_backup = |(mut files, inventory): (std::collections::BTreeMap<_, _>, String)| {
        files.retain(|path: &std::path::PathBuf, _| !path.ends_with("ssh_host_ed25519_key"));
        (files, inventory)
    };
    assert_eq!(without_backup(w.state()), without_backup(before));
}
