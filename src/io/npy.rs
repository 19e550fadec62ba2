//! `.npy` arrays: numpy's format. The header is the Python dict literal numpy writes
//! (`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`), parsed as one; the data is
//! mapped in place when it is little-endian in C order, converted into an owned copy otherwise.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use ndarray::{ArrayD, IxDyn};
use thiserror::Error;

use super::FileError;
use super::atomic::write_atomically;
use crate::tensor::{Bytes, DType, Tensor};

/// Why bytes are not a `.npy` array paramscope can read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NpyError {
    /// No `\x93NUMPY` magic.
    #[error("not a .npy array (no \\x93NUMPY magic)")]
    Magic,
    /// A format version numpy does not write.
    #[error(".npy format version {0} is not supported (1, 2 and 3 are)")]
    Version(u8),
    /// The data ends before the header does.
    #[error("the .npy header is truncated")]
    Truncated,
    /// A header longer than any numpy writes.
    #[error("the .npy header claims {0} bytes, more than the {MAX_HEADER} numpy reads")]
    HeaderTooLong(usize),
    /// The header is not the dict literal numpy writes.
    #[error("the .npy header is not a Python dict literal: {why} at character {at}")]
    Literal {
        /// What was expected.
        why: &'static str,
        /// Where, in the header text.
        at: usize,
    },
    /// A key numpy always writes is missing or of the wrong kind.
    #[error("the .npy header's {0} is missing or malformed")]
    Key(&'static str),
    /// A dtype with no counterpart here.
    #[error("numpy dtype {0} is not supported")]
    Dtype(String),
    /// The shape's element count overflows.
    #[error("the .npy shape {0:?} is too large")]
    Shape(Vec<usize>),
    /// The data is not as long as the shape says.
    #[error("the .npy data holds {have} bytes, its shape {shape:?} of {dtype} needs {need}")]
    Length {
        /// Bytes present.
        have: usize,
        /// Bytes needed.
        need: usize,
        /// The shape.
        shape: Vec<usize>,
        /// The dtype.
        dtype: DType,
    },
}

/// numpy refuses headers over 10,000 bytes unless told otherwise; this allows a hundred times more.
pub const MAX_HEADER: usize = 1 << 20;

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The element type.
    pub dtype: DType,
    /// Whether elements are stored big-endian (`>`).
    pub big_endian: bool,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The shape, outermost first.
    pub shape: Vec<usize>,
}

/// Reads the magic, version, length and header dict from `r`, reading no more than the header
/// (at most [`MAX_HEADER`] bytes, through `take`). Returns the header and the bytes it took.
pub fn read_header(r: &mut impl Read) -> Result<(NpyHeader, usize), NpyError> {
    let mut magic = [0u8; 8];
    read_exact(r, &mut magic)?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(NpyError::Magic);
    }
    let (len, prefix) = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            read_exact(r, &mut b)?;
            (usize::from(u16::from_le_bytes(b)), 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            read_exact(r, &mut b)?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        v => return Err(NpyError::Version(v)),
    };
    if len > MAX_HEADER {
        return Err(NpyError::HeaderTooLong(len));
    }
    let mut text = Vec::with_capacity(len);
    r.take(len as u64)
        .read_to_end(&mut text)
        .map_err(|_| NpyError::Truncated)?;
    if text.len() < len {
        return Err(NpyError::Truncated);
    }
    // Version 3 allows UTF-8; earlier ones are latin-1, which only matters for field names.
    let text = String::from_utf8_lossy(&text);
    Ok((header_from(&literal::parse(&text)?)?, prefix + len))
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), NpyError> {
    r.read_exact(buf).map_err(|_| NpyError::Truncated)
}

