//! The `hostage` command line: argument parsing, the verbs, and the one printer.
//!
//! Library crates below this one never print; this crate turns their results into text or JSON
//! on stdout and their errors into one `error:` message with causes and a hint on stderr.

pub mod backup_host_key;
pub mod check;
pub mod cli;
pub mod commit;
pub mod convert;
pub mod exit;
pub mod fleet;
pub mod identities;
pub mod man;
pub mod offboard;
pub mod onboard;
pub mod output;
pub mod passphrase;
pub mod rekey;
mod rekey_text;
pub mod rotate;
pub mod rotate_infra;
pub mod rotate_key;
pub mod set;
pub mod status;

use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::cli::{Cli, Command};
use crate::output::Output;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = Output::new(cli.json);
    let code = match &cli.command {
        Command::Convert(args) => convert::run(args, &mut out)?,
        Command::Identities(args) => identities::run(args, &mut out)?,
        // The fleet verbs stream one line per host as it finishes, so they print themselves.
        Command::Fetch(args) => fleet::run_fetch(args, cli.json, cli.inventory.as_deref())?,
        Command::Deploy(args) => fleet::run_deploy(args, cli.json, cli.inventory.as_deref())?,
        Command::Rekey(args) => rekey::run(args, &mut out, cli.inventory.as_deref())?,
        Command::Onboard(args) => onboard::run(args, &mut out, cli.inventory.as_deref())?,
        Command::Rotate(args) => rotate::run(args, &mut out, cli.inventory.as_deref())?,
        Command::RotateInfra(args) => rotate_infra::run(args, &mut out, cli.inventory.as_deref())?,
        Command::RotateKey(args) => rotate_key::run(args, &mut out, cli.inventory.as_deref())?,
        Command::Offboard(args) => offboard::run(args, &mut out, cli.inventory.as_deref())?,
        Command::BackupHostKey(args) => {
            backup_host_key::run(args, &mut out, cli.inventory.as_deref())?
        }
        Command::ExportHostKey(args) => {
            onboard::run_export(args, &mut out, cli.inventory.as_deref())?
        }
        Command::Set(args) => set::run(args, &mut out, cli.inventory.as_deref())?,
        Command::Status(args) => status::run(args, &mut out, cli.inventory.as_deref())?,
        Command::Check(args) => check::run(args, &mut out, cli.inventory.as_deref())?,
        Command::Completions(args) => {
            let mut buffer = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "hostage", &mut buffer);
            out.raw(&buffer)?;
            ExitCode::SUCCESS
        }
        Command::Man(args) => {
            for path in man::write(&args.dir)? {
                out.line(&path.display().to_string())?;
            }
            ExitCode::SUCCESS
        }
    };
    out.flush()?;
    Ok(code)
}
