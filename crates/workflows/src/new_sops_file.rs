//! New sops files written by hostage's own engine (`hostage_sops::create_from_tree`) under the
//! repository's `.sops.yaml` creation rule for their path, exactly as `sops -e` would choose the
//! recipients: the product never runs a `sops` binary. The plaintext is a tree in memory; only
//! ciphertext comes back, and the caller writes it through the repository session.

use std::path::Path;

use hostage_sops::rules::SopsConfig;
use hostage_sops::{Format, NewFileOptions, Tree};

use crate::error::Context as _;

/// The recipients, key groups and crypt rule the creation rule for `rel` (a path relative to
/// the repository, `/`-separated) gives a new file, from `repo/.sops.yaml`.
pub fn options_for(repo: &Path, rel: &str) -> crate::Result<NewFileOptions> {
    let config = SopsConfig::load(&repo.join(".sops.yaml"))?;
    let (_, rule) = config
        .rule_for_sops_path(rel)
        .with_context(|| format!("no creation rule gives {rel} its recipients"))?;
    Ok(NewFileOptions::from_rule(&config, rule)?)
}

/// `tree` encrypted as a new sops file of `format` for the creation rule of `rel` in `repo`.
pub fn encrypt(repo: &Path, rel: &str, tree: &Tree, format: Format) -> crate::Result<Vec<u8>> {
    let options = options_for(repo, rel)?;
    hostage_sops::create_from_tree(tree, format, &options)
        .with_context(|| format!("cannot encrypt {rel}"))
}

/// A one-key document `{key: secret}` (the seed's `data: |` shape when `key` is `data`).
pub fn one_key_tree(key: &str, secret: &str) -> Tree {
    Tree {
        documents: vec![hostage_sops::Value::Map(vec![(
            key.to_owned(),
            hostage_sops::Value::Str(secret.to_owned()),
        )])],
    }
}
