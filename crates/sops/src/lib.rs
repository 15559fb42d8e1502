//! The native sops engine: reads sops-encrypted files in every format, recovers and verifies the
//! data key, re-wraps it for a new set of recipients and rotates it, writing bytes sops accepts.
//! Also the `.sops.yaml` creation rules: finding, parsing, matching and lossless editing.
//!
//! It does no network and no printing; plaintext only ever lives in memory.

pub mod rules;
