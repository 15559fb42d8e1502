//! The proof a rotation asks before the old key goes (rotate-key's phase 2 for a key whose new
//! identity is held): the new identity opens, in memory, the data key of every sops file the old
//! key is on. Nothing is decrypted to disk; data keys are zeroized when dropped.

use std::path::Path;

use hostage_recipients::{IdentityOptions, IdentitySet};
use serde::Serialize;

/// A file the new identity could not open (phase 2 of a workstation or named key).
#[derive(Clone, Debug, Serialize)]
pub struct UnprovenFile {
    /// The file, relative to the repo.
    pub path: String,
    /// Why it did not open.
    pub error: String,
}

/// The one identity in `path` (age identity file or unencrypted OpenSSH ed25519 key).
pub(crate) fn load_identity_set(path: &Path) -> crate::Result<IdentitySet> {
    let set = IdentitySet::load(&IdentityOptions {
        explicit: vec![path.to_owned()],
        ..IdentityOptions::default()
    });
    let refuse = |why: String| {
        crate::WorkflowError::refused_with_hint(
            format!("cannot use {} as the new identity: {why}", path.display()),
            "give an age identity file with one AGE-SECRET-KEY-1… line (age-keygen -o FILE) or an unencrypted OpenSSH ed25519 private key (ssh-keygen -t ed25519 -N '' -f FILE)",
        )
    };
    if let Some(problem) = set.problems.first() {
        return Err(refuse(problem.message.clone()));
    }
    match set.candidates.as_slice() {
        [one] if one.is_locked() => Err(refuse(
            "it is passphrase-protected; hostage proves the new key without asking for its passphrase".to_owned(),
        )),
        [_] => Ok(set),
        [] => Err(refuse("it holds no identity".to_owned())),
        more => Err(refuse(format!(
            "it holds {} identities; one key is rotated to one identity",
            more.len()
        ))),
    }
}

/// Phase 2 for a key whose new identity is held: opens, in memory, the data key of every sops
/// file the old recipient is on with the new identity alone (`alone`), or for a file of several
/// key groups with `with_others` (the new identity and the operator's others, never the old), and
/// checks the file's MAC with it; returns how many opened and the files that did not. Files that
/// are not sops files are not looked at.
pub(crate) fn prove(
    repo: &Path,
    old: &str,
    alone: &IdentitySet,
    with_others: &IdentitySet,
) -> crate::Result<(usize, Vec<UnprovenFile>)> {
    let files = hostage_rekey::walk(&[repo.to_owned()])?;
    let mut opened = 0;
    let mut unproven = Vec::new();
    for path in files.iter() {
        let Ok(bytes) = fs_err::read(path) else {
            continue;
        };
        let Ok(sops) = hostage_sops::SopsFile::parse(&bytes, None) else {
            continue;
        };
        if !sops.recipients().iter().flatten().any(|k| k.id == old) {
            continue;
        }
        let shown = path
            .strip_prefix(repo)
            .unwrap_or(path)
            .display()
            .to_string();
        let identities = if sops.recipients().len() > 1 {
            with_others
        } else {
            alone
        };
        // The data key is zeroized when dropped; nothing is decrypted to disk.
        let result = sops
            .data_key(identities, &mut ())
            .and_then(|key| sops.verify_mac(&key));
        match result {
            Ok(()) => opened += 1,
            Err(e) => unproven.push(UnprovenFile {
                path: shown,
                error: e.to_string(),
            }),
        }
    }
    Ok((opened, unproven))
}

#[cfg(test)]
mod tests {
    // Fixtures: a panic with the value is the right failure.
    #![allow(clippy::unwrap_used)]

    use hostage_recipients::{AgeIdentity, IdentitySet, IdentitySource};

    use super::prove;

    fn identity(n: u8) -> AgeIdentity {
        AgeIdentity::from_scalar(zeroize::Zeroizing::new([n; 32]))
    }

    fn set(ids: &[&AgeIdentity]) -> IdentitySet {
        IdentitySet::from_identities(
            IdentitySource::KeyVariable,
            ids.iter().map(|i| (*i).clone()).collect(),
        )
    }

    #[test]
    fn the_new_identity_must_open_every_file_of_the_old_alone_or_with_the_other_groups_shares() {
        let (old, new, other) = (identity(1), identity(2), identity(3));
        let (o, n, x) = (old.recipient(), new.recipient(), other.recipient());
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join(".sops.yaml"),
            format!(
                "creation_rules:\n  - path_regex: shamir/.*\n    shamir_threshold: 2\n    key_groups:\n      - age: ['{o}', '{n}']\n      - age: ['{x}']\n\
                 \x20 - path_regex: lagging/.*\n    age: {o}\n  - path_regex: .*\n    age: {o},{n}\n"
            ),
        )
        .unwrap();
        for rel in [
            "shamir/a.yaml",
            "lagging/b.yaml",
            "plain/c.yaml",
            "other/d.yaml",
        ] {
            let tree = crate::new_sops_file::one_key_tree("k", "v");
            let bytes =
                crate::new_sops_file::encrypt(dir.path(), rel, &tree, hostage_sops::Format::Yaml)
                    .unwrap();
            fs_err::create_dir_all(dir.path().join(rel).parent().unwrap()).unwrap();
            fs_err::write(dir.path().join(rel), bytes).unwrap();
        }
        let (opened, unproven) = prove(
            dir.path(),
            &o.to_string(),
            &set(&[&new]),
            &set(&[&new, &other]),
        )
        .unwrap();
        // The Shamir file opens with the other group's share, the two one-group files with the
        // new key alone; the lagging file (old key only) does not, and is named.
        assert_eq!(opened, 3);
        assert_eq!(unproven.len(), 1, "{unproven:?}");
        assert_eq!(unproven[0].path, "lagging/b.yaml");
        // Without the other group's share the Shamir file does not open.
        let (_, unproven) =
            prove(dir.path(), &o.to_string(), &set(&[&new]), &set(&[&new])).unwrap();
        assert!(
            unproven.iter().any(|u| u.path == "shamir/a.yaml"),
            "{unproven:?}"
        );
    }
}
