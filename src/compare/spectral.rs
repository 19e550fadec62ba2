//! Spectral figures of a 2-D weight: σ_max by power iteration through the kernel, the stable rank,
//! and the power-law exponent `alpha` of the eigenvalues of WᵀW fitted as WeightWatcher fits it.
//!
//! The full spectrum comes from `faer`'s SVD (the singular values squared are the eigenvalues of
//! WᵀW, as WeightWatcher takes them from `np.linalg.svd`).

use ndarray::{Array2, ArrayView2};

use crate::kernel;
use crate::tensor::{Tensor, decode::Undecodable};

/// The spectral figures of one matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectral {
    /// σ_max.
    pub spectral_norm: f64,
    /// ‖W‖_F² / σ_max².
    pub stable_rank: f64,
    /// The power-law exponent of the eigenvalue tail; `None` when the matrix has too few
    /// eigenvalues above [`EVALS_THRESH`] to fit one.
    pub alpha: Option<f64>,
    /// Power iterations taken.
    pub iterations: usize,
    /// The caps this matrix met, each leaving a figure out or stopping it early.
    pub caps: Vec<Cap>,
}

/// A bound on the work or memory of one matrix's figures, met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// The full spectrum (and so `alpha`) was not computed: the matrix has more elements than
    /// [`SPECTRUM_MAX_ELEMENTS`].
    Spectrum {
        /// The matrix's elements.
        elements: usize,
    },
    /// Power iteration stopped after [`POWER_MAX_WORK`] multiply-adds, before converging.
    PowerWork {
        /// The steps it took.
        iterations: usize,
    },
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cap::Spectrum { elements } => write!(
                f,
                "no alpha: {elements} elements, over the full-spectrum cap of {SPECTRUM_MAX_ELEMENTS}"
            ),
            Cap::PowerWork { iterations } => write!(
                f,
                "spectral_norm not converged: stopped at the work cap of {POWER_MAX_WORK} multiply-adds ({iterations} steps)"
            ),
        }
    }
}

/// The most elements a matrix may have for its full spectrum: the SVD copies it into f64 and
/// works in place (about 256 MiB here), and its time grows with elements × the shorter side.
pub const SPECTRUM_MAX_ELEMENTS: usize = 1 << 25;

/// The most multiply-adds power iteration spends on one matrix (two products of its size per
/// step): about a minute on one core, and 20,000 steps of a 4096 × 4096 matrix would be 160 times that.
pub const POWER_MAX_WORK: usize = 1 << 37;

/// Power iteration stops when σ_max² changes by less than this, relatively, from one step to the next.
pub const TOLERANCE: f64 = 1e-6;

/// Power iteration gives up after this many steps (it has then converged to about the ratio of
/// the two largest singular values to this power, which only near-equal pairs can keep large).
pub const MAX_ITERATIONS: usize = 20_000;

/// WeightWatcher's threshold: eigenvalues at or below it are left out of the fit.
pub const EVALS_THRESH: f64 = 1e-5;

/// WeightWatcher's minimum: a matrix with fewer eigenvalues is not fitted.
pub const MIN_NUM_EVALS: usize = 10;

/// The figures of a 2-D tensor.
///
/// # Errors
/// When its dtype cannot be decoded.
///
/// # Panics
/// When the tensor is not 2-D.
pub fn spectral(tensor: &Tensor) -> Result<Spectral, Undecodable> {
    let &[m, n] = tensor.shape() else {
        panic!("spectral: a 2-D tensor")
    };
    let mut caps = Vec::new();
    if m == 0 || n == 0 {
        // No value, so no spectrum: nothing is allocated for the other side, however long.
        return Ok(Spectral {
            spectral_norm: 0.0,
            stable_rank: f64::NAN,
            alpha: None,
            iterations: 0,
            caps,
        });
    }
    // The values are in memory (or mapped) already, so m·n cannot overflow.
    let values = tensor.to_f32_vec()?;
    let w = ArrayView2::from_shape((m, n), &values).expect("checked shape");
    let frobenius: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let most_steps = (POWER_MAX_WORK / (2 * values.len())).clamp(1, MAX_ITERATIONS);
    let (sigma_squared, iterations, converged) = top_eigenvalue(w, most_steps);
    if !converged && most_steps < MAX_ITERATIONS {
        caps.push(Cap::PowerWork { iterations });
    }
    // NaN or Inf make every figure meaningless (and are `check`'s own findings); the SVD is not
    // asked to converge on them.
    let finite = values.iter().all(|v| v.is_finite());
    let evals = if !finite {
        None
    } else if let Some(cap) = spectrum_cap(m, n) {
        caps.push(cap);
        None
    } else {
        eigenvalues(&values, m, n)
    };
    Ok(Spectral {
        spectral_norm: sigma_squared.sqrt(),
        stable_rank: frobenius / sigma_squared,
        alpha: evals.and_then(|e| fit_alpha(&e)),
        iterations,
        caps,
    })
}

/// The cap an `m × n` matrix meets before its full spectrum is computed, if any.
#[must_use]
pub fn spectrum_cap(m: usize, n: usize) -> Option<Cap> {
    let elements = m.saturating_mul(n);
    (elements > SPECTRUM_MAX_ELEMENTS).then_some(Cap::Spectrum { elements })
}

