//! A tensor from a view of a storage: torch's storage offset and strides honoured. A contiguous
//! view is a byte range of the mapped file; any other view (transposed, strided) is gathered into
//! memory, since the rest of paramscope reads tensors in C order. Big-endian storages are swapped
//! into owned little-endian bytes first.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;

use crate::io::pickle::{Storage, TensorRef};
use crate::tensor::{Bytes, DType, Tensor};

/// Where a storage's bytes are.
pub enum Backing {
    /// A range of the mapped file.
    Mapped(Arc<Mmap>, Range<usize>),
    /// Bytes made in memory (a big-endian storage, swapped).
    Owned(Arc<[u8]>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(map, range) => &map[range.clone()],
            Backing::Owned(bytes) => bytes,
        }
    }
}

/// The bytes one file's tensors may make in memory (swapped storages, gathered views, copies out
/// of swapped storages), counted in total: twice the file (each storage swapped once, then each
/// tensor copied out) and 64 MiB for strided views of small files.
pub struct Budget {
    left: u64,
    cap: u64,
}

impl Budget {
    /// The budget of a file of `len` bytes.
    #[must_use]
    pub fn for_file(len: usize) -> Budget {
        let cap = (len as u64).saturating_mul(2).saturating_add(64 << 20);
        Budget { left: cap, cap }
    }

    fn take(&mut self, nbytes: u64) -> Result<(), ViewError> {
        self.left = self.left.checked_sub(nbytes).ok_or(ViewError::TooBig {
            nbytes,
            cap: self.cap,
        })?;
        Ok(())
    }
}

/// The big-endian `bytes` of `storage` as little-endian, each element (or each half of a complex
/// one) reversed.
pub fn swapped(
    bytes: &[u8],
    storage: &Storage,
    budget: &mut Budget,
) -> Result<Arc<[u8]>, ViewError> {
    budget.take(bytes.len() as u64)?;
    let size = storage.dtype.size();
    let unit = if storage.dtype.name().starts_with("complex") {
        size / 2
    } else {
        size
    };
    let mut bytes = bytes.to_vec();
    if unit > 1 {
        for element in bytes.chunks_exact_mut(unit) {
            element.reverse();
        }
    }
    Ok(bytes.into())
}

/// What makes two tensors one: storage key, legacy view, offset, shape, strides, dtype.
type ViewKey = (
    String,
    Option<(String, u64, u64)>,
    u64,
    Vec<u64>,
    Vec<u64>,
    &'static str,
);

/// Remembers each tensor view so that a second name for the same one is a tie, not a copy.
#[derive(Default)]
pub struct Ties {
    first: HashMap<ViewKey, String>,
}

impl Ties {
    /// The earlier name of the view `t`, or `None` (and `name` is remembered) if it is new.
    pub fn seen(&mut self, t: &TensorRef, name: &str) -> Option<String> {
        let key = (
            t.storage.key.clone(),
            t.storage.view.clone(),
            t.offset,
            t.shape.clone(),
            t.strides.clone(),
            t.dtype.name(),
        );
        if let Some(first) = self.first.get(&key) {
            return Some(first.clone());
        }
        self.first.insert(key, name.to_owned());
        None
    }
}

/// Why a tensor's view does not fit its storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// An offset or length that overflows.
    #[error("{0} overflows")]
    Overflow(&'static str),
    /// A legacy storage view past its root storage.
    #[error("its storage view ends past its storage's {0} bytes")]
    PastStorage(usize),
    /// A dimension no address space holds.
    #[error("a dimension of {0} is absurd")]
    Dimension(u64),
    /// A shape whose element count overflows.
    #[error("shape {0:?} overflows when multiplied out")]
    Shape(Vec<u64>),
    /// Strides that reach past the storage.
    #[error(
        "shape {shape:?}, strides {strides:?} and offset {offset} reach past its storage's {storage} bytes"
    )]
    Reach {
        /// The shape.
        shape: Vec<u64>,
        /// The strides.
        strides: Vec<u64>,
        /// The storage offset.
        offset: u64,
        /// The storage's bytes.
        storage: u64,
    },
    /// Bytes to make in memory beyond the file's budget.
    #[error(
        "its {nbytes} bytes would have to be made in memory (a strided view gathered or big-endian data swapped), past the cap of {cap} bytes for all of the file's tensors (twice the file's size plus 64 MiB)"
    )]
    TooBig {
        /// The bytes asked for.
        nbytes: u64,
        /// The cap.
        cap: u64,
    },
}

