//! Where a plan's per-file entries live while a run needs them: an unnamed temp file (the kernel
//! removes it when the process exits, even when killed), one JSON document per entry, in order.
//! A plan of 100,000 files then costs the memory of one batch, not of the whole repo, and it
//! holds no secret (paths, public recipients, the names of encrypted values).

use std::io::{BufRead as _, BufReader, BufWriter, Read, Seek as _, Write as _};
use std::os::unix::fs::FileExt as _;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::RekeyError;

/// Bytes read from the temp file at a time.
const READ_BUFFER: usize = 64 * 1024;

/// Entries being appended; [`finish`](Self::finish) turns them into a readable [`Store`].
pub(crate) struct StoreWriter {
    out: BufWriter<std::fs::File>,
    len: usize,
}

impl StoreWriter {
    pub(crate) fn new() -> Result<Self, RekeyError> {
        let file = tempfile::tempfile().map_err(spill_error)?;
        Ok(Self {
            out: BufWriter::with_capacity(READ_BUFFER, file),
            len: 0,
        })
    }

    /// Appends one entry.
    pub(crate) fn push<T: Serialize>(&mut self, entry: &T) -> Result<(), RekeyError> {
        serde_json::to_writer(&mut self.out, entry).map_err(spill_error)?;
        self.out.write_all(b"\n").map_err(spill_error)?;
        self.len += 1;
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Store, RekeyError> {
        let mut file = self.out.into_inner().map_err(|e| spill_error(e.error()))?;
        let end = file.stream_position().map_err(spill_error)?;
        Ok(Store {
            file,
            end,
            len: self.len,
        })
    }
}

/// Entries written by a [`StoreWriter`], read back in order as often as needed (each reader
/// keeps its own position, so a report can walk the entries once per removed recipient).
#[derive(Debug)]
pub(crate) struct Store {
    file: std::fs::File,
    end: u64,
    len: usize,
}

impl Store {
    /// An empty store (no temp file).
    pub(crate) fn empty() -> Result<Self, RekeyError> {
        StoreWriter::new()?.finish()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every entry, in the order written.
    pub(crate) fn iter<T: DeserializeOwned>(
        &self,
    ) -> impl Iterator<Item = Result<T, RekeyError>> + '_ {
        let reader = BufReader::with_capacity(
            READ_BUFFER,
            At {
                file: &self.file,
                position: 0,
                end: self.end,
            },
        );
        reader.lines().map(|line| {
            let line = line.map_err(spill_error)?;
            serde_json::from_str(&line).map_err(spill_error)
        })
    }
}

/// Reads `file` from `position` to `end` without moving the file's own offset.
struct At<'a> {
    file: &'a std::fs::File,
    position: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end - self.position).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let read = self.file.read_at(&mut buf[..want], self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

/// Paths as JSON strings, or as bytes when they are not UTF-8 (Unix paths need not be).
pub(crate) mod os_path {
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub(crate) fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
        match path.to_str() {
            Some(text) => serializer.serialize_str(text),
            None => serializer.collect_seq(path.as_os_str().as_bytes()),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<PathBuf, D::Error> {
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Text(text) => PathBuf::from(text),
            Stored::Bytes(bytes) => PathBuf::from(std::ffi::OsString::from_vec(bytes)),
        })
    }
}

fn spill_error(error: impl std::fmt::Display) -> RekeyError {
    RekeyError::Spill {
        dir: std::env::temp_dir(),
        what: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_in_order_by_independent_readers() {
        let mut writer = StoreWriter::new().unwrap();
        for n in 0..1000_u32 {
            writer.push(&(n, format!("entry\n{n}"))).unwrap();
        }
        let store = writer.finish().unwrap();
        assert_eq!(store.len(), 1000);
        let mut first = store.iter::<(u32, String)>();
        let mut second = store.iter::<(u32, String)>();
        assert_eq!(first.next().unwrap().unwrap().0, 0);
        assert_eq!(second.next().unwrap().unwrap().0, 0);
        let rest: Vec<u32> = first.map(|e| e.unwrap().0).collect();
        assert_eq!(rest, (1..1000).collect::<Vec<_>>());
        assert_eq!(second.next().unwrap().unwrap().1, "entry\n1");
        assert_eq!(Store::empty().unwrap().iter::<u32>().count(), 0);
    }

    #[test]
    fn paths_that_are_not_utf8_survive_the_spill() {
        use std::os::unix::ffi::OsStringExt as _;
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Entry(#[serde(with = "os_path")] std::path::PathBuf);
        let odd = Entry(std::ffi::OsString::from_vec(b"/repo/caf\xe9.yaml".to_vec()).into());
        let plain = Entry("/repo/cafe.yaml".into());
        let mut writer = StoreWriter::new().unwrap();
        writer.push(&odd).unwrap();
        writer.push(&plain).unwrap();
        let store = writer.finish().unwrap();
        let back: Vec<Entry> = store.iter().map(Result::unwrap).collect();
        assert_eq!(back, [odd, plain]);
    }
}
