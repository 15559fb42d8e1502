//! `hostage fetch` against real sshd hosts on loopback: verified keys, and every way to refuse.

use std::net::TcpListener;

use hostage_tests::sshd::{free_port, HostKeys, SshdFleet, SshdOptions};
use hostage_tests::SshKeyPair;

use crate::remote_common::{assert_no_stray_ssh, hostage, key_paths, recipient_of, specs, Report};

fn args(parts: &[&[String]]) -> Vec<String> {
    parts.concat()
}

#[test]
fn fetch_verifies_eight_hosts_from_hashed_known_hosts() {
    let fleet = SshdFleet::start(8);
    fleet.trust_all_in_known_hosts();
    let output = hostage(
        &fleet,
        "fetch",
        &args(&[&specs(&fleet), &key_paths(&fleet)]),
    );
    let report = Report::of(&output);
    assert_eq!(report.code, 0, "{}", report.text);
    assert_eq!(report.hosts.len(), 8);
    for host in &fleet.hosts {
        let record = report.host(&host.spec());
        assert_eq!(record["fingerprint"], host.fingerprint(), "{}", report.text);
        assert_eq!(record["recipient"], recipient_of(&host.public_key_file()));
        assert_eq!(record["verified_by"], "known_hosts");
        assert_eq!(record["name"], host.known_hosts_name());
    }
    assert_eq!(report.summary["ok"], 8);
    assert_no_stray_ssh(&fleet);
}

#[test]
fn pinned_host_is_verified_by_its_pin_without_known_hosts() {
    let fleet = SshdFleet::start(1);
    let host = &fleet.hosts[0];
    let pin = format!("{}={}", host.spec(), host.fingerprint());
    let output = hostage(
        &fleet,
        "fetch",
        &args(&[
            &specs(&fleet),
            &key_paths(&fleet),
            &["--expect-fingerprint".into(), pin],
        ]),
    );
    let report = Report::of(&output);
    assert_eq!(report.code, 0, "{}", report.text);
    assert_eq!(report.host(&host.spec())["verified_by"], "pin");
    assert_eq!(report.host(&host.spec())["fingerprint"], host.fingerprint());
}

#[test]
fn changed_key_against_pin_is_refused_naming_both_fingerprints() {
    let fleet = SshdFleet::start(1);
    let host = &fleet.hosts[0];
    let other = SshKeyPair::generate(fleet.dir.path(), "other", "", None);
    let pinned = hostage_tests::sshd::fingerprint_of(&other.public);
    let output = hostage(
        &fleet,
        "fetch",
        &args(&[
            &specs(&fleet),
            &key_paths(&fleet),
            &["--expect-fingerprint".into(), pinned.clone()],
        ]),
    );
    let report = Report::of(&output);
    assert_eq!(report.code, 1, "{}", report.text);
    assert_eq!(
        report.error_kind(&host.spec()).as_deref(),
        Some("pin-mismatch")
    );
    let message = report.error_message(&host.spec());
    assert!(message.contains(&pinned), "{message}");
    assert!(message.contains(&host.fingerprint()), "{message}");
    assert!(
        report.host(&host.spec())["fingerprint"].is_null(),
        "no key is reported"
    );
    assert_no_stray_ssh(&fleet);
}

#[test]
fn handshake_key_differing_from_key_file_is_refused_as_mitm() {
    let fleet = SshdFleet::start(1);
    fleet.trust_all_in_known_hosts();
    let host = &fleet.hosts[0];
    // The authenticated host "holds" another key than the one it answers with.
    let impostor = SshKeyPair::generate(fleet.dir.path(), "file_key", "", None);
    let output = hostage(
        &fleet,
        "fetch",
        &[
            host.spec(),
            "--key-path".into(),
            impostor.public.display().to_string(),
        ],
    );
    let report = Report::of(&output);
    assert_eq!(report.code, 1, "{}", report.text);
    assert_eq!(
        report.error_kind(&host.spec()).as_deref(),
        Some("key-file-mismatch")
    );
    let message = report.error_message(&host.spec());
    assert!(message.contains(&host.fingerprint()), "{message}");
    assert!(
        message.contains(&hostage_tests::sshd::fingerprint_of(&impostor.public)),
        "{message}"
    );
}

