//! Output that scales: `hostage rekey` on hundreds and thousands of files fits a screen by
//! default (one error when no identity opens anything, one line per failure cause with example
//! paths, one line per recipient change, the exposure report cut to its first files) and says
//! what to do next, while `-v`, `--json` and `--exposure-file` still give every file and value.
//! Files are made cheaply: the real sops encrypts one seed, and copies of it (each a valid sops
//! file: the MAC does not cover the path) fill the repo.

use std::process::Output;

use crate::rekey_support::{json, stderr, stdout, Repo};

/// What a terminal shows without scrolling; every default report must fit in it.
const SCREEN_LINES: usize = 40;

/// A repo whose `.sops.yaml` gives every file under `secrets/` `before`'s recipients, with
/// `count` copies of one sops file made by the real sops at `secrets/app/NNNN.yaml`.
fn repo_with_copies(count: usize, before: &str) -> Repo {
    let repo = Repo::new(&["admin", "gnomeregan", "nobody", "oldhost"]);
    repo.config(&format!("{{keys}}\ncreation_rules:\n  - age: {before}\n"));
    repo.encrypt(
        "seed/seed.yaml",
        b"db_password: hunter2\napi_token: t0ken\npublic_unencrypted: yes\n",
    );
    copy_seed(&repo, "seed/seed.yaml", "secrets/app", count);
    fs_err::remove_dir_all(repo.path("seed")).unwrap();
    repo
}

/// `count` copies of `seed` at `dir/NNNN.yaml`.
fn copy_seed(repo: &Repo, seed: &str, dir: &str, count: usize) {
    let bytes = fs_err::read(repo.path(seed)).unwrap();
    for index in 0..count {
        repo.write(&format!("{dir}/{index:04}.yaml"), &bytes);
    }
}

/// Snapshots `text` as `name`, with the temp dir and the recipients redacted.
fn snapshot(repo: &Repo, name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        &regex::escape(&repo.dir.path().display().to_string()),
        "[REPO]",
    );
    settings.add_filter(r"age1[0-9a-z]{58}", "[RECIPIENT]");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// stdout, then stderr under a marker: what the terminal shows.
fn terminal(out: &Output) -> String {
    format!("{}--- stderr ---\n{}", stdout(out), stderr(out))
}

fn assert_fits_a_screen(out: &Output) {
    let lines = stdout(out).lines().count() + stderr(out).lines().count();
    assert!(
        lines <= SCREEN_LINES,
        "{lines} lines do not fit a screen:\n{}",
        terminal(out)
    );
}

