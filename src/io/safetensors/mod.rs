//! safetensors files: opened read-only through a map with only the header parsed, checked as the
//! reference crate checks them (and for duplicate names), and saved by temp file and rename.

mod fast;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ::safetensors::SafeTensors;
use ::safetensors::tensor::TensorInfo;

use super::atomic::{WriteError, write_atomically};
use super::{Checkpoint, FileError, diagnose, sniff};
use crate::tensor::{Bytes, DType, Ranged, Tensor};

/// Why a safetensors file could not be read or written (the [`FileError`]'s kind).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of no bytes at all.
    #[error("the file is empty")]
    Empty,
    /// The header was refused.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The file could not be written.
    #[error("cannot write: {0}")]
    Write(#[from] WriteError),
}

/// Opens `path` read-only. Only the header is parsed; tensor bytes stay on disk until read.
pub fn open(path: &Path) -> Result<Checkpoint, FileError> {
    let fail = |error: Error| FileError::new(path, error);
    let map = super::mapped::open(path)?.map;
    if map.is_empty() {
        return Err(fail(Error::Empty));
    }
    let header = read_header(&map).map_err(|e| fail(e.into()))?;
    let tensors = header
        .tensors
        .into_iter()
        .map(|entry| {
            let bytes = Bytes::Mapped {
                map: Arc::clone(&map),
                start: header.data_start + entry.offsets.0,
                end: header.data_start + entry.offsets.1,
            };
            (entry.name, Tensor::new(entry.shape, entry.dtype, bytes))
        })
        .collect();
    Ok(Checkpoint::new(tensors, header.metadata))
}

/// Opens a file read by range (a remote one) from `head`, its first bytes (the header whole), and its
/// length `len`: only the header is parsed; each tensor is fetched from `source` when first read.
pub fn open_ranged(
    path: &Path,
    head: &[u8],
    len: u64,
    source: &Arc<dyn Ranged>,
) -> Result<Checkpoint, FileError> {
    let fail = |error: Error| FileError::new(path, error);
    if len == 0 {
        return Err(fail(Error::Empty));
    }
    let header = read_header_sized(head, len).map_err(|e| fail(e.into()))?;
    let tensors = header
        .tensors
        .into_iter()
        .map(|entry| {
            let start = (header.data_start + entry.offsets.0) as u64;
            let end = (header.data_start + entry.offsets.1) as u64;
            let bytes = Bytes::remote(Arc::clone(source), start..end);
            (entry.name, Tensor::new(entry.shape, entry.dtype, bytes))
        })
        .collect();
    Ok(Checkpoint::new(tensors, header.metadata))
}

/// One tensor's entry in a validated header.
pub struct HeaderEntry {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its byte range within the data section.
    pub offsets: (usize, usize),
}

/// A validated header: where the data starts, each tensor in data order, and `__metadata__`.
pub struct Header {
    /// Byte offset of the data section in the file.
    pub data_start: usize,
    /// The tensors, ordered by their data offsets.
    pub tensors: Vec<HeaderEntry>,
    /// The `__metadata__` map (empty when absent).
    pub metadata: BTreeMap<String, String>,
}

/// Why a file's header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The file is recognisably of another kind (the sentence says which, and what to do).
    #[error(transparent)]
    Foreign(sniff::Foreign),
    /// The header breaks a rule of the format.
    #[error("not a valid safetensors file: {0}")]
    Invalid(#[from] diagnose::Problem),
    /// A dtype the format has but paramscope does not know.
    #[error("tensor {tensor}: dtype {dtype} is not supported")]
    Unsupported {
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: String,
    },
}

/// Validates the header of a whole safetensors file as the reference crate does, and for duplicate
/// names, reading nothing past the header. The error says what the file is or what is wrong.
pub fn read_header(file: &[u8]) -> Result<Header, HeaderError> {
    read_header_sized(file, file.len() as u64)
}

