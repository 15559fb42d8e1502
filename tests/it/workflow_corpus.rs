//! The workflows on every real-world `.sops.yaml` of the corpus: each file's recipients are
//! replaced by keys of ours (same length, so every other byte is the file's own), one sops file is
//! made per rule sops can encrypt for, and two real sshd hosts are onboarded: one whose secret
//! path is an existing rule's, one whose path needs a new rule above the rule that catches it.
//! sops judges: the host decrypts its file, `sops updatekeys` has nothing to do, a re-run
//! changes no byte, files outside the edited rules keep every byte. A refusal must say why and
//! change nothing.

use std::collections::BTreeMap;

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
    skipped_rules: usize,
    skipped_files: Vec<String>,
}

/// Plaintext in the format sops reads from `path`'s extension.
fn plain_for(path: &str) -> &'static [u8] {
    match crate::rekey_support::sops_type(path) {
        "yaml" => b"password: hunter2\n",
        "json" => b"{\"password\": \"hunter2\"}\n",
        "dotenv" => b"PASSWORD=hunter2\n",
        "ini" => b"[db]\npassword = hunter2\n",
        _ => b"hunter2\n",
    }
}

/// A sample path for `regex` that sops sends to exactly that rule, or `None`.
fn sample_for(config: &SopsConfig, index: usize, regex: &str) -> Option<String> {
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
    let fleet = SshdFleet::start(2);
    let host_keys: Vec<Key> = fleet
        .hosts
        .iter()
        .map(|h| key_of_ssh(&h.host_key.as_ref().unwrap().private))
        .collect();
    let mut tally = Tally::default();
    for source in hostage_tests::corpus_sops_yaml_files() {
        let label = source.file_name().unwrap().to_string_lossy().into_owned();
        let original = fs_err::read_to_string(&source).unwrap();
        if ["kms:", "azure_keyvault", "hc_vault"]
            .iter()
            .any(|k| original.contains(k))
        {
            tally.skipped_files.push(format!("{label}: cloud KMS keys"));
            continue;
        }
        // Our keys in place of theirs: every distinct X25519 recipient gets one of ours.
        let mut repo = Repo::new(&[]);
        let mut text = original.clone();
        let mut mapping = BTreeMap::new();
        for word in original.split(|c: char| !c.is_ascii_alphanumeric()) {
            if word.starts_with("age1") && word.len() == 62 && !mapping.contains_key(word) {
                let key = Key::generate();
                mapping.insert(word.to_owned(), key);
            }
        }
        for (index, (theirs, ours)) in mapping.iter().enumerate() {
            text = text.replace(theirs.as_str(), &ours.recipient);
            repo.keys.insert(format!("k{index}"), ours.clone());
        }
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
        for (_, path, _) in &samples {
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
                let changed_rule = config
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
        }
    }
    eprintln!(
        "corpus onboarding: {} passed, {} refused, {} rule(s) skipped, {} file(s) skipped",
        tally.passed,
        tally.refused.len(),
        tally.skipped_rules,
        tally.skipped_files.len()
    );
    for line in tally.refused.iter().chain(&tally.skipped_files) {
        eprintln!("  {line}");
    }
    assert!(tally.passed > 0, "nothing passed: {tally:#?}");
}
