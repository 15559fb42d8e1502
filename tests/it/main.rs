//! hostage's end-to-end suites, one test binary (one module per suite).

mod remote_common;
mod remote_deploy;
mod remote_fetch;
mod remote_fleet;
