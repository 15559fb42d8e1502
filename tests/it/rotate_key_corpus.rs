//! `hostage rotate-key NAME --new-recipient age1…` on every real-world `.sops.yaml` of the corpus,
//! for one recipient the file names (an anchor or a header label) that is not a host: the
//! recipients are replaced by keys of ours (`workflow_corpus::with_our_keys`), one sops file is
//! made per rule sops can encrypt for, and the real sops 3.11 judges. A pass: `.sops.yaml` equals
//! the original with only that key replaced, the old key is nowhere in the repo, the new key
//! opens exactly the files the old one did (same plaintext) and the old key none, `sops
//! updatekeys` finds every file up to date, the other files keep every byte, and a re-run changes
//! no byte. A refusal must exit 1 with a reason and change nothing. No sshd: a named non-host key
//! has nothing deployed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hostage_sops::rules::SopsConfig;

use crate::rekey_support::{stderr, stdout, Repo};
use crate::sops_support::Key;
use crate::workflow_corpus::{plain_for, sample_for, with_our_keys};

/// What happened over the corpus.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    files_rekeyed: usize,
    refused: Vec<String>,
    skipped: Vec<String>,
}

/// The name to rotate: the first recipient the file names (anchor or header label) that is one
/// of our keys, preferring one some sampled file is encrypted to (so re-keying is judged too);
/// `workstation` and `infrastructure` are left out (they are the inventory's own keys, with their
/// own cases in `workflow_rotate_key`).
fn pick_name(config: &SopsConfig, ours: &[String], sampled: &[usize]) -> Option<(String, String)> {
    let names = config.recipient_names(&[]);
    let candidates: Vec<(String, String)> = names
        .iter()
        .filter(|n| !matches!(n.name.as_str(), "workstation" | "infrastructure"))
        .filter(|n| ours.contains(&n.recipient))
        .map(|n| (n.name.clone(), n.recipient.clone()))
        .collect();
    let in_sampled = |recipient: &str| {
        sampled.iter().any(|i| {
            config.rules()[*i]
                .key_groups
                .iter()
                .flatten()
                .any(|e| e.recipient == recipient)
        })
    };
    candidates
        .iter()
        .find(|(_, r)| in_sampled(r))
        .or(candidates.first())
        .cloned()
}

