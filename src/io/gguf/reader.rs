//! Parsing a GGUF header from the mapped bytes: magic, version, counts, every metadata pair,
//! every tensor info, the alignment and the data section, all checked against the file length.

use thiserror::Error;

use super::value::{self, Value};
use crate::tensor::DType;
use crate::tensor::ggml::Quant;
use crate::text::escape;

/// Why a file is not a GGUF file paramscope can read. Offsets are bytes from the file's start.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GgufError {
    /// No `GGUF` magic.
    #[error("not a GGUF file (no GGUF magic)")]
    Magic,
    /// A version other than 2 and 3.
    #[error("GGUF version {0} is not supported (2 and 3 are)")]
    Version(u32),
    /// The version reads right only byte-swapped: a big-endian file.
    #[error("a big-endian GGUF file is not supported")]
    BigEndian,
    /// The file ends inside a field.
    #[error("truncated at byte {offset}: the {what} needs {need} bytes, {left} are left")]
    Truncated {
        /// Where the field starts.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// Bytes it needs.
        need: u64,
        /// Bytes left in the file.
        left: usize,
    },
    /// A length or count the file cannot hold (or beyond a cap).
    #[error("at byte {offset}: a {what} of {len} is more than the file can hold")]
    TooLong {
        /// Where the length is stored.
        offset: usize,
        /// What it counts.
        what: &'static str,
        /// The length read.
        len: u64,
    },
    /// Arrays nested too deep.
    #[error("at byte {offset}: metadata arrays are nested too deep")]
    TooDeep {
        /// Where the array starts.
        offset: usize,
    },
    /// A metadata value type number that GGUF does not have.
    #[error("at byte {offset}: unknown metadata value type {id}")]
    ValueType {
        /// Where the value starts.
        offset: usize,
        /// The type number read.
        id: u32,
    },
    /// A metadata key given twice.
    #[error("metadata key {0} is given twice")]
    DuplicateKey(String),
    /// A tensor name given twice.
    #[error("tensor {0} is given twice")]
    DuplicateTensor(String),
    /// `general.alignment` is not a power of two that fits.
    #[error("general.alignment {0} is not a power of two between 1 and 2^30")]
    Alignment(String),
    /// A tensor whose ggml type paramscope does not know.
    #[error("tensor {name}: ggml type {id} is not supported")]
    TensorType {
        /// The tensor's name.
        name: String,
        /// The type number.
        id: u32,
    },
    /// A tensor whose shape is not one (dimensions, overflow, partial blocks).
    #[error("tensor {name}: {why}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A tensor whose data is misplaced.
    #[error("tensor {name}: data at offset {offset} {why}")]
    Data {
        /// The tensor's name.
        name: String,
        /// Its offset in the data section.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
}

/// A checked reader over the file's bytes.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn offset(&self) -> usize {
        self.at
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The next `len` bytes, or an error naming `what` when the file ends first.
    pub(super) fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        let truncated = GgufError::Truncated {
            offset: self.at,
            what,
            need: len,
            left: self.remaining(),
        };
        let len = usize::try_from(len).map_err(|_| truncated.clone())?;
        if len > self.remaining() {
            return Err(truncated);
        }
        let out = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(out)
    }

    pub(super) fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let slice = self.take(N as u64, "value")?;
        Ok(slice.try_into().expect("took N bytes"))
    }

    pub(super) fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
}

/// One tensor's entry: its name, type, PyTorch-order shape and absolute byte range in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its element type (a plain dtype, or `DType::Ggml`).
    pub dtype: DType,
    /// Its shape, outermost first (the file lists ggml's `ne`, innermost first).
    pub shape: Vec<usize>,
    /// Its bytes within the file.
    pub range: std::ops::Range<usize>,
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// Every metadata pair, in file order.
    pub metadata: Vec<(String, Value)>,
    /// Every tensor, in file order.
    pub tensors: Vec<TensorInfo>,
    /// The data alignment (`general.alignment`, 32 when absent).
    pub alignment: usize,
    /// Where the data section starts.
    pub data_start: usize,
}

/// ggml's limit on dimensions (`GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;

/// The longest key or tensor name read.
const MAX_NAME: u64 = 64 << 10;

/// The default data alignment (`GGUF_DEFAULT_ALIGNMENT`).
const DEFAULT_ALIGNMENT: usize = 32;

/// Bytes a tensor info takes at the least (an empty name, no dimensions, type and offset):
/// what the tensor count is checked against.
const MIN_TENSOR_INFO: u64 = 8 + 4 + 4 + 8;

/// Bytes a metadata pair takes at the least (an empty key, a type, a one-byte value).
const MIN_KV: u64 = 8 + 4 + 1;

