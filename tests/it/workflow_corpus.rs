//! The workflows on every real-world `.sops.yaml` of the corpus: each file's recipients are
//! replaced by keys of ours (same length, so every other byte is the file's own), one sops file is
//! made per rule sops can encrypt for, and two real sshd hosts are onboarded: one whose secret
//! path is an existing rule's, one whose path needs a new rule above the rule that catches it.
//! sops judges: the host decrypts its file, `sops updatekeys` has nothing to do, a re-run
//! changes no byte, files outside the edited rules keep every byte. Then each onboarded host is
//! rebuilt (a spare sshd with a new ed25519 host key stands in for it) and rotated: the old
//! recipient is left nowhere, the new one opens exactly the files the old one did, `.sops.yaml`
//! differs from before only by that key, and a re-run changes no byte. A refusal must say why and
//! change nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use hostage_sops::rules::{example_path, SopsConfig};
use hostage_tests::sshd::SshdFleet;

use crate::rekey_support::{stderr, stdout, Repo};
use crate::sops_support::Key;
use crate::workflow_support::key_of_ssh;

/// What happened to one corpus file.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    refused: Vec<String>,
    rotations_passed: usize,
    rotations_refused: Vec<String>,
    skipped_rules: usize,
    skipped_files: Vec<String>,
}

/// `original` with our keys in place of theirs: every distinct X25519 recipient gets a generated
/// key of the same length (so every other byte is the file's own), added to `repo.keys` as `k0`,
/// `k1`…; returns the text and the mapping from their recipient to our key.
pub(crate) fn with_our_keys(original: &str, repo: &mut Repo) -> (String, BTreeMap<String, Key>) {
    let mut text = original.to_owned();
    let mut mapping = BTreeMap::new();
    for word in original.split(|c: char| !c.is_ascii_alphanumeric()) {
        if word.starts_with("age1") && word.len() == 62 && !mapping.contains_key(word) {
            mapping.insert(word.to_owned(), Key::generate());
        }
    }
    for (index, (theirs, ours)) in mapping.iter().enumerate() {
        text = text.replace(theirs.as_str(), &ours.recipient);
        repo.keys.insert(format!("k{index}"), ours.clone());
    }
    (text, mapping)
}

/// Plaintext in the format sops reads from `path`'s extension.
pub(crate) fn plain_for(path: &str) -> &'static [u8] {
    match crate::rekey_support::sops_type(path) {
        "yaml" => b"password: hunter2\n",
        "json" => b"{\"password\": \"hunter2\"}\n",
        "dotenv" => b"PASSWORD=hunter2\n",
        "ini" => b"[db]\npassword = hunter2\n",
        _ => b"hunter2\n",
    }
}

/// A sample path for `regex` that sops sends to exactly that rule, or `None`.
pub(crate) fn sample_for(config: &SopsConfig, index: usize, regex: &str) -> Option<String> {
    let path = example_path(regex)?;
    if path.starts_with('/') || path.ends_with('/') || path == ".sops.yaml" || path.is_empty() {
        return None;
    }
    let (picked, _) = config.rule_for_sops_path(&path).ok()?;
    (picked == index).then_some(path)
}

