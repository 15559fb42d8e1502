//! Leaving PGP behind (issue 15): `hostage rekey` on files the real sops 3.11 encrypted to a
//! throwaway GnuPG key made in the test. A pgp key that leaves the rule never blocks a re-key;
//! one that stays blocks only a rotation (hostage cannot encrypt to it), with a refusal that
//! names it; a re-wrap keeps its stanza byte for byte.

use std::path::{Path, PathBuf};
use std::process::Output;

use hostage_tests::{GPG, GPGCONF};

use crate::rekey_support::{action_of, json, sops_type, stderr, stdout, Repo};

/// A throwaway GnuPG home with one key (no passphrase); its agent is stopped on drop.
struct GnuPg {
    home: tempfile::TempDir,
    fingerprint: String,
}

impl GnuPg {
    fn new() -> Self {
        let gpg = hostage_tests::require(GPG);
        // Short path: gpg-agent's socket lives in the home and socket paths are limited.
        let home = tempfile::Builder::new().prefix("gpg").tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = duct::cmd(&gpg, args)
                .env("GNUPGHOME", home.path())
                .stdout_capture()
                .stderr_capture()
                .unchecked()
                .run()
                .unwrap();
            assert!(
                out.status.success(),
                "gpg {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        run(&[
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            "hostage test <test@invalid>",
            "default",
            "default",
            "never",
        ]);
        let listing = run(&["--batch", "--with-colons", "--list-keys"]);
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|f| f.len() == 40))
            .expect("gpg lists the new key's fingerprint")
            .to_owned();
        Self { home, fingerprint }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }
}

impl Drop for GnuPg {
    fn drop(&mut self) {
        if let Some(gpgconf) = hostage_tests::find(GPGCONF) {
            let _ = duct::cmd!(gpgconf, "--kill", "all")
                .env("GNUPGHOME", self.home.path())
                .stdout_null()
                .stderr_null()
                .unchecked()
                .run();
        }
    }
}

/// Runs the real sops in `repo` with `GNUPGHOME` and the age keys of `keys` (none: pgp only).
fn sops(repo: &Repo, gnupg: &GnuPg, args: &[&str], keys: &[&str]) -> Output {
    let secrets: Vec<&str> = keys.iter().map(|k| repo.keys[*k].secret.as_str()).collect();
    let mut command = duct::cmd(hostage_tests::sops(), args)
        .dir(repo.dir.path())
        .env("HOME", repo.dir.path())
        .env("XDG_CONFIG_HOME", repo.dir.path())
        .env("GNUPGHOME", gnupg.home())
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY_CMD")
        .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
        .env_remove("SOPS_CONFIG")
        .stdout_capture()
        .stderr_capture()
        .stdin_null()
        .unchecked();
    command = if secrets.is_empty() {
        command.env_remove("SOPS_AGE_KEY")
    } else {
        command.env("SOPS_AGE_KEY", secrets.join("\n"))
    };
    command.run().unwrap()
}

