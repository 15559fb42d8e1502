//! The inventory: the fleet description hostage works from (`inventory/fleet.yaml`).
//!
//! It names the secrets repository, the non-host recipients (the operator's workstation and the
//! shared infrastructure key) and every host: how to reach it, whether it gets a per-host
//! recipient and the infrastructure key, which secret paths it must read, and the host-key pin
//! hostage recorded after verifying it.
//!
//! [`Inventory::load`] parses with `yaml_serde` into typed values and validates everything it can
//! without the network; every error names `file:line:column` and what to do. This crate does not
//! write the inventory back (pins are written by the workflows, with a lossless YAML editor).

mod model;
mod pins;
mod remove_host;

pub use model::{
    Fingerprint, Host, HostName, Infrastructure, Inventory, InventoryError, Pin, PrivateKeySource,
    RepoPath, SecretPath, Workstation,
};
