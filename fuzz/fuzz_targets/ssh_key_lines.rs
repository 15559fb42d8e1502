//! `parse_key_lines`: public key text in every shape (bare, authorized_keys with options,
//! known_hosts, ssh-keyscan output). Hosts answer with it and the repository stores it.
#![no_main]

use hostage_recipients::parse_key_lines;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in parse_key_lines(text).into_iter().flatten() {
        let _ = line.key.fingerprint();
        let _ = line.key.to_age_recipient();
    }
});
