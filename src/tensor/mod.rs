//! Tensors as bytes with a dtype and a shape, wherever the bytes live (memory, a mapped file, a
//! range of a remote file fetched when first asked for, pieces assembled from many files, or
//! quantized codes dequantized when first read); their decoding ([`decode`], [`ggml`] for quantized
//! blocks) and what is computed from their values in streaming passes: [`stats`], [`histogram`],
//! [`quantile`], and the app's [`summary`] of all three (one read for a large F32 tensor, through
//! [`grid`]); [`specials`] counts NaN, ±Inf and zeros from the bits alone.

pub mod decode;
pub mod dtype;
pub mod ggml;
pub mod grid;
pub mod histogram;
mod moments;
pub mod parallel;
pub mod quantile;
pub mod quantized;
pub mod reordered;
pub(crate) mod simd;
pub mod specials;
pub mod stats;
pub mod summary;

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use memmap2::Mmap;

pub use dtype::DType;

/// Where a tensor's bytes live.
#[derive(Clone)]
pub enum Bytes {
    /// Made in memory: a demo's init, a re-init.
    Owned(Arc<[u8]>),
    /// A range of a read-only mapped file; nothing is read until a value is asked for.
    Mapped {
        /// The mapped file, shared by all of its tensors.
        map: Arc<Mmap>,
        /// First byte of the tensor within the map.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
    /// A range of a file read by range (a remote one): fetched on the first [`Tensor::try_bytes`],
    /// then kept, shared by every clone of the tensor, so a tensor shown twice is fetched once.
    Remote {
        /// The file.
        source: Arc<dyn Ranged>,
        /// The tensor's bytes within it.
        range: Range<u64>,
        /// The bytes, once fetched.
        fetched: Arc<OnceLock<Arc<[u8]>>>,
    },
    /// Put together from pieces on the first [`Tensor::try_bytes`] (a distributed checkpoint's
    /// shards), then kept.
    Assembled(Arc<dyn Assemble>),
    /// A quantized weight's values, dequantized from its stored parts on the first read.
    Quantized(Arc<quantized::Quantized>),
    /// A stored matrix's rows in another order, copied in that order on the first read.
    Reordered(Arc<reordered::Rows>),
}

/// A tensor's bytes kept in pieces until a value is asked for, then checked and put together once.
pub trait Assemble: Send + Sync {
    /// The whole tensor's bytes in C order, once [`read`](Self::read) has succeeded.
    fn ready(&self) -> Option<&[u8]>;

    /// Checks the pieces and puts them together the first time; the same bytes after. A damaged
    /// piece is an error naming its file and the tensor.
    fn read(&self) -> Result<&[u8], FetchError>;

    /// How many bytes [`read`](Self::read) gives, known without reading the pieces.
    fn byte_len(&self) -> usize;

    /// Where each piece is, as the checkpoint says.
    fn shards(&self) -> &[Shard];

    /// The same pieces with nothing put together yet, sharing nothing read with this one.
    fn unread(&self) -> Arc<dyn Assemble>;

    /// The mapped file and the byte range in it that hold the whole tensor, once read, when one
    /// contiguous piece holds all of it (read in place, not copied).
    fn in_place(&self) -> Option<(&Mmap, Range<usize>)>;
}

/// One piece of an assembled tensor: which file holds it, where in the file, and which elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The file holding it, as the checkpoint names it (raw; shared by its chunks).
    pub file: Arc<str>,
    /// Its bytes within the file.
    pub bytes: Range<u64>,
    /// Its first element's index in the whole tensor, per dimension.
    pub offsets: Dims,
    /// Its extent per dimension.
    pub sizes: Dims,
}

/// A shard's offsets or sizes: a handful of dimensions, kept inline (a checkpoint of 16,000
/// chunks makes no allocation for them).
pub type Dims = smallvec::SmallVec<[u64; 4]>;