#[test]
fn unknown_host_is_refused_without_trust_new_and_pinned_with_it() {
    let fleet = SshdFleet::start(1);
    let host = &fleet.hosts[0];
    let base = args(&[&specs(&fleet), &key_paths(&fleet)]);

    let refused = Report::of(&hostage(&fleet, "fetch", &base));
    assert_eq!(refused.code, 1, "{}", refused.text);
    assert_eq!(
        refused.error_kind(&host.spec()).as_deref(),
        Some("unknown-host")
    );
    assert!(refused.error_message(&host.spec()).contains("--trust-new"));
    assert!(!fleet.dir.path().join("pins").exists(), "nothing recorded");

    let dry = Report::of(&hostage(
        &fleet,
        "fetch",
        &args(&[&base, &["--trust-new".into(), "--dry-run".into()]]),
    ));
    assert_eq!(dry.code, 0, "{}", dry.text);
    assert!(
        !fleet.dir.path().join("pins").exists(),
        "a dry run records nothing"
    );

    let trusted = Report::of(&hostage(
        &fleet,
        "fetch",
        &args(&[&base, &["--trust-new".into()]]),
    ));
    assert_eq!(trusted.code, 0, "{}", trusted.text);
    assert_eq!(trusted.host(&host.spec())["verified_by"], "trust-new");
    let pins = fs_err::read_to_string(fleet.dir.path().join("pins")).unwrap();
    assert_eq!(
        pins.trim(),
        format!("{} {}", host.known_hosts_name(), host.fingerprint())
    );
    let known = fs_err::read_to_string(fleet.known_hosts()).unwrap_or_default();
    assert!(
        known.is_empty(),
        "the user's known_hosts is not written: {known}"
    );

    let again = Report::of(&hostage(&fleet, "fetch", &base));
    assert_eq!(again.code, 0, "{}", again.text);
    assert_eq!(again.host(&host.spec())["verified_by"], "pin");
}

#[test]
fn changed_key_against_known_hosts_is_refused_even_with_trust_new() {
    let fleet = SshdFleet::start(1);
    let host = &fleet.hosts[0];
    let old = SshKeyPair::generate(fleet.dir.path(), "old_host_key", "", None);
    fs_err::write(
        fleet.known_hosts(),
        format!("{} {}\n", host.known_hosts_name(), old.public_line()),
    )
    .unwrap();
    let output = hostage(
        &fleet,
        "fetch",
        &args(&[&specs(&fleet), &key_paths(&fleet), &["--trust-new".into()]]),
    );
    let report = Report::of(&output);
    assert_eq!(report.code, 1, "{}", report.text);
    assert_eq!(
        report.error_kind(&host.spec()).as_deref(),
        Some("known-hosts-mismatch")
    );
    let message = report.error_message(&host.spec());
    assert!(message.contains(&host.fingerprint()), "{message}");
    assert!(
        message.contains(&hostage_tests::sshd::fingerprint_of(&old.public)),
        "{message}"
    );
    assert!(!fleet.dir.path().join("pins").exists());
}

#[test]
fn failing_hosts_get_their_own_errors_while_the_others_go_on() {
    let mut fleet = SshdFleet::start(1);
    let rsa = fleet.add(SshdOptions {
        host_keys: HostKeys::RsaOnly,
        ..SshdOptions::default()
    });
    let denied = fleet.add(SshdOptions {
        authorize_client: false,
        ..SshdOptions::default()
    });
    fleet.trust_all_in_known_hosts();
    let closed = format!(
        "root@127.0.0.1:{}",
        free_port(std::net::Ipv4Addr::LOCALHOST)
    );
    // Accepts TCP, never speaks SSH.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_spec = format!("root@127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mut hosts = specs(&fleet);
    hosts.push(closed.clone());
    hosts.push(silent_spec.clone());
    let started = std::time::Instant::now();
    let output = hostage(
        &fleet,
        "fetch",
        &args(&[
            &hosts,
            &key_paths(&fleet),
            &["--timeout".into(), "3".into()],
        ]),
    );
    let report = Report::of(&output);
    assert_eq!(report.code, 1, "{}", report.text);
    assert!(
        report.host(&fleet.hosts[0].spec())["error"].is_null(),
        "{}",
        report.text
    );
    assert_eq!(
        report.error_kind(&fleet.hosts[rsa].spec()).as_deref(),
        Some("no-ed25519-host-key"),
        "{}",
        report.text
    );
    assert_eq!(
        report.error_kind(&fleet.hosts[denied].spec()).as_deref(),
        Some("auth-failed")
    );
    assert_eq!(report.error_kind(&closed).as_deref(), Some("unreachable"));
    assert_eq!(report.error_kind(&silent_spec).as_deref(), Some("timeout"));
    assert_eq!(report.summary["ok"], 1);
    assert_eq!(report.summary["failed"].as_array().unwrap().len(), 4);
    assert!(started.elapsed().as_secs() < 20, "timeouts are per host");
    drop(silent);
    assert_no_stray_ssh(&fleet);
}

