//! The direct path for tiny products: a plain loop, no packing, no threads, no allocation.
//!
//! For a 2×4×8 product the blocked path's packing and tile bookkeeping would cost more than the
//! 64 multiply-adds; this loop finishes in tens of nanoseconds.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::Epilogue;
use super::tile::finish;

/// Products up to this many multiply-adds take the direct loop (16³: every tile edge case of the
/// blocked path is still reachable through `gemm_with`).
pub(crate) const MAX_WORK: usize = 16 * 16 * 16;

/// `C = alpha·A·B + beta·C`, then the epilogue, by dot products read through the views' strides.
///
/// Raw pointers rather than ndarray iterators: at this size the iterators' set-up per row and
/// column cost more than the arithmetic (90 ns against 30 ns for 2×4×8).
pub(crate) fn gemm_small(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
    epi: Epilogue,
) {
    #[cfg(target_arch = "x86_64")]
    if b.strides()[1] == 1 && c.strides()[1] == 1 && super::Backend::Avx512.is_available() {
        // SAFETY: the CPU has AVX-512F and the strides are as required, checked just above; the
        // caller checked the bias has n values.
        unsafe { rows_avx512(alpha, a, b, beta, c, epi) };
        return;
    }
    let (m, k) = a.dim();
    let n = b.ncols();
    let (rsa, csa) = (a.strides()[0], a.strides()[1]);
    let (rsb, csb) = (b.strides()[0], b.strides()[1]);
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    for i in 0..m as isize {
        for j in 0..n as isize {
            let mut acc = 0.0;
            for p in 0..k as isize {
                // SAFETY: i < m, p < k and j < n index elements of the m×k A and k×n B.
                acc += unsafe { *pa.offset(i * rsa + p * csa) * *pb.offset(p * rsb + j * csb) };
            }
            let bias = epi.bias.map_or(0.0, |bias| bias[j as usize]);
            // SAFETY: i < m and j < n index an element of the m×n C, which we borrow uniquely.
            unsafe {
                let dst = pc.offset(i * rsc + j * csc);
                *dst = finish(acc, alpha, beta, || *dst, bias, epi.relu);
            }
        }
    }
}

/// The direct loop when B's and C's rows are contiguous (a prepacked small Linear weight, a
/// row-major B) on AVX-512: a row of C accumulates `A[i, p]·B[p, ..]` over p, 16 columns at a
/// time in one zmm register, with masked loads and stores at the edge.
///
/// Each element sums its products in the same order, with the same roundings (a multiply, then an
/// add: no FMA), as the dot-product loop, so both give the same bits.
///
/// # Safety
/// The CPU must support AVX-512F; B and C must have unit column stride, the bias (if any) n values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
    epi: Epilogue,
) {
    use core::arch::x86_64::{
        _mm512_add_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_mul_ps,
        _mm512_set1_ps, _mm512_setzero_ps,
    };
    const W: usize = 16;
    let (m, k) = a.dim();
    let n = b.ncols();
    let (rsa, csa) = (a.strides()[0], a.strides()[1]);
    let rsb = b.strides()[0];
    let rsc = c.strides()[0];
    let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let (valpha, vbeta, zero) = (
        _mm512_set1_ps(alpha),
        _mm512_set1_ps(beta),
        _mm512_setzero_ps(),
    );
    for j0 in (0..n).step_by(W) {
        let width = W.min(n - j0);
        let mask = (u32::MAX >> (32 - width)) as u16;
        let bias = match epi.bias {
            // SAFETY: the bias has n values (checked by the caller); the mask reads only
            // columns j0 .. j0 + width < n.
            Some(bias) => unsafe { _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(j0)) },
            None => zero,
        };
        for i in 0..m as isize {
            let mut acc = zero;
            for p in 0..k as isize {
                // SAFETY: i < m and p < k index an element of the m×k A; row p of the k×n B has
                // unit column stride, and the mask reads its columns j0 .. j0 + width < n only.
                unsafe {
                    let av = _mm512_set1_ps(*pa.offset(i * rsa + p * csa));
                    let bv = _mm512_maskz_loadu_ps(mask, pb.offset(p * rsb).add(j0));
                    acc = _mm512_add_ps(acc, _mm512_mul_ps(av, bv));
                }
            }
            // SAFETY: row i < m of the m×n C has unit column stride; the mask touches its
            // columns j0 .. j0 + width < n only, which we borrow uniquely through `c`.
            unsafe {
                let dst = pc.offset(i * rsc).add(j0);
                let mut v = _mm512_mul_ps(valpha, acc);
                // beta == 0 must not read C: it may hold NaN.
                if beta != 0.0 {
                    v = _mm512_add_ps(v, _mm512_mul_ps(vbeta, _mm512_maskz_loadu_ps(mask, dst)));
                }
                v = _mm512_add_ps(v, bias);
                if epi.relu {
                    // max(0, v) returns v when v is NaN: ReLU keeps NaN.
                    v = _mm512_max_ps(zero, v);
                }
                _mm512_mask_storeu_ps(dst, mask, v);
            }
        }
    }
}