/// The largest eigenvalue of WᵀW by power iteration (each step `u = W·v`, `v' = Wᵀ·u` through
/// the kernel), and the steps taken. The estimate is ‖W·v‖² for the unit vector `v`: the
/// Rayleigh quotient of WᵀW, which converges twice as fast as the vector. At most `most_steps`
/// steps; the third figure says whether it converged before.
fn top_eigenvalue(w: ArrayView2<f32>, most_steps: usize) -> (f64, usize, bool) {
    let (m, n) = w.dim();
    if m == 0 || n == 0 {
        return (0.0, 0, true);
    }
    // A fixed, sign-mixed start: reproducible, and not orthogonal to a positive top vector.
    let mut v: Vec<f32> = (0..n)
        .map(|i| {
            let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (x as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 + 0.5
        })
        .collect();
    normalize(&mut v);
    let mut u = Array2::<f32>::zeros((1, m));
    let mut z = Array2::<f32>::zeros((1, n));
    let mut estimate = 0.0;
    for step in 1..=most_steps {
        kernel::gemm(1.0, aview2_row(&v), w.t(), 0.0, u.view_mut());
        let next: f64 = u.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        kernel::gemm(1.0, u.view(), w, 0.0, z.view_mut());
        v.copy_from_slice(z.as_slice().expect("a fresh array is contiguous"));
        let done = (next - estimate).abs() <= TOLERANCE * next || !normalize(&mut v);
        estimate = next;
        if done {
            return (estimate, step, true);
        }
    }
    (estimate, most_steps, false)
}

/// A one-row view of `v`.
fn aview2_row(v: &[f32]) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((1, v.len()), v).expect("one row")
}

/// Scales `v` to unit length; false when it is zero (or not finite) and cannot be.
fn normalize(v: &mut [f32]) -> bool {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
    true
}

/// Every eigenvalue of WᵀW, σ² for each singular value of W (in f64); `None` when the SVD fails
/// to converge (as on NaN input).
fn eigenvalues(values: &[f32], m: usize, n: usize) -> Option<Vec<f64>> {
    // Given tall (Wᵀ for a wide W: the same singular values), so that the SVD's work space
    // follows the shorter side.
    let w = if m >= n {
        faer::Mat::<f64>::from_fn(m, n, |i, j| f64::from(values[i * n + j]))
    } else {
        faer::Mat::<f64>::from_fn(n, m, |j, i| f64::from(values[i * n + j]))
    };
    let singular = w.singular_values().ok()?;
    Some(singular.iter().map(|s| s * s).collect())
}

/// WeightWatcher's power-law fit of eigenvalues (its `WWFit`): keep those above
/// [`EVALS_THRESH`], sort them, and for each candidate `xmin` (every kept value but the largest)
/// take the maximum-likelihood exponent `1 + n / Σ ln(x / xmin)` over the `n` values from it up;
/// the answer is the exponent whose Kolmogorov–Smirnov distance between the fitted and the empirical
/// CDF is smallest (the first, on a tie).
#[must_use]
pub fn fit_alpha(evals: &[f64]) -> Option<f64> {
    if evals.len() < MIN_NUM_EVALS {
        return None;
    }
    let mut data: Vec<f64> = evals
        .iter()
        .copied()
        .filter(|&e| e > EVALS_THRESH)
        .collect();
    if data.len() < 2 {
        return None;
    }
    data.sort_by(f64::total_cmp);
    let logs: Vec<f64> = data.iter().map(|x| x.ln()).collect();
    // suffix[i] = Σ ln x over data[i..].
    let mut suffix = vec![0.0; data.len() + 1];
    for i in (0..data.len()).rev() {
        suffix[i] = suffix[i + 1] + logs[i];
    }
    let total = data.len();
    let mut best: Option<(f64, f64)> = None;
    for (i, &xmin) in data[..total - 1].iter().enumerate() {
        let count = (total - i) as f64;
        let alpha = 1.0 + count / (suffix[i] - count * logs[i]);
        let distance = if alpha > 1.0 {
            data[i..]
                .iter()
                .enumerate()
                .map(|(j, &x)| (1.0 - (x / xmin).powf(1.0 - alpha) - j as f64 / count).abs())
                .fold(0.0, f64::max)
        } else {
            1.0
        };
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, alpha));
        }
    }
    best.map(|(_, alpha)| alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-D F32 tensor from rows written inline.
    fn matrix<const N: usize>(rows: &[[f32; N]]) -> Tensor {
        let view = ndarray::aview2(rows);
        Tensor::from_f32(vec![view.nrows(), N], view.as_slice().expect("C order"))
    }

    #[test]
    fn a_diagonal_matrix_has_its_largest_entry_as_norm() {
        let w = matrix(&[[3.0, 0.0, 0.0], [0.0, -5.0, 0.0], [0.0, 0.0, 1.0]]);
        let s = spectral(&w).unwrap();
        assert!((s.spectral_norm - 5.0).abs() < 1e-5, "{}", s.spectral_norm);
        assert!((s.stable_rank - 35.0 / 25.0).abs() < 1e-5);
        assert_eq!(s.alpha, None, "three eigenvalues are too few to fit");
    }

    #[test]
    fn an_exact_power_law_is_fitted_near_its_exponent() {
        // Quantiles of a Pareto law with density ∝ x^-3 (alpha 3) from xmin = 1.
        let n = 2000;
        let evals: Vec<f64> = (0..n)
            .map(|i| (1.0 - (f64::from(i) + 0.5) / f64::from(n)).powf(-1.0 / 2.0))
            .collect();
        let alpha = fit_alpha(&evals).unwrap();
        assert!((alpha - 3.0).abs() < 0.05, "{alpha}");
    }
}
