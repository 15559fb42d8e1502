//! `hostage identities FILE…`: which recipients of a sops file the operator holds an identity for.

use hostage_tests::run_hostage;

use crate::sops_support::{Key, Sops};

fn check(path: &std::path::Path, secrets: &[&Key]) -> (Option<i32>, serde_json::Value) {
    let joined = secrets
        .iter()
        .map(|k| k.secret.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let file = path.display().to_string();
    let home = path.parent().unwrap().display().to_string();
    let mut envs = vec![("HOME", home.as_str())];
    if !secrets.is_empty() {
        envs.push(("SOPS_AGE_KEY", joined.as_str()));
    }
    let out = run_hostage(&["--json", "identities", &file], None, &envs);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), json)
}

#[test]
fn a_file_is_decryptable_when_one_of_its_recipients_has_an_identity() {
    let sops = Sops::new();
    let (operator, host) = (Key::generate(), Key::generate());
    let encrypted = sops.encrypt("yaml", b"password: hunter2\n", &[vec![&operator, &host]]);
    let path = sops.path("secret.yaml");
    fs_err::write(&path, encrypted).unwrap();

    let (code, json) = check(&path, &[&host]);
    assert_eq!(code, Some(0), "{json}");
    let file = &json["files"][0];
    assert_eq!(file["decryptable"], true);
    let marked: Vec<_> = file["groups"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["recipient"].as_str().unwrap().to_owned(),
                r["identity"].is_string(),
            )
        })
        .collect();
    assert!(marked.contains(&(host.recipient.clone(), true)), "{json}");
    assert!(
        marked.contains(&(operator.recipient.clone(), false)),
        "{json}"
    );

    let stranger = Key::generate();
    let (code, json) = check(&path, &[&stranger]);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["files"][0]["decryptable"], false);
}

#[test]
fn shamir_files_need_identities_in_enough_groups() {
    let sops = Sops::new();
    let (a, b) = (Key::generate(), Key::generate());
    let encrypted = sops.encrypt("json", br#"{"token": "abc"}"#, &[vec![&a], vec![&b]]);
    let path = sops.path("shared.json");
    fs_err::write(&path, encrypted).unwrap();

    let (code, json) = check(&path, &[&a]);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["files"][0]["groups_with_identity"], 1);
    assert_eq!(json["files"][0]["threshold"], 2);
    let (code, _) = check(&path, &[&a, &b]);
    assert_eq!(code, Some(0));
}