/// The header's three keys, as numpy's `_read_array_header` requires them.
fn header_from(dict: &literal::Value) -> Result<NpyHeader, NpyError> {
    let literal::Value::Dict(entries) = dict else {
        return Err(NpyError::Key("dict"));
    };
    // A key written twice takes its last value, as Python's dict literal (numpy's reader) does.
    let get = |key: &'static str| {
        entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or(NpyError::Key(key))
    };
    let literal::Value::Str(descr) = get("descr")? else {
        return Err(NpyError::Dtype("(a structured dtype)".into()));
    };
    let literal::Value::Bool(fortran_order) = *get("fortran_order")? else {
        return Err(NpyError::Key("fortran_order"));
    };
    let literal::Value::Tuple(dims) = get("shape")? else {
        return Err(NpyError::Key("shape"));
    };
    let shape = dims
        .iter()
        .map(|d| match d {
            literal::Value::Int(n) => usize::try_from(*n).map_err(|_| NpyError::Key("shape")),
            _ => Err(NpyError::Key("shape")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (dtype, big_endian) = dtype_of(descr)?;
    Ok(NpyHeader {
        dtype,
        big_endian,
        fortran_order,
        shape,
    })
}

/// The dtype of a numpy type string (`<f4`, `|b1`, `>c8`) and whether it is big-endian.
fn dtype_of(descr: &str) -> Result<(DType, bool), NpyError> {
    let unsupported = || NpyError::Dtype(descr.to_owned());
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(unsupported)?;
    let big_endian = match order {
        '<' | '|' | '=' => false,
        '>' => true,
        _ => return Err(unsupported()),
    };
    let dtype = match chars.as_str() {
        "b1" => DType::BOOL,
        "u1" => DType::U8,
        "i1" => DType::I8,
        "u2" => DType::U16,
        "i2" => DType::I16,
        "u4" => DType::U32,
        "i4" => DType::I32,
        "u8" => DType::U64,
        "i8" => DType::I64,
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "c8" => DType::C64,
        _ => return Err(unsupported()),
    };
    Ok((dtype, big_endian))
}

/// The tensor `header` describes over `data`, which `map_range` places in a mapped file when
/// the bytes can be used as they are. Big-endian or Fortran-ordered data becomes an owned,
/// little-endian, C-ordered copy.
pub fn tensor(
    header: &NpyHeader,
    data: &[u8],
    map_range: Option<(Arc<Mmap>, usize)>,
) -> Result<Tensor, NpyError> {
    let numel = header
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| NpyError::Shape(header.shape.clone()))?;
    let need = header
        .dtype
        .byte_len(numel)
        .ok_or_else(|| NpyError::Shape(header.shape.clone()))?;
    if data.len() != need {
        return Err(NpyError::Length {
            have: data.len(),
            need,
            shape: header.shape.clone(),
            dtype: header.dtype,
        });
    }
    let size = header.dtype.bits() / 8;
    let reorder = header.fortran_order && header.shape.iter().filter(|&&d| d > 1).count() > 1;
    let bytes = match map_range {
        Some((map, start)) if !header.big_endian && !reorder => Bytes::Mapped {
            map,
            start,
            end: start + need,
        },
        _ => {
            let mut owned = if reorder {
                fortran_to_c(data, &header.shape, size)
            } else {
                data.to_vec()
            };
            if header.big_endian {
                // A complex element is two floats, each swapped on its own.
                let part = if header.dtype == DType::C64 { 4 } else { size };
                owned.chunks_exact_mut(part).for_each(<[u8]>::reverse);
            }
            Bytes::Owned(owned.into())
        }
    };
    Ok(Tensor::new(header.shape.clone(), header.dtype, bytes))
}

/// Column-major elements of `size` bytes reordered into row-major order.
fn fortran_to_c(data: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    // Fortran strides in elements: the first dimension varies fastest.
    let mut strides = Vec::with_capacity(shape.len());
    let mut step = 1;
    for &d in shape {
        strides.push(step);
        step *= d;
    }
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; shape.len()];
    let mut at = 0usize;
    for _ in 0..data.len() / size.max(1) {
        out.extend_from_slice(&data[at * size..(at + 1) * size]);
        // Odometer over the C-order index, last dimension fastest, keeping `at` in step.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            at += strides[k];
            if index[k] < shape[k] {
                break;
            }
            at -= strides[k] * shape[k];
            index[k] = 0;
        }
    }
    out
}

/// Opens a `.npy` file as one named tensor (named by the file's stem), mapped when it can be.
pub fn open(path: &Path) -> Result<Vec<(String, Tensor)>, FileError> {
    let fail = |error: NpyError| FileError::new(path, error);
    let map = super::mapped::open(path)?.map;
    let (header, start) = read_header(&mut &map[..]).map_err(fail)?;
    let tensor = tensor(&header, &map[start..], Some((Arc::clone(&map), start))).map_err(fail)?;
    let name = path
        .file_stem()
        .map_or_else(|| "array".into(), |s| s.to_string_lossy().into_owned());
    Ok(vec![(name, tensor)])
}

