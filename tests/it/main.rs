//! hostage's end-to-end suites, one module per area, all in one test binary (faster to link).
//! They drive the real `hostage` binary and library and judge them by the real tools: sops 3.11,
//! Go age, OpenSSH. A missing tool fails with the package to install. The harness is
//! `tests/src/lib.rs`.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

mod check_plaintext;
mod commit_flag;
mod convert;
mod hardening;
mod identities;
mod offboard_corpus;
mod output_scale;
mod output_snapshots;
mod rekey_apply;
mod rekey_bad_input;
mod rekey_concurrent_edit;
mod rekey_crash;
mod rekey_pgp;
mod rekey_plan;
mod rekey_shamir;
mod rekey_support;
mod remote_common;
mod remote_deploy;
mod remote_fetch;
mod remote_fleet;
mod rotate_key_corpus;
mod rules_sops;
mod sops_create;
mod sops_interop;
mod sops_properties;
mod sops_set;
mod sops_support;
mod tidy;
mod workflow_backup;
mod workflow_corpus;
mod workflow_host_crash;
mod workflow_names;
mod workflow_offboard;
mod workflow_onboard;
mod workflow_rotate;
mod workflow_rotate_key;
mod workflow_seed;
mod workflow_set;
mod workflow_status;
mod workflow_sudo;
mod workflow_support;
mod workflow_trust;
