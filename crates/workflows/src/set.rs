//! `hostage set FILE KEY`: one value into a sops file, for provisioning scripts (a generated
//! database password for a new host). The value comes from the caller's memory (the CLI reads
//! it from stdin, never argv); an absent file is created under its `.sops.yaml` creation rule by
//! hostage's own engine, an existing one keeps its data key and every other byte
//! (`SopsFile::set`: the value's token, `lastmodified` and the MAC change). Setting the value a
//! key already has changes nothing, so scripts can run it again. Plan (a value, printed by
//! `--dry-run`), then apply in the repository session (lock, compare-and-swap on the file and
//! on the `.sops.yaml` its rule came from).

use std::path::{Component, Path, PathBuf};

use hostage_recipients::{IdentitySet, PassphraseProvider};
use hostage_sops::rules::SopsConfig;
use hostage_sops::{Format, MacCheck, NewFileOptions, SetOutcome, SopsFile, Tree, Value};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::Context as _;
use crate::session::{ApplyOptions, FileSnapshot, RepoSession};
use crate::WorkflowError;

/// What setting the value does to the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetAction {
    /// The file does not exist: it is created under its creation rule, holding only this value.
    Create,
    /// The key exists with another value: the value is replaced.
    Replace,
    /// The key is new in its (existing) mapping: it is added at the end of it.
    Add,
    /// The key already has this value: nothing is written.
    Unchanged,
}

/// What `hostage set` did, or would do (`--dry-run`). Holds no plaintext.
#[derive(Clone, Debug, Serialize)]
pub struct SetReport {
    /// The file, relative to the repository.
    pub file: String,
    /// The key path (mapping keys from the document root).
    pub key: Vec<String>,
    /// What happens to the file.
    pub action: SetAction,
    /// The recipients of each key group of a created file (empty for an existing file, whose
    /// recipients do not change: `hostage rekey` keeps them in step with `.sops.yaml`).
    pub key_groups: Vec<Vec<String>>,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
}

/// A planned `set`: the report and the new file's bytes (ciphertext only).
#[derive(Debug)]
pub struct SetPlan {
    /// What the run does.
    pub report: SetReport,
    repo: PathBuf,
    file: FileSnapshot,
    config: FileSnapshot,
    new_bytes: Option<Vec<u8>>,
}

/// Parses a key path: a plain key (`db_password`, top level) or sops' index form
/// (`["db"]["password"]`, keys in double quotes, no list indices).
pub fn parse_key_path(text: &str) -> crate::Result<Vec<String>> {
    let bad = |why: &str| {
        WorkflowError::refused_with_hint(
            format!("key `{text}` {why}"),
            "name a top-level key (`db_password`) or a path in sops' form (`[\"db\"][\"password\"]`)",
        )
    };
    if text.is_empty() {
        return Err(bad("is empty"));
    }
    if !text.starts_with('[') {
        return Ok(vec![text.to_owned()]);
    }
    let mut keys = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix("[\"") else {
            return Err(bad("is not a sequence of [\"key\"] parts"));
        };
        let Some(end) = inner.find("\"]") else {
            return Err(bad("has an unterminated [\"key\"] part"));
        };
        let key = &inner[..end];
        if key.is_empty() || key.contains('"') {
            return Err(bad("has an empty key or a quote inside a key"));
        }
        keys.push(key.to_owned());
        rest = &inner[end + 2..];
    }
    Ok(keys)
}

