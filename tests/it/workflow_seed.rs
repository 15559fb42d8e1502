//! Conformance on the seed layout, built exactly as in the shared `seed-layout.md`: `.sops.yaml`
//! naming recipients only by header labels, flat comma `age:` strings in the order workstation,
//! infrastructure, host, and the `secrets/.*` catch-all for the workstation alone. Real sshd hosts
//! on loopback, files made by the real sops 3.11, and sops the judge at every step: it decrypts
//! exactly with the intended identities, and `sops updatekeys` has nothing to do.

use std::collections::BTreeMap;

use hostage_tests::sshd::SshdFleet;
use hostage_tests::SshKeyPair;

use crate::rekey_support::{json, stderr, stdout, Repo};
use crate::workflow_support::{key_of_ssh, rebuild_host};

/// The seed repo's files: a host's own, another host's storage file (gnomeregan reads it too), a
/// file of that host that is not storage (workstation only), the workstation's, and a file of a
/// host that has no rule yet (stormwind, workstation only until it is onboarded).
pub(crate) const FILES: &[&str] = &[
    "secrets/host/gnomeregan/wifi.sops.yaml",
    "secrets/host/ironforge/media-storage.sops.yaml",
    "secrets/host/ironforge/borg.sops.yaml",
    "secrets/workstation/git.sops.yaml",
    "secrets/host/stormwind/db.sops.yaml",
];

/// The seed's `.sops.yaml` before gnomeregan is a recipient (its rules already exist, for the
/// workstation and infrastructure).
fn seed_before(ws: &str, infra: &str) -> String {
    format!(
        "# SOPS configuration file\n#\n# Public AGE keys:\n# workstation:    {ws}\n# infrastructure: {infra}\n\
         creation_rules:\n  - path_regex: secrets/host/gnomeregan/.*\n    age: {ws},{infra}\n\
         \x20 - path_regex: secrets/host/ironforge/.*-storage\\.sops\\.yaml\n    age: {ws},{infra}\n\
         \x20 - path_regex: secrets/.*\n    age: {ws}\n"
    )
}

/// The seed's `.sops.yaml` with gnomeregan added by hand: its header label and `,age1…` on both
/// of its rules.
fn seed_with_gnomeregan(ws: &str, infra: &str, gnomeregan: &str) -> String {
    format!(
        "# SOPS configuration file\n#\n# Public AGE keys:\n# workstation:    {ws}\n# infrastructure: {infra}\n# gnomeregan:     {gnomeregan}\n\
         creation_rules:\n  - path_regex: secrets/host/gnomeregan/.*\n    age: {ws},{infra},{gnomeregan}\n\
         \x20 - path_regex: secrets/host/ironforge/.*-storage\\.sops\\.yaml\n    age: {ws},{infra},{gnomeregan}\n\
         \x20 - path_regex: secrets/.*\n    age: {ws}\n"
    )
}

/// A seed repo, a fleet of two hosts (gnomeregan, stormwind) and an inventory naming them.
pub(crate) struct Seed {
    pub(crate) fleet: SshdFleet,
    pub(crate) repo: Repo,
    pub(crate) inventory: std::path::PathBuf,
    pub(crate) _infra: SshKeyPair,
}

pub(crate) fn seed() -> Seed {
    let fleet = SshdFleet::start(2);
    let mut repo = Repo::new(&["workstation"]);
    let infra = SshKeyPair::generate(fleet.dir.path(), "id_infrastructure", "", None);
    repo.keys
        .insert("infrastructure".into(), key_of_ssh(&infra.private));
    for (i, name) in ["gnomeregan", "stormwind"].iter().enumerate() {
        let key = key_of_ssh(&fleet.hosts[i].host_key.as_ref().unwrap().private);
        repo.keys.insert((*name).into(), key);
    }
    let (ws, infra_recipient) = (
        repo.recipient("workstation").to_owned(),
        repo.recipient("infrastructure").to_owned(),
    );
    repo.write(".sops.yaml", seed_before(&ws, &infra_recipient).as_bytes());
    for file in FILES {
        repo.encrypt(file, b"password: hunter2\nnested:\n  token: abc\n");
    }
    let mut hosts = String::new();
    let secrets = [
        "      - secrets/host/gnomeregan/.*\n      - secrets/host/ironforge/.*-storage\\.sops\\.yaml\n",
        "      - secrets/host/stormwind/.*\n",
    ];
    for (i, name) in ["gnomeregan", "stormwind"].iter().enumerate() {
        let host = &fleet.hosts[i];
        hosts.push_str(&format!(
            "  {name}:\n    address: {}\n    port: {}\n    host_key_path: {}\n    secrets:\n{}",
            host.address,
            host.port,
            host.public_key_file().display(),
            secrets[i]
        ));
    }
    let inventory = fleet.dir.path().join("fleet.yaml");
    fs_err::write(
        &inventory,
        format!(
            "secrets_repo: {}\nrecipients:\n  workstation:\n    recipient: {ws}\n  infrastructure:\n    recipient: {infra_recipient}\n    private_key_file: {}\nhosts:\n{hosts}",
            repo.dir.path().display(),
            infra.private.display(),
        ),
    )
    .unwrap();
    Seed {
        fleet,
        repo,
        inventory,
        _infra: infra,
    }
}

