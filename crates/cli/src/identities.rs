//! `hostage identities`: which identities would decrypt, and where each came from.

use std::process::ExitCode;

use hostage_recipients::{IdentityOptions, IdentitySet};
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

/// Runs `hostage identities`.
pub fn run(args: &IdentitiesArgs, out: &mut Output) -> anyhow::Result<ExitCode> {
    let set = IdentitySet::load(&IdentityOptions::from_env(args.identities.clone()));
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

/// No identity anywhere: the classic "failed to get the data key".
#[derive(Debug, thiserror::Error)]
#[error("no identities found")]
pub struct NoIdentities;
