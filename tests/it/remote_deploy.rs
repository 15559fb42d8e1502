//! `hostage deploy` against real sshd hosts: atomic, 0400, idempotent, never in argv.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hostage_tests::sshd::{all_process_texts, fingerprint_of, SshdFleet};
use hostage_tests::SshKeyPair;

use crate::remote_common::{
    assert_no_stray_ssh, command, hostage, key_paths, specs, tmp_dir, Report,
};

fn deploy_args(fleet: &SshdFleet, key: &Path, target: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = specs(fleet);
    args.extend(key_paths(fleet));
    args.extend([
        "--key".to_owned(),
        key.display().to_string(),
        "--target".to_owned(),
        target.display().to_string(),
    ]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn target_in(fleet: &SshdFleet) -> PathBuf {
    let dir = fleet.dir.path().join("deployed");
    fs_err::create_dir_all(&dir).expect("a deploy dir");
    dir.join("id_infrastructure")
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs_err::read_dir(dir)
        .expect("the deploy dir is listable")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".hostage-deploy"))
        .collect()
}

#[test]
fn deploy_writes_0400_root_owned_key_then_is_idempotent_and_replaces_only_when_asked() {
    let fleet = SshdFleet::start(1);
    fleet.trust_all_in_known_hosts();
    let spec = fleet.hosts[0].spec();
    let first = SshKeyPair::generate(fleet.dir.path(), "infra", "", None);
    let second = SshKeyPair::generate(fleet.dir.path(), "infra2", "", None);
    let (first_fp, second_fp) = (
        fingerprint_of(&first.public),
        fingerprint_of(&second.public),
    );
    let target = target_in(&fleet);

    let dry = Report::of(&hostage(
        &fleet,
        "deploy",
        &deploy_args(&fleet, &first.private, &target, &["--dry-run"]),
    ));
    assert_eq!(dry.code, 0, "{}", dry.text);
    assert_eq!(dry.host(&spec)["deploy"]["action"], "would-write");
    assert!(!target.exists(), "a dry run writes nothing");

    let written = Report::of(&hostage(
        &fleet,
        "deploy",
        &deploy_args(&fleet, &first.private, &target, &[]),
    ));
    assert_eq!(written.code, 0, "{}", written.text);
    assert_eq!(written.host(&spec)["deploy"]["action"], "written");
    assert_eq!(written.host(&spec)["deploy"]["fingerprint"], first_fp);
    let meta = fs_err::metadata(&target).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o400, "the key is 0400");
    assert_eq!(meta.uid(), 0, "owned by root");
    assert_eq!(
        fs_err::read(&target).unwrap(),
        fs_err::read(&first.private).unwrap()
    );
    let (inode, mtime) = (meta.ino(), meta.mtime_nsec());

    let again = Report::of(&hostage(
        &fleet,
        "deploy",
        &deploy_args(&fleet, &first.private, &target, &[]),
    ));
    assert_eq!(again.code, 0, "{}", again.text);
    assert_eq!(again.host(&spec)["deploy"]["action"], "unchanged");
    let meta = fs_err::metadata(&target).unwrap();
    assert_eq!(
        (meta.ino(), meta.mtime_nsec()),
        (inode, mtime),
        "not rewritten"
    );

    let refused = Report::of(&hostage(
        &fleet,
        "deploy",
        &deploy_args(&fleet, &second.private, &target, &[]),
    ));
    assert_eq!(refused.code, 1, "{}", refused.text);
    assert_eq!(
        refused.error_kind(&spec).as_deref(),
        Some("deployed-key-differs")
    );
    let message = refused.error_message(&spec);
    assert!(
        message.contains(&first_fp) && message.contains(&second_fp),
        "{message}"
    );
    assert_eq!(
        fs_err::read(&target).unwrap(),
        fs_err::read(&first.private).unwrap()
    );

    let would = Report::of(&hostage(
        &fleet,
        "deploy",
        &deploy_args(
            &fleet,
            &second.private,
            &target,
            &["--replace", "--dry-run"],
        ),
    ));
    assert_eq!(would.code, 0, "{}", would.text);
    assert_eq!(would.host(&spec)["deploy"]["action"], "would-replace");
    assert_eq!(
        fs_err::read(&target).unwrap(),
        fs_err::read(&first.private).unwrap()
    );

    let replaced = Report::of(&hostage(
        &fleet,
        "deploy",
        &deploy_args(&fleet, &second.private, &target, &["--replace"]),
    ));
    assert_eq!(replaced.code, 0, "{}", replaced.text);
    assert_eq!(replaced.host(&spec)["deploy"]["action"], "replaced");
    assert_eq!(replaced.host(&spec)["deploy"]["old_fingerprint"], first_fp);
    assert_eq!(
        fs_err::read(&target).unwrap(),
        fs_err::read(&second.private).unwrap()
    );
    assert_eq!(fs_err::metadata(&target).unwrap().mode() & 0o7777, 0o400);
    assert!(leftovers(target.parent().unwrap()).is_empty());
    assert_no_stray_ssh(&fleet);
}

