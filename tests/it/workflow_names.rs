//! The one naming model in every reader: a repo whose `.sops.yaml` names no host (literal keys,
//! no anchors, no header labels) and names hosts only through `pubkeys/<name>.pub`. The re-key
//! plan (`rekey --dry-run`) and the exposure reports of `rotate` and `offboard` must use those
//! names, judged on real sshd hosts and files made by sops 3.11.

use crate::rekey_support::{json, stderr, stdout};
use crate::workflow_support::{key_of_ssh, world_with, World};

/// `.sops.yaml` with literal keys only: nothing in the file names anybody.
fn unnamed_config(w: &World) -> String {
    format!(
        "creation_rules:\n  - path_regex: secrets/workstation-only\\.json$\n    age: {ws}\n  - path_regex: .*\n    age: {ws},{infra}\n",
        ws = w.repo.recipient("workstation"),
        infra = w.repo.recipient("infrastructure"),
    )
}

/// The names a JSON list of recipients (`{ "name", "recipient" }`) gives `recipient`.
fn names_of(list: &serde_json::Value, recipient: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["recipient"] == recipient)
        .map(|r| r["name"].as_str().unwrap_or("<unnamed>").to_owned())
        .collect()
}

/// The names a report's exposure list gives `recipient`.
fn exposed_names(doc: &serde_json::Value, recipient: &str) -> Vec<String> {
    let exposed: Vec<&serde_json::Value> = doc["exposure"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["recipient"])
        .collect();
    names_of(&serde_json::json!(exposed), recipient)
}

