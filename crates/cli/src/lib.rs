//! The `hostage` command line (the binary lives in `main.rs`).