/// Reads a `.npy` of any real dtype as f32 (a forward pass's input).
pub fn read(path: &Path) -> Result<ArrayD<f32>, FileError> {
    let (_, tensor) = open(path)?.pop().expect("open gives one tensor");
    let values = tensor.to_f32_vec().map_err(|e| FileError::new(path, e))?;
    ArrayD::from_shape_vec(IxDyn(tensor.shape()), values).map_err(|e| FileError::new(path, e))
}

/// Writes `array` as `<f4` in C order.
pub fn write(path: &Path, array: &ArrayD<f32>) -> io::Result<()> {
    let shape = match array.shape() {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy pads the header with spaces so that the data starts on a 64-byte boundary.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "shape too long for .npy"))?;
    write_atomically(
        path,
        |w| {
            w.write_all(b"\x93NUMPY\x01\x00")?;
            w.write_all(&header_len.to_le_bytes())?;
            w.write_all(header.as_bytes())?;
            for v in array {
                w.write_all(&v.to_le_bytes())?;
            }
            Ok(())
        },
        |temp| read(temp).map(drop).map_err(Into::into),
    )
    .map_err(io::Error::other)
}

mod literal;

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Result<NpyHeader, NpyError> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
        read_header(&mut &bytes[..]).map(|(h, _)| h)
    }

    #[test]
    fn the_header_is_read_as_a_literal() {
        let h = header("{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }  \n").unwrap();
        assert_eq!(
            h,
            NpyHeader {
                dtype: DType::I16,
                big_endian: true,
                fortran_order: true,
                shape: vec![2, 3]
            }
        );
        // Key order, quotes and spacing are free, as in Python.
        let h = header(r#"{"shape":(),"fortran_order":False,"descr":"|b1"}"#).unwrap();
        assert_eq!((h.dtype, h.shape.len()), (DType::BOOL, 0));
        // A key given twice takes its last value, as numpy's `ast.literal_eval` of the dict does.
        let h = header("{'descr': '<f8', 'descr': '<i2', 'fortran_order': False, 'shape': (1,)}")
            .unwrap();
        assert_eq!(h.dtype, DType::I16);
        // A substring match would take this descr's value from inside the other string.
        let h = header(
            "{'x': \"'descr': '<f8'\", 'descr': '<f4', 'fortran_order': False, 'shape': (5,)}",
        );
        assert_eq!(h.unwrap().dtype, DType::F32);
    }

    #[test]
    fn bad_headers_are_named() {
        assert_eq!(
            header("{'descr': '<f4'"),
            Err(NpyError::Literal {
                why: "'}' or ','",
                at: 15
            })
        );
        assert_eq!(
            header("{'descr': '<f4', 'shape': (1,)}"),
            Err(NpyError::Key("fortran_order"))
        );
        assert_eq!(
            header("{'descr': '<U3', 'fortran_order': False, 'shape': (1,)}"),
            Err(NpyError::Dtype("<U3".into()))
        );
        assert_eq!(
            header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}"),
            Err(NpyError::Dtype("(a structured dtype)".into()))
        );
        assert_eq!(
            header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}"),
            Err(NpyError::Key("shape"))
        );
        assert_eq!(
            read_header(&mut &b"\x93NUMPY\x01\x00\xff"[..]),
            Err(NpyError::Truncated)
        );
        assert_eq!(read_header(&mut &b"hello world!"[..]), Err(NpyError::Magic));
    }

    #[test]
    fn fortran_order_becomes_c_order() {
        // 2x3 column-major: columns (0,1), (2,3), (4,5) hold rows [0,2,4] and [1,3,5].
        let data: Vec<u8> = [0u8, 1, 2, 3, 4, 5].into();
        assert_eq!(fortran_to_c(&data, &[2, 3], 1), [0, 2, 4, 1, 3, 5]);
        // 2x2x2: element (i,j,k) at i + 2j + 4k.
        let data: Vec<u8> = (0..8).collect();
        assert_eq!(fortran_to_c(&data, &[2, 2, 2], 1), [0, 4, 2, 6, 1, 5, 3, 7]);
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, -2.5, 3.0, 0.0, 5.5, f32::MAX])
            .unwrap();
        write(&path, &a).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0
        );
        assert_eq!(read(&path).unwrap(), a);
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("needs 24"));
    }
}
