//! known_hosts lines as ssh writes them and the network answers (`host[,host] keytype base64`,
//! `[host]:port`, hashed `|1|…`, `@cert-authority`), plus the host and fingerprint parsers that
//! read what the operator and the hosts hand over.
#![no_main]

use hostage_recipients::parse_key_lines;
use hostage_remote::{Fingerprint, HostSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in parse_key_lines(text).into_iter().flatten() {
        let _ = line.key.fingerprint();
    }
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if let Some(host) = fields.next() {
            let _ = HostSpec::parse(host);
        }
        let _ = Fingerprint::parse(line);
    }
});