#[test]
fn no_identity_on_a_thousand_files_is_one_error_before_anything_is_written() {
    let repo = repo_with_copies(1000, "*admin");
    repo.config("{keys}\ncreation_rules:\n  - age: [*admin, *gnomeregan]\n");
    let before = repo.snapshot();

    // No SOPS_AGE_KEY, no keys.txt, no ~/.ssh/id_ed25519 (HOME is the repo), and an --identity
    // that is the wrong key.
    let wrong = repo.path("wrong.txt");
    fs_err::write(&wrong, format!("{}\n", repo.keys["nobody"].secret)).unwrap();
    let out = repo.hostage(&["rekey", "--identity", "wrong.txt"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", terminal(&out));
    assert_fits_a_screen(&out);
    let text = terminal(&out);
    assert_eq!(
        text.matches("none of your identities").count(),
        1,
        "said once: {text}"
    );
    snapshot(&repo, "scale_rekey_no_identity_1000_files", &text);
    fs_err::remove_file(&wrong).unwrap();
    assert_eq!(repo.snapshot(), before, "nothing may be written");

    // --dry-run stops the same way.
    let dry = repo.hostage(&["rekey", "--dry-run"], &[]);
    assert_eq!(dry.status.code(), Some(1), "{}", terminal(&dry));
    assert!(
        stderr(&dry).contains("none of your identities opens any of the 1000 file(s)"),
        "{}",
        terminal(&dry)
    );
}

/// 200 files to re-wrap, 50 whose MAC no longer matches, 30 no identity of the run opens and
/// 20 that cannot be read as sops files (truncated after their `sops:` line).
fn mixed_repo() -> Repo {
    let repo = repo_with_copies(200, "*admin");
    let seed = fs_err::read_to_string(repo.path("secrets/app/0000.yaml")).unwrap();
    let tampered = seed.replace("public_unencrypted: \"yes\"", "public_unencrypted: \"no\"");
    assert_ne!(seed, tampered);
    for index in 0..50 {
        repo.write(
            &format!("secrets/tampered/{index:04}.yaml"),
            tampered.as_bytes(),
        );
    }
    let cut = seed.find("sops:").unwrap() + "sops:\n".len() + 10;
    for index in 0..20 {
        repo.write(
            &format!("secrets/broken/{index:04}.yaml"),
            &seed.as_bytes()[..cut],
        );
    }
    repo.config("{keys}\ncreation_rules:\n  - age: *nobody\n");
    repo.encrypt("seed/other.yaml", b"wifi_psk: s3cret\n");
    copy_seed(&repo, "seed/other.yaml", "secrets/other", 30);
    fs_err::remove_dir_all(repo.path("seed")).unwrap();
    repo.config(
        "{keys}\ncreation_rules:\n  - path_regex: secrets/other/.*\n    age: [*nobody, *gnomeregan]\n  - age: [*admin, *gnomeregan]\n",
    );
    repo
}

#[test]
fn mixed_failures_on_hundreds_of_files_are_one_line_per_cause_with_examples() {
    let repo = mixed_repo();
    let before = repo.snapshot();

    let dry = repo.hostage(&["rekey", "--dry-run"], &["admin"]);
    assert_eq!(dry.status.code(), Some(1), "{}", terminal(&dry));
    assert_fits_a_screen(&dry);
    snapshot(&repo, "scale_rekey_mixed_failures_dry_run", &terminal(&dry));

    // -v and --json still give every file.
    let verbose = repo.hostage(&["rekey", "--dry-run", "-v"], &["admin"]);
    assert_eq!(verbose.status.code(), Some(1));
    for path in [
        "secrets/app/0199.yaml",
        "secrets/tampered/0049.yaml",
        "secrets/other/0029.yaml",
        "secrets/broken/0019.yaml",
    ] {
        assert!(stdout(&verbose).contains(path), "-v lists {path}");
    }
    let doc = json(&repo.hostage(&["--json", "rekey", "--dry-run"], &["admin"]));
    assert_eq!(doc["files"].as_array().unwrap().len(), 300, "{doc:#}");
    assert_eq!(repo.snapshot(), before, "a dry run writes nothing");

    // Applying: the unreadable files stop the run before anything is written.
    let refused = repo.hostage(&["rekey"], &["admin"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_fits_a_screen(&refused);
    assert_eq!(repo.snapshot(), before, "plan errors write nothing");

    // Without them, the files that fail are grouped by cause and the others are re-keyed.
    fs_err::remove_dir_all(repo.path("secrets/broken")).unwrap();
    let applied = repo.hostage(&["rekey"], &["admin"]);
    assert_eq!(applied.status.code(), Some(1), "{}", terminal(&applied));
    assert_fits_a_screen(&applied);
    snapshot(
        &repo,
        "scale_rekey_mixed_failures_apply",
        &terminal(&applied),
    );
}

#[test]
fn a_five_thousand_file_rotation_is_a_few_lines_and_the_whole_exposure_goes_to_a_file() {
    let repo = repo_with_copies(5000, "[*admin, *oldhost]");
    repo.config("{keys}\ncreation_rules:\n  - age: [*admin, *gnomeregan]\n");

    let verbose = repo.hostage(&["rekey", "--dry-run", "-v"], &["admin"]);
    assert_eq!(verbose.status.code(), Some(0), "{}", terminal(&verbose));
    let listed = stdout(&verbose)
        .lines()
        .filter(|l| l.starts_with("rotate "))
        .count();
    assert_eq!(listed, 5000, "-v: one line per file");
    let exposed = stdout(&verbose)
        .lines()
        .filter(|l| l.starts_with("    secrets/app/"))
        .count();
    assert_eq!(exposed, 5000, "-v: the whole exposure report");

    let elsewhere = tempfile::tempdir().unwrap();
    let report_path = elsewhere.path().join("exposure.txt");
    let report_arg = report_path.display().to_string();
    let out = repo.hostage(&["rekey", "--exposure-file", &report_arg], &["admin"]);
    assert_eq!(out.status.code(), Some(0), "{}", terminal(&out));
    assert_fits_a_screen(&out);
    snapshot(&repo, "scale_rekey_5000_files_rotated", &terminal(&out));

    let report = fs_err::read_to_string(&report_path).unwrap();
    assert_eq!(
        report
            .lines()
            .filter(|l| l.starts_with("    secrets/app/"))
            .count(),
        5000,
        "--exposure-file holds every file"
    );
    assert!(
        report.contains("    secrets/app/4999.yaml: db_password, api_token"),
        "{report}"
    );
    assert!(repo.sops_says_up_to_date("secrets/app/4999.yaml", "admin"));
}

/// A 50-host fleet run (3 real sshd, 47 addresses on 127.0.0.x ports nothing listens on, to stay
/// cheap) with two failure causes: a pin that contradicts a host's key, and unreachable hosts.
#[test]
fn a_fifty_host_fleet_run_is_one_line_per_failure_cause_with_its_hosts() {
    use crate::remote_common::{key_paths, specs, tmp_dir, Report};
    use hostage_tests::sshd::{free_port, SshdFleet};

    let fleet = SshdFleet::start(3);
    fleet.trust_all_in_known_hosts();
    let mut args = specs(&fleet);
    for octet in 100..147 {
        let address = std::net::Ipv4Addr::new(127, 0, 0, octet);
        args.push(format!("root@{address}:{}", free_port(address)));
    }
    assert_eq!(args.len(), 50);
    args.extend(key_paths(&fleet));
    // The third host is pinned to the first one's key: refused.
    args.extend([
        "--expect-fingerprint".to_owned(),
        format!("{}={}", fleet.hosts[2].spec(), fleet.hosts[0].fingerprint()),
    ]);
    let run = |extra: &[&str]| {
        std::process::Command::new(hostage_tests::hostage_bin())
            .arg("fetch")
            .args(extra)
            .arg("--ssh-config")
            .arg(fleet.ssh_config())
            .arg("--known-hosts")
            .arg(fleet.known_hosts())
            .arg("--pins")
            .arg(fleet.dir.path().join("pins"))
            .args(&args)
            .env("TMPDIR", tmp_dir(&fleet))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", terminal(&out));
    assert_fits_a_screen(&out);
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in [
        (r"[A-Za-z0-9_.-]+@127\.0\.0\.\d+(:\d+)?", "[USER@HOST]"),
        (r"127\.0\.0\.\d+", "[ADDRESS]"),
        (r"port \d+", "port [PORT]"),
        (r"SHA256:[A-Za-z0-9+/]{43}", "[FINGERPRINT]"),
    ] {
        settings.add_filter(pattern, replacement);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("scale_fetch_50_hosts_two_causes", terminal(&out)));

    // -v: one line per host; --json: one record per host and the causes grouped.
    let verbose = run(&["-v"]);
    let verbose_hosts = stdout(&verbose)
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("FAIL ") || l.starts_with("REFUSED"))
        .count();
    assert_eq!(verbose_hosts, 50, "{}", terminal(&verbose));
    let report = Report::of(&run(&["--json"]));
    assert_eq!(report.hosts.len(), 50, "{}", report.text);
    assert_eq!(report.summary["ok"], 2, "{}", report.text);
    let causes = report.summary["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 2, "{}", report.text);
    assert_eq!(causes[0]["kind"], "unreachable");
    assert_eq!(causes[0]["count"], 47);
    assert_eq!(causes[1]["kind"], "pin-mismatch");
    assert_eq!(causes[1]["hosts"][0], fleet.hosts[2].spec());
}
