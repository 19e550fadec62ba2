//! Parsing a GGUF header from the mapped bytes: magic, version, counts, every metadata pair,
//! every tensor info, the alignment and the data section, all checked against the file length.

use super::cursor::{Cursor, GgufError};
use super::value::{self, Value};
use crate::tensor::DType;
use crate::tensor::ggml::Quant;

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
    read_header_sized(file, file.len() as u64, keep)
}

/// [`read_header`] for a file of `file_len` bytes of which `file` holds the first ones: tensors are
/// checked against the whole file's length. A head too short to hold the header gives
/// [`GgufError::Truncated`] or [`GgufError::TooLong`], which a remote reader answers by reading more.
pub fn read_header_sized(file: &[u8], file_len: u64, keep: usize) -> Result<Header, GgufError> {
    if file.get(..4) != Some(b"GGUF") {
        return Err(GgufError::Magic);
    }
    let mut c = Cursor::new(file);
    c.take(4, "magic")?;
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        // A big-endian writer's 2 or 3 reads as 2^25 or 3 * 2^24; 0 and 1 are versions, unsupported.
        return Err(if (2..=3).contains(&version.swap_bytes()) {
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
            return Err(GgufError::DuplicateKey(key));
        }
        metadata.push((key, value));
    }
    let alignment = alignment(&metadata)?;
    let mut infos = Vec::with_capacity(tensor_count);
    let mut names = std::collections::HashSet::with_capacity(tensor_count);
    for _ in 0..tensor_count {
        let info = read_tensor_info(&mut c)?;
        if !names.insert(info.0.clone()) {
            return Err(GgufError::DuplicateTensor(info.0));
        }
        infos.push(info);
    }
    let data_start = c.offset().next_multiple_of(alignment);
    let tensors = infos
        .into_iter()
        .map(|(name, dtype, shape, offset)| {
            place(
                usize::try_from(file_len).unwrap_or(usize::MAX),
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
    let unsigned = matches!(value, Value::Uint(..));
    value
        .as_u64()
        .filter(|a| unsigned && a.is_power_of_two() && *a <= 1 << 30)
        .map(|a| a as usize)
        .ok_or_else(|| GgufError::Alignment {
            value: value.to_string(),
            ty: value.value_type().name(),
        })
}

/// (name, dtype, PyTorch-order shape, offset in the data section) of one tensor info.
type RawInfo = (String, DType, Vec<usize>, u64);

fn read_tensor_info(c: &mut Cursor<'_>) -> Result<RawInfo, GgufError> {
    let name = value::read_string(c, MAX_NAME)?;
    let shape_error = |why: String| GgufError::Shape {
        name: name.clone(),
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
        name: name.clone(),
        id: type_id,
    })?;
    if let DType::Ggml(q) = dtype {
        // A 0-d tensor is one value: no quantized type stores fewer than a block.
        let Some(&inner) = ne.first() else {
            return Err(shape_error(format!(
                "a 0-d tensor (one value) cannot be {q}, which stores blocks of {} values",
                q.block_size()
            )));
        };
        if inner % q.block_size() != 0 {
            return Err(shape_error(format!(
                "rows of {inner} values are not whole {q} blocks of {}",
                q.block_size()
            )));
        }
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
        name: name.clone(),
        offset,
        why,
    };
    let len = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .and_then(|numel| dtype.byte_len(numel))
        .ok_or_else(|| GgufError::Shape {
            name: name.clone(),
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
