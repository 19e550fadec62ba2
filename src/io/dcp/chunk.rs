//! A chunk's bytes inside a `.distcp` file: a `torch.save` archive of the chunk's tensor (what
//! `FileSystemWriter` writes by default), or the raw little-endian elements when the byte range is
//! exactly their size and is no archive. A chunk is read (its archive checked) only when its
//! tensor's values are first asked for.

use std::io::Cursor;
use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;
use zip::{CompressionMethod, ZipArchive};

use super::Problem;
use crate::io::pickle::{self, Object, TorchDtype, Unpickled};

/// A chunk found in its file: where its element `[0, 0, ...]` is, and how to step through it.
pub struct Piece {
    map: Arc<Mmap>,
    /// The byte of its first element within the map.
    base: usize,
    /// Its strides, in elements.
    strides: Vec<usize>,
    /// Its extent per dimension.
    sizes: Vec<usize>,
    /// Where it starts in the whole tensor.
    offsets: Vec<usize>,
}

impl Piece {
    /// The chunk's bytes as one contiguous range of the map, when they are stored so.
    pub fn contiguous(&self, elem: usize) -> Option<Range<usize>> {
        let mut expected = 1;
        for (&d, &s) in self.sizes.iter().zip(&self.strides).rev() {
            if d > 1 && s != expected {
                return None;
            }
            expected *= d;
        }
        Some(self.base..self.base + expected * elem)
    }

    /// Copies the chunk into `out`, the whole tensor of C strides `full`: row by row along the
    /// last dimension, each row in one go when stored contiguously.
    pub fn copy_into(&self, out: &mut [u8], full: &[usize], elem: usize) {
        let dims = self.sizes.len();
        let (row, inner_stride) = match dims {
            0 => (1, 1),
            _ => (self.sizes[dims - 1], self.strides[dims - 1]),
        };
        let outer = dims.saturating_sub(1);
        let mut index = vec![0usize; outer];
        loop {
            let mut src = self.base;
            let mut dst = 0;
            for d in 0..outer {
                src += index[d] * self.strides[d] * elem;
                dst += (self.offsets[d] + index[d]) * full[d];
            }
            if dims > 0 {
                dst += self.offsets[dims - 1];
            }
            let dst = dst * elem;
            if inner_stride == 1 {
                out[dst..dst + row * elem].copy_from_slice(&self.map[src..src + row * elem]);
            } else {
                for k in 0..row {
                    let s = src + k * inner_stride * elem;
                    out[dst + k * elem..dst + (k + 1) * elem]
                        .copy_from_slice(&self.map[s..s + elem]);
                }
            }
            // The next row: an odometer over the outer dimensions.
            let mut d = outer;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                index[d] += 1;
                if index[d] < self.sizes[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    }
}

/// The torch.save archive in `range` of `map` holding a chunk of `sizes` elements of `dtype`, or
/// the raw elements; checked to lie inside its storage.
pub fn piece(
    map: &Arc<Mmap>,
    range: Range<usize>,
    dtype: TorchDtype,
    sizes: &[u64],
    offsets: &[u64],
) -> Result<Piece, Problem> {
    let elem = dtype.size();
    let usize_of = |v: &[u64]| -> Result<Vec<usize>, Problem> {
        v.iter()
            .map(|&x| usize::try_from(x).map_err(|_| Problem::Absurd))
            .collect()
    };
    let sizes = usize_of(sizes)?;
    let offsets = usize_of(offsets)?;
    let numel = sizes
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or(Problem::Absurd)?;
    let bytes = &map[range.clone()];
    if !bytes.starts_with(b"PK\x03\x04") {
        if Some(bytes.len()) != numel.checked_mul(elem) {
            return Err(Problem::Chunk(format!(
                "its {} bytes are neither a torch.save archive nor the {numel} raw elements",
                bytes.len()
            )));
        }
        return Ok(Piece {
            map: Arc::clone(map),
            base: range.start,
            strides: c_strides(&sizes),
            sizes,
            offsets,
        });
    }
    let archive = Archive::open(bytes)?;
    let Some(Object::Tensor(t)) = (match &archive.unpickled.root {
        pickle::Value::Obj(id) => Some(archive.unpickled.heap.get(*id)),
        _ => None,
    }) else {
        return Err(Problem::Chunk("its archive holds no tensor".into()));
    };
    if t.dtype != dtype {
        return Err(Problem::Chunk(format!(
            "its archive holds {}, the metadata says {}",
            t.dtype.name(),
            dtype.name()
        )));
    }
    if t.shape
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .ne(sizes.iter().map(|&d| Some(d)))
    {
        return Err(Problem::Chunk(format!(
            "its archive holds shape {:?}, the metadata says {sizes:?}",
            t.shape
        )));
    }
    let storage = archive.storage(&t.storage.key)?;
    let strides = usize_of(&t.strides)?;
    let offset = usize::try_from(t.offset).map_err(|_| Problem::Absurd)?;
    if numel > 0 {
        // The byte after the last element the view reaches.
        let reach = sizes
            .iter()
            .zip(&strides)
            .try_fold(offset, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?))
            .and_then(|last| last.checked_add(1)?.checked_mul(elem));
        if reach.is_none_or(|r| r > storage.len()) {
            return Err(Problem::Chunk(
                "its tensor reaches past the end of its storage".into(),
            ));
        }
    }
    Ok(Piece {
        map: Arc::clone(map),
        base: range.start + storage.start + offset * elem,
        strides,
        sizes,
        offsets,
    })
}

/// A torch.save archive within a `.distcp` file: its pickle run, its entries found.
pub struct Archive<'a> {
    /// The archive's `data.pkl`, run.
    pub unpickled: Unpickled,
    entries: Entries<'a>,
}

