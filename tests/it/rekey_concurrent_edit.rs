//! Issue 12, item 10: a `sops edit` that lands between hostage's read of a file and its rename
//! must not be lost. The real sops 3.11 makes the edit, through the library's test seam
//! (`ApplySeams::before_renames`), exactly inside that window.

use std::path::PathBuf;
use std::sync::Mutex;

use hostage_recipients::{AgeIdentity, IdentitySet, IdentitySource};
use hostage_rekey::{ApplyOptions, ApplySeams, FileOutcome, PlanOptions};
use hostage_sops::rules::SopsConfig;

use crate::rekey_support::{stderr, Repo};

const BEFORE: &str = "{keys}\ncreation_rules:\n  - age: [*admin, *web01]\n";
const AFTER: &str = "{keys}\ncreation_rules:\n  - age: [*admin, *web01, *web02]\n";

#[test]
fn a_sops_edit_between_read_and_rename_is_kept_and_only_that_file_is_refused() {
    let repo = Repo::new(&["admin", "web01", "web02"]);
    repo.config(BEFORE);
    repo.encrypt("secrets/edited.yaml", b"password: before\n");
    repo.encrypt("secrets/other.yaml", b"password: untouched\n");
    repo.config(AFTER);

    let config = SopsConfig::load(&repo.path(".sops.yaml")).unwrap();
    let files = hostage_rekey::walk(&[repo.dir.path().to_owned()]).unwrap();
    let mut plan = hostage_rekey::plan(&config, &files, &PlanOptions::default(), &|| {}).unwrap();
    assert_eq!(plan.count(hostage_rekey::Action::Rewrap), 2);
    let identities = IdentitySet::from_identities(
        IdentitySource::KeyVariable,
        vec![AgeIdentity::parse(&repo.keys["admin"].secret).unwrap()],
    );

    // Between hostage's read and its rename, someone runs `sops set` (an in-place sops edit).
    let seen: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let edit = |paths: &[PathBuf]| {
        seen.lock().unwrap().extend(paths.iter().cloned());
        let out = repo.sops(
            &[
                "set",
                "secrets/edited.yaml",
                r#"["password"]"#,
                r#""during the re-key""#,
            ],
            &["admin"],
        );
        assert!(out.status.success(), "sops set: {}", stderr(&out));
    };
    let report = hostage_rekey::apply_with(
        &mut plan,
        &identities,
        &ApplyOptions::default(),
        &ApplySeams {
            before_renames: Some(&edit),
        },
        &|| {},
    )
    .unwrap();
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the seam ran with the batch's files"
    );

    assert_eq!((report.written, report.failed), (1, 1));
    for file in plan.files() {
        let file = file.unwrap();
        match file.display.as_str() {
            "secrets/edited.yaml" => match &file.outcome {
                Some(FileOutcome::Failed(reason)) => {
                    assert!(reason.contains("changed during re-key"), "{reason}");
                    assert!(reason.contains("run again"), "{reason}");
                }
                other => panic!("the edited file was not refused: {other:?}"),
            },
            "secrets/other.yaml" => assert_eq!(file.outcome, Some(FileOutcome::Written)),
            other => panic!("unexpected file {other}"),
        }
    }

    // The other writer's edit is intact (sops reads it, MAC and all) and was not re-keyed.
    let edited = repo.decrypt("secrets/edited.yaml", "admin").unwrap();
    assert!(
        String::from_utf8_lossy(&edited).contains("during the re-key"),
        "the concurrent edit was lost"
    );
    assert!(repo.decrypt("secrets/edited.yaml", "web02").is_none());
    // The untouched file was re-keyed as planned.
    let other = repo.decrypt("secrets/other.yaml", "web02").unwrap();
    assert!(String::from_utf8_lossy(&other).contains("untouched"));
    // No temp file is left beside the refused file.
    let leftovers: Vec<String> = fs_err::read_dir(repo.path("secrets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".hostage-tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A second run finishes the job.
    let out = repo.hostage(&["rekey"], &["admin"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let edited = repo.decrypt("secrets/edited.yaml", "web02").unwrap();
    assert!(String::from_utf8_lossy(&edited).contains("during the re-key"));
}