#[test]
fn unreadable_key_file_is_a_clear_error() {
    let fleet = SshdFleet::start(1);
    fleet.trust_all_in_known_hosts();
    let host = &fleet.hosts[0];
    let output = hostage(
        &fleet,
        "fetch",
        &[
            host.spec(),
            "--key-path".into(),
            "/nonexistent/key.pub".into(),
        ],
    );
    let report = Report::of(&output);
    assert_eq!(report.code, 1, "{}", report.text);
    assert_eq!(report.error_kind(&host.spec()).as_deref(), Some("key-file"));
    assert!(report
        .error_message(&host.spec())
        .contains("/nonexistent/key.pub"));
}

#[test]
fn bad_host_specs_are_usage_errors() {
    let fleet = SshdFleet::new();
    let output = hostage(&fleet, "fetch", &["-oProxyCommand=evil".into()]);
    assert_eq!(output.status.code(), Some(2));
    let output = hostage(
        &fleet,
        "fetch",
        &[
            "root@a".into(),
            "root@b".into(),
            "--expect-fingerprint".into(),
            "SHA256:tSVdMCdgjLnQqlAcPpBGaHhsYsZ8XSFpmQ/NpMBLd+U".into(),
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "a bare pin needs a single host"
    );
}

#[test]
fn host_certificate_is_verified_through_cert_authority_in_known_hosts() {
    let mut fleet = SshdFleet::new();
    fleet.add(SshdOptions {
        certificate: true,
        ..SshdOptions::default()
    });
    let host = &fleet.hosts[0];
    fs_err::write(
        fleet.known_hosts(),
        format!("@cert-authority * {}\n", fleet.host_ca().public_line()),
    )
    .unwrap();
    let report = Report::of(&hostage(
        &fleet,
        "fetch",
        &args(&[&specs(&fleet), &key_paths(&fleet)]),
    ));
    assert_eq!(report.code, 0, "{}", report.text);
    let record = report.host(&host.spec());
    assert_eq!(record["verified_by"], "known_hosts");
    assert_eq!(
        record["fingerprint"],
        host.fingerprint(),
        "the certified key, not the CA"
    );
}

#[test]
fn text_output_names_refusals_and_sums_up() {
    let fleet = SshdFleet::start(2);
    fleet.trust_all_in_known_hosts();
    let other = SshKeyPair::generate(fleet.dir.path(), "other", "", None);
    let refused = &fleet.hosts[1];
    let mut args = args(&[&specs(&fleet), &key_paths(&fleet)]);
    args.extend([
        "--expect-fingerprint".into(),
        format!(
            "{}={}",
            refused.spec(),
            hostage_tests::sshd::fingerprint_of(&other.public)
        ),
    ]);
    // Like `remote_common::command`, without `--json`.
    let mut plain = std::process::Command::new(hostage_tests::hostage_bin());
    plain
        .arg("fetch")
        .arg("--ssh-config")
        .arg(fleet.ssh_config())
        .arg("--known-hosts")
        .arg(fleet.known_hosts())
        .arg("--pins")
        .arg(fleet.dir.path().join("pins"))
        .args(&args)
        .env("TMPDIR", crate::remote_common::tmp_dir(&fleet));
    let output = plain.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let ok_line = stdout
        .lines()
        .find(|l| l.starts_with("ok") && l.contains(&fleet.hosts[0].spec()))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(ok_line.contains(&fleet.hosts[0].fingerprint()) && ok_line.contains("age1"));
    let refused_line = stdout
        .lines()
        .find(|l| l.starts_with("REFUSED") && l.contains(&refused.spec()))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        refused_line.contains(&refused.fingerprint()),
        "{refused_line}"
    );
    assert!(stdout.contains("1 host(s) ok, 1 failed"), "{stdout}");
}

