//! The exit codes, defined once (ripgrep's convention; documented in `--help`).

use std::process::ExitCode;

/// Everything done (or nothing to do).
pub const SUCCESS: u8 = 0;
/// An error: some input could not be handled (the others were), or the run stopped.
pub const ERROR: u8 = 1;
/// A usage error: the command line is wrong (clap's own code for its errors).
pub const USAGE: u8 = 2;
/// A check found drift (`rekey --check`, `status`).
pub const DRIFT: u8 = 3;
/// Interrupted by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;

/// The `Exit codes:` paragraph of `hostage --help`.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  error (some input could not be handled; the others were)
  2  usage error
  3  check found drift (commands with --check)";

/// `code` as the process's exit status.
pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