impl Bytes {
    /// The bytes of `range` of `source`, fetched when first read.
    #[must_use]
    pub fn remote(source: Arc<dyn Ranged>, range: Range<u64>) -> Bytes {
        Bytes::Remote {
            source,
            range,
            fetched: Arc::default(),
        }
    }
}

/// A file whose bytes are read by range: what [`Bytes::Remote`] fetches from. The source layer
/// implements it; this layer knows only that a read can fail.
pub trait Ranged: Send + Sync {
    /// The bytes of `range`, all of them, or why not.
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, FetchError>;

    /// What identifies the bytes this reads, when it is known without reading them (a remote file's
    /// LFS sha256): two sources with the same one give the same bytes for the same range.
    fn content(&self) -> Option<String> {
        None
    }
}

/// Why a remote tensor's bytes could not be fetched: the source layer's typed error, kept whole.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct FetchError(pub Box<dyn std::error::Error + Send + Sync>);

/// A tensor: little-endian bytes of `dtype`, in C order, of `shape`.
#[derive(Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    bytes: Bytes,
}

impl Tensor {
    /// Wraps bytes whose length the caller has checked against `shape` and `dtype`.
    #[must_use]
    pub fn new(shape: Vec<usize>, dtype: DType, bytes: Bytes) -> Self {
        Tensor {
            shape,
            dtype,
            bytes,
        }
    }

    /// An F32 tensor holding `values` (C order).
    ///
    /// # Panics
    /// When `values.len()` is not the product of `shape`.
    #[must_use]
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Self {
        assert_eq!(
            values.len(),
            shape.iter().product::<usize>(),
            "shape {shape:?}"
        );
        Tensor::new(
            shape,
            DType::F32,
            Bytes::Owned(decode::encode_f32(values).into()),
        )
    }

