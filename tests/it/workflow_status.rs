//! `hostage status`, end to end.

use crate::rekey_support::{json, stderr, stdout};
use crate::workflow_support::world;

#[test]
fn status_shows_drift_until_every_host_is_onboarded_then_who_reads_what() {
    let w = world();
    let status = |online: bool| {
        let mut args = vec!["--json", "status"];
        if online {
            args.push("--online");
        }
        // status takes no ssh options unless online; pass them only then.
        let mut all = vec!["--inventory".to_owned(), w.inventory.display().to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        if online {
            all.extend([
                "--ssh-config".to_owned(),
                w.fleet.ssh_config().display().to_string(),
                "--known-hosts".to_owned(),
                w.fleet.known_hosts().display().to_string(),
            ]);
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        w.repo.hostage(&refs, &[])
    };
    let out = status(false);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc = json(&out);
    let drift = doc["drift"].to_string();
    assert!(drift.contains("h0 has no pin"), "{drift}");
    assert!(
        drift.contains("h1 cannot read secrets/hosts/h1/api.json"),
        "{drift}"
    );
    // Typed for scripts: kind, subject and the command that fixes it.
    assert_eq!(doc["format_version"], 1, "{doc:#}");
    let items = doc["drift"].as_array().unwrap();
    assert!(
        items.iter().any(|d| d["kind"] == "no-pin"
            && d["subject"] == "h0"
            && d["fix"] == "hostage onboard h0"),
        "{drift}"
    );
    assert!(
        items
            .iter()
            .any(|d| d["kind"] == "host-cannot-read" && d["subject"] == "h1"),
        "{drift}"
    );

    for host in ["h0", "h1"] {
        let out = w.hostage(&["onboard", host, "--trust-new"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = status(true);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let doc = json(&out);
    let readers = |path: &str| -> Vec<String> {
        doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap()["readers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(readers("secrets/hosts/h0/db.yaml"), ["workstation", "h0"]);
    assert_eq!(readers("secrets/hosts/h1/api.json"), ["workstation", "h1"]);
    // The catch-all still has the shared key, and h0 receives it.
    assert_eq!(
        readers("secrets/common/smtp.yaml"),
        ["workstation", "infrastructure", "h0"]
    );
    assert_eq!(readers("secrets/workstation-only.json"), ["workstation"]);
    for host in doc["hosts"].as_array().unwrap() {
        assert!(
            host["online"].as_str().unwrap().starts_with("ok"),
            "{doc:#}"
        );
    }
}