/// The value as read from stdin: text, with one trailing newline removed unless `keep_newline`
/// (`pwgen 32 1 | hostage set …` stores the password, not the newline `echo` adds).
pub fn value_from_input(
    mut input: Zeroizing<Vec<u8>>,
    keep_newline: bool,
) -> crate::Result<Zeroizing<String>> {
    if !keep_newline && input.last() == Some(&b'\n') {
        input.pop();
        if input.last() == Some(&b'\r') {
            input.pop();
        }
    }
    if input.is_empty() {
        return Err(WorkflowError::refused_with_hint(
            "no value on stdin (an empty secret is almost always a script's mistake)",
            "pipe the value in: `printf %s \"$VALUE\" | hostage set FILE KEY`",
        ));
    }
    let text = std::str::from_utf8(&input).map_err(|_| {
        WorkflowError::refused_with_hint(
            "the value on stdin is not UTF-8 text",
            "store binary data base64-encoded (e.g. `head -c 32 /dev/urandom | base64 | hostage set FILE KEY`)",
        )
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The format of a file `set` creates: sops' choice by extension, except that the seed's `*.sops`
/// files are YAML inside (sops would write them as binary).
fn format_for(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("sops") => Format::Yaml,
        _ => hostage_sops::format_for_new_file(path),
    }
}

/// `file` relative to the repository (`/`-separated), refused when it leaves it: through `..`,
/// through a symlinked directory, or when the file itself is a symlink (a pull request could make
/// `secrets/x.yaml` point anywhere on the operator's disk).
fn inside_repo(repo: &Path, file: &Path) -> crate::Result<String> {
    let outside = |why: &str| {
        WorkflowError::refused_with_hint(
            format!("{} {why}; nothing was written", file.display()),
            format!(
                "name a file inside the repository of {}",
                repo.join(".sops.yaml").display()
            ),
        )
    };
    let absolute = crate::absolute(file);
    if absolute
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(outside("contains `..`"));
    }
    if fs_err::symlink_metadata(&absolute).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(outside("is a symlink"));
    }
    let root = fs_err::canonicalize(repo)?;
    // The deepest directory above the file that exists, resolved; the rest is created as named.
    let mut existing = absolute.parent().map(Path::to_owned).unwrap_or_default();
    let mut tail = vec![absolute
        .file_name()
        .context("the file has no name")?
        .to_owned()];
    while !existing.exists() {
        let Some(name) = existing.file_name() else {
            break;
        };
        tail.push(name.to_owned());
        existing = existing.parent().map(Path::to_owned).unwrap_or_default();
    }
    let resolved = fs_err::canonicalize(&existing)?;
    let Ok(below) = resolved.strip_prefix(&root) else {
        return Err(outside("is outside the repository"));
    };
    let mut rel = below.to_owned();
    rel.extend(tail.iter().rev());
    rel.to_str()
        .map(str::to_owned)
        .context("the file's path is not UTF-8")
}

/// Plans setting `key` of `file` to `value` with the repository of `config`: decrypts an existing
/// file with `identities` (its MAC verified), or computes what its creation rule gives a new one.
pub fn plan(
    config: &SopsConfig,
    file: &Path,
    key: &[String],
    value: &Zeroizing<String>,
    identities: &IdentitySet,
    passphrases: &mut dyn PassphraseProvider,
) -> crate::Result<SetPlan> {
    let repo = config.dir().to_owned();
    let rel = inside_repo(&repo, file)?;
    let path = repo.join(&rel);
    let snapshot = FileSnapshot::read(&path)?;
    let config_snapshot = FileSnapshot::of_text(config.path(), config.text());
    // The value lives in a tree, which wipes it when dropped.
    let (action, new_bytes, key_groups) = match snapshot_bytes(&path)? {
        None => {
            let tree = hostage_sops::single_value_tree(key, Value::Str(value.to_string()));
            let (_, rule) = config.rule_for_sops_path(&rel).with_context(|| {
                format!(
                    "no creation rule of {} covers {rel}",
                    config.path().display()
                )
            })?;
            let options = NewFileOptions::from_rule(config, rule)?;
            let bytes = hostage_sops::create_from_tree(&tree, format_for(&path), &options)
                .with_context(|| format!("cannot create {rel}"))?;
            (SetAction::Create, Some(bytes), options.key_groups)
        }
        Some(bytes) => {
            let sops = SopsFile::parse(&bytes, None)
                .with_context(|| format!("{rel} is not a sops file"))?;
            let data_key = sops
                .data_key(identities, passphrases)
                .with_context(|| format!("cannot decrypt {rel}"))?;
            let holder = Tree {
                documents: vec![Value::Str(value.to_string())],
            };
            let outcome = sops
                .set(&data_key, key, &holder.documents[0], MacCheck::Verify)
                .with_context(|| format!("cannot set {} in {rel}", shown(key)))?;
            match outcome {
                SetOutcome::Unchanged => (SetAction::Unchanged, None, Vec::new()),
                SetOutcome::Replaced(new) => (SetAction::Replace, Some(new), Vec::new()),
                SetOutcome::Added(new) => (SetAction::Add, Some(new), Vec::new()),
            }
        }
    };
    Ok(SetPlan {
        report: SetReport {
            file: rel,
            key: key.to_vec(),
            action,
            key_groups,
            dry_run: true,
        },
        repo,
        file: snapshot,
        config: config_snapshot,
        new_bytes,
    })
}