/// The tensor `t` of `dtype` over `backing`; the bytes it makes in memory are taken from `budget`.
pub fn tensor(
    t: &TensorRef,
    dtype: DType,
    backing: &Backing,
    budget: &mut Budget,
) -> Result<Tensor, ViewError> {
    let size = t.dtype.size() as u64;
    let storage = backing.bytes();
    // A legacy storage view starts inside its root storage.
    let (base, storage_len) = match &t.storage.view {
        Some((_, offset, length)) => {
            let start = offset
                .checked_mul(t.storage.dtype.size() as u64)
                .ok_or(ViewError::Overflow("its storage view's offset"))?;
            let len = length
                .checked_mul(t.storage.dtype.size() as u64)
                .ok_or(ViewError::Overflow("its storage view's length"))?;
            if start
                .checked_add(len)
                .is_none_or(|end| end > storage.len() as u64)
            {
                return Err(ViewError::PastStorage(storage.len()));
            }
            (start, len)
        }
        None => (0, storage.len() as u64),
    };
    let shape: Vec<usize> = t
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| ViewError::Dimension(d)))
        .collect::<Result<_, _>>()?;
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| ViewError::Shape(t.shape.clone()))?;
    if numel == 0 {
        return Ok(Tensor::new(shape, dtype, Bytes::Owned(Arc::from(&[][..]))));
    }
    // The last element the view touches, and the byte after it.
    let last = t
        .shape
        .iter()
        .zip(&t.strides)
        .try_fold(t.offset, |acc, (&d, &s)| {
            acc.checked_add((d - 1).checked_mul(s)?)
        });
    let end = last.and_then(|l| l.checked_add(1)?.checked_mul(size));
    let Some(end) = end.filter(|&e| e <= storage_len) else {
        return Err(ViewError::Reach {
            shape: t.shape.clone(),
            strides: t.strides.clone(),
            offset: t.offset,
            storage: storage_len,
        });
    };
    let nbytes = numel * size; // at most `end`, which fits in the storage
    if is_contiguous(&t.shape, &t.strides) {
        let start = (base + t.offset * size) as usize;
        let range = start..start + nbytes as usize;
        let bytes = match backing {
            Backing::Mapped(map, span) => Bytes::Mapped {
                map: Arc::clone(map),
                start: span.start + range.start,
                end: span.start + range.end,
            },
            // A tensor over a whole swapped storage shares it.
            Backing::Owned(owned) if range == (0..owned.len()) => Bytes::Owned(Arc::clone(owned)),
            Backing::Owned(owned) => {
                budget.take(nbytes)?;
                Bytes::Owned(owned[range].into())
            }
        };
        debug_assert!(end <= storage_len);
        return Ok(Tensor::new(shape, dtype, bytes));
    }
    budget.take(nbytes)?;
    let source = &storage[base as usize..(base + storage_len) as usize];
    let gathered = gather(
        source,
        size as usize,
        t.offset as usize,
        &shape,
        &t.strides,
        nbytes as usize,
    );
    Ok(Tensor::new(shape, dtype, Bytes::Owned(gathered.into())))
}

/// Whether strides are C order for `shape` (dimensions of length 1 may have any stride).
fn is_contiguous(shape: &[u64], strides: &[u64]) -> bool {
    let mut expected = 1u64;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// Copies the elements of a strided view into C order. Every index was bounds-checked by the
/// caller (the view's last element is inside `source`).
fn gather(
    source: &[u8],
    size: usize,
    offset: usize,
    shape: &[usize],
    strides: &[u64],
    nbytes: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(nbytes);
    let strides: Vec<usize> = strides.iter().map(|&s| s as usize).collect();
    let rank = shape.len();
    let (inner_len, inner_stride) = (shape[rank - 1], strides[rank - 1]);
    let mut index = vec![0usize; rank.saturating_sub(1)];
    loop {
        let row: usize = offset
            + index
                .iter()
                .zip(&strides)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        for j in 0..inner_len {
            let at = (row + j * inner_stride) * size;
            out.extend_from_slice(&source[at..at + size]);
        }
        // Advance the odometer over the outer dimensions.
        let mut dim = index.len();
        loop {
            if dim == 0 {
                return out;
            }
            dim -= 1;
            index[dim] += 1;
            if index[dim] < shape[dim] {
                break;
            }
            index[dim] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{gather, is_contiguous};

    #[test]
    fn contiguity_ignores_unit_dimensions() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(!is_contiguous(&[3, 2], &[1, 3]));
    }

    #[test]
    fn a_transposed_view_is_gathered_in_c_order() {
        // A 2x3 matrix [[0,1,2],[3,4,5]] stored row-major; its transpose is 3x2 with strides (1, 3).
        let source: Vec<u8> = (0..6).collect();
        assert_eq!(
            gather(&source, 1, 0, &[3, 2], &[1, 3], 6),
            [0, 3, 1, 4, 2, 5]
        );
    }
}
