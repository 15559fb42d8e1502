//! `Inventory::parse` (`inventory/fleet.yaml`, repository content) on arbitrary text. Its values
//! reach ssh configs and remote commands, so it must reject what it cannot vouch for, never panic.
#![no_main]

use std::path::Path;

use hostage_inventory::Inventory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `secrets_repo: .` resolves against `/`, which exists: parsing goes past that check.
    let _ = Inventory::parse(Path::new("/fleet.yaml"), text);
});
