//! Names from outside `.sops.yaml`: `pubkeys/<name>.pub`, converted into the naming model's
//! [`SuppliedName`]s. Every reader of names (status, the re-key plans behind onboard, rotate,
//! offboard, rotate-infra and rekey, and so their exposure reports) asks
//! `SopsConfig::recipient_names` with these, so a repo that names a host only through `pubkeys/`
//! sees that name everywhere.

use std::path::Path;

use hostage_rekey::PlanOptions;
use hostage_sops::rules::SuppliedName;

/// The largest `pubkeys/` file read: an OpenSSH public key line is well under 1 KiB; a few keys
/// and comments fit many times over.
const MAX_PUBLIC_KEY_FILE: u64 = 64 * 1024;

/// The names `pubkeys/<name>.pub` gives: each file's first ed25519 key, converted. Files that
/// hold no such key are skipped (they are documentation; `status` does not judge them).
pub fn public_key_names(repo: &Path) -> Vec<SuppliedName> {
    let Ok(entries) = fs_err::read_dir(repo.join("pubkeys")) else {
        return Vec::new();
    };
    let mut supplied = Vec::new();
    for entry in entries.flatten() {
        // Untrusted repo content: only regular files of a public key's size are read (a symlink
        // to /dev/zero or a huge file is not a name).
        let small_file = entry.file_type().is_ok_and(|t| t.is_file())
            && entry
                .metadata()
                .is_ok_and(|m| m.len() <= MAX_PUBLIC_KEY_FILE);
        if !small_file {
            continue;
        }
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pub"))
        else {
            continue;
        };
        let Ok(text) = fs_err::read_to_string(&path) else {
            continue;
        };
        let recipient = hostage_recipients::parse_key_lines(&text)
            .into_iter()
            .flatten()
            .find_map(|line| line.key.to_age_recipient().ok());
        if let Some(recipient) = recipient {
            supplied.push(SuppliedName {
                name: name.to_owned(),
                recipient: recipient.to_string(),
                origin: format!("pubkeys/{name}.pub"),
            });
        }
    }
    supplied.sort_by(|a, b| a.name.cmp(&b.name));
    supplied
}

/// The default plan options (removals rotate) with `repo`'s `pubkeys/` names.
pub fn plan_options(repo: &Path) -> PlanOptions {
    PlanOptions {
        supplied_names: public_key_names(repo),
        ..PlanOptions::default()
    }
}
