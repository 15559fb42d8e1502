//! `hostage deploy` against real sshd hosts: atomic, 0400, idempotent, never in argv.
