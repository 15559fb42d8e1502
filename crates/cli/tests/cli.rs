//! The command line's own contract: help, completions, usage errors. (Having an integration test
//! here also makes `cargo test --workspace` build the `hostage` binary the end-to-end suites run.)

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn hostage(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hostage"))
        .args(args)
        .output()
        .expect("hostage runs")
}

#[test]
fn help_lists_the_verbs_and_exit_codes() {
    let out = hostage(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "convert",
        "identities",
        "rekey",
        "completions",
        "Exit codes",
        "3  check found drift",
    ] {
        assert!(help.contains(needle), "missing {needle:?} in:\n{help}");
    }
}

#[test]
fn every_verb_help_shows_examples() {
    for verb in [
        "convert",
        "identities",
        "fetch",
        "deploy",
        "rekey",
        "completions",
    ] {
        let out = hostage(&[verb, "--help"]);
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            help.contains("Example"),
            "{verb} --help has no examples:\n{help}"
        );
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = hostage(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("identities"),
            "{shell} completions miss a verb"
        );
    }
}

#[test]
fn unknown_arguments_are_usage_errors_with_exit_code_2() {
    let out = hostage(&["convert", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn docs_cli_reference_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let expected = hostage::cli::reference_markdown();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs_err::write(&path, &expected).unwrap();
    }
    let actual = fs_err::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/cli.md is stale: run `UPDATE_GOLDEN=1 cargo test -p hostage --test cli` and commit it"
    );
}

#[test]
fn a_malformed_fingerprint_is_a_usage_error_with_exit_code_2_in_every_verb() {
    for args in [
        &["onboard", "web", "--expect-fingerprint", "bad"][..],
        &["rotate", "web", "--expect-fingerprint", "bad"],
        &["fetch", "root@web", "--expect-fingerprint", "bad"],
        &["fetch", "root@web", "--expect-fingerprint", "web=MD5:00"],
        &["deploy", "root@web", "--expect-fingerprint", "bad"],
    ] {
        let out = hostage(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--expect-fingerprint"), "{args:?}: {err}");
    }
}

#[test]
fn every_verb_that_reaches_hosts_has_the_same_ssh_options_and_timeout() {
    for verb in [
        "fetch",
        "deploy",
        "onboard",
        "rotate",
        "rotate-infra",
        "status",
    ] {
        let out = hostage(&[verb, "--help"]);
        let help = String::from_utf8(out.stdout).unwrap();
        for option in ["--known-hosts", "--ssh-config", "--timeout"] {
            assert!(
                help.contains(option),
                "{verb} --help lacks {option}:\n{help}"
            );
        }
        assert!(help.contains("[default: 30]"), "{verb}: {help}");
    }
}

#[test]
fn man_writes_a_page_for_hostage_and_each_verb() {
    let dir = tempfile::tempdir().unwrap();
    let out = hostage(&["man", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "hostage.1",
        "hostage-onboard.1",
        "hostage-rekey.1",
        "hostage-man.1",
    ] {
        let text = fs_err::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH"), "{page} is not a man page:\n{text}");
    }
    let onboard = fs_err::read_to_string(dir.path().join("hostage-onboard.1")).unwrap();
    assert!(onboard.contains("expect\\-fingerprint"), "{onboard}");
}