#[test]
fn deployed_key_gets_the_configured_owner() {
    let fleet = SshdFleet::start(1);
    fleet.trust_all_in_known_hosts();
    let key = SshKeyPair::generate(fleet.dir.path(), "infra", "", None);
    let target = target_in(&fleet);
    let report = Report::of(&hostage(
        &fleet,
        "deploy",
        &deploy_args(&fleet, &key.private, &target, &["--owner", "nobody"]),
    ));
    assert_eq!(report.code, 0, "{}", report.text);
    let meta = fs_err::metadata(&target).unwrap();
    assert_eq!(meta.uid(), 65534, "owned by nobody");
    assert_eq!(meta.mode() & 0o7777, 0o400);
}

#[test]
fn deploy_to_an_unverified_host_sends_nothing() {
    let fleet = SshdFleet::start(1);
    let key = SshKeyPair::generate(fleet.dir.path(), "infra", "", None);
    let target = target_in(&fleet);
    let report = Report::of(&hostage(
        &fleet,
        "deploy",
        &deploy_args(&fleet, &key.private, &target, &[]),
    ));
    assert_eq!(report.code, 1, "{}", report.text);
    assert_eq!(
        report.error_kind(&fleet.hosts[0].spec()).as_deref(),
        Some("unknown-host")
    );
    assert!(!target.exists());
    assert!(leftovers(target.parent().unwrap()).is_empty());
}

#[test]
fn secret_never_appears_in_argv_environment_output_or_logs() {
    let fleet = SshdFleet::start(4);
    fleet.trust_all_in_known_hosts();
    let key = SshKeyPair::generate(fleet.dir.path(), "infra", "", None);
    let secret_text = fs_err::read_to_string(&key.private).unwrap();
    // Every base64 line of the private key body is a marker the secret would leave.
    let markers: Vec<String> = secret_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    assert!(!markers.is_empty());
    let target = target_in(&fleet);
    let mut child = command(
        &fleet,
        "deploy",
        &deploy_args(&fleet, &key.private, &target, &[]),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut samples = 0;
    loop {
        for text in all_process_texts() {
            for marker in &markers {
                assert!(
                    !text.contains(marker.as_str()),
                    "the secret is in a process table entry: {text}"
                );
            }
        }
        samples += 1;
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().unwrap();
    let report = Report::of(&output);
    assert_eq!(report.code, 0, "{}", report.text);
    assert!(samples > 1, "the process table was sampled during the run");
    assert_eq!(fs_err::read_to_string(&target).unwrap(), secret_text);
    let mut logs = report.text.clone();
    for host in &fleet.hosts {
        logs.push_str(&host.log_text());
    }
    for marker in &markers {
        assert!(
            !logs.contains(marker.as_str()),
            "the secret is in the output or an sshd log"
        );
    }
    let tmp_left: Vec<_> = fs_err::read_dir(tmp_dir(&fleet)).unwrap().collect();
    assert!(
        tmp_left.is_empty(),
        "no local temp files remain: {tmp_left:?}"
    );
}

#[test]
fn non_root_login_deploys_through_sudo_n_with_the_secret_on_stdin_only() {
    let mut fleet = SshdFleet::new();
    // Stand-ins: `id -u` says 1000 (a non-root login), `sudo` logs its argv and runs the command.
    let bin = fleet.dir.path().join("fakebin");
    fs_err::create_dir_all(&bin).unwrap();
    let sudo_log = fleet.dir.path().join("sudo.log");
    fs_err::write(
        bin.join("id"),
        "#!/bin/sh\nif [ \"$1\" = -u ]; then echo 1000; else exec /usr/bin/id \"$@\"; fi\n",
    )
    .unwrap();
    fs_err::write(
        bin.join("sudo"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"sudo $*\" >> '{}'\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n",
            sudo_log.display()
        ),
    )
    .unwrap();
    for tool in ["id", "sudo"] {
        let status = std::process::Command::new("chmod")
            .arg("755")
            .arg(bin.join(tool))
            .status()
            .unwrap();
        assert!(status.success());
    }
    fleet.add(hostage_tests::sshd::SshdOptions {
        path_prefix: Some(bin),
        ..Default::default()
    });
    fleet.trust_all_in_known_hosts();
    let key = SshKeyPair::generate(fleet.dir.path(), "infra", "", None);
    let target = target_in(&fleet);
    let report = Report::of(&hostage(
        &fleet,
        "deploy",
        &deploy_args(&fleet, &key.private, &target, &[]),
    ));
    assert_eq!(report.code, 0, "{}", report.text);
    assert_eq!(
        report.host(&fleet.hosts[0].spec())["deploy"]["action"],
        "written"
    );
    assert_eq!(fs_err::metadata(&target).unwrap().mode() & 0o7777, 0o400);
    let log = fs_err::read_to_string(&sudo_log).unwrap();
    assert!(log.contains("sudo -n test -e"), "{log}");
    assert!(
        log.contains("sudo -n sh -c"),
        "the write ran under sudo -n: {log}"
    );
    let secret = fs_err::read_to_string(&key.private).unwrap();
    for line in secret.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!log.contains(line), "the secret reached sudo's argv");
    }
}
