//! Packing: copying a block of A or B, in whatever layout it comes, into the contiguous
//! micro-panels the micro-kernels stream through.
//!
//! This is where layouts disappear: every view (row-major, column-major, transposed, strided) is
//! read through its strides here, once per block, so the micro-kernels only ever see one layout.
//! Each copy walks the source along its smaller stride, so the reads stay sequential.

use ndarray::ArrayView2;

/// Packs the block `a` (mc×kc) into MR-row micro-panels, one after another.
///
/// Panel r holds rows `r·MR ..` of the block, k-major (`kc` groups of `mr` floats: the `mr` values
/// the micro-kernel broadcasts at one k step). Rows past the end of `a` are zeros.
pub(crate) fn pack_a(a: ArrayView2<f32>, mr: usize, dst: &mut [f32]) {
    pack_panels(a, mr, dst);
}

/// Packs the block `b` (kc×nc) into NR-column micro-panels, one after another.
///
/// Panel q holds columns `q·NR ..` of the block, k-major (`kc` rows of `nr` floats: the B vector
/// the micro-kernel loads at one k step). Columns past the end of `b` are zeros.
pub(crate) fn pack_b(b: ArrayView2<f32>, nr: usize, dst: &mut [f32]) {
    pack_panels(b.reversed_axes(), nr, dst);
}

/// Packs `src` (outer×kc) into panels of `width` outer indices, each k-major: the one operation
/// behind both packings, with A's rows or B's columns as the outer dimension.
///
/// Raw pointers rather than ndarray indexing: packing B of a 32×4096×4096 product touches 16M
/// elements, and a bounds check or an iterator branch per element doubled its time.
fn pack_panels(src: ArrayView2<f32>, width: usize, dst: &mut [f32]) {
    /// k steps per pass when transposing: one cache line of each source row.
    const LINE: usize = 16;
    let (outer, kc) = src.dim();
    let (so, sk) = (src.strides()[0], src.strides()[1]);
    let base = src.as_ptr();
    let panels = outer.div_ceil(width);
    assert!(dst.len() >= panels * width * kc, "packing buffer too small");
    for (q, panel) in dst.chunks_exact_mut(width * kc).take(panels).enumerate() {
        let i0 = q * width;
        let rows = width.min(outer - i0);
        if rows < width {
            panel.fill(0.0);
        }
        let d = panel.as_mut_ptr();
        // SAFETY: every source offset is (i0+i)·so + p·sk with i < rows <= outer - i0 and
        // p < kc, an element of `src`; every destination offset is p·width + i < width·kc, inside
        // `panel`. `transpose_panel` gets the same bounds: `width` (= rows) rows `so` apart of kc
        // contiguous floats, and the kc·width floats of `panel`.
        unsafe {
            let row = |i: usize| base.offset((i0 + i) as isize * so);
            if sk == 1
                && kc > 1
                && rows == width
                && width.is_multiple_of(4)
                && cfg!(target_arch = "x86_64")
            {
                // A whole panel contiguous along k: a transpose by 4×4 blocks in SSE registers
                // (baseline x86-64), a quarter of the instructions of the element loop below.
                #[cfg(target_arch = "x86_64")]
                transpose_panel(row(0), so, kc, width, d);
            } else if sk == 1 && kc > 1 {
                // Contiguous along k (row-major A, B = w.t()): a transpose. A line of each row at
                // a time, so every source row streams forward together.
                for p0 in (0..kc).step_by(LINE) {
                    let len = LINE.min(kc - p0);
                    for i in 0..rows {
                        let s = row(i).add(p0);
                        for pp in 0..len {
                            *d.add((p0 + pp) * width + i) = *s.add(pp);
                        }
                    }
                }
            } else if so == 1 {
                // Contiguous along the panel (column-major A, row-major B): a copy per k step.
                for p in 0..kc {
                    std::ptr::copy_nonoverlapping(
                        base.offset((i0 as isize) + p as isize * sk),
                        d.add(p * width),
                        rows,
                    );
                }
            } else {
                for p in 0..kc {
                    for i in 0..rows {
                        *d.add(p * width + i) = *row(i).offset(p as isize * sk);
                    }
                }
            }
        }
    }
}

/// Packs `width` rows of `kc` floats (row i at `src + i·stride`) k-major into `dst`
/// (`dst[p·width + i]`), 4×4 blocks at a time.
///
/// # Safety
/// Every `src + i·stride + p` with i < width, p < kc must be readable, and `dst` must hold
/// `kc·width` floats; `width` is a multiple of 4.
#[cfg(target_arch = "x86_64")]
unsafe fn transpose_panel(src: *const f32, stride: isize, kc: usize, width: usize, dst: *mut f32) {
    use core::arch::x86_64::{
        _mm_loadu_ps, _mm_movehl_ps, _mm_movelh_ps, _mm_storeu_ps, _mm_unpackhi_ps, _mm_unpacklo_ps,
    };
    /// k steps per pass: one cache line of each source row.
    const LINE: usize = 16;
    let whole = kc / 4 * 4;
    for p0 in (0..whole).step_by(LINE) {
        let len = LINE.min(whole - p0);
        for i0 in (0..width).step_by(4) {
            for p in (p0..p0 + len).step_by(4) {
                // SAFETY: rows i0..i0+4 < width and k steps p..p+4 <= whole <= kc are inside the
                // source; the stores go to rows p..p+4 of the k-major panel, columns i0..i0+4.
                unsafe {
                    let r = |i: usize| src.offset((i0 + i) as isize * stride).add(p);
                    let (a, b, c, e) = (
                        _mm_loadu_ps(r(0)),
                        _mm_loadu_ps(r(1)),
                        _mm_loadu_ps(r(2)),
                        _mm_loadu_ps(r(3)),
                    );
                    // The classic 4×4 transpose: interleave pairs of rows, then halves.
                    let (ab_lo, ab_hi) = (_mm_unpacklo_ps(a, b), _mm_unpackhi_ps(a, b));
                    let (ce_lo, ce_hi) = (_mm_unpacklo_ps(c, e), _mm_unpackhi_ps(c, e));
                    let out = |q: usize| dst.add((p + q) * width + i0);
                    _mm_storeu_ps(out(0), _mm_movelh_ps(ab_lo, ce_lo));
                    _mm_storeu_ps(out(1), _mm_movehl_ps(ce_lo, ab_lo));
                    _mm_storeu_ps(out(2), _mm_movelh_ps(ab_hi, ce_hi));
                    _mm_storeu_ps(out(3), _mm_movehl_ps(ce_hi, ab_hi));
                }
            }
        }
    }
    for p in whole..kc {
        for i in 0..width {
            // SAFETY: i < width and p < kc, inside the source and the panel.
            unsafe { *dst.add(p * width + i) = *src.offset(i as isize * stride).add(p) };
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
        self.get_mut_reserving(len, len)
    }

    /// [`Self::get_mut`], growing straight to `reserve` floats (at least `len`) when it must grow.
    pub(crate) fn get_mut_reserving(&mut self, len: usize, reserve: usize) -> &mut [f32] {
        if self.buf.len() < len + ALIGN_FLOATS {
            // Replaced, not resized: nothing in it is worth copying.
            self.buf = vec![0.0; reserve.max(len) + ALIGN_FLOATS];
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
