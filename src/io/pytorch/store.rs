//! Where a PyTorch file's bytes come from, for the readers of both layouts: a local file's map, or a
//! file read by range (a remote one), whose first bytes (and, for a zip, its last) are fetched once and
//! anything else when asked for. The layouts are parsed the same way over either; only a storage's
//! bytes differ: a range of the map, checked at once, or a record fetched when a tensor is first read.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;

use super::Error;
use super::record::{Lazy, Record};
use super::views::Backing;
use crate::tensor::Ranged;

/// Reads shorter than a page go by system call on a local file: touching a mapped page maps the pages
/// around it too (fault-around), so reading 2,000 small headers spread over a 1 GiB file through the
/// map would add some 128 MiB to the resident set.
const SMALL_READ: u64 = 4096;
/// The last bytes of a remote zip fetched with its first: the end record and, up to a few thousand
/// entries, the whole central directory, in one request.
const TAIL: u64 = 256 << 10;
/// The most a remote file's pickles or central directory may take: a server's sizes are not trusted
/// with an allocation past it (real ones are a few MB for the largest models).
const FETCH_CAP: u64 = 256 << 20;

/// A PyTorch file's bytes.
pub(super) enum Store {
    /// A local file: read in place.
    Mapped {
        /// Its map, shared with every tensor over it.
        map: Arc<Mmap>,
        /// The open file, for small reads by system call.
        file: File,
    },
    /// A file read by range.
    Fetched(Fetched),
}

/// A file read by range, with the bytes fetched so far at its two ends.
pub(super) struct Fetched {
    source: Arc<dyn Ranged>,
    len: u64,
    /// The first bytes, from offset 0.
    head: Arc<[u8]>,
    /// The last bytes not in `head`, ending at `len` (empty until [`Store::fetch_tail`]).
    tail: Arc<[u8]>,
}

/// What the zip crate reads a central directory through.
pub(super) trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

impl Store {
    /// A file of `len` bytes read from `source`, whose first bytes `head` are in already.
    pub(super) fn fetched(source: Arc<dyn Ranged>, len: u64, head: &[u8]) -> Store {
        let head = &head[..head.len().min(len as usize)];
        Store::Fetched(Fetched {
            source,
            len,
            head: Arc::from(head),
            tail: Arc::from(&[][..]),
        })
    }

    /// The file's length.
    pub(super) fn len(&self) -> u64 {
        match self {
            Store::Mapped { map, .. } => map.len() as u64,
            Store::Fetched(f) => f.len,
        }
    }

    /// The bytes from the file's start that are at hand: the whole map, or the head fetched (a legacy
    /// file's pickles are read there, the head grown until they fit).
    pub(super) fn prefix(&self) -> &[u8] {
        match self {
            Store::Mapped { map, .. } => map,
            Store::Fetched(f) => &f.head,
        }
    }

    /// Fetches a remote zip's last bytes (its end record and central directory) in one request, unless
    /// the head holds them; nothing for a local file.
    pub(super) fn fetch_tail(&mut self) -> Result<(), Error> {
        if let Store::Fetched(f) = self {
            let start = f.len.saturating_sub(TAIL).max(f.head.len() as u64);
            if start < f.len {
                f.tail = Arc::from(f.source.read(start..f.len)?);
            }
        }
        Ok(())
    }