#[test]
#[ignore = "needs the real-world corpus: cargo xtask test runs it when present"]
fn corpus_onboarding_onto_every_real_sops_yaml_passes_or_is_refused_with_a_reason() {
    // Hosts 0 and 1 are gnomeregan and stormwind as onboarded; 2 and 3 the same hosts rebuilt
    // with new host keys. Every corpus file shares them: each gets a fresh repo and inventory.
    let fleet = SshdFleet::start(4);
    let host_keys: Vec<Key> = fleet
        .hosts
        .iter()
        .map(|h| key_of_ssh(&h.host_key.as_ref().unwrap().private))
        .collect();
    let mut tally = Tally::default();
    for source in hostage_tests::corpus_sops_yaml_files() {
        let label = source.file_name().unwrap().to_string_lossy().into_owned();
        let original = fs_err::read_to_string(&source).unwrap();
        if hostage_tests::uses_cloud_kms(&original) {
            tally.skipped_files.push(format!("{label}: cloud KMS keys"));
            continue;
        }
        let mut repo = Repo::new(&[]);
        let (text, mapping) = with_our_keys(&original, &mut repo);
        let Some(workstation) = mapping.values().next().map(|k| k.recipient.clone()) else {
            tally
                .skipped_files
                .push(format!("{label}: no age recipient"));
            continue;
        };
        repo.write(".sops.yaml", text.as_bytes());
        let Ok(config) = SopsConfig::parse(&repo.path(".sops.yaml"), &text) else {
            tally
                .skipped_files
                .push(format!("{label}: invalid after key substitution"));
            continue;
        };
        // One sops file per rule sops can encrypt for.
        let mut samples: Vec<(usize, String, String)> = Vec::new();
        for rule in config.rules() {
            // A rule without path_regex catches every file sops gets to it.
            let regex = rule.path_regex.as_deref().unwrap_or("misc/secret\\.yaml");
            let age_only = rule.other_keys.iter().all(Vec::is_empty)
                && !rule.key_groups.is_empty()
                && rule.key_groups.iter().all(|g| {
                    !g.is_empty()
                        && g.iter()
                            .all(|e| mapping.values().any(|k| k.recipient == e.recipient))
                });
            let sample = sample_for(&config, rule.index, regex);
            match (age_only, sample) {
                (true, Some(path)) if !samples.iter().any(|(_, p, _)| p == &path) => {
                    samples.push((
                        rule.index,
                        path,
                        rule.path_regex.clone().unwrap_or_else(|| regex.to_owned()),
                    ))
                }
                _ => tally.skipped_rules += 1,
            }
        }
        let Some((_, existing_file, existing_regex)) = samples.first().cloned() else {
            tally
                .skipped_files
                .push(format!("{label}: no rule sops can encrypt for"));
            continue;
        };
        let mut sops_files: Vec<String> = samples.iter().map(|(_, p, _)| p.clone()).collect();
        for path in &sops_files {
            repo.encrypt(path, plain_for(path));
        }
        // Host 1 reads the first sampled rule; host 2 a new directory beside that rule's file.
        let dir = existing_file
            .rfind('/')
            .map_or(String::new(), |end| format!("{}/", &existing_file[..end]));
        let new_regex = format!("{}stormwind/.*", regex::escape(&dir));
        let new_file = format!("{dir}stormwind/db.yaml");
        let caught = config.rule_for_sops_path(&new_file).ok().map(|(i, _)| i);
        let new_file_ok = caught.is_some_and(|i| samples.iter().any(|(r, _, _)| *r == i));
        if new_file_ok {
            repo.encrypt(&new_file, plain_for(&new_file));
            sops_files.push(new_file.clone());
        }
        let inventory_dir = tempfile::tempdir().unwrap();
        let inventory = inventory_dir.path().join("fleet.yaml");
        let mut hosts = String::new();
        for (i, (name, secret)) in [("gnomeregan", &existing_regex), ("stormwind", &new_regex)]
            .into_iter()
            .enumerate()
        {
            let host = &fleet.hosts[i];
            hosts.push_str(&format!(
                "  {name}:\n    address: {}\n    port: {}\n    host_key_path: {}\n    secrets: [{}]\n",
                host.address,
                host.port,
                host.public_key_file().display(),
                serde_json::to_string(secret).unwrap()
            ));
        }
        fs_err::write(
            &inventory,
            format!(
                "secrets_repo: {}\nrecipients:\n  workstation:\n    recipient: {workstation}\nhosts:\n{hosts}",
                repo.dir.path().display()
            ),
        )
        .unwrap();
        let hostage = |repo: &Repo, args: &[&str]| {
            let names: Vec<String> = repo.keys.keys().cloned().collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut all = vec!["--inventory".to_owned(), inventory.display().to_string()];
            all.extend(args.iter().map(|a| (*a).to_owned()));
            all.extend([
                "--ssh-config".to_owned(),
                fleet.ssh_config().display().to_string(),
                "--known-hosts".to_owned(),
                fleet.known_hosts().display().to_string(),
            ]);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            repo.hostage(&refs, &names)
        };
        for (i, (host, file)) in [("gnomeregan", &existing_file), ("stormwind", &new_file)]
            .into_iter()
            .enumerate()
        {
            if host == "stormwind" && !new_file_ok {
                tally.skipped_rules += 1;
                continue;
            }
            let before = repo.snapshot();
            let config_before = SopsConfig::parse(
                &repo.path(".sops.yaml"),
                &fs_err::read_to_string(repo.path(".sops.yaml")).unwrap(),
            )
            .unwrap();
            let inventory_before = fs_err::read_to_string(&inventory).unwrap();
            let out = hostage(&repo, &["onboard", host, "--trust-new"]);
            if !out.status.success() {
                let reason = stderr(&out);
                assert_eq!(out.status.code(), Some(1), "{label}: {host}: {reason}");
                assert!(
                    reason.contains("cannot") || reason.contains("refuse"),
                    "{label}: {host}: an unclear refusal: {reason}"
                );
                assert!(
                    !reason.contains("EditUnverified") && !reason.contains("bug"),
                    "{label}: {host}: {reason}"
                );
                assert_eq!(
                    repo.snapshot(),
                    before,
                    "{label}: {host}: a refusal changed the repo"
                );
                assert_eq!(
                    fs_err::read_to_string(&inventory).unwrap(),
                    inventory_before
                );
                tally.refused.push(format!(
                    "{label}: {host}: {}",
                    reason.trim().replace('\n', " / ")
                ));
                continue;
            }
            // sops: the host opens its file; every file is up to date with .sops.yaml.
            let host_key = &host_keys[i];
            repo.keys.insert(host.to_owned(), host_key.clone());
            assert!(
                repo.decrypt(file, host).is_some(),
                "{label}: {host} cannot decrypt {file}\n{}",
                stdout(&out)
            );
            let after = repo.snapshot();
            let config_after = SopsConfig::parse(
                &repo.path(".sops.yaml"),
                &fs_err::read_to_string(repo.path(".sops.yaml")).unwrap(),
            )
            .unwrap();
            for (path, bytes) in &before {
                let rel = path.to_string_lossy();
                if rel == ".sops.yaml" || rel.starts_with("pubkeys/") {
                    continue;
                }
                let kind = crate::rekey_support::sops_type(&rel);
                let all: Vec<String> = repo.keys.keys().cloned().collect();
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                let check = repo.sops(&["updatekeys", "-y", "--input-type", kind, &rel], &all);
                assert!(
                    stderr(&check).contains("already up to date"),
                    "{label}: {host}: sops updatekeys would change {rel}: {}",
                    stderr(&check)
                );
                let changed_rule = config_before
                    .rule_for_sops_path(&rel)
                    .map(|(_, r)| r.key_groups.clone())
                    .ok()
                    != config_after
                        .rule_for_sops_path(&rel)
                        .map(|(_, r)| r.key_groups.clone())
                        .ok();
                if !changed_rule {
                    assert_eq!(
                        after.get(path),
                        Some(bytes),
                        "{label}: {host}: {rel} changed though its rule did not"
                    );
                }
            }
            // Again: not one byte.
            let out = hostage(&repo, &["onboard", host]);
            assert!(
                out.status.success(),
                "{label}: {host} re-run: {}",
                stderr(&out)
            );
            assert_eq!(
                repo.snapshot(),
                after,
                "{label}: {host}: a re-run changed the repo"
            );
            tally.passed += 1;

            // The host is rebuilt: same name, the spare sshd's new host key.
            let rebuilt = Rebuilt {
                label: &label,
                host,
                old: &fleet.hosts[i],
                new: &fleet.hosts[i + 2],
                new_key: key_of_ssh(&fleet.hosts[i + 2].host_key.as_ref().unwrap().private),
                inventory: &inventory,
                sops_files: &sops_files,
            };
            match rotate_and_judge(&mut repo, &rebuilt, &hostage) {
                Ok(()) => tally.rotations_passed += 1,
                Err(reason) => tally
                    .rotations_refused
                    .push(format!("{label}: {host}: {reason}")),
            }
        }
    }
    eprintln!(
        "corpus onboarding: {} passed, {} refused, {} rule(s) skipped, {} file(s) skipped; \
         rotation: {} passed, {} refused",
        tally.passed,
        tally.refused.len(),
        tally.skipped_rules,
        tally.skipped_files.len(),
        tally.rotations_passed,
        tally.rotations_refused.len(),
    );
    for line in tally
        .refused
        .iter()
        .chain(&tally.rotations_refused)
        .chain(&tally.skipped_files)
    {
        eprintln!("  {line}");
    }
    assert!(tally.passed > 0, "nothing passed: {tally:#?}");
    assert!(tally.rotations_passed > 0, "no rotation passed: {tally:#?}");
}