    /// The dimensions, outermost first.
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type, as the file names it.
    #[must_use]
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The number of elements.
    #[must_use]
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The raw little-endian bytes. A remote or assembled tensor's are there once read
    /// ([`Tensor::try_bytes`]); before, this is empty, so code that reads values from a model that
    /// may hold either reads them first.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        // A read of bytes not read yet gives an empty slice, which a caller would take for a
        // tensor without values: in test builds that is a bug to be caught where it happens.
        debug_assert!(
            !self.is_pending(),
            "bytes() of a tensor not read yet: fetch or assemble it first (try_bytes)"
        );
        match &self.bytes {
            Bytes::Owned(b) => b,
            Bytes::Mapped { map, start, end } => &map[*start..*end],
            Bytes::Remote { fetched, .. } => fetched.get().map_or(&[], |b| b),
            Bytes::Assembled(pieces) => pieces.ready().unwrap_or(&[]),
            Bytes::Quantized(q) => q.bytes(),
            Bytes::Reordered(rows) => rows.bytes(),
        }
    }

    /// Where the pieces of an assembled tensor are; empty for any other.
    #[must_use]
    pub fn shards(&self) -> &[Shard] {
        match &self.bytes {
            Bytes::Assembled(pieces) => pieces.shards(),
            _ => &[],
        }
    }

    /// A quantized weight made of stored parts: its shape and dtype are the dequantized ones.
    #[must_use]
    pub fn from_quantized(weight: quantized::Quantized) -> Self {
        Tensor::new(
            weight.shape().to_vec(),
            weight.dtype(),
            Bytes::Quantized(Arc::new(weight)),
        )
    }

    /// A stored matrix shown with its rows in another order.
    #[must_use]
    pub fn reordered(rows: reordered::Rows) -> Self {
        let stored = rows.stored();
        Tensor::new(
            stored.shape().to_vec(),
            stored.dtype(),
            Bytes::Reordered(Arc::new(rows)),
        )
    }

    /// The matrix as stored and, for each row shown, the stored row it is, if this tensor shows
    /// another's rows in another order: what a product reads in place.
    #[must_use]
    pub fn reordered_rows(&self) -> Option<(&Tensor, &Arc<[u32]>)> {
        match &self.bytes {
            Bytes::Reordered(rows) => Some((rows.stored(), rows.order())),
            _ => None,
        }
    }

    /// The quantized parts this tensor is dequantized from, if it is.
    #[must_use]
    pub fn quantization(&self) -> Option<&quantized::Quantized> {
        match &self.bytes {
            Bytes::Quantized(q) => Some(q),
            _ => None,
        }
    }

    /// The raw bytes, fetching a remote tensor's range or putting an assembled one together the
    /// first time (no copy for the others).
    pub fn try_bytes(&self) -> Result<&[u8], FetchError> {
        match &self.bytes {
            Bytes::Remote {
                source,
                range,
                fetched,
            } => {
                if let Some(bytes) = fetched.get() {
                    return Ok(bytes);
                }
                let bytes = source.read(range.clone())?;
                Ok(fetched.get_or_init(|| bytes.into()))
            }
            Bytes::Quantized(q) => {
                self.fetch()?;
                Ok(q.bytes())
            }
            Bytes::Assembled(pieces) => pieces.read(),
            Bytes::Reordered(rows) => rows.try_bytes(),
            _ => Ok(self.bytes()),
        }
    }

    /// The same tensor, but what a read of it fetches or puts together is kept by the returned
    /// handle alone (what this one has already read, it shares). A reader that wants each tensor
    /// once and then drops it, as a trajectory does over many checkpoints, so holds one tensor's
    /// bytes at a time, where reading through the model's own copies would keep every tensor of
    /// every checkpoint it has read until the models are dropped.
    #[must_use]
    pub fn transient(&self) -> Tensor {
        let bytes = match &self.bytes {
            Bytes::Remote {
                source,
                range,
                fetched,
            } if fetched.get().is_none() => Bytes::Remote {
                source: Arc::clone(source),
                range: range.clone(),
                fetched: Arc::new(OnceLock::new()),
            },
            Bytes::Assembled(pieces) if pieces.ready().is_none() => {
                Bytes::Assembled(pieces.unread())
            }
            Bytes::Reordered(rows) if !rows.is_copied() => {
                Bytes::Reordered(Arc::new(rows.transient()))
            }
            other => other.clone(),
        };
        Tensor::new(self.shape.clone(), self.dtype, bytes)
    }

    /// Fetches a remote tensor's range or puts an assembled one together, as
    /// [`Tensor::try_bytes`] does, but leaves a quantized weight's values to be dequantized when
    /// read (its parts are fetched), and reordered rows to be copied when read (the stored ones
    /// are fetched): what a command that may read only some values calls first.
    pub fn fetch(&self) -> Result<(), FetchError> {
        match &self.bytes {
            Bytes::Quantized(q) => {
                for (_, part) in q.parts() {
                    part.try_bytes()?;
                }
                Ok(())
            }
            Bytes::Reordered(rows) => rows.stored().fetch(),
            _ => self.try_bytes().map(|_| ()),
        }
    }

    /// The `count` values from element `first` as exact scalars (fewer past the end): a quantized
    /// weight's dequantized alone when the whole weight is not yet.
    pub fn scalars(
        &self,
        first: usize,
        count: usize,
    ) -> Result<Vec<decode::Scalar>, decode::Undecodable> {
        if self.is_pending() {
            return Err(decode::Undecodable(self.dtype));
        }
        match &self.bytes {
            Bytes::Quantized(q) => Ok(q
                .range_values(first..first.saturating_add(count))
                .into_iter()
                .map(|v| decode::Scalar::Float(f64::from(v)))
                .collect()),
            _ => decode::decode_scalars(self.dtype, self.bytes(), first, count),
        }
    }

    /// How many bytes the tensor holds, fetched or not.
    #[must_use]
    pub fn byte_len(&self) -> u64 {
        match &self.bytes {
            Bytes::Remote { range, .. } => range.end - range.start,
            Bytes::Assembled(pieces) => pieces.byte_len() as u64,
            // Dequantized on first read: its length is its shape's, without dequantizing it.
            Bytes::Quantized(q) => {
                let numel = q.shape().iter().product();
                q.dtype().byte_len(numel).unwrap_or(usize::MAX) as u64
            }
            Bytes::Reordered(rows) => rows.stored().byte_len(),
            _ => self.bytes().len() as u64,
        }
    }

    /// Whether `self` and `other` are known to hold the same bytes without reading them: the same range
    /// of two sources whose content is the same (two revisions' files with one LFS sha256).
    #[must_use]
    pub fn same_content(&self, other: &Tensor) -> bool {
        match (&self.bytes, &other.bytes) {
            (
                Bytes::Remote {
                    source: a,
                    range: range_a,
                    ..
                },
                Bytes::Remote {
                    source: b,
                    range: range_b,
                    ..
                },
            ) => range_a == range_b && a.content().is_some_and(|key| Some(key) == b.content()),
            _ => false,
        }
    }

    /// Whether the bytes must still be fetched or put together before [`Tensor::bytes`] holds them.
    #[must_use]
    pub fn is_pending(&self) -> bool {
        match &self.bytes {
            Bytes::Remote { fetched, .. } => fetched.get().is_none(),
            Bytes::Quantized(q) => q.parts().iter().any(|(_, part)| part.is_pending()),
            Bytes::Assembled(pieces) => pieces.ready().is_none(),
            Bytes::Reordered(rows) => rows.stored().is_pending(),
            _ => false,
        }
    }

    /// Whether the bytes come over the network (fetched or not): its own, or those of the tensors
    /// it is made of (a quantized weight's parts, the stored rows it reorders), as
    /// [`Tensor::is_pending`] looks through them. Looking only at the outer bytes had the app's
    /// bulk summaries fetch a remote quantized checkpoint's small weights one request each.
    #[must_use]
    pub fn is_remote(&self) -> bool {
        match &self.bytes {
            Bytes::Remote { .. } => true,
            Bytes::Quantized(q) => q.parts().iter().any(|(_, part)| part.is_remote()),
            Bytes::Reordered(rows) => rows.stored().is_remote(),
            _ => false,
        }
    }

    /// How many bytes must still come over the network before the tensor reads: its own range
    /// when not fetched, or the ranges of the tensors it is made of not fetched yet, looked
    /// through as [`Tensor::is_remote`] does. Not [`Tensor::byte_len`], which for a quantized
    /// weight is its dequantized length (four times an FP8 weight's download, in F32).
    #[must_use]
    pub fn pending_download(&self) -> u64 {
        match &self.bytes {
            Bytes::Remote { fetched, range, .. } if fetched.get().is_none() => {
                range.end - range.start
            }
            Bytes::Quantized(q) => q.parts().iter().map(|(_, p)| p.pending_download()).sum(),
            Bytes::Reordered(rows) => rows.stored().pending_download(),
            _ => 0,
        }
    }

    /// The statistics of every value: one pass, on every core for a large tensor. A mapped tensor's
    /// pages are faulted in ahead of the reading, 2 MiB at a time.
    pub fn stats(&self) -> Result<stats::Stats, decode::Undecodable> {
        self.stats_with_progress(&mut |_| {})
    }

    /// [`Tensor::stats`], telling `progress` the fraction of the bytes read so far, about every
    /// 2 MiB, on the calling thread: for a progress bar on a large tensor.
    pub fn stats_with_progress(
        &self,
        progress: &mut dyn FnMut(f64),
    ) -> Result<stats::Stats, decode::Undecodable> {
        // Bytes not fetched yet are no values: the caller fetches first (`try_bytes`).
        if self.is_pending() {
            return Err(decode::Undecodable(self.dtype));
        }
        // A quantized weight not dequantized yet: a chunk at a time, never held whole.
        if let Bytes::Quantized(q) = &self.bytes
            && !q.is_dequantized()
        {
            let numel = self.numel();
            let total = numel.max(1) as f64;
            let bytes = usize::try_from(self.byte_len()).unwrap_or(usize::MAX);
            return Ok(stats::stats_made(
                &q.dequantizer(),
                numel,
                bytes,
                &mut |done| progress(done as f64 / total),
            ));
        }
        let fault_in = |range: std::ops::Range<usize>| self.populate(range);
        let total = self.bytes().len().max(1) as f64;
        stats::stats_with(
            self.dtype,
            self.bytes(),
            self.numel(),
            &fault_in,
            &mut |done| progress(done as f64 / total),
        )
    }

    /// How many values are NaN, infinite or zero, read from the bits where the dtype allows
    /// (see [`specials::specials`]).
    pub fn specials(&self) -> Result<specials::Specials, decode::Undecodable> {
        if self.is_pending() {
            return Err(decode::Undecodable(self.dtype));
        }
        specials::specials(self.dtype, self.bytes(), self.numel())
    }

    /// The mapped file and byte range holding this tensor: a mapped one's, or a sharded one's
    /// read in place.
    fn mapped(&self) -> Option<(&Mmap, Range<usize>)> {
        match &self.bytes {
            Bytes::Mapped { map, start, end } => Some((map, *start..*end)),
            Bytes::Assembled(pieces) => pieces.in_place(),
            _ => None,
        }
    }

    /// Faults in the pages of bytes `range` of a mapped tensor in one call, ahead of reading
    /// them: much cheaper than one page fault per 4 KiB. Nothing for a tensor in memory.
    pub fn populate(&self, range: std::ops::Range<usize>) {
        if let Some((map, within)) = self.mapped() {
            let range = range.start.min(within.len())..range.end.min(within.len());
            // Only a hint: where the kernel lacks MADV_POPULATE_READ, pages fault in one by one.
            let _ = map.advise_range(
                memmap2::Advice::PopulateRead,
                within.start + range.start,
                range.len(),
            );
        }
    }

    /// Gives back the resident pages of bytes `range` of a mapped tensor once a pass has read them,
    /// so that a pass over many large files keeps only the stretch it is reading resident (mapped
    /// pages count in the process's memory until unmapped). Nothing for a tensor in memory.
    pub fn release(&self, range: Range<usize>) {
        if let Some((map, within)) = self.mapped() {
            let range = range.start.min(within.len())..range.end.min(within.len());
            // SAFETY: every map a tensor holds is a read-only, shared map of a file
            // (`io::mapped::open`, and a distributed checkpoint's shard files). MADV_DONTNEED on
            // it only drops this process's page-table entries: the pages stay in the page cache
            // and the next read maps the same file bytes again, so every slice borrowed from the
            // map keeps reading what it read. (A file changed on disk meanwhile is a hazard of any
            // map, caught by `io::fault`.)
            #[expect(
                unsafe_code,
                reason = "memmap2 marks MADV_DONTNEED unsafe for writable private maps; ours are read-only and shared"
            )]
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    within.start + range.start,
                    range.len(),
                )
            };
        }
    }

    /// Every value as f32, in C order, or why this dtype cannot be read as numbers.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, decode::Undecodable> {
        if self.is_pending() {
            return Err(decode::Undecodable(self.dtype));
        }
        decode::to_f32(self.dtype, self.bytes(), self.numel())
    }

    /// The same shape with new values, as a re-init, an edit or a merge writes them: in the same
    /// dtype (rounded to it), or as F32 for a block-quantized (ggml) type, whose blocks share a
    /// scale and cannot take values one by one (a GGUF weight re-initialized, zeroed in places or
    /// merged with an adapter is then an F32 weight in memory).
    pub fn with_values(&self, values: &[f32]) -> Result<Tensor, decode::Undecodable> {
        let dtype = match self.dtype {
            DType::Ggml(_) => DType::F32,
            dtype => dtype,
        };
        let bytes = decode::encode_as(dtype, values)?;
        Ok(Tensor::new(
            self.shape.clone(),
            dtype,
            Bytes::Owned(bytes.into()),
        ))
    }
}
