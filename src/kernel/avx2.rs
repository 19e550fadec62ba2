//! The AVX2+FMA micro-kernel: a 6×16 tile of C held in 12 ymm registers.
//!
//! Why 6×16: each k step loads one row of the B micro-panel as two ymm vectors and broadcasts 6
//! values of A, so 12 accumulators + 2 B vectors + 1 broadcast use 15 of the 16 ymm registers, and
//! 12 independent FMAs per step cover the FMA latency on both pipes. This is the shape BLIS and
//! `OpenBLAS` use on Haswell and Zen; 8×8 (as in `matrixmultiply`) leaves half the B loads unhidden.

use core::arch::x86_64::{
    __m256, _MM_HINT_T0, _mm_prefetch, _mm256_add_ps, _mm256_fmadd_ps, _mm256_load_ps,
    _mm256_loadu_ps, _mm256_max_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_storeu_ps,
};

use super::tile::{Tile, write_scalar};

/// Rows of the register tile.
pub(crate) const MR: usize = 6;
/// Columns of the register tile: two ymm vectors.
pub(crate) const NR: usize = 16;

/// See [`super::tile::KernelFn`] for the contract.
///
/// # Safety
/// That of `KernelFn`, and the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    // Warm the C tile's lines while the k loop runs: the write-out otherwise waits on them.
    if t.beta != 0.0 && t.cs == 1 {
        for i in 0..t.rows {
            // SAFETY: row i < rows is inside C; prefetching never faults anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(t.c.offset(i as isize * t.rs).cast()) };
        }
    }
    for p in 0..kc {
        // SAFETY: p < kc, and the packed panels hold kc rows of NR (B, 32-byte aligned) and of
        // MR (A) floats.
        unsafe {
            let bp = b.add(p * NR);
            let ap = a.add(p * MR);
            let b0 = _mm256_load_ps(bp);
            let b1 = _mm256_load_ps(bp.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_set1_ps(*ap.add(i));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
        }
    }
    if t.rows == MR && t.cols == NR && t.cs == 1 {
        // SAFETY: the tile is whole and its rows are contiguous, so each row's NR floats are
        // inside C (and the bias, when present, has NR values).
        unsafe { write_full(&acc, t) };
    } else {
        let mut spill = [0.0f32; MR * NR];
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: each store writes 8 floats inside row i of the MR×NR spill array.
            unsafe {
                _mm256_storeu_ps(spill.as_mut_ptr().add(i * NR), row[0]);
                _mm256_storeu_ps(spill.as_mut_ptr().add(i * NR + 8), row[1]);
            }
        }
        // SAFETY: forwarded from the caller's contract.
        unsafe { write_scalar(&spill, NR, t) };
    }
}

/// The vector write-out of a whole tile into row-major C.
#[target_feature(enable = "avx2,fma")]
unsafe fn write_full(acc: &[[__m256; 2]; MR], t: &Tile) {
    let alpha = _mm256_set1_ps(t.alpha);
    let beta = _mm256_set1_ps(t.beta);
    let zero = _mm256_setzero_ps();
    for (i, row) in acc.iter().enumerate() {
        for (h, &sum) in row.iter().enumerate() {
            // SAFETY: the caller checked the tile is whole with unit column stride, so these 8
            // floats are inside row i of C, and inside the bias when there is one.
            unsafe {
                let dst = t.c.offset(i as isize * t.rs).add(8 * h);
                let mut v = _mm256_mul_ps(alpha, sum);
                // beta == 0 must not read C: it may hold NaN.
                if t.beta != 0.0 {
                    v = _mm256_fmadd_ps(beta, _mm256_loadu_ps(dst), v);
                }
                if !t.bias.is_null() {
                    v = _mm256_add_ps(v, _mm256_loadu_ps(t.bias.add(8 * h)));
                }
                if t.relu {
                    // max(0, v) returns v when v is NaN: ReLU keeps NaN, as PyTorch's does.
                    v = _mm256_max_ps(zero, v);
                }
                _mm256_storeu_ps(dst, v);
            }
        }
    }
}
