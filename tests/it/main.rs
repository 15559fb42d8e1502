//! End-to-end suites: the real hostage binary and library against real sops, age and sshd.

mod rules_sops;

fn main() {}