/// [`read_header`] for a file of `file_len` bytes of which `file` holds the first ones (the header
/// whole): what a remote file's head is checked with. A header of an unusual shape is judged by the
/// reference crate, which needs the whole file; given only a head, it refuses it as incomplete.
pub fn read_header_sized(file: &[u8], file_len: u64) -> Result<Header, HeaderError> {
    if let Some(header) = fast::read(file, file_len) {
        return Ok(header);
    }
    // Not a plain valid header: the reference crate judges it, and the error says why.
    let explain = |problem: diagnose::Problem| {
        let head = &file[..file.len().min(512)];
        sniff::identify(head).map_or(HeaderError::Invalid(problem), HeaderError::Foreign)
    };
    let (header_len, metadata) =
        SafeTensors::read_metadata(file).map_err(|e| explain(diagnose::explain(file, &e)))?;
    // JSON parsers keep one of two equal keys silently; a checkpoint must not.
    let text = std::str::from_utf8(&file[8..8 + header_len]).expect("read_metadata checked UTF-8");
    diagnose::shape_problem(text).map_err(explain)?;
    let mut infos: Vec<(String, &TensorInfo)> = metadata.tensors().into_iter().collect();
    infos.sort_by_key(|(_, info)| info.data_offsets);
    let tensors = infos
        .into_iter()
        .map(|(name, info)| {
            let dtype = DType::from_name(&info.dtype.to_string()).ok_or_else(|| {
                HeaderError::Unsupported {
                    tensor: name.clone(),
                    dtype: info.dtype.to_string(),
                }
            })?;
            Ok(HeaderEntry {
                name,
                dtype,
                shape: info.shape.clone(),
                offsets: info.data_offsets,
            })
        })
        .collect::<Result<_, HeaderError>>()?;
    let metadata = metadata
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Header {
        data_start: 8 + header_len,
        tensors,
        metadata,
    })
}

/// Saves `tensors` with `metadata` to `path` by temp file, fsync and rename. Saving over a file that
/// is open (and mapped) here is safe: the old inode lives on until its map is dropped.
///
/// The layout is the reference serializer's (data ordered by its dtype enum, last first, then by name;
/// the header padded with spaces to 8 bytes), written here so that the header's key order is fixed:
/// the same model always gives the same bytes.
pub fn save(
    path: &Path,
    tensors: &[(String, &Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), FileError> {
    // A block-quantized (ggml) type has no safetensors name: said now, not by the read-back.
    let unstorable: Vec<_> = (tensors.iter())
        .filter(|(_, t)| matches!(t.dtype(), crate::tensor::DType::Ggml(_)))
        .collect();
    if let Some((name, tensor)) = unstorable.iter().min_by_key(|(name, _)| name) {
        let refusal = super::atomic::WriteError::Unstorable {
            count: unstorable.len(),
            tensor: name.clone(),
            dtype: tensor.dtype().to_string(),
        };
        return Err(FileError::new(path, Error::Write(refusal)));
    }
    let mut order: Vec<&(String, &Tensor)> = tensors.iter().collect();
    order.sort_by(|(a, ta), (b, tb)| {
        format_order(tb.dtype())
            .cmp(&format_order(ta.dtype()))
            .then_with(|| a.cmp(b))
    });
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let metadata = serde_json::to_value(metadata).expect("strings serialize");
        header.insert("__metadata__".into(), metadata);
    }
    let mut offset = 0usize;
    for (name, tensor) in &order {
        let end = offset + tensor.bytes().len();
        let info = serde_json::json!({
            "dtype": tensor.dtype().name(),
            "shape": tensor.shape(),
            "data_offsets": [offset, end],
        });
        header.insert(name.clone(), info);
        offset = end;
    }
    let mut header = serde_json::to_vec(&header).expect("a JSON map serializes");
    header.resize(header.len().next_multiple_of(8), b' ');
    write_atomically(
        path,
        |w| {
            w.write_all(&(header.len() as u64).to_le_bytes())?;
            w.write_all(&header)?;
            for (_, tensor) in &order {
                w.write_all(tensor.bytes())?;
            }
            Ok(())
        },
        // Re-read as any reader would, aliases included, before it replaces anything.
        |temp| {
            let written = open(temp).map_err(|e| e.kind)?;
            super::aliases::check(
                &written.metadata,
                written.tensors.iter().map(|(n, _)| n.as_str()),
            )?;
            Ok(())
        },
    )
    .map_err(|e| FileError::new(path, Error::Write(e)))
}

/// The reference crate's own order of dtypes (its enum's), by which its serializer lays out data:
/// sorting on it rather than on our list or on sizes gives the very bytes `safetensors` writes.
fn format_order(dtype: DType) -> Option<::safetensors::Dtype> {
    serde_json::from_value(serde_json::Value::from(dtype.name())).ok()
}
