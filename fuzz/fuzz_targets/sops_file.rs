//! `SopsFile::parse` on arbitrary bytes, in every format (detected and forced), then the reads
//! the planner makes of a parsed file. A sops file is repository content: a pull request writes it.
#![no_main]

use hostage_sops::{Format, SopsFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let forced = [
        None,
        Some(Format::Yaml),
        Some(Format::Json),
        Some(Format::Dotenv),
        Some(Format::Ini),
        Some(Format::Binary),
    ];
    for format in forced {
        if let Ok(file) = SopsFile::parse(data, format) {
            let _ = file.recipients();
            let _ = file.encrypted_paths();
            let _ = file.diff(&[vec![
                "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".to_owned(),
            ]]);
        }
    }
});
