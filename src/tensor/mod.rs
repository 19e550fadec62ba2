//! Tensors as bytes with a dtype and a shape, wherever the bytes live (memory or a mapped file);
//! their decoding ([`decode`], [`ggml`] for quantized blocks) and what is computed from their
//! values in streaming passes: [`stats`], [`histogram`], [`quantile`], and the app's [`summary`]
//! of all three (one read for a large F32 tensor, through [`grid`]).

pub mod decode;
pub mod dtype;
pub mod ggml;
pub mod grid;
pub mod histogram;
pub mod parallel;
pub mod quantile;
pub(crate) mod simd;
pub mod stats;
pub mod summary;

use std::sync::Arc;

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
}

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

    /// The raw little-endian bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Owned(b) => b,
            Bytes::Mapped { map, start, end } => &map[*start..*end],
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

    /// Faults in the pages of bytes `range` of a mapped tensor in one call, ahead of reading
    /// them: much cheaper than one page fault per 4 KiB. Nothing for a tensor in memory.
    pub fn populate(&self, range: std::ops::Range<usize>) {
        if let Bytes::Mapped { map, start, end } = &self.bytes {
            let range = range.start.min(end - start)..range.end.min(end - start);
            // Only a hint: where the kernel lacks MADV_POPULATE_READ, pages fault in one by one.
            let _ = map.advise_range(
                memmap2::Advice::PopulateRead,
                start + range.start,
                range.len(),
            );
        }
    }

    /// Every value as f32, in C order, or why this dtype cannot be read as numbers.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, decode::Undecodable> {
        decode::to_f32(self.dtype, self.bytes(), self.numel())
    }

    /// The same shape and dtype with new values (rounded to the dtype), as a re-init writes them.
    pub fn with_values(&self, values: &[f32]) -> Result<Tensor, decode::Undecodable> {
        let bytes = decode::encode_as(self.dtype, values)?;
        Ok(Tensor::new(
            self.shape.clone(),
            self.dtype,
            Bytes::Owned(bytes.into()),
        ))
    }
}
