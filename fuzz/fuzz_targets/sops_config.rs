//! `SopsConfig::parse` (`.sops.yaml`, repository content) on arbitrary text, then rule lookup,
//! lints and the names of recipients, which every workflow reads.
#![no_main]

use std::path::Path;

use hostage_sops::rules::SopsConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = SopsConfig::parse(Path::new("/repo/.sops.yaml"), text) {
        let _ = config.lints();
        let _ = config.named_recipients();
        for file in [
            "secrets/a.yaml",
            "/repo/secrets/hosts/web01/db.env",
            "x.json",
        ] {
            let _ = config.rule_for(Path::new(file));
        }
    }
});
