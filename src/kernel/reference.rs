//! The naive triple loop: slow, obviously right, and the oracle of the kernel's tests.

use ndarray::{ArrayView2, ArrayViewMut2};

/// `C = alpha·A·B + beta·C` by the definition, accumulating each dot product in f64.
///
/// Shapes are assumed checked by the caller. With `beta == 0` the old `C` is never read.
pub fn gemm_reference(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
) {
    let k = a.ncols();
    for ((i, j), out) in c.indexed_iter_mut() {
        let mut acc = 0.0f64;
        for p in 0..k {
            acc += f64::from(a[[i, p]]) * f64::from(b[[p, j]]);
        }
        let product = alpha * acc as f32;
        *out = if beta == 0.0 {
            product
        } else {
            product + beta * *out
        };
    }
}