#[test]
fn proxy_jump_from_the_users_ssh_config_works_and_the_jump_host_is_checked_normally() {
    let mut fleet = SshdFleet::start(2);
    fleet.trust_all_in_known_hosts();
    let (jump_spec, target_spec) = (fleet.hosts[0].spec(), fleet.hosts[1].spec());
    let target_address = fleet.hosts[1].address;
    let pin = format!("{target_spec}={}", fleet.hosts[1].fingerprint());
    fleet.ssh_config_extra = format!("Host {target_address}\n  ProxyJump {jump_spec}\n");
    let logins = |fleet: &SshdFleet| {
        fleet.hosts[0]
            .log_text()
            .matches("Accepted publickey")
            .count()
    };
    let before = logins(&fleet);
    let report = Report::of(&hostage(
        &fleet,
        "fetch",
        &[
            target_spec.clone(),
            "--key-path".into(),
            fleet.hosts[1].public_key_file().display().to_string(),
            "--expect-fingerprint".into(),
            pin,
        ],
    ));
    assert_eq!(report.code, 0, "{}", report.text);
    assert_eq!(report.host(&target_spec)["verified_by"], "pin");
    assert_eq!(
        report.host(&target_spec)["fingerprint"],
        fleet.hosts[1].fingerprint()
    );
    assert!(
        logins(&fleet) > before,
        "the connection went through the jump host"
    );
    assert_no_stray_ssh(&fleet);
}

/// Issue 12 item 9: `--known-hosts FILE` is the only known_hosts trusted. A host known only
/// through another file ssh is configured with (the user's `GlobalKnownHostsFile`, or
/// `UserKnownHostsFile`) is refused.
#[test]
fn known_hosts_file_given_is_the_only_one_trusted() {
    let fleet = SshdFleet::start(1);
    let host = &fleet.hosts[0];
    let other = fleet.dir.path().join("other_known_hosts");
    fs_err::write(&other, format!("{}\n", host.known_hosts_line())).unwrap();
    let given = fleet.dir.path().join("given_known_hosts");
    fs_err::write(&given, "").unwrap();
    for directive in ["GlobalKnownHostsFile", "UserKnownHostsFile"] {
        let config = fleet.dir.path().join(format!("ssh_config_{directive}"));
        fs_err::write(
            &config,
            format!(
                "IdentityFile \"{}\"\nIdentitiesOnly yes\n{directive} \"{}\"\nBatchMode yes\n",
                fleet.client_key.private.display(),
                other.display()
            ),
        )
        .unwrap();
        let run = |known_hosts: &std::path::Path| {
            let output = std::process::Command::new(hostage_tests::hostage_bin())
                .arg("--json")
                .arg("fetch")
                .arg("--ssh-config")
                .arg(&config)
                .arg("--known-hosts")
                .arg(known_hosts)
                .args(args(&[&specs(&fleet), &key_paths(&fleet)]))
                .env("TMPDIR", crate::remote_common::tmp_dir(&fleet))
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            Report::of(&output)
        };
        let refused = run(&given);
        assert_eq!(refused.code, 1, "{directive}: {}", refused.text);
        assert_eq!(
            refused.error_kind(&host.spec()).as_deref(),
            Some("unknown-host"),
            "{directive}: {}",
            refused.text
        );
        // The same host through the file given: accepted (the setup itself is sound).
        let accepted = run(&other);
        assert_eq!(accepted.code, 0, "{directive}: {}", accepted.text);
        assert_eq!(accepted.host(&host.spec())["verified_by"], "known_hosts");
    }
    assert_no_stray_ssh(&fleet);
}
