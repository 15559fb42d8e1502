//! Crash safety and the repo lock: a `hostage rekey` killed mid-run leaves every file old or new,
//! the next run finishes the job (and still reports what the killed run's removals exposed), and
//! two runs cannot interleave.

use std::path::Path;
use std::time::{Duration, Instant};

use hostage_recipients::{AgeIdentity, IdentitySet, IdentitySource};
use hostage_sops::SopsFile;

use crate::rekey_support::{json, stderr, stdout, Repo};

const FILES: usize = 400;
const BEFORE: &str = "{keys}\ncreation_rules:\n  - age: [*admin, *web01]\n";
const AFTER: &str = "{keys}\ncreation_rules:\n  - age: [*admin, *web02]\n";

fn name(i: usize) -> String {
    format!("secrets/f{i:03}.yaml")
}

/// A repo of `FILES` sops files for admin + web01 (copies of one sops-made file: re-keying them
/// costs the same), with `.sops.yaml` already edited to replace web01 by web02.
fn repo() -> Repo {
    let repo = Repo::new(&["admin", "web01", "web02"]);
    repo.config(BEFORE);
    let mut plain = String::new();
    for v in 0..40 {
        plain.push_str(&format!("key_{v:02}: value-{v}-{}\n", "x".repeat(v)));
    }
    repo.encrypt("seed.yaml", plain.as_bytes());
    let seed = fs_err::read(repo.path("seed.yaml")).unwrap();
    fs_err::remove_file(repo.path("seed.yaml")).unwrap();
    for i in 0..FILES {
        repo.write(&name(i), &seed);
    }
    repo.config(AFTER);
    repo
}

fn changed(repo: &Repo, original: &[u8]) -> usize {
    (0..FILES)
        .filter(|i| fs_err::read(repo.path(&name(*i))).is_ok_and(|b| b != original))
        .count()
}

/// Kills a run once `at_least` files are re-keyed; returns the original bytes.
fn kill_mid_run(repo: &Repo, at_least: usize) -> Vec<u8> {
    let original = fs_err::read(repo.path(&name(0))).unwrap();
    let handle = repo.spawn_hostage(&["rekey", "--jobs", "1", "--batch-size", "2"], &["admin"]);
    let start = Instant::now();
    while changed(repo, &original) < at_least {
        if let Some(output) = handle.try_wait().unwrap() {
            panic!(
                "the run finished before it could be killed (make FILES larger): {}",
                stderr(output)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run makes no progress"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    handle.kill().unwrap();
    original
}

/// Every file is either byte-identical to the original or fully re-keyed (recipients admin +
/// web02, data key opens with admin, MAC verifies). Returns (old, new).
fn old_or_new(repo: &Repo, original: &[u8]) -> (usize, usize) {
    let admin = IdentitySet::from_identities(
        IdentitySource::KeyVariable,
        vec![AgeIdentity::parse(&repo.keys["admin"].secret).unwrap()],
    );
    let wanted = vec![
        repo.recipient("admin").to_owned(),
        repo.recipient("web02").to_owned(),
    ];
    let (mut old, mut new) = (0, 0);
    for i in 0..FILES {
        let bytes = fs_err::read(repo.path(&name(i))).unwrap();
        if bytes == original {
            old += 1;
            continue;
        }
        let file =
            SopsFile::parse(&bytes, None).unwrap_or_else(|e| panic!("{} is torn: {e}", name(i)));
        let mut have: Vec<String> = file.metadata().groups[0]
            .age
            .iter()
            .map(|e| e.recipient.clone())
            .collect();
        have.sort();
        let mut want = wanted.clone();
        want.sort();
        assert_eq!(
            have,
            want,
            "{} has neither the old nor the new recipients",
            name(i)
        );
        let key = file.data_key(&admin, &mut ()).unwrap();
        file.verify_mac(&key)
            .unwrap_or_else(|e| panic!("{}: {e}", name(i)));
        new += 1;
    }
    (old, new)
}

fn temp_files(dir: &Path) -> Vec<String> {
    fs_err::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".hostage-tmp."))
        .collect()
}

fn killed_run_is_finished_by_the_next(at_least: usize) {
    let repo = repo();
    let original = kill_mid_run(&repo, at_least);
    let (old, new) = old_or_new(&repo, &original);
    assert!(old > 0 && new >= at_least, "old {old}, new {new}");
    assert!(
        repo.path(".git/hostage/rekey-journal.jsonl").exists(),
        "the killed run left no journal"
    );

    let out = repo.hostage(&["--json", "rekey"], &["admin"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("finishing an interrupted run"),
        "{}",
        stderr(&out)
    );
    let doc = json(&out);
    assert_eq!(doc["resumed"], true);
    assert_eq!(doc["summary"]["written"], old, "{}", doc["summary"]);
    // The exposure report still covers the files the killed run already rotated.
    assert_eq!(doc["exposure"][0]["name"], "web01");
    assert_eq!(doc["exposure"][0]["files"].as_array().unwrap().len(), FILES);

    assert_eq!(old_or_new(&repo, &original), (0, FILES));
    assert!(
        temp_files(&repo.path("secrets")).is_empty(),
        "{:?}",
        temp_files(&repo.path("secrets"))
    );
    assert!(
        !repo.path(".git/hostage/rekey-journal.jsonl").exists(),
        "the journal outlived a complete run"
    );
    let check = repo.hostage(&["rekey", "--check"], &[]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    for i in [0, FILES / 2, FILES - 1] {
        assert!(repo.sops_says_up_to_date(&name(i), "admin"));
    }
}

#[test]
fn a_run_killed_after_its_first_batch_is_finished_by_the_next_run() {
    killed_run_is_finished_by_the_next(1);
}

#[test]
fn a_run_killed_half_way_is_finished_by_the_next_run() {
    killed_run_is_finished_by_the_next(FILES / 2);
}

#[test]
fn a_second_run_is_refused_while_the_repo_lock_is_held() {
    let repo = Repo::new(&["admin", "web01"]);
    repo.config("{keys}\ncreation_rules:\n  - age: *admin\n");
    repo.encrypt("s.yaml", b"a: 1\n");
    repo.config("{keys}\ncreation_rules:\n  - age: [*admin, *web01]\n");
    let before = repo.snapshot();
    let state = hostage_rekey::state_dir(repo.dir.path());
    let lock = hostage_rekey::RepoLock::acquire(&state).unwrap();
    let out = repo.hostage(&["rekey"], &["admin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("another `hostage rekey` is running in this repo"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!("pid {}", std::process::id())),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.snapshot(), before);
    // Read-only runs do not need the lock.
    assert_eq!(
        repo.hostage(&["rekey", "--check"], &[]).status.code(),
        Some(3)
    );
    drop(lock);
    assert_eq!(repo.hostage(&["rekey"], &["admin"]).status.code(), Some(0));
}
