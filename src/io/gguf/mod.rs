//! GGUF files (llama.cpp's format, versions 2 and 3): opened read-only through a map with only
//! the header parsed; each tensor is a range of the map in its ggml type, dequantized only when
//! its values are asked for.

mod cursor;
mod reader;
pub mod value;

use std::path::Path;
use std::sync::Arc;

pub use cursor::GgufError;
pub use reader::{Header, TensorInfo, read_header, read_header_sized};
pub use value::{Value, ValueType};

use super::FileError;
use crate::tensor::{Bytes, Ranged, Tensor};

/// An opened GGUF file: its metadata in file order and its tensors over the map.
pub struct Gguf {
    /// 2 or 3.
    pub version: u32,
    /// Every metadata pair, in file order.
    pub metadata: Vec<(String, Value)>,
    /// `(name, tensor)` for every tensor, in file order, shapes outermost first.
    pub tensors: Vec<(String, Tensor)>,
}

/// Whether `head` (a file's first bytes) starts like a GGUF file.
#[must_use]
pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(b"GGUF")
}

/// Opens `path` read-only, parsing and checking the header (keeping `keep` items of each metadata
/// array); tensor bytes stay on disk.
pub fn open(path: &Path, keep: usize) -> Result<Gguf, FileError> {
    let map = crate::io::mapped::open(path)?.map;
    let header = read_header(&map, keep).map_err(|e| FileError::new(path, e))?;
    Ok(assemble(header, |range| Bytes::Mapped {
        map: Arc::clone(&map),
        start: range.start,
        end: range.end,
    }))
}

/// Opens a file read by range (a remote one) of `len` bytes from `head`, its first bytes (the header
/// and tensor table whole); each tensor is fetched from `source` when first read.
pub fn open_ranged(
    path: &Path,
    head: &[u8],
    len: u64,
    keep: usize,
    source: &Arc<dyn Ranged>,
) -> Result<Gguf, FileError> {
    let header = read_header_sized(head, len, keep).map_err(|e| FileError::new(path, e))?;
    Ok(assemble(header, |range| {
        Bytes::remote(Arc::clone(source), range.start as u64..range.end as u64)
    }))
}

fn assemble(header: Header, bytes: impl Fn(std::ops::Range<usize>) -> Bytes) -> Gguf {
    let tensors = header
        .tensors
        .into_iter()
        .map(|info| {
            let bytes = bytes(info.range);
            (info.name, Tensor::new(info.shape, info.dtype, bytes))
        })
        .collect();
    Gguf {
        version: header.version,
        metadata: header.metadata,
        tensors,
    }
}
