//! Matrix multiplication: the one door through which every product in paramscope passes.
//!
//! `matmul` and `gemm` accept views of any layout (row-major, column-major, transposed, strided)
//! and check shapes before any arithmetic.

mod reference;

pub use reference::gemm_reference;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Returns `a · b`.
///
/// # Panics
/// When the inner dimensions differ (`a` is m×k, `b` must be k×n).
#[must_use]
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    gemm(1.0, a, b, 0.0, c.view_mut());
    c
}

/// Computes `C = alpha·A·B + beta·C` in place.
///
/// When `beta` is zero, `C` is written without being read, so NaN already in `C` does not leak.
///
/// # Panics
/// When the shapes do not agree: `a` m×k, `b` k×n, `c` m×n.
pub fn gemm(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    check_shapes(&a, &b, &c);
    gemm_reference(alpha, a, b, beta, c);
}

fn check_shapes(a: &ArrayView2<f32>, b: &ArrayView2<f32>, c: &ArrayViewMut2<f32>) {
    assert_eq!(
        a.ncols(),
        b.nrows(),
        "matmul: inner dimensions differ ({}x{} times {}x{})",
        a.nrows(),
        a.ncols(),
        b.nrows(),
        b.ncols()
    );
    assert_eq!(
        c.dim(),
        (a.nrows(), b.ncols()),
        "gemm: C is {:?} but A·B is {}x{}",
        c.dim(),
        a.nrows(),
        b.ncols()
    );
}