#[test]
#[ignore = "needs the real-world corpus: cargo xtask test runs it when present"]
fn corpus_rotate_key_replaces_one_named_key_in_every_real_sops_yaml_or_is_refused_with_a_reason() {
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    for source in hostage_tests::corpus_sops_yaml_files() {
        let label = source.file_name().unwrap().to_string_lossy().into_owned();
        let original = fs_err::read_to_string(&source).unwrap();
        if hostage_tests::uses_cloud_kms(&original) {
            tally.skipped.push(format!("{label}: cloud KMS keys"));
            continue;
        }
        let mut repo = Repo::new(&[]);
        let (text, mapping) = with_our_keys(&original, &mut repo);
        let ours: Vec<String> = mapping.values().map(|k| k.recipient.clone()).collect();
        repo.write(".sops.yaml", text.as_bytes());
        let Ok(config) = SopsConfig::parse(&repo.path(".sops.yaml"), &text) else {
            tally
                .skipped
                .push(format!("{label}: invalid after key substitution"));
            continue;
        };
        // One sops file per rule whose every recipient is one of our keys.
        let mut files: Vec<String> = Vec::new();
        let mut sampled: Vec<usize> = Vec::new();
        for rule in config.rules() {
            let regex = rule.path_regex.as_deref().unwrap_or("misc/secret\\.yaml");
            let age_only = rule.other_keys.iter().all(Vec::is_empty)
                && !rule.key_groups.is_empty()
                && rule
                    .key_groups
                    .iter()
                    .all(|g| !g.is_empty() && g.iter().all(|e| ours.contains(&e.recipient)));
            if let (true, Some(path)) = (age_only, sample_for(&config, rule.index, regex)) {
                if !files.contains(&path) {
                    files.push(path);
                    sampled.push(rule.index);
                }
            }
        }
        let Some((name, old)) = pick_name(&config, &ours, &sampled) else {
            tally
                .skipped
                .push(format!("{label}: names no non-host age recipient"));
            continue;
        };
        for path in &files {
            repo.encrypt(path, plain_for(path));
        }
        let old_key = repo
            .keys
            .iter()
            .find(|(_, k)| k.recipient == old)
            .map(|(n, _)| n.clone())
            .unwrap();
        // The inventory's workstation: another of the file's keys (or one of ours it lacks).
        let workstation = ours
            .iter()
            .find(|r| **r != old)
            .cloned()
            .unwrap_or_else(|| {
                let spare = Key::generate();
                repo.keys.insert("spare".into(), spare.clone());
                spare.recipient
            });
        let inventory_dir = tempfile::tempdir().unwrap();
        let inventory = inventory_dir.path().join("fleet.yaml");
        fs_err::write(
            &inventory,
            format!(
                "secrets_repo: {}\nrecipients:\n  workstation:\n    recipient: {workstation}\nhosts: {{}}\n",
                repo.dir.path().display()
            ),
        )
        .unwrap();
        let opened: BTreeMap<String, Vec<u8>> = files
            .iter()
            .filter_map(|f| repo.decrypt(f, &old_key).map(|p| (f.clone(), p)))
            .collect();
        let new = Key::generate();
        let before = repo.snapshot();
        let inventory_before = fs_err::read_to_string(&inventory).unwrap();
        let keys: Vec<String> = repo.keys.keys().cloned().collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let inventory_arg = inventory.display().to_string();
        let args = [
            "--inventory",
            inventory_arg.as_str(),
            "rotate-key",
            name.as_str(),
            "--new-recipient",
            new.recipient.as_str(),
        ];
        let out = repo.hostage(&args, &keys);
        if !out.status.success() {
            let reason = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{label}: {name}: {reason}");
            assert!(
                reason.contains("cannot") || reason.contains("refuse"),
                "{label}: {name}: an unclear refusal: {reason}"
            );
            let now = repo.snapshot();
            let changed: Vec<&PathBuf> = now
                .keys()
                .chain(before.keys())
                .filter(|p| now.get(*p) != before.get(*p))
                .collect();
            assert!(
                changed.is_empty(),
                "{label}: {name}: a refusal changed {changed:?}: {reason}\n{}",
                String::from_utf8_lossy(&now[&PathBuf::from(".sops.yaml")])
            );
            assert_eq!(
                fs_err::read_to_string(&inventory).unwrap(),
                inventory_before
            );
            tally.refused.push(format!(
                "{label}: {name}: {}",
                reason.trim().replace('\n', " / ")
            ));
            continue;
        }
        repo.keys.insert("new".into(), new.clone());
        let after = repo.snapshot();
        // .sops.yaml: only the key replaced (same length: every other byte kept).
        let config_after = fs_err::read_to_string(repo.path(".sops.yaml")).unwrap();
        assert_eq!(
            config_after,
            text.replace(&old, &new.recipient),
            "{label}: {name}: rotate-key changed .sops.yaml beyond the key\n{}",
            stdout(&out)
        );
        for (path, bytes) in &after {
            assert!(
                !String::from_utf8_lossy(bytes).contains(&old),
                "{label}: {name}: the old key is still in {}",
                path.display()
            );
        }
        for file in &files {
            let plain = repo.decrypt(file, "new");
            assert_eq!(
                plain.as_ref(),
                opened.get(file),
                "{label}: {name}: the new key does not open exactly what the old one did ({file})"
            );
            assert!(
                repo.decrypt(file, &old_key).is_none() || !opened.contains_key(file),
                "{label}: {name}: the old key still opens {file}"
            );
            let kind = crate::rekey_support::sops_type(file);
            let all: Vec<String> = repo.keys.keys().cloned().collect();
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            let check = repo.sops(&["updatekeys", "-y", "--input-type", kind, file], &all);
            assert!(
                stderr(&check).contains("already up to date"),
                "{label}: {name}: sops updatekeys would change {file}: {}",
                stderr(&check)
            );
            if !opened.contains_key(file) {
                assert_eq!(
                    after.get(&PathBuf::from(file)),
                    before.get(&PathBuf::from(file)),
                    "{label}: {name}: {file} changed though the key was not on it"
                );
            }
        }
        tally.files_rekeyed += opened.len();
        // Again: not one byte.
        let out = repo.hostage(&args, &keys);
        assert!(
            out.status.success(),
            "{label}: {name} re-run: {}",
            stderr(&out)
        );
        assert_eq!(
            repo.snapshot(),
            after,
            "{label}: {name}: a re-run changed the repo"
        );
        tally.passed += 1;
    }
    eprintln!(
        "corpus rotate-key: {} passed ({} files re-keyed), {} refused, {} file(s) skipped, {:.0} s",
        tally.passed,
        tally.files_rekeyed,
        tally.refused.len(),
        tally.skipped.len(),
        started.elapsed().as_secs_f64()
    );
    for line in tally.refused.iter().chain(&tally.skipped) {
        eprintln!("  {line}");
    }
    assert!(tally.passed > 0, "nothing passed: {tally:#?}");
}