/// One onboarded host of one corpus repo, rebuilt on another sshd with a new host key.
struct Rebuilt<'a> {
    label: &'a str,
    host: &'a str,
    old: &'a hostage_tests::sshd::Sshd,
    new: &'a hostage_tests::sshd::Sshd,
    new_key: Key,
    inventory: &'a Path,
    sops_files: &'a [String],
}

/// The repo's files other than `.sops.yaml`, `pubkeys/` and the sops files: bytes no rotation may
/// touch.
fn bystanders(snapshot: &BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<PathBuf, Vec<u8>> {
    snapshot
        .iter()
        .filter(|(path, _)| {
            let rel = path.to_string_lossy();
            rel != ".sops.yaml" && !rel.starts_with("pubkeys/")
        })
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect()
}

/// Points the inventory at the rebuilt host, runs `hostage rotate`, and judges the result with
/// sops. `Err` is a refusal (exit 1 with a reason, nothing changed); anything wrong panics.
fn rotate_and_judge(
    repo: &mut Repo,
    rebuilt: &Rebuilt<'_>,
    hostage: &dyn Fn(&Repo, &[&str]) -> Output,
) -> Result<(), String> {
    let Rebuilt {
        label,
        host,
        old,
        new,
        ..
    } = rebuilt;
    let old_recipient = repo.recipient(host).to_owned();
    let new_recipient = rebuilt.new_key.recipient.clone();
    // What the old identity opens today, as sops sees it.
    let opened: BTreeMap<&str, Vec<u8>> = rebuilt
        .sops_files
        .iter()
        .filter_map(|f| repo.decrypt(f, host).map(|plain| (f.as_str(), plain)))
        .collect();
    assert!(
        !opened.is_empty(),
        "{label}: {host} opens nothing before the rotation"
    );
    let inventory_text = fs_err::read_to_string(rebuilt.inventory).unwrap();
    let moved = inventory_text
        .replace(
            &format!("address: {}\n    port: {}\n", old.address, old.port),
            &format!("address: {}\n    port: {}\n", new.address, new.port),
        )
        .replace(
            &old.public_key_file().display().to_string(),
            &new.public_key_file().display().to_string(),
        );
    assert_ne!(
        moved, inventory_text,
        "{label}: {host}: the inventory did not move"
    );
    fs_err::write(rebuilt.inventory, &moved).unwrap();
    let before = repo.snapshot();
    let config_text = fs_err::read_to_string(repo.path(".sops.yaml")).unwrap();

    let fingerprint = new.fingerprint();
    let out = hostage(
        repo,
        &["rotate", host, "--expect-fingerprint", &fingerprint],
    );
    if !out.status.success() {
        let reason = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{label}: {host} rotate: {reason}"
        );
        assert!(
            reason.contains("cannot") || reason.contains("refuse"),
            "{label}: {host}: an unclear rotate refusal: {reason}"
        );
        assert_eq!(
            repo.snapshot(),
            before,
            "{label}: {host}: a refused rotate changed the repo"
        );
        return Err(reason.trim().replace('\n', " / "));
    }
    let rotated_name = format!("{host}-rotated");
    repo.keys
        .insert(rotated_name.clone(), rebuilt.new_key.clone());
    let after = repo.snapshot();

    // .sops.yaml: exactly the old key replaced by the new one (same length: every other byte kept).
    let config_after = fs_err::read_to_string(repo.path(".sops.yaml")).unwrap();
    assert_eq!(
        config_after,
        config_text.replace(&old_recipient, &new_recipient),
        "{label}: {host}: rotate changed .sops.yaml beyond the recipient"
    );
    // The old recipient is nowhere in the repo.
    for (path, bytes) in &after {
        assert!(
            !String::from_utf8_lossy(bytes).contains(&old_recipient),
            "{label}: {host}: the old recipient is still in {}",
            path.display()
        );
    }
    // Files the old key could not open, and everything outside the edit, keep every byte.
    for file in rebuilt.sops_files {
        let path = PathBuf::from(file);
        if !opened.contains_key(file.as_str()) {
            assert_eq!(
                after.get(&path),
                before.get(&path),
                "{label}: {host}: rotate changed {file}, which {host} could not open"
            );
        }
    }
    let mut untouched = bystanders(&before);
    let mut untouched_after = bystanders(&after);
    for file in opened.keys() {
        untouched.remove(Path::new(file));
        untouched_after.remove(Path::new(file));
    }
    assert_eq!(
        untouched_after, untouched,
        "{label}: {host}: rotate changed other files"
    );
    // sops: the new key opens exactly what the old one did, with the same plaintext; the old key
    // opens nothing; every file is up to date with .sops.yaml.
    let all: Vec<String> = repo.keys.keys().cloned().collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    for file in rebuilt.sops_files {
        assert_eq!(
            repo.decrypt(file, &rotated_name).as_ref(),
            opened.get(file.as_str()),
            "{label}: {host}: the new key does not open exactly what the old one did ({file})"
        );
        if opened.contains_key(file.as_str()) {
            assert!(
                repo.decrypt(file, host).is_none(),
                "{label}: {host}: the old key still opens {file}"
            );
        }
        let kind = crate::rekey_support::sops_type(file);
        let check = repo.sops(&["updatekeys", "-y", "--input-type", kind, file], &all);
        assert!(
            stderr(&check).contains("already up to date"),
            "{label}: {host}: sops updatekeys would change {file} after rotate: {}",
            stderr(&check)
        );
    }
    // Again: the pin is the new key, nothing to do.
    let inventory_after = fs_err::read_to_string(rebuilt.inventory).unwrap();
    let out = hostage(repo, &["rotate", host]);
    assert!(
        out.status.success(),
        "{label}: {host} rotate re-run: {}",
        stderr(&out)
    );
    assert_eq!(
        repo.snapshot(),
        after,
        "{label}: {host}: a rotate re-run changed the repo"
    );
    assert_eq!(
        fs_err::read_to_string(rebuilt.inventory).unwrap(),
        inventory_after
    );
    Ok(())
}
