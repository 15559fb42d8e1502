//! The inventory: the fleet description hostage works from (`inventory/fleet.yaml`).
//!
//! It names the secrets repository, the non-host recipients (the operator's workstation and the
//! shared infrastructure key) and every host: how to reach it, whether it gets a per-host
//! recipient and the infrastructure key, which secret paths it must read, and the host-key pin
//! hostage recorded after verifying it.
//!
//! [`Inventory::load`] parses with `yaml_serde` into typed values and validates everything it can
//! without the network; every error names `file:line:column` and what to do. It also computes
//! the inventory's new text for the workflows, losslessly with a YAML editor and re-parsed before
//! it is returned (`Inventory::with_pin`, `Inventory::without_host`); the workflows write it,
//! compare-and-swap, through the repository session.

mod model;
mod pins;
mod remove_host;

pub use model::{
    Fingerprint, Host, HostName, Infrastructure, Inventory, InventoryError, Pin, PrivateKeySource,
    RepoPath, SecretPath, Workstation,
};
