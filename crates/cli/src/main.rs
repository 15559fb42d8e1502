//! The `hostage` binary: parse arguments, run, and print errors once (`error:`, `caused by:`,
//! `hint:`), as ripgrep and rage do.

// main is where errors reach the operator.
#![allow(clippy::print_stderr)]

use std::io;
use std::process::ExitCode;

use clap::Parser as _;
use hostage::cli::Cli;
use hostage_recipients::KeyError;

fn main() -> ExitCode {
    // Before anything else (and before any thread): no core dumps, no ptrace attach, and the
    // secret variables taken out of the environment every child would inherit.
    if let Err(error) = hostage_process::harden() {
        eprintln!("error: {error}");
        eprintln!("caused by: {}", error.source);
        return ExitCode::from(1);
    }
    hostage_process::capture_secret_environment();
    let cli = Cli::parse();
    match hostage::run(cli) {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("caused by: {cause}");
            }
            if let Some(hint) = hint_for(&error) {
                eprintln!("hint: {hint}");
            }
            hostage::exit::code(hostage::exit::ERROR)
        }
    }
}

/// `hostage convert | head -1` must not print an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// What to do next, for the errors where the message alone does not say it.
fn hint_for(error: &anyhow::Error) -> Option<&str> {
    for cause in error.chain() {
        if let Some(workflow_error) = cause.downcast_ref::<hostage_workflows::WorkflowError>() {
            return workflow_error.hint();
        }
        if cause.is::<hostage::identities::NoIdentities>() {
            return Some(
                "set SOPS_AGE_KEY_FILE, put your key in ~/.config/sops/age/keys.txt, or pass --identity ~/.ssh/id_ed25519",
            );
        }
        if let Some(key_error) = cause.downcast_ref::<KeyError>() {
            return hostage_workflows::error::key_hint(key_error);
        }
    }
    None
}
