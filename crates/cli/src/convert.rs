//! `hostage convert`: ssh-ed25519 public keys → `age1…`, or a private key → `AGE-SECRET-KEY-1…`.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use hostage_recipients::{
    parse_key_lines, AgeRecipient, KeyError, KeyLineError, OpenSshPrivateKey, SshKeyLine,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::ConvertArgs;
use crate::output::{self, Output};
use crate::passphrase::CliPassphrases;

/// One converted public key, as `--json` prints it.
#[derive(Serialize)]
struct ConvertedJson<'a> {
    line: usize,
    host: Option<&'a str>,
    comment: Option<&'a str>,
    fingerprint: String,
    recipient: String,
}

/// One input line that could not be converted, as `--json` prints it.
#[derive(Serialize)]
struct ProblemJson {
    line: usize,
    host: Option<String>,
    error: String,
}

/// Runs `hostage convert`.
pub fn run(args: &ConvertArgs, out: &mut Output) -> anyhow::Result<ExitCode> {
    let input = read_input(args)?;
    if args.private {
        return convert_private(args, &input, out);
    }
    convert_public(&input, out, &input_name(args))
}

fn input_name(args: &ConvertArgs) -> String {
    if args.input.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        args.input.display().to_string()
    }
}

fn read_input(args: &ConvertArgs) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    if args.input.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        let mut file = fs_err::File::open(&args.input)?;
        file.read_to_string(&mut text)
            .with_context(|| format!("{} is not UTF-8 text", args.input.display()))?;
    }
    Ok(text)
}

/// A key line converted, or the reason it was not.
struct Outcome {
    key: SshKeyLine,
    recipient: AgeRecipient,
}

fn convert_public(input: &str, out: &mut Output, name: &str) -> anyhow::Result<ExitCode> {
    let parsed = parse_key_lines(input);
    let mut converted = Vec::new();
    let mut problems: Vec<KeyLineError> = Vec::new();
    let mut other_algorithms: Vec<KeyLineError> = Vec::new();
    for line in parsed {
        match line {
            Ok(key) => match key.key.to_age_recipient() {
                Ok(recipient) => converted.push(Outcome { key, recipient }),
                Err(error) => problems.push(KeyLineError {
                    line: key.line,
                    host: key.host.clone(),
                    algorithm: Some("ssh-ed25519".to_owned()),
                    error,
                }),
            },
            Err(e) if matches!(e.error, KeyError::NotEd25519 { .. }) => other_algorithms.push(e),
            Err(e) => problems.push(e),
        }
    }
    problems.extend(hosts_without_ed25519(&converted, other_algorithms));
    problems.sort_by_key(|p| p.line);

    if converted.is_empty() && problems.is_empty() {
        anyhow::bail!("no public key found in {name}");
    }
    if out.json() {
        let keys: Vec<_> = converted
            .iter()
            .map(|c| ConvertedJson {
                line: c.key.line,
                host: c.key.host.as_deref(),
                comment: c.key.comment.as_deref(),
                fingerprint: c.key.key.fingerprint(),
                recipient: c.recipient.to_string(),
            })
            .collect();
        let errors: Vec<_> = problems
            .iter()
            .map(|p| ProblemJson {
                line: p.line,
                host: p.host.clone(),
                error: p.error.to_string(),
            })
            .collect();
        out.json_value(&serde_json::json!({ "keys": keys, "errors": errors }))?;
    } else {
        for c in &converted {
            match c.key.label() {
                Some(label) => out.line(&format!("{}  # {label}", c.recipient))?,
                None => out.line(&c.recipient.to_string())?,
            }
        }
    }
    for problem in &problems {
        output::error(&format!("{name}: {problem}"));
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        crate::exit::code(crate::exit::ERROR)
    })
}

/// Non-ed25519 lines are noise when their host also offered an ed25519 key (ssh-keyscan prints
/// every key type); a host that offered none gets one error listing what it has.
fn hosts_without_ed25519(
    converted: &[Outcome],
    other_algorithms: Vec<KeyLineError>,
) -> Vec<KeyLineError> {
    let mut by_host: BTreeMap<String, Vec<KeyLineError>> = BTreeMap::new();
    let mut unlabelled = Vec::new();
    for problem in other_algorithms {
        match &problem.host {
            Some(host) => by_host.entry(host.clone()).or_default().push(problem),
            None => unlabelled.push(problem),
        }
    }
    let mut errors = unlabelled;
    for (host, problems) in by_host {
        if converted
            .iter()
            .any(|c| c.key.host.as_deref() == Some(host.as_str()))
        {
            continue;
        }
        let mut algorithms: Vec<String> = problems
            .iter()
            .filter_map(|p| p.algorithm.clone())
            .collect();
        algorithms.dedup();
        let first = &problems[0];
        errors.push(KeyLineError {
            line: first.line,
            host: Some(host),
            algorithm: None,
            error: KeyError::HostWithoutEd25519 {
                algorithms: algorithms.join(", "),
            },
        });
    }
    errors
}

fn convert_private(args: &ConvertArgs, input: &str, out: &mut Output) -> anyhow::Result<ExitCode> {
    let name = input_name(args);
    let key = OpenSshPrivateKey::parse(input).with_context(|| format!("cannot read {name}"))?;
    let mut passphrases = CliPassphrases::new(args.passphrase_file.as_deref())?;
    let identity = key
        .unlock(&mut passphrases)
        .with_context(|| format!("cannot unlock {name}"))?
        .to_age_identity();
    let secret = identity.to_secret_string();
    if out.json() {
        let value = Zeroizing::new(
            serde_json::json!({
                "format_version": crate::output::FORMAT_VERSION,
                "identity": secret.as_str(),
                "recipient": identity.recipient().to_string(),
                "fingerprint": key.public_key().fingerprint(),
                "comment": key.comment(),
            })
            .to_string(),
        );
        out.line(&value)?;
    } else {
        let mut text = Zeroizing::new(String::with_capacity(secret.len() + 1));
        text.push_str(&secret);
        text.push('\n');
        out.raw(text.as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_line(line: usize, host: &str, algorithm: &str) -> KeyLineError {
        KeyLineError {
            line,
            host: Some(host.to_owned()),
            algorithm: Some(algorithm.to_owned()),
            error: KeyError::NotEd25519 {
                algorithm: algorithm.to_owned(),
            },
        }
    }

    #[test]
    fn a_host_without_ed25519_gets_one_error_listing_its_algorithms() {
        let errors = hosts_without_ed25519(
            &[],
            vec![
                error_line(1, "ironforge", "ssh-rsa"),
                error_line(2, "ironforge", "ecdsa-sha2-nistp256"),
            ],
        );
        assert_eq!(errors.len(), 1);
        let text = errors[0].to_string();
        assert!(text.contains("ironforge"), "{text}");
        assert!(text.contains("ssh-rsa, ecdsa-sha2-nistp256"), "{text}");
    }

    #[test]
    fn other_algorithms_of_a_host_with_ed25519_are_not_errors() {
        let key = parse_key_lines(
            "gnomeregan ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji",
        )
        .remove(0)
        .unwrap();
        let recipient = key.key.to_age_recipient().unwrap();
        let errors = hosts_without_ed25519(
            &[Outcome { key, recipient }],
            vec![error_line(1, "gnomeregan", "ssh-rsa")],
        );
        assert!(errors.is_empty());
    }
}
