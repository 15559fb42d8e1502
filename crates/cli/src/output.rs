//! The one printer: results on stdout (text or JSON), warnings and progress on stderr.

// This module is where the binary prints; nothing else in the workspace does.
#![allow(clippy::print_stderr)]

use std::io::{self, BufWriter, Stdout, Write as _};

use serde::Serialize;

/// Whether to colour: only on a terminal, and not when `NO_COLOR` is set to anything non-empty.
pub fn colour_wanted(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// `text` in the ANSI colour `code` (`31` red, `32` green, `33` yellow) when `on`.
pub fn paint(on: bool, code: u8, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Where a command's result goes.
pub struct Output {
    json: bool,
    stdout: BufWriter<Stdout>,
}

impl Output {
    /// A printer for text, or for JSON when `json` is set.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            stdout: BufWriter::new(io::stdout()),
        }
    }

    /// Whether the user asked for JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether text may be coloured: stdout is a terminal and `NO_COLOR` is unset or empty
    /// (<https://no-color.org> convention, restated in docs/guide.md), never for JSON.
    pub fn color(&self) -> bool {
        use std::io::IsTerminal as _;
        !self.json
            && colour_wanted(
                io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            )
    }

    /// One line of text.
    pub fn line(&mut self, text: &str) -> io::Result<()> {
        self.stdout.write_all(text.as_bytes())?;
        self.stdout.write_all(b"\n")
    }

    /// Bytes exactly as given.
    pub fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stdout.write_all(bytes)
    }

    /// One JSON document, with [`FORMAT_VERSION`] as its first member (`docs/json.md`).
    pub fn json_value<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.stdout, &versioned(value)?)?;
        self.stdout.write_all(b"\n")
    }

    /// Flushes stdout (also done on drop, but errors are only seen here).
    pub fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

/// The version of every JSON document and line hostage prints (`format_version`); raised when a
/// member changes meaning or goes away (adding one does not).
pub const FORMAT_VERSION: u32 = 1;

/// `value` as JSON with `format_version` first (objects only; other values are left alone).
pub fn versioned<T: Serialize>(value: &T) -> io::Result<serde_json::Value> {
    let value = serde_json::to_value(value)?;
    Ok(match value {
        serde_json::Value::Object(members) => {
            let mut out = serde_json::Map::new();
            out.insert("format_version".to_owned(), FORMAT_VERSION.into());
            out.extend(members);
            serde_json::Value::Object(out)
        }
        other => other,
    })
}

/// One JSON line of a fleet verb's stream (`{"format_version": 1, "type": …, "data": …}`), written
/// at once so lines of concurrent hosts never interleave.
pub fn json_line(kind: &str, data: serde_json::Value) -> String {
    let line = serde_json::json!({ "format_version": FORMAT_VERSION, "type": kind, "data": data });
    line.to_string()
}

/// A warning on stderr: `warning: …`.
pub fn warn(message: &str) {
    eprintln!("warning: {message}");
}

/// An error about one item of many, on stderr: `error: …` (the command goes on with the others).
pub fn error(message: &str) {
    eprintln!("error: {message}");
}

/// A line of a stream (the fleet verbs print one per host as it finishes), written at once; a
/// closed pipe (`hostage fetch … | head`) is not an error worth a panic.
pub fn stream_line(line: &str) {
    let _ = writeln!(io::stdout().lock(), "{line}");
}

/// A line for the operator on stderr (progress, what happened), not a result.
pub fn note(message: &str) {
    eprintln!("{message}");
}

/// A question on stderr, without a newline, flushed so it shows before the answer is read.
pub fn prompt(text: &str) {
    eprint!("{text}");
    let _ = io::stderr().flush();
}

#[cfg(test)]
mod tests {
    use super::{colour_wanted, paint};

    #[test]
    fn colour_only_on_a_terminal_without_a_non_empty_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some("".as_ref())));
        assert!(!colour_wanted(true, Some("1".as_ref())));
        assert!(!colour_wanted(false, None));
        assert_eq!(paint(false, 31, "x"), "x");
        assert_eq!(paint(true, 31, "x"), "\x1b[31mx\x1b[0m");
    }
}
