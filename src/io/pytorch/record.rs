//! A storage's bytes as both layouts keep them: behind a header that must be read to know where the data
//! starts and to check it. A zip entry has a local header of 30 bytes, then its name and an extra field
//! (torch pads it so the data is aligned to 64 bytes), whose lengths only that header gives; a legacy
//! storage has an 8-byte element count, which must agree with its pickle. A local file's headers are
//! read when it opens ([`super::store::Store::span`]); a remote file's when a tensor is first read,
//! in the same request as the data ([`Lazy`]), so listing a file fetches no header of any storage.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use super::Error;
use crate::tensor::{FetchError, Ranged};

/// The local header's fixed part.
const ZIP_FIXED: u64 = 30;
/// An extra field's length guessed for a first fetch: torch's padding (up to 63 bytes and a 4-byte
/// field header) and a zip64 field (20 bytes) fit; a longer one costs a second request.
const EXTRA_GUESS: u64 = 128;
/// A first read that starts this far into its storage fetches the header alone first, rather than the
/// bytes before the tensor's (a view deep inside a large shared storage).
const ONE_REQUEST: u64 = 1 << 20;

/// A storage's header and data.
#[derive(Debug, Clone)]
pub(super) struct Record {
    /// Where the header starts in the file.
    pub at: u64,
    /// What the header is.
    pub header: Header,
    /// The data's length in bytes.
    pub len: u64,
    /// What messages call it (`storage 3`, `data.pkl`).
    pub what: String,
}

/// The header before a storage's data.
#[derive(Debug, Clone, Copy)]
pub(super) enum Header {
    /// A zip entry's local header; `name_len` is the central directory's name length, which the local
    /// one repeats (a guess only, for the first fetch).
    Zip {
        /// The entry name's length in the central directory.
        name_len: u64,
    },
    /// A legacy storage's element count, in the file's byte order.
    Count {
        /// The element count the pickle gives.
        numel: u64,
        /// Whether the file is big-endian.
        big_endian: bool,
    },
}

impl Record {
    /// The bytes of header that say where the data starts.
    pub(super) fn fixed(&self) -> u64 {
        match self.header {
            Header::Zip { .. } => ZIP_FIXED,
            Header::Count { .. } => 8,
        }
    }

    /// The header's length as a first fetch guesses it.
    fn guess(&self) -> u64 {
        match self.header {
            Header::Zip { name_len } => ZIP_FIXED + name_len + EXTRA_GUESS,
            Header::Count { .. } => 8,
        }
    }

    /// Where the data lies, from the header's first [`fixed`](Self::fixed) bytes (fewer: the file ends
    /// there), after checking them and that the data ends inside a file of `file_len` bytes.
    pub(super) fn data(&self, header: &[u8], file_len: u64) -> Result<Range<u64>, Error> {
        let start = match self.header {
            Header::Zip { .. } => {
                let local = header
                    .get(..ZIP_FIXED as usize)
                    .filter(|h| h.starts_with(b"PK\x03\x04"))
                    .ok_or_else(|| {
                        self.zip_error("its local header is missing (a truncated or damaged zip)")
                    })?;
                let name_len = u64::from(u16::from_le_bytes([local[26], local[27]]));
                let extra_len = u64::from(u16::from_le_bytes([local[28], local[29]]));
                self.at + ZIP_FIXED + name_len + extra_len
            }
            Header::Count { numel, big_endian } => {
                let bytes: [u8; 8] = header
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| self.legacy_truncated(self.at, file_len))?;
                let count = if big_endian {
                    u64::from_be_bytes(bytes)
                } else {
                    u64::from_le_bytes(bytes)
                };
                if count != numel {
                    return Err(Error::Layout(format!(
                        "{}: the file counts {count} elements where its pickle says {numel}",
                        self.what
                    )));
                }
                self.at + 8
            }
        };
        self.past_end(start, file_len)?;
        Ok(start..start + self.len)
    }

    /// Checks, before its header is read, that the record can lie inside a file of `file_len` bytes:
    /// its header's fixed part and its data (a legacy file truncated in its last storage is refused
    /// when it opens, remote or local).
    pub(super) fn fits(&self, file_len: u64) -> Result<(), Error> {
        let start = self.at.saturating_add(self.fixed());
        if start > file_len {
            return Err(match self.header {
                Header::Zip { .. } => {
                    self.zip_error("its local header is missing (a truncated or damaged zip)")
                }
                Header::Count { .. } => self.legacy_truncated(self.at, file_len),
            });
        }
        self.past_end(start, file_len)
    }

    /// Refuses data of this record starting at `start` and running past a file of `file_len` bytes.
    fn past_end(&self, start: u64, file_len: u64) -> Result<(), Error> {
        if start
            .checked_add(self.len)
            .is_some_and(|end| end <= file_len)
        {
            return Ok(());
        }
        Err(match self.header {
            Header::Zip { .. } => self.zip_error(&format!(
                "its {} bytes at offset {start} run past the end of the file ({file_len} bytes; truncated?)",
                self.len
            )),
            Header::Count { .. } => self.legacy_truncated(start, file_len),
        })
    }

    fn zip_error(&self, why: &str) -> Error {
        Error::Layout(format!("{}: {why}", self.what))
    }

    fn legacy_truncated(&self, at: u64, len: u64) -> Error {
        Error::Layout(format!(
            "{}: its data at offset {at} runs past the end of the file ({len} bytes; truncated?)",
            self.what
        ))
    }
}

/// A remote storage, in the coordinates of its data (`0..len`): the first read fetches the header with
/// the data asked for, checks the header and remembers where the data starts; later reads fetch just
/// their range.
pub(super) struct Lazy {
    file: Arc<dyn Ranged>,
    file_len: u64,
    record: Record,
    data: OnceLock<Range<u64>>,
}

impl Lazy {
    pub(super) fn new(file: Arc<dyn Ranged>, file_len: u64, record: Record) -> Lazy {
        Lazy {
            file,
            file_len,
            record,
            data: OnceLock::new(),
        }
    }
}

impl Ranged for Lazy {
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, FetchError> {
        if let Some(data) = self.data.get() {
            return self
                .file
                .read(data.start + range.start..data.start + range.end);
        }
        let at = self.record.at;
        let header_end = at.saturating_add(self.record.guess()).min(self.file_len);
        let end = if range.start > ONE_REQUEST {
            header_end
        } else {
            header_end.saturating_add(range.end).min(self.file_len)
        };
        let mut bytes = self.file.read(at..end)?;
        let data = self
            .record
            .data(&bytes, self.file_len)
            .map_err(|e| FetchError(Box::new(e)))?;
        let data = self.data.get_or_init(|| data);
        let want = data.start + range.start..data.start + range.end;
        if want.end > end {
            // A longer header than guessed, or a range deep inside the storage: one more request.
            return self.file.read(want);
        }
        bytes.truncate((want.end - at) as usize);
        bytes.drain(..(want.start - at) as usize);
        Ok(bytes)
    }

    fn content(&self) -> Option<String> {
        // The same file's record at the same offset holds the same data.
        Some(format!("{}@{}", self.file.content()?, self.record.at))
    }
}
