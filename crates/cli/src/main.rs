//! `hostage`: minimal dispatcher for the fleet verbs on the `remote` branch (the lead's CLI on
//! main replaces this file when merging; `fleet.rs` is self-contained).

// The binary reports errors on stderr: that is its job.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;

mod fleet;

/// Manage the age recipients of a sops secrets repo for a fleet of servers.
#[derive(Parser, Debug)]
#[command(name = "hostage", version)]
struct Cli {
    /// Print results as JSON lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Fetch and verify hosts' ed25519 keys over SSH and print their age recipients.
    Fetch(fleet::FetchArgs),
    /// Deploy the shared infrastructure key to hosts, safely.
    Deploy(fleet::DeployArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Fetch(args) => fleet::run_fetch(args, cli.json),
        Command::Deploy(args) => fleet::run_deploy(args, cli.json),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
