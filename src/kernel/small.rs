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
pub(crate) fn gemm_small(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
    epi: Epilogue,
) {
    for (arow, mut crow) in a.rows().into_iter().zip(c.rows_mut()) {
        for ((j, x), bcol) in crow.iter_mut().enumerate().zip(b.columns()) {
            let acc = arow.iter().zip(bcol).fold(0.0, |s, (&u, &v)| s + u * v);
            let bias = epi.bias.map_or(0.0, |bias| bias[j]);
            let old = *x;
            *x = finish(acc, alpha, beta, || old, bias, epi.relu);
        }
    }
}