#[test]
fn exposure_reports_and_the_rekey_plan_name_hosts_a_repo_names_only_through_pubkeys() {
    let mut w = world_with(&[false, false]);
    let config = unnamed_config(&w);
    w.repo.write(".sops.yaml", config.as_bytes());
    for host in ["h0", "h1"] {
        let out = w.hostage(&["onboard", host, "--trust-new"]);
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    }
    let text = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    assert!(
        !text.contains("&h0") && !text.contains("# h0") && !text.contains("h0:"),
        "the file names nobody, so onboarding must not name h0 in it:\n{text}"
    );
    assert!(w.repo.path("pubkeys/h0.pub").exists());
    assert!(w.repo.path("pubkeys/h1.pub").exists());

    // rotate: h0 is rebuilt; the exposure names the old key as h0's, not by its stale pubkeys/ name.
    let index = w.rebuild(0);
    let new_host = &w.fleet.hosts[index];
    let new_h0 = key_of_ssh(&new_host.host_key.as_ref().unwrap().private).recipient;
    let fingerprint = new_host.fingerprint();
    let out = w.hostage(&[
        "--json",
        "rotate",
        "h0",
        "--expect-fingerprint",
        &fingerprint,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(
        exposed_names(&doc, w.repo.recipient("h0")),
        ["h0's old key"],
        "{doc:#}"
    );

    // offboard: h1's exposure names it.
    let inventory = w.inventory.display().to_string();
    let out = w.repo.hostage(
        &["--inventory", &inventory, "--json", "offboard", "h1"],
        &["workstation"],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(
        exposed_names(&doc, w.repo.recipient("h1")),
        ["h1"],
        "{doc:#}"
    );

    // rekey: the operator takes h0 off its rule by hand; the plan names the key pubkeys/h0.pub
    // (now the new one) holds.
    let text = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    let edited = text.replace(&format!(",{new_h0}"), "");
    assert_ne!(edited, text, "h0 is not a comma-string part:\n{text}");
    w.repo.write(".sops.yaml", edited.as_bytes());
    let out = w
        .repo
        .hostage(&["--json", "rekey", "--dry-run"], &["workstation"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    let removed: Vec<String> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["groups"].as_array().cloned().unwrap_or_default())
        .flat_map(|g| names_of(&g["removed"], &new_h0))
        .collect();
    assert!(!removed.is_empty(), "no file loses h0: {doc:#}");
    assert!(removed.iter().all(|n| n == "h0"), "{removed:?}\n{doc:#}");
    // rekey's exposure entries are flat: `{ "name", "recipient", "files" }`.
    assert_eq!(names_of(&doc["exposure"], &new_h0), ["h0"], "{doc:#}");
}

/// A host already gone from the inventory (no pin: a resumed run, or an entry removed by hand)
/// in a repo that names hosts only through `pubkeys/`: offboard finds its key there, takes it
/// out of `.sops.yaml` and re-keys the files it could read.
#[test]
fn offboarding_a_host_without_an_inventory_entry_finds_its_key_in_pubkeys() {
    let w = world_with(&[false, false]);
    w.repo.write(".sops.yaml", unnamed_config(&w).as_bytes());
    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let before_h1 = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let h1 = w.repo.recipient("h1").to_owned();
    assert!(w.repo.decrypt("secrets/hosts/h1/api.json", "h1").is_some());
    let fleet = w.fleet_inventory();
    let without = fleet.inventory.without_host(fleet.text(), "h1").unwrap();
    fs_err::write(&w.inventory, without).unwrap();

    let inventory = w.inventory.display().to_string();
    let out = w.repo.hostage(
        &["--inventory", &inventory, "--json", "offboard", "h1"],
        &["workstation"],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["recipient"], h1.as_str(), "{doc:#}");
    let text = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    assert_eq!(text, before_h1, "h1 left behind in .sops.yaml");
    assert!(w.repo.decrypt("secrets/hosts/h1/api.json", "h1").is_none());
    assert!(w
        .repo
        .sops_says_up_to_date("secrets/hosts/h1/api.json", "workstation"));
    assert!(!w.repo.path("pubkeys/h1.pub").exists());
    let after = w.state();
    let out = w.repo.hostage(
        &["--inventory", &inventory, "offboard", "h1"],
        &["workstation"],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(w.state(), after, "a re-run changed something");
}

/// abl030's layout: no `keys:` list, recipients anchored inside the rules that list them.
#[test]
fn a_repo_anchoring_keys_inside_its_rules_gets_the_host_anchored_there_and_back_on_offboard() {
    let w = world_with(&[false, false]);
    let ws = w.repo.recipient("workstation").to_owned();
    let infra = w.repo.recipient("infrastructure").to_owned();
    let original = format!(
        "creation_rules:\n  - path_regex: secrets/workstation-only\\.json$\n    key_groups:\n      - age:\n          - &workstation {ws} # the operator\n  - path_regex: .*\n    key_groups:\n      - age:\n          - {ws} # the operator\n          - {infra} # shared\n"
    );
    w.repo.write(".sops.yaml", original.as_bytes());
    let out = w.hostage(&["onboard", "h0", "--trust-new", "--dry-run"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("add anchor &h0"), "{}", stdout(&out));
    let out = w.hostage(&["onboard", "h0", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let h0 = w.repo.recipient("h0").to_owned();
    let text = fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap();
    // h0's own rule (infrastructure left out: keep_infrastructure is false in this world), above
    // the rule that caught its path, with the anchor where this file puts anchors.
    assert_eq!(
        text,
        format!(
            "creation_rules:\n  - path_regex: secrets/workstation-only\\.json$\n    key_groups:\n      - age:\n          - &workstation {ws} # the operator\n  - path_regex: secrets/hosts/h0/.*\n    key_groups:\n      - age:\n          - {ws} # the operator\n          - &h0 {h0}\n  - path_regex: .*\n    key_groups:\n      - age:\n          - {ws} # the operator\n          - {infra} # shared\n"
        )
    );
    assert!(w.repo.decrypt("secrets/hosts/h0/db.yaml", "h0").is_some());
    let after = w.state();
    let out = w.hostage(&["onboard", "h0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.state(), after, "a re-run changed something");

    let inventory = w.inventory.display().to_string();
    let out = w.repo.hostage(
        &["--inventory", &inventory, "offboard", "h0"],
        &["workstation"],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        fs_err::read_to_string(w.repo.path(".sops.yaml")).unwrap(),
        original
    );
    assert!(w.repo.decrypt("secrets/hosts/h0/db.yaml", "h0").is_none());
    assert!(w
        .repo
        .sops_says_up_to_date("secrets/hosts/h0/db.yaml", "workstation"));
}

/// onboard's clone check asks the one naming model: a key `pubkeys/` names for another host.
#[test]
fn onboarding_a_host_whose_key_pubkeys_names_for_another_host_is_refused_as_a_clone() {
    let w = world_with(&[false, false]);
    let key = fs_err::read_to_string(w.fleet.hosts[1].public_key_file()).unwrap();
    w.repo.write("pubkeys/old-db.pub", key.as_bytes());
    let before = w.state();
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("already named old-db") && stderr(&out).contains("clone"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.state(), before, "a refusal changed something");
}