/// The entries of a zip, by name under the archive's folder.
struct Entries<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    bytes: &'a [u8],
    names: Vec<Vec<u8>>,
    prefix: Vec<u8>,
}

impl<'a> Archive<'a> {
    /// Reads the archive in `bytes`: only a little-endian one whose pickle names nothing outside
    /// torch's `weights_only` allow-list (torch's own reader refuses those).
    pub fn open(bytes: &'a [u8]) -> Result<Self, Problem> {
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|_| damaged("not a readable zip"))?;
        if zip.has_duplicate_names() {
            return Err(damaged("one entry name twice"));
        }
        let names: Vec<Vec<u8>> = zip.file_names_raw().map(<[u8]>::to_vec).collect();
        let pkl = names
            .iter()
            .find(|n| {
                n.strip_suffix(b"/data.pkl")
                    .is_some_and(|folder| !folder.contains(&b'/'))
            })
            .ok_or_else(|| damaged("no data.pkl"))?;
        let prefix = pkl[..pkl.len() - b"data.pkl".len()].to_vec();
        let entries = Entries {
            zip,
            bytes,
            names,
            prefix,
        };
        if let Ok(order) = entries.entry(b"byteorder")
            && &bytes[order] != b"little"
        {
            return Err(Problem::Chunk("its archive is not little-endian".into()));
        }
        let at = entries.entry(b"data.pkl")?;
        let unpickled = pickle::unpickle(&bytes[at.clone()], at.start)
            .map_err(|e| Problem::Chunk(format!("its pickle: {e}")))?;
        if let Some(global) = unpickled.foreign.first() {
            return Err(Problem::Chunk(format!(
                "its pickle names {global}, outside torch's weights_only allow-list, which torch's own reader refuses"
            )));
        }
        Ok(Archive { unpickled, entries })
    }

    /// The byte range of storage `key`.
    pub fn storage(&self, key: &str) -> Result<Range<usize>, Problem> {
        self.entries.entry(format!("data/{key}").as_bytes())
    }
}

impl Entries<'_> {
    /// The byte range (within the archive) of entry `<prefix>/name`.
    fn entry(&self, name: &[u8]) -> Result<Range<usize>, Problem> {
        let mut full = self.prefix.clone();
        full.extend_from_slice(name);
        let index = self
            .names
            .iter()
            .position(|n| *n == full)
            .ok_or_else(|| damaged("an entry is missing"))?;
        entry_range(&self.zip, self.bytes, index)
            .ok_or_else(|| damaged("an entry runs past its end"))
    }
}

fn damaged(why: &str) -> Problem {
    Problem::Chunk(format!("its archive is damaged ({why})"))
}

/// Entry `index`'s stored bytes, after its local header.
fn entry_range(
    zip: &ZipArchive<Cursor<&[u8]>>,
    bytes: &[u8],
    index: usize,
) -> Option<Range<usize>> {
    let entry = zip.by_index_data(index).ok()?;
    if entry.compression() != CompressionMethod::Stored || entry.encrypted() {
        return None;
    }
    let header = usize::try_from(entry.header_start()).ok()?;
    let local = bytes.get(header..header.checked_add(30)?)?;
    if !local.starts_with(b"PK\x03\x04") {
        return None;
    }
    let name_len = usize::from(u16::from_le_bytes([local[26], local[27]]));
    let extra_len = usize::from(u16::from_le_bytes([local[28], local[29]]));
    let start = header + 30 + name_len + extra_len;
    let end = start.checked_add(usize::try_from(entry.size()).ok()?)?;
    (end <= bytes.len()).then_some(start..end)
}

/// The strides of a C-ordered array of `sizes`.
pub fn c_strides(sizes: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; sizes.len()];
    for d in (0..sizes.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * sizes[d + 1];
    }
    strides
}
