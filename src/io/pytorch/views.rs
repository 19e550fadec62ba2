//! A tensor from a view of a storage: torch's storage offset and strides honoured. A contiguous
//! view is a byte range of the storage (of the mapped file, or of a remote record fetched on first
//! read); any other view (transposed, strided) is gathered into C order, since the rest of paramscope
//! reads tensors so: at once from a map, or on fetch from a remote storage. Big-endian storages are
//! swapped into little-endian bytes first (on fetch, for a remote one).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;

use crate::io::pickle::{Storage, TensorRef, TorchDtype};
use crate::tensor::{Bytes, DType, FetchError, Ranged, Tensor};

/// Where a storage's bytes are.
#[derive(Clone)]
pub enum Backing {
    /// A range of the mapped file.
    Mapped(Arc<Mmap>, Range<usize>),
    /// Bytes made in memory (a big-endian storage, swapped).
    Owned(Arc<[u8]>),
    /// Bytes `0..len` of a source read by range (a remote storage), fetched when first read.
    Ranged(Arc<dyn Ranged>, u64),
}

impl Backing {
    fn len(&self) -> u64 {
        match self {
            Backing::Mapped(_, range) => range.len() as u64,
            Backing::Owned(bytes) => bytes.len() as u64,
            Backing::Ranged(_, len) => *len,
        }
    }

    /// The storage in little-endian order, `self` being big-endian: swapped now into memory (counted
    /// against `budget`), or as each range is fetched.
    pub fn into_little_endian(
        self,
        storage: &Storage,
        budget: &mut Budget,
    ) -> Result<Backing, ViewError> {
        match self {
            Backing::Mapped(map, range) => {
                budget.take(range.len() as u64)?;
                let mut bytes = map[range].to_vec();
                swap(&mut bytes, storage.dtype);
                Ok(Backing::Owned(bytes.into()))
            }
            Backing::Owned(_) => Ok(self),
            Backing::Ranged(inner, len) => {
                let swapped = Swapped {
                    inner,
                    dtype: storage.dtype,
                };
                Ok(Backing::Ranged(Arc::new(swapped), len))
            }
        }
    }
}

/// The bytes one file's tensors may make in memory (swapped storages, gathered views, copies out
/// of swapped storages, a remote file's views as each is fetched), counted in total: twice the file
/// (each storage swapped once, then each tensor copied out) and 64 MiB for strided views of small
/// files.
pub struct Budget {
    left: u64,
    cap: u64,
}