fn snapshot_bytes(path: &Path) -> crate::Result<Option<Vec<u8>>> {
    match fs_err::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The key path in sops' index form, for messages.
fn shown(key: &[String]) -> String {
    key.iter().map(|k| format!("[\"{k}\"]")).collect()
}

/// Writes the planned file in the repository session: refused when the file or `.sops.yaml`
/// changed since the plan read them. Nothing is written for [`SetAction::Unchanged`].
pub fn apply(plan: SetPlan, options: &ApplyOptions) -> crate::Result<SetReport> {
    let mut report = plan.report;
    report.dry_run = false;
    let Some(bytes) = plan.new_bytes else {
        return Ok(report);
    };
    let session = RepoSession::open(&plan.repo, options.clone())?;
    session.revalidate(&[&plan.config])?;
    session.write_if_unchanged(&plan.file, &bytes)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_are_a_plain_key_or_sops_index_form() {
        assert_eq!(parse_key_path("db_password").unwrap(), ["db_password"]);
        assert_eq!(
            parse_key_path("[\"db\"][\"password\"]").unwrap(),
            ["db", "password"]
        );
        for bad in ["", "[\"db\"", "[db]", "[\"\"]", "[\"a\"]x", "[0]"] {
            let error = parse_key_path(bad).unwrap_err();
            assert!(error.hint().is_some(), "{bad}: {error}");
        }
    }

    #[test]
    fn one_trailing_newline_is_dropped_unless_kept() {
        let value = |bytes: &[u8], keep| {
            value_from_input(Zeroizing::new(bytes.to_vec()), keep)
                .unwrap()
                .to_string()
        };
        assert_eq!(value(b"s3cret\n", false), "s3cret");
        assert_eq!(value(b"s3cret\r\n", false), "s3cret");
        assert_eq!(value(b"two\n\n", false), "two\n");
        assert_eq!(value(b"s3cret\n", true), "s3cret\n");
        assert!(value_from_input(Zeroizing::new(vec![0xff, 0xfe]), false).is_err());
        assert!(value_from_input(Zeroizing::new(b"\n".to_vec()), false).is_err());
        assert!(value_from_input(Zeroizing::new(Vec::new()), true).is_err());
    }

    #[test]
    fn files_outside_the_repository_are_refused() {
        let repo = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), repo.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x.yaml"), repo.path().join("file.yaml"))
            .unwrap();
        for file in [
            repo.path().join("link/x.yaml"),
            repo.path().join("link/new/x.yaml"),
            repo.path().join("file.yaml"),
            repo.path().join("a/../../x.yaml"),
            outside.path().join("x.yaml"),
        ] {
            let error = inside_repo(repo.path(), &file).unwrap_err();
            assert!(error.hint().is_some(), "{}: {error}", file.display());
        }
        assert_eq!(
            inside_repo(repo.path(), &repo.path().join("secrets/hosts/web/db.yaml")).unwrap(),
            "secrets/hosts/web/db.yaml"
        );
    }

    #[test]
    fn seed_sops_files_are_created_as_yaml() {
        assert_eq!(
            format_for(Path::new("a/ssh_host_ed25519_key.sops")),
            Format::Yaml
        );
        assert_eq!(format_for(Path::new("a/b.json")), Format::Json);
        assert_eq!(format_for(Path::new("a/b.env")), Format::Dotenv);
    }
}