impl Seed {
    pub(crate) fn hostage(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec![
            "--inventory".to_owned(),
            self.inventory.display().to_string(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        if !matches!(args.first(), Some(&"status")) {
            all.extend([
                "--ssh-config".to_owned(),
                self.fleet.ssh_config().display().to_string(),
                "--known-hosts".to_owned(),
                self.fleet.known_hosts().display().to_string(),
            ]);
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.repo.hostage(&refs, &["workstation"])
    }

    pub(crate) fn config(&self) -> String {
        fs_err::read_to_string(self.repo.path(".sops.yaml")).unwrap()
    }

    /// Asserts that sops opens every file with exactly the identities `readers` gives it, and
    /// that `sops updatekeys` finds every file up to date with `.sops.yaml`.
    pub(crate) fn assert_sops_agrees(
        &self,
        readers: &dyn Fn(&str) -> Vec<&'static str>,
        step: &str,
    ) {
        let names: Vec<String> = self.repo.keys.keys().cloned().collect();
        for file in FILES {
            let expected = readers(file);
            for name in &names {
                assert_eq!(
                    self.repo.decrypt(file, name).is_some(),
                    expected.contains(&name.as_str()),
                    "{step}: sops decrypting {file} with {name}'s identity (intended: {expected:?})"
                );
            }
            assert!(
                self.repo.sops_says_up_to_date(file, "workstation"),
                "{step}: sops updatekeys would change {file}"
            );
        }
    }
}

/// Who reads each file once gnomeregan is onboarded.
pub(crate) fn with_gnomeregan(file: &str) -> Vec<&'static str> {
    if file.contains("/gnomeregan/") || file.ends_with("-storage.sops.yaml") {
        vec!["workstation", "infrastructure", "gnomeregan"]
    } else {
        vec!["workstation"]
    }
}

#[test]
fn seed_layout_onboard_rerun_status_new_rule_rotate_and_restore_from_a_seed_backup_each_leave_sops_in_agreement(
) {
    let mut s = seed();
    let ws = s.repo.recipient("workstation").to_owned();
    let infra = s.repo.recipient("infrastructure").to_owned();
    s.assert_sops_agrees(
        &|file| {
            if file.contains("/gnomeregan/") || file.ends_with("-storage.sops.yaml") {
                vec!["workstation", "infrastructure"]
            } else {
                vec!["workstation"]
            }
        },
        "the seed as built",
    );

    // 1. A host that has rules: the seed's hand edit exactly, said in the file's terms.
    let out = s.hostage(&["onboard", "gnomeregan", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let gnomeregan = s.repo.recipient("gnomeregan").to_owned();
    assert_eq!(s.config(), seed_with_gnomeregan(&ws, &infra, &gnomeregan));
    // Applying prints its steps as progress on stderr.
    let said = stderr(&out);
    for line in [
        "add header label gnomeregan",
        "add gnomeregan to rule secrets/host/gnomeregan/.*",
        "add gnomeregan to rule secrets/host/ironforge/.*-storage\\.sops\\.yaml",
    ] {
        assert!(said.contains(line), "{said}");
    }
    assert!(!said.contains('&'), "no anchor was written: {said}");
    s.assert_sops_agrees(&with_gnomeregan, "after onboarding gnomeregan");

    // 2. Again: not one byte changes.
    let before = s.repo.snapshot();
    let inventory = fs_err::read_to_string(&s.inventory).unwrap();
    let out = s.hostage(&["onboard", "gnomeregan"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(s.repo.snapshot(), before, "a re-run changed the repo");
    assert_eq!(fs_err::read_to_string(&s.inventory).unwrap(), inventory);

    // 3. status: gnomeregan is onboarded, named by its header label, and nothing about it
    // drifts (stormwind, not onboarded yet, does).
    let out = s.hostage(&["--json", "status"]);
    let doc = json(&out);
    let host = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "gnomeregan")
        .unwrap();
    assert_eq!(host["in_sops_config"], true, "{doc:#}");
    let drift = doc["drift"].as_array().unwrap();
    assert!(drift.iter().all(|d| d["subject"] == "stormwind"), "{doc:#}");
    // Every recipient is named (the header labels), and infrastructure reads gnomeregan's files.
    let named: Vec<&str> = doc["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[0].as_str().unwrap())
        .collect();
    for name in ["workstation", "infrastructure", "gnomeregan"] {
        assert!(named.contains(&name), "{doc:#}");
    }
    let file = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "secrets/host/gnomeregan/wifi.sops.yaml")
        .unwrap();
    assert_eq!(
        file["readers"],
        serde_json::json!(["workstation", "infrastructure", "gnomeregan"]),
        "{doc:#}"
    );
    // status HOST: gnomeregan alone agrees with everything (exit 0).
    let out = s.hostage(&["status", "gnomeregan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("1 of 1 host(s) onboarded"),
        "{}",
        stdout(&out)
    );

    // 4. A host whose path has no rule: one above `secrets/.*`, from its keys plus the host.
    let out = s.hostage(&["onboard", "stormwind", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("add rule secrets/host/stormwind/.* above secrets/.*"),
        "{}",
        stderr(&out)
    );
    let stormwind = s.repo.recipient("stormwind").to_owned();
    let config = s.config();
    let expected_rule =
        format!("  - path_regex: secrets/host/stormwind/.*\n    age: {ws},{stormwind}\n  - path_regex: secrets/.*\n");
    assert!(config.contains(&expected_rule), "{config}");
    assert!(
        config.contains(&format!("# stormwind:      {stormwind}\n")),
        "{config}"
    );
    let with_both = |file: &str| {
        if file.contains("/stormwind/") {
            vec!["workstation", "stormwind"]
        } else {
            with_gnomeregan(file)
        }
    };
    s.assert_sops_agrees(&with_both, "after onboarding stormwind");

    // The seed's backup of stormwind's identity, made the seed's way with sops: a YAML file
    // whose one key `data` holds the OpenSSH private key as a literal block.
    let backup = "secrets/host/stormwind/ssh_host_ed25519_key.sops";
    let stormwind_private = s.fleet.hosts[1].public_key_file().with_extension("");
    let private_text = fs_err::read_to_string(&stormwind_private).unwrap();
    let block: String = private_text.lines().map(|l| format!("    {l}\n")).collect();
    s.repo.write(backup, format!("data: |\n{block}").as_bytes());
    let out = s.repo.sops(
        &[
            "encrypt",
            "-i",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            backup,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // 5. gnomeregan is rebuilt with a new host key: rotate leaves the old recipient nowhere
    // (the repo's `.sops` YAML backup is walked like every other file).
    let index = rebuild_host(&mut s.fleet, &s.inventory, 0);
    let new_host = &s.fleet.hosts[index];
    let new_key = key_of_ssh(&new_host.host_key.as_ref().unwrap().private);
    let fingerprint = new_host.fingerprint();
    let old_key = s.repo.keys.insert("gnomeregan".into(), new_key.clone());
    s.repo
        .keys
        .insert("gnomeregan-old".into(), old_key.unwrap());
    let out = s.hostage(&["rotate", "gnomeregan", "--expect-fingerprint", &fingerprint]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("replace the key of header label gnomeregan"),
        "{}",
        stderr(&out)
    );
    let config = s.config();
    assert!(!config.contains(&gnomeregan), "{config}");
    assert_eq!(
        config
            .matches(&format!("# gnomeregan:     {}\n", new_key.recipient))
            .count(),
        1,
        "{config}"
    );
    let mut counts = BTreeMap::new();
    for line in config
        .lines()
        .filter(|l| l.trim_start().starts_with("age:"))
    {
        *counts
            .entry(line.matches(&new_key.recipient).count())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.get(&1), Some(&2), "{config}");
    s.assert_sops_agrees(&with_both, "after rotating gnomeregan");
    // sops guesses JSON from `.sops`; the seed passes the YAML type by hand.
    let out = s.repo.sops(
        &["updatekeys", "-y", "--input-type", "yaml", backup],
        &["workstation"],
    );
    assert!(
        stderr(&out).contains("already up to date"),
        "{}",
        stderr(&out)
    );

    // 6. stormwind is rebuilt and came up with a fresh key: its identity comes back from the
    // seed-format backup; the repo does not change.
    let index = rebuild_host(&mut s.fleet, &s.inventory, 1);
    let new_host = &s.fleet.hosts[index];
    let rebuilt = new_host.fingerprint();
    let rebuilt_private = new_host.public_key_file().with_extension("");
    assert_ne!(
        fs_err::read_to_string(&rebuilt_private).unwrap(),
        private_text
    );
    let before = s.repo.snapshot();
    let out = s.hostage(&[
        "--json",
        "rotate",
        "stormwind",
        "--from-backup",
        "--expect-fingerprint",
        &rebuilt,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(json(&out)["action"], "restored", "{}", stdout(&out));
    let restored = key_of_ssh(&rebuilt_private);
    assert_eq!(
        restored.recipient, stormwind,
        "the restored key is stormwind's identity"
    );
    assert_eq!(s.repo.snapshot(), before, "restoring changed the repo");
    s.assert_sops_agrees(&with_both, "after restoring stormwind");

    // 7. stormwind is decommissioned from the inventory but still in the rules: status says so,
    // naming it by its header label.
    let text = fs_err::read_to_string(&s.inventory).unwrap();
    let cut = text.find("  stormwind:\n").unwrap();
    fs_err::write(&s.inventory, &text[..cut]).unwrap();
    let out = s.hostage(&["--json", "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc = json(&out);
    let unknown: Vec<&serde_json::Value> = doc["drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "unknown-recipient")
        .collect();
    assert_eq!(unknown.len(), 1, "{doc:#}");
    assert_eq!(unknown[0]["subject"], "stormwind", "{doc:#}");
}