impl Budget {
    /// The budget of a file of `len` bytes.
    #[must_use]
    pub fn for_file(len: u64) -> Budget {
        let cap = len.saturating_mul(2).saturating_add(SLACK);
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

/// What strided views of a small file may make in memory; and how far a remote view's storage may
/// reach past twice its own bytes, since the whole reach is fetched to gather it.
const SLACK: u64 = 64 << 20;

/// Big-endian elements (each half of a complex one) of `dtype` reversed in place.
fn swap(bytes: &mut [u8], dtype: TorchDtype) {
    let size = dtype.size();
    let unit = if dtype.name().starts_with("complex") {
        size / 2
    } else {
        size
    };
    if unit > 1 {
        for element in bytes.chunks_exact_mut(unit) {
            element.reverse();
        }
    }
}

/// A big-endian remote storage, swapped as each range arrives (ranges start on element boundaries:
/// every tensor's offset counts whole elements).
struct Swapped {
    inner: Arc<dyn Ranged>,
    dtype: TorchDtype,
}

impl Ranged for Swapped {
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, FetchError> {
        let mut bytes = self.inner.read(range)?;
        swap(&mut bytes, self.dtype);
        Ok(bytes)
    }

    fn content(&self) -> Option<String> {
        Some(format!("{}|swapped", self.inner.content()?))
    }
}

/// A strided view of a remote storage, gathered into C order when fetched: its bytes `0..nbytes`
/// come from the storage's bytes `start..start + reach`, the view's first element to its last.
struct Gathered {
    storage: Arc<dyn Ranged>,
    start: u64,
    reach: u64,
    size: usize,
    shape: Vec<usize>,
    strides: Vec<u64>,
    nbytes: usize,
}

impl Gathered {
    /// The view as a tensor fetched, then gathered, when first read; refused when its elements lie too
    /// far apart for the whole reach to be worth fetching.
    fn into_tensor(self, dtype: DType, budget: &mut Budget) -> Result<Tensor, ViewError> {
        let nbytes = self.nbytes as u64;
        if self.reach > nbytes.saturating_mul(2).saturating_add(SLACK) {
            return Err(ViewError::Sparse {
                nbytes,
                reach: self.reach,
            });
        }
        budget.take(nbytes)?;
        let shape = self.shape.clone();
        Ok(Tensor::new(
            shape,
            dtype,
            Bytes::remote(Arc::new(self), 0..nbytes),
        ))
    }
}

impl Ranged for Gathered {
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, FetchError> {
        let source = self.storage.read(self.start..self.start + self.reach)?;
        let all = gather(
            &source,
            self.size,
            0,
            &self.shape,
            &self.strides,
            self.nbytes,
        );
        all.get(range.start as usize..range.end as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| FetchError(Box::new(ViewError::Overflow("a range of a gathered view"))))
    }
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
        "its {nbytes} bytes would have to be made in memory (a strided view gathered, big-endian data swapped, or a remote view fetched), past the cap of {cap} bytes for all of the file's tensors (twice the file's size plus 64 MiB)"
    )]
    TooBig {
        /// The bytes asked for.
        nbytes: u64,
        /// The cap.
        cap: u64,
    },
    /// A remote strided view whose first and last elements lie too far apart to fetch for its values.
    #[error(
        "it is a strided view of {nbytes} bytes spread over {reach} bytes of its remote storage, all of which would be fetched to gather it (at most twice its bytes plus 64 MiB)"
    )]
    Sparse {
        /// The view's bytes.
        nbytes: u64,
        /// The storage bytes from its first element to its last.
        reach: u64,
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
    let whole = backing.len();
    // A legacy storage view starts inside its root storage.
    let (base, storage_len) = match &t.storage.view {
        Some((_, offset, length)) => {
            let start = offset
                .checked_mul(t.storage.dtype.size() as u64)
                .ok_or(ViewError::Overflow("its storage view's offset"))?;
            let len = length
                .checked_mul(t.storage.dtype.size() as u64)
                .ok_or(ViewError::Overflow("its storage view's length"))?;
            if start.checked_add(len).is_none_or(|end| end > whole) {
                return Err(ViewError::PastStorage(whole as usize));
            }
            (start, len)
        }
        None => (0, whole),
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
            // Each remote view is fetched into memory of its own: views that overlap must not
            // make a small file fill the memory, so they count as copies do.
            Backing::Ranged(source, _) => {
                budget.take(nbytes)?;
                Bytes::remote(Arc::clone(source), range.start as u64..range.end as u64)
            }
        };
        debug_assert!(end <= storage_len);
        return Ok(Tensor::new(shape, dtype, bytes));
    }
    let source = match backing {
        Backing::Mapped(map, span) => &map[span.clone()],
        Backing::Owned(owned) => &owned[..],
        Backing::Ranged(storage, _) => {
            let first = base + t.offset * size;
            let gathered = Gathered {
                storage: Arc::clone(storage),
                start: first,
                reach: base + end - first,
                size: size as usize,
                shape,
                strides: t.strides.clone(),
                nbytes: nbytes as usize,
            };
            return gathered.into_tensor(dtype, budget);
        }
    };
    budget.take(nbytes)?;
    let gathered = gather(
        &source[base as usize..(base + storage_len) as usize],
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