    /// The bytes of `range`: from the map, or from what was fetched, else fetched now.
    pub(super) fn read(&self, range: Range<u64>) -> Result<Cow<'_, [u8]>, Error> {
        if range.start > range.end || range.end > self.len() {
            return Err(Error::Layout(format!(
                "bytes {}..{} lie past the end of the file ({} bytes; truncated?)",
                range.start,
                range.end,
                self.len()
            )));
        }
        let (start, end) = (range.start as usize, range.end as usize);
        match self {
            Store::Mapped { file, .. } if range.end - range.start < SMALL_READ => {
                let mut buf = vec![0; end - start];
                std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, range.start)
                    .map_err(|e| Error::Layout(format!("reading bytes {start}..{end}: {e}")))?;
                Ok(Cow::Owned(buf))
            }
            Store::Mapped { map, .. } => Ok(Cow::Borrowed(&map[start..end])),
            Store::Fetched(f) => {
                if let Some(bytes) = f.head.get(start..end) {
                    return Ok(Cow::Borrowed(bytes));
                }
                let tail_start = f.len - f.tail.len() as u64;
                if range.start >= tail_start {
                    let at = (range.start - tail_start) as usize;
                    return Ok(Cow::Borrowed(&f.tail[at..at + (end - start)]));
                }
                if range.end - range.start > FETCH_CAP {
                    return Err(too_long(range.end - range.start));
                }
                Ok(Cow::Owned(f.source.read(range)?))
            }
        }
    }

    /// A reader over the whole file for the zip crate, which reads the end record and the central
    /// directory through it (never the entries' data).
    pub(super) fn zip_reader(&self) -> Box<dyn ReadSeek + '_> {
        match self {
            Store::Mapped { map, .. } => Box::new(Cursor::new(&map[..])),
            Store::Fetched(f) => Box::new(Patchwork {
                source: &*f.source,
                len: f.len,
                pieces: vec![
                    (0, Arc::clone(&f.head)),
                    (f.len - f.tail.len() as u64, Arc::clone(&f.tail)),
                ],
                pos: 0,
                fetched: 0,
            }),
        }
    }

    /// Where `record`'s data lies, its header read and checked now.
    pub(super) fn span(&self, record: &Record) -> Result<Range<u64>, Error> {
        let end = record.at.saturating_add(record.fixed()).min(self.len());
        let header = self.read(record.at.min(end)..end)?;
        record.data(&header, self.len())
    }

    /// `record`'s data as a tensor's storage: a range of the map, its header checked now, or a record
    /// fetched (header and data in one request) when a tensor over it is first read.
    pub(super) fn backing(&self, record: Record) -> Result<Backing, Error> {
        match self {
            Store::Mapped { map, .. } => {
                let span = self.span(&record)?;
                Ok(Backing::Mapped(
                    Arc::clone(map),
                    span.start as usize..span.end as usize,
                ))
            }
            Store::Fetched(f) => {
                record.fits(f.len)?;
                let len = record.len;
                let lazy = Lazy::new(Arc::clone(&f.source), f.len, record);
                Ok(Backing::Ranged(Arc::new(lazy), len))
            }
        }
    }
}

fn too_long(size: u64) -> Error {
    Error::Layout(format!(
        "{size} bytes of pickle or zip directory to fetch, past the {FETCH_CAP}-byte limit; no real checkpoint has that many"
    ))
}

/// A remote file as the zip crate sees it: reads served from the pieces fetched, and a read that
/// misses them fetches the whole gap up to the next piece in one request, so that a central directory
/// longer than the tail costs one more request, not one per entry.
struct Patchwork<'a> {
    source: &'a dyn Ranged,
    len: u64,
    /// `(offset, bytes)`, sorted by offset.
    pieces: Vec<(u64, Arc<[u8]>)>,
    pos: u64,
    /// Bytes fetched for gaps so far, against [`FETCH_CAP`].
    fetched: u64,
}

impl Patchwork<'_> {
    fn fill_gap(&mut self) -> std::io::Result<()> {
        let end = self
            .pieces
            .iter()
            .map(|(at, _)| *at)
            .filter(|&at| at > self.pos)
            .min()
            .unwrap_or(self.len);
        let size = end - self.pos;
        if self.fetched + size > FETCH_CAP {
            return Err(std::io::Error::other(too_long(self.fetched + size)));
        }
        let bytes = self
            .source
            .read(self.pos..end)
            .map_err(std::io::Error::other)?;
        self.fetched += size;
        let at = self.pieces.partition_point(|(at, _)| *at < self.pos);
        self.pieces.insert(at, (self.pos, Arc::from(bytes)));
        Ok(())
    }
}

impl Read for Patchwork<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        for _ in 0..2 {
            let hit = self
                .pieces
                .iter()
                .find(|(at, bytes)| (*at..*at + bytes.len() as u64).contains(&self.pos));
            if let Some((at, bytes)) = hit {
                let from = (self.pos - at) as usize;
                let n = buf.len().min(bytes.len() - from);
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                self.pos += n as u64;
                return Ok(n);
            }
            self.fill_gap()?;
        }
        Err(std::io::Error::other(
            "a fetched range did not cover the read",
        ))
    }
}

impl Seek for Patchwork<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| std::io::Error::other("a seek before the file's start"))?;
        Ok(self.pos)
    }
}
