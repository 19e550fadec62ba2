//! Numerical functions the formulas need: the error function and a QR factorization.

use ndarray::Array2;

/// The error function to about 1e-15, from the series near zero and the continued fraction beyond.
#[must_use]
pub fn erf(x: f64) -> f64 {
    if x < 0.0 {
        return -erf(-x);
    }
    if x < 2.5 {
        // erf x = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)); converges fast for |x| < 2.5.
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        1.0 - erfc_continued_fraction(x)
    }
}

/// erfc(x) for x ≥ 2.5 by Lentz's evaluation of its continued fraction.
fn erfc_continued_fraction(x: f64) -> f64 {
    // erfc x = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..200 {
        let a = f64::from(k) / 2.0;
        d = 1.0 / (x + a * d);
        c = x + a / c;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

/// The reduced QR factorization of `a` (m×n, m ≥ n) by Householder reflections: `a = q·r`, `q` m×n
/// with orthonormal columns, `r` n×n upper triangular. LAPACK's `geqrf`, which `torch.linalg.qr` calls,
/// uses the same reflections, so signs agree before torch's sign fix.
#[must_use]
pub fn qr(a: &Array2<f64>) -> (Array2<f64>, Array2<f64>) {
    let (m, n) = a.dim();
    assert!(m >= n, "qr needs at least as many rows as columns");
    let mut r = a.clone();
    let mut reflectors: Vec<Vec<f64>> = Vec::with_capacity(n);
    for k in 0..n {
        let norm = (k..m).map(|i| r[[i, k]] * r[[i, k]]).sum::<f64>().sqrt();
        let alpha = if r[[k, k]] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..m).map(|i| r[[i, k]]).collect();
        v[0] -= alpha;
        let v_norm2: f64 = v.iter().map(|x| x * x).sum();
        if v_norm2 > 0.0 {
            for j in k..n {
                let dot: f64 = (k..m).map(|i| v[i - k] * r[[i, j]]).sum();
                let scale = 2.0 * dot / v_norm2;
                for i in k..m {
                    r[[i, j]] -= scale * v[i - k];
                }
            }
        }
        reflectors.push(v);
    }
    // Q = H_0 H_1 … H_{n-1} applied to the first n columns of the identity.
    let mut q = Array2::<f64>::zeros((m, n));
    for j in 0..n {
        q[[j, j]] = 1.0;
    }
    for (k, v) in reflectors.iter().enumerate().rev() {
        let v_norm2: f64 = v.iter().map(|x| x * x).sum();
        if v_norm2 == 0.0 {
            continue;
        }
        for j in 0..n {
            let dot: f64 = (k..m).map(|i| v[i - k] * q[[i, j]]).sum();
            let scale = 2.0 * dot / v_norm2;
            for i in k..m {
                q[[i, j]] -= scale * v[i - k];
            }
        }
    }
    let r = r.slice(ndarray::s![..n, ..]).to_owned();
    (q, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // Values from scipy.special.erf.
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.5, -0.966_105_146_475_310_7),
        ] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn qr_reconstructs_and_is_orthonormal() {
        let a = Array2::from_shape_fn((5, 3), |(i, j)| {
            ((i * 7 + j * 3) % 5) as f64 - 1.5 + j as f64
        });
        let (q, r) = qr(&a);
        let back = q.dot(&r);
        assert!(
            back.iter()
                .zip(a.iter())
                .all(|(x, y)| (x - y).abs() < 1e-12)
        );
        let gram = q.t().dot(&q);
        for ((i, j), v) in gram.indexed_iter() {
            assert!((v - f64::from(u8::from(i == j))).abs() < 1e-12);
        }
        for i in 0..3 {
            for j in 0..i {
                assert!(r[[i, j]].abs() < 1e-12);
            }
        }
    }
}
