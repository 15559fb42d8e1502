//! `hostage identities`: which identities would decrypt, and where each came from.

use std::process::ExitCode;

use std::path::Path;

use anyhow::Context as _;
use hostage_recipients::{AgeRecipient, IdentityOptions, IdentitySet};
use hostage_sops::SopsFile;
use serde::Serialize;

use crate::cli::IdentitiesArgs;
use crate::output::Output;

#[derive(Serialize)]
struct IdentityJson {
    recipient: String,
    source: String,
    line: Option<usize>,
    converted_from: Option<String>,
    passphrase_protected: bool,
}

#[derive(Serialize)]
struct ProblemJson {
    source: String,
    line: Option<usize>,
    error: String,
}

/// One recipient of a file, and the identity that decrypts for it, if any.
#[derive(Serialize)]
struct FileRecipientJson {
    kind: String,
    recipient: String,
    identity: Option<String>,
}

/// One sops file checked against the identities.
#[derive(Serialize)]
struct FileJson {
    path: String,
    threshold: usize,
    groups: Vec<Vec<FileRecipientJson>>,
    groups_with_identity: usize,
    decryptable: bool,
}

/// Runs `hostage identities`.
pub fn run(args: &IdentitiesArgs, out: &mut Output) -> anyhow::Result<ExitCode> {
    let set = IdentitySet::load(&IdentityOptions::from_env(args.identities.clone()));
    if !args.files.is_empty() {
        return check_files(&set, &args.files, out);
    }
    if out.json() {
        let identities: Vec<_> = set
            .candidates
            .iter()
            .map(|c| IdentityJson {
                recipient: c.recipient.to_string(),
                source: c.source.to_string(),
                line: c.line,
                converted_from: c.converted_from.map(|k| k.fingerprint()),
                passphrase_protected: c.is_locked(),
            })
            .collect();
        let problems: Vec<_> = set
            .problems
            .iter()
            .map(|p| ProblemJson {
                source: p.source_name.to_string(),
                line: p.line,
                error: p.message.clone(),
            })
            .collect();
        out.json_value(&serde_json::json!({ "identities": identities, "problems": problems }))?;
    } else {
        print_text(&set, out)?;
    }
    if set.candidates.is_empty() {
        anyhow::bail!(NoIdentities);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(set: &IdentitySet, out: &mut Output) -> std::io::Result<()> {
    for candidate in &set.candidates {
        let mut from = candidate.source.to_string();
        if let Some(line) = candidate.line {
            from.push_str(&format!(" (line {line})"));
        }
        if let Some(key) = candidate.converted_from {
            from.push_str(&format!(
                ", converted from ssh-ed25519 {}",
                key.fingerprint()
            ));
        }
        if candidate.is_locked() {
            from.push_str(", passphrase-protected");
        }
        out.line(&format!("{}  {from}", candidate.recipient))?;
    }
    if !set.problems.is_empty() {
        out.line("")?;
        out.line("sources that could not be used:")?;
        for problem in &set.problems {
            out.line(&format!("  {problem}"))?;
        }
    }
    Ok(())
}

/// For each file: which of its recipients an identity was found for, and whether enough groups
/// are covered. This answers sops-nix's "0 successful groups" without decrypting anything.
fn check_files(
    set: &IdentitySet,
    files: &[impl AsRef<Path>],
    out: &mut Output,
) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::with_capacity(files.len());
    for path in files {
        let path = path.as_ref();
        let bytes = fs_err::read(path)?;
        let file = SopsFile::parse(&bytes, None)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let groups: Vec<Vec<FileRecipientJson>> = file
            .recipients()
            .into_iter()
            .map(|group| {
                group
                    .into_iter()
                    .map(|key| {
                        let identity = (key.kind == "age")
                            .then(|| AgeRecipient::parse(&key.id).ok())
                            .flatten()
                            .and_then(|recipient| set.find(&recipient))
                            .map(|candidate| candidate.source.to_string());
                        FileRecipientJson {
                            kind: key.kind,
                            recipient: key.id,
                            identity,
                        }
                    })
                    .collect()
            })
            .collect();
        let groups_with_identity = groups
            .iter()
            .filter(|g| g.iter().any(|r| r.identity.is_some()))
            .count();
        let threshold = file.metadata().threshold.max(1);
        reports.push(FileJson {
            path: path.display().to_string(),
            threshold,
            decryptable: groups_with_identity >= threshold,
            groups,
            groups_with_identity,
        });
    }
    if out.json() {
        out.json_value(&serde_json::json!({ "files": reports }))?;
    } else {
        for report in &reports {
            let verdict = if report.decryptable {
                "decryptable"
            } else {
                "NOT decryptable"
            };
            out.line(&format!(
                "{}: {verdict} ({} of {} needed key groups have an identity)",
                report.path, report.groups_with_identity, report.threshold
            ))?;
            for (index, group) in report.groups.iter().enumerate() {
                out.line(&format!("  group {}:", index + 1))?;
                for recipient in group {
                    let status = recipient
                        .identity
                        .as_deref()
                        .map(|source| format!("identity from {source}"))
                        .unwrap_or_else(|| "no identity".to_owned());
                    out.line(&format!(
                        "    {} {}  ({status})",
                        recipient.kind, recipient.recipient
                    ))?;
                }
            }
        }
    }
    if reports.iter().all(|r| r.decryptable) {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(crate::exit::code(crate::exit::ERROR))
    }
}

/// No identity anywhere: the classic "failed to get the data key".
#[derive(Debug, thiserror::Error)]
#[error("no identities found")]
pub struct NoIdentities;