fn encrypt(repo: &Repo, gnupg: &GnuPg, relative: &str, plain: &[u8]) {
    repo.write(relative, plain);
    let kind = sops_type(relative);
    let out = sops(
        repo,
        gnupg,
        &[
            "encrypt",
            "-i",
            "--input-type",
            kind,
            "--output-type",
            kind,
            relative,
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "sops encrypt {relative}: {}",
        stderr(&out)
    );
}

/// sops' plaintext of `relative` with the age keys of `keys` (none: only the GnuPG key).
fn decrypt(repo: &Repo, gnupg: &GnuPg, relative: &str, keys: &[&str]) -> Option<Vec<u8>> {
    let kind = sops_type(relative);
    let out = sops(
        repo,
        gnupg,
        &[
            "decrypt",
            "--input-type",
            kind,
            "--output-type",
            kind,
            relative,
        ],
        keys,
    );
    out.status.success().then_some(out.stdout)
}

const FILES: &[(&str, &[u8])] = &[
    (
        "secrets/db.yaml",
        b"db:\n    password: hunter2\nlist:\n    - one\n    - two\n",
    ),
    ("secrets/tls.json", b"{\"key\": {\"pem\": \"k\"}}\n"),
    ("secrets/app.env", b"API_KEY=abc\n"),
    ("secrets/blob.bin", b"\x00\x01binary\xff"),
];

/// A repo whose files sops encrypted with `config` (`$pgp` is the GnuPG key's fingerprint),
/// the config text, and each file's plaintext as sops decrypts it with the GnuPG key and the age
/// keys `with` (none: the GnuPG key alone).
fn repo_with(config: &str, gnupg: &GnuPg, with: &[&str]) -> (Repo, String, Vec<Vec<u8>>) {
    let repo = Repo::new(&["old", "gone", "new"]);
    let config = config.replace("$pgp", &gnupg.fingerprint);
    repo.config(&config);
    for (path, plain) in FILES {
        encrypt(&repo, gnupg, path, plain);
    }
    let plaintexts = FILES
        .iter()
        .map(|(path, _)| {
            decrypt(&repo, gnupg, path, with)
                .unwrap_or_else(|| panic!("the GnuPG key opens {path} before the re-key"))
        })
        .collect();
    (repo, config, plaintexts)
}

fn files_of(repo: &Repo) -> Vec<PathBuf> {
    FILES.iter().map(|(p, _)| repo.path(p)).collect()
}

#[test]
fn age_and_pgp_to_age_only_rotates_and_the_pgp_key_and_removed_age_key_are_refused() {
    let gnupg = GnuPg::new();
    let (repo, _, plaintexts) = repo_with(
        "{keys}\ncreation_rules:\n  - pgp: $pgp\n    age: [*old, *gone]\n",
        &gnupg,
        &[],
    );
    // The migration: pgp leaves, `gone` leaves, `new` joins.
    repo.config("{keys}\ncreation_rules:\n  - age: [*old, *new]\n");

    let out = repo.hostage(&["--json", "rekey"], &["old"]);
    assert!(
        out.status.success(),
        "hostage rekey: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let doc = json(&out);
    for (path, _) in FILES {
        assert_eq!(action_of(&doc, path), "rotate", "{doc:#}");
    }
    let pgp_name = format!("pgp {}", gnupg.fingerprint);
    let exposed: Vec<&str> = doc["exposure"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["recipient"].as_str())
        .collect();
    assert!(
        exposed.contains(&pgp_name.as_str()),
        "the leaving pgp key is in the exposure report: {exposed:?}"
    );
    for path in files_of(&repo) {
        let text = fs_err::read_to_string(&path).unwrap();
        assert!(!text.contains("PGP MESSAGE"), "{}", path.display());
        assert!(!text.contains(&gnupg.fingerprint), "{}", path.display());
    }
    for ((path, _), plain) in FILES.iter().zip(&plaintexts) {
        assert_eq!(
            decrypt(&repo, &gnupg, path, &["new"]).as_ref(),
            Some(plain),
            "{path}"
        );
        assert_eq!(
            decrypt(&repo, &gnupg, path, &["old"]).as_ref(),
            Some(plain),
            "{path}"
        );
        assert_eq!(decrypt(&repo, &gnupg, path, &["gone"]), None, "{path}");
        assert_eq!(
            decrypt(&repo, &gnupg, path, &[]),
            None,
            "{path}: the GnuPG key must no longer open it"
        );
        assert!(repo.sops_says_up_to_date(path, "new"), "{path}");
    }
}

#[test]
fn a_staying_pgp_key_refuses_rotation_by_name_and_nothing_is_written() {
    let gnupg = GnuPg::new();
    let (repo, config, _) = repo_with(
        "{keys}\ncreation_rules:\n  - pgp: $pgp\n    age: [*old, *gone]\n",
        &gnupg,
        &[],
    );
    repo.config(&config.replace("[*old, *gone]", "[*old]"));
    let before = repo.snapshot();
    let out = repo.hostage(&["rekey"], &["old"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains(&format!("pgp key {}", gnupg.fingerprint)),
        "{all}"
    );
    assert!(all.contains("stays"), "{all}");
    assert!(all.contains("sops"), "the refusal says what to do: {all}");
    assert_eq!(repo.snapshot(), before, "a refused re-key wrote something");
}

#[test]
fn adding_age_to_a_file_that_keeps_its_pgp_key_keeps_the_pgp_stanza_byte_for_byte() {
    let gnupg = GnuPg::new();
    let (repo, config, plaintexts) = repo_with(
        "{keys}\ncreation_rules:\n  - pgp: $pgp\n    age: [*old]\n",
        &gnupg,
        &[],
    );
    let before: Vec<String> = files_of(&repo)
        .iter()
        .map(|p| fs_err::read_to_string(p).unwrap())
        .collect();
    repo.config(&config.replace("[*old]", "[*old, *new]"));
    let out = repo.hostage(&["rekey"], &["old"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for (((path, _), plain), old_text) in FILES.iter().zip(&plaintexts).zip(&before) {
        let text = fs_err::read_to_string(repo.path(path)).unwrap();
        let pgp_of = |t: &str| {
            let start = t.find("-----BEGIN PGP MESSAGE").unwrap();
            let end = t.find("-----END PGP MESSAGE-----").unwrap();
            t[start..end].to_owned()
        };
        assert_eq!(
            pgp_of(&text),
            pgp_of(old_text),
            "{path}: pgp stanza changed"
        );
        assert_eq!(
            decrypt(&repo, &gnupg, path, &["new"]).as_ref(),
            Some(plain),
            "{path}"
        );
        assert_eq!(
            decrypt(&repo, &gnupg, path, &[]).as_ref(),
            Some(plain),
            "{path}: the GnuPG key still opens it"
        );
    }
}

#[test]
fn adding_age_to_a_pgp_only_file_is_refused_clearly_and_nothing_is_written() {
    let gnupg = GnuPg::new();
    let (repo, config, _) = repo_with("{keys}\ncreation_rules:\n  - pgp: $pgp\n", &gnupg, &[]);
    repo.config(&config.replace("  - pgp: ", "  - age: [*new]\n    pgp: "));
    let before = repo.snapshot();
    let out = repo.hostage(&["rekey"], &["new", "old"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("hostage cannot open this file"), "{all}");
    assert!(all.contains(&format!("pgp {}", gnupg.fingerprint)), "{all}");
    assert!(all.contains("sops updatekeys"), "{all}");
    assert_eq!(repo.snapshot(), before, "a refused re-key wrote something");
}

#[test]
fn a_leaving_pgp_key_goes_without_rotation_under_no_rotate() {
    let gnupg = GnuPg::new();
    let (repo, _, plaintexts) = repo_with(
        "{keys}\ncreation_rules:\n  - pgp: $pgp\n    age: [*old]\n",
        &gnupg,
        &[],
    );
    repo.config("{keys}\ncreation_rules:\n  - age: [*old]\n");
    let out = repo.hostage(&["--json", "rekey", "--no-rotate"], &["old"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    for ((path, _), plain) in FILES.iter().zip(&plaintexts) {
        assert_eq!(action_of(&doc, path), "rewrap", "{doc:#}");
        let text = fs_err::read_to_string(repo.path(path)).unwrap();
        assert!(!text.contains("PGP MESSAGE"), "{path}");
        assert_eq!(
            decrypt(&repo, &gnupg, path, &["old"]).as_ref(),
            Some(plain),
            "{path}"
        );
        assert!(repo.sops_says_up_to_date(path, "old"), "{path}");
    }
}

#[test]
fn a_pgp_key_leaves_a_shamir_key_group_and_the_file_is_rotated() {
    let gnupg = GnuPg::new();
    let (repo, _, plaintexts) = repo_with(
        "{keys}\ncreation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - pgp: [$pgp]\n        age: [*old]\n      - age: [*gone]\n",
        &gnupg,
        &["gone"],
    );
    let before = fs_err::read_to_string(repo.path(FILES[0].0)).unwrap();
    assert!(
        before.contains("- pgp:"),
        "sops opens the group with its pgp key:\n{before}"
    );
    repo.config(
        "{keys}\ncreation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [*old]\n      - age: [*gone, *new]\n",
    );
    let out = repo.hostage(&["--json", "rekey"], &["old", "gone"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    for ((path, _), plain) in FILES.iter().zip(&plaintexts) {
        assert_eq!(action_of(&doc, path), "rotate", "{doc:#}");
        let text = fs_err::read_to_string(repo.path(path)).unwrap();
        assert!(!text.contains("PGP MESSAGE"), "{path}:\n{text}");
        assert_eq!(
            decrypt(&repo, &gnupg, path, &["old", "new"]).as_ref(),
            Some(plain),
            "{path}"
        );
        assert_eq!(
            decrypt(&repo, &gnupg, path, &["new"]),
            None,
            "{path}: one group (and the GnuPG key) is not enough"
        );
        assert!(repo.sops_says_up_to_date(path, "new"), "{path}");
    }
}
