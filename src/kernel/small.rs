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
