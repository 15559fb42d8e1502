//! hostage's end-to-end suites, one test binary (see `tests/src/lib.rs` for the harness).

mod sops_interop;
mod sops_properties;
mod sops_support;