/// Parses and checks the header of a whole GGUF file, keeping the first `keep` items of each
/// metadata array: nothing is allocated that the file's length (and `keep`) does not bound, and
/// every tensor's bytes lie inside the file.
pub fn read_header(file: &[u8], keep: usize) -> Result<Header, GgufError> {
    let mut c = Cursor { bytes: file, at: 0 };
    if file.get(..4) != Some(b"GGUF") {
        return Err(GgufError::Magic);
    }
    c.at = 4;
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        return Err(if version.swap_bytes() <= 3 {
            GgufError::BigEndian
        } else {
            GgufError::Version(version)
        });
    }
    let tensor_count = count(&mut c, "tensor count", MIN_TENSOR_INFO)?;
    let kv_count = count(&mut c, "metadata count", MIN_KV)?;
    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(kv_count);
    let mut keys = std::collections::HashSet::with_capacity(kv_count);
    for _ in 0..kv_count {
        let key = value::read_string(&mut c, MAX_NAME)?;
        let type_id = c.u32()?;
        let value = value::read_value(&mut c, type_id, keep)?;
        if !keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey(escape(&key).into_owned()));
        }
        metadata.push((key, value));
    }
    let alignment = alignment(&metadata)?;
    let mut infos = Vec::with_capacity(tensor_count);
    let mut names = std::collections::HashSet::with_capacity(tensor_count);
    for _ in 0..tensor_count {
        let info = read_tensor_info(&mut c)?;
        if !names.insert(info.0.clone()) {
            return Err(GgufError::DuplicateTensor(escape(&info.0).into_owned()));
        }
        infos.push(info);
    }
    let data_start = c.offset().next_multiple_of(alignment);
    let tensors = infos
        .into_iter()
        .map(|(name, dtype, shape, offset)| {
            place(
                file.len(),
                data_start,
                alignment,
                name,
                dtype,
                shape,
                offset,
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

/// A u64 count of items that each take at least `min_size` bytes, refused when the rest of the
/// file could not hold that many (so a capacity from it is bounded by the file's length).
fn count(c: &mut Cursor<'_>, what: &'static str, min_size: u64) -> Result<usize, GgufError> {
    let offset = c.offset();
    let n = c.u64()?;
    if n.saturating_mul(min_size) > c.remaining() as u64 {
        return Err(GgufError::TooLong {
            offset,
            what,
            len: n,
        });
    }
    Ok(n as usize)
}

/// `general.alignment`: a power of two (ggml requires it), 32 when absent.
fn alignment(metadata: &[(String, Value)]) -> Result<usize, GgufError> {
    let Some((_, value)) = metadata.iter().find(|(k, _)| k == "general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    value
        .as_u64()
        .filter(|a| a.is_power_of_two() && *a <= 1 << 30)
        .map(|a| a as usize)
        .ok_or_else(|| GgufError::Alignment(escape(&value.to_string()).into_owned()))
}

/// (name, dtype, PyTorch-order shape, offset in the data section) of one tensor info.
type RawInfo = (String, DType, Vec<usize>, u64);

fn read_tensor_info(c: &mut Cursor<'_>) -> Result<RawInfo, GgufError> {
    let name = value::read_string(c, MAX_NAME)?;
    let shape_error = |why: String| GgufError::Shape {
        name: escape(&name).into_owned(),
        why,
    };
    let n_dims = c.u32()?;
    if n_dims > MAX_DIMS {
        return Err(shape_error(format!(
            "{n_dims} dimensions (ggml has at most {MAX_DIMS})"
        )));
    }
    let mut ne = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = c.u64()?;
        ne.push(
            usize::try_from(d).map_err(|_| shape_error(format!("dimension {d} is too large")))?,
        );
    }
    let type_id = c.u32()?;
    let offset = c.u64()?;
    let dtype = dtype_of(type_id).ok_or_else(|| GgufError::TensorType {
        name: escape(&name).into_owned(),
        id: type_id,
    })?;
    if let (DType::Ggml(q), Some(&inner)) = (dtype, ne.first())
        && inner % q.block_size() != 0
    {
        return Err(shape_error(format!(
            "rows of {inner} values are not whole {q} blocks of {}",
            q.block_size()
        )));
    }
    // ggml lists dimensions innermost first; PyTorch (and paramscope) outermost first.
    ne.reverse();
    Ok((name, dtype, ne, offset))
}

/// The dtype of ggml type id `id`: the plain types map to safetensors' dtypes.
fn dtype_of(id: u32) -> Option<DType> {
    Some(match id {
        0 => DType::F32,
        1 => DType::F16,
        24 => DType::I8,
        25 => DType::I16,
        26 => DType::I32,
        27 => DType::I64,
        28 => DType::F64,
        30 => DType::BF16,
        other => DType::Ggml(Quant::from_id(other)?),
    })
}

/// Checks that a tensor's bytes are aligned and inside the file, and gives its byte range.
fn place(
    file_len: usize,
    data_start: usize,
    alignment: usize,
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    offset: u64,
) -> Result<TensorInfo, GgufError> {
    let data_error = |why: String| GgufError::Data {
        name: escape(&name).into_owned(),
        offset,
        why,
    };
    let len = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .and_then(|numel| dtype.byte_len(numel))
        .ok_or_else(|| GgufError::Shape {
            name: escape(&name).into_owned(),
            why: format!("shape {shape:?} of {dtype} overflows"),
        })?;
    if !offset.is_multiple_of(alignment as u64) {
        return Err(data_error(format!(
            "is not a multiple of the alignment {alignment}"
        )));
    }
    let start = usize::try_from(offset)
        .ok()
        .and_then(|o| o.checked_add(data_start))
        .filter(|s| *s <= file_len)
        .ok_or_else(|| {
            data_error(format!(
                "starts past the end of the file ({file_len} bytes)"
            ))
        })?;
    let end = start
        .checked_add(len)
        .filter(|e| *e <= file_len)
        .ok_or_else(|| {
            data_error(format!(
                "needs {len} bytes and runs past the end of the file ({file_len} bytes)"
            ))
        })?;
    Ok(TensorInfo {
        name,
        dtype,
        shape,
        range: start..end,
    })
}
