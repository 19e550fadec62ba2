//! Packing: copying a block of A or B, in whatever layout it comes, into the contiguous
//! micro-panels the micro-kernels stream through.
//!
//! This is where layouts disappear: every view (row-major, column-major, transposed, strided) is
//! read through its strides here, once per block, so the micro-kernels only ever see one layout.
//! Each copy walks the source along its smaller stride, so the reads stay sequential.

use ndarray::{ArrayView2, Axis};

/// Packs the block `a` (mc×kc) into MR-row micro-panels, one after another.
///
/// Panel r holds rows `r·MR ..` of the block, k-major (`kc` groups of `mr` floats: the `mr` values
/// the micro-kernel broadcasts at one k step). Rows past the end of `a` are zeros.
pub(crate) fn pack_a(a: ArrayView2<f32>, mr: usize, dst: &mut [f32]) {
    let kc = a.ncols();
    for (panel, d) in a
        .axis_chunks_iter(Axis(0), mr)
        .zip(dst.chunks_exact_mut(mr * kc))
    {
        if panel.nrows() < mr {
            d.fill(0.0);
        }
        if panel.strides()[1].unsigned_abs() <= panel.strides()[0].unsigned_abs() {
            // Rows are contiguous (row-major A): read along each row, scatter into the panel.
            for (i, row) in panel.rows().into_iter().enumerate() {
                for (dk, &v) in d.chunks_exact_mut(mr).zip(row) {
                    dk[i] = v;
                }
            }
        } else {
            // Columns are contiguous (column-major A, or x.t()): each k step is one run.
            for (dk, col) in d.chunks_exact_mut(mr).zip(panel.columns()) {
                for (x, &v) in dk.iter_mut().zip(col) {
                    *x = v;
                }
            }
        }
    }
}

/// Packs the block `b` (kc×nc) into NR-column micro-panels, one after another.
///
/// Panel q holds columns `q·NR ..` of the block, k-major (`kc` rows of `nr` floats: the B vector
/// the micro-kernel loads at one k step). Columns past the end of `b` are zeros.
pub(crate) fn pack_b(b: ArrayView2<f32>, nr: usize, dst: &mut [f32]) {
    let kc = b.nrows();
    for (panel, d) in b
        .axis_chunks_iter(Axis(1), nr)
        .zip(dst.chunks_exact_mut(nr * kc))
    {
        if panel.ncols() < nr {
            d.fill(0.0);
        }
        if panel.strides()[1].unsigned_abs() <= panel.strides()[0].unsigned_abs() {
            // Rows are contiguous (row-major B): each k step is one run.
            for (dk, row) in d.chunks_exact_mut(nr).zip(panel.rows()) {
                for (x, &v) in dk.iter_mut().zip(row) {
                    *x = v;
                }
            }
        } else {
            // Columns are contiguous (B = w.t() of a row-major weight): read along each column.
            for (j, col) in panel.columns().into_iter().enumerate() {
                for (dk, &v) in d.chunks_exact_mut(nr).zip(col) {
                    dk[j] = v;
                }
            }
        }
    }
}

/// Floats a packed A block of `rows`×`kc` takes: whole panels of `mr` rows.
pub(crate) fn packed_a_len(rows: usize, kc: usize, mr: usize) -> usize {
    rows.div_ceil(mr) * mr * kc
}

/// Floats a packed B block of `kc`×`cols` takes: whole panels of `nr` columns.
pub(crate) fn packed_b_len(kc: usize, cols: usize, nr: usize) -> usize {
    cols.div_ceil(nr) * nr * kc
}

/// A growable buffer handing out 64-byte aligned slices, so packed B rows start on cache lines
/// and the SIMD kernels may use aligned loads.
#[derive(Debug, Default)]
pub(crate) struct AlignedBuf {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

/// 64 bytes in floats: the most an aligned start can be shifted by.
const ALIGN_FLOATS: usize = 64 / size_of::<f32>();

impl AlignedBuf {
    pub(crate) const fn new() -> Self {
        Self {
            buf: Vec::new(),
            off: 0,
            len: 0,
        }
    }

    /// An aligned slice of `len` floats; old contents are unspecified. Grows only when too small,
    /// so a thread's buffers stop allocating once they have seen the largest block.
    pub(crate) fn get_mut(&mut self, len: usize) -> &mut [f32] {
        if self.buf.len() < len + ALIGN_FLOATS {
            // Replaced, not resized: nothing in it is worth copying.
            self.buf = vec![0.0; len + ALIGN_FLOATS];
        }
        self.off = self.buf.as_ptr().align_offset(64);
        self.len = len;
        &mut self.buf[self.off..self.off + len]
    }

    /// The slice last handed out by [`Self::get_mut`].
    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }
}
