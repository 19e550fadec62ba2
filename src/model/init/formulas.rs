//! The formulas of `torch/nn/init.py`, operation for operation: fans, gains, and drawing each
//! scheme's values from PyTorch's generator (the same f64 arithmetic, then the same
//! `uniform_`/`normal_`), so that a seeded re-init gives PyTorch's values.

use ndarray::Array2;

use super::{FanMode, InitError, InitScheme, NONLINEARITIES, Role};
use crate::math;
use crate::model::rng::TorchGenerator;

/// What `torch/nn/init.py` refuses, in its own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormulaError {
    /// `calculate_gain` of a nonlinearity it does not know.
    #[error("unsupported nonlinearity {0:?} (one of {known}, selu)", known = NONLINEARITIES.join(", "))]
    Nonlinearity(String),
    /// Fans of a tensor of fewer than 2 dimensions.
    #[error("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")]
    FewDimensions,
    /// `orthogonal_` of a tensor of fewer than 2 dimensions.
    #[error("Only tensors with 2 or more dimensions are supported")]
    OrthogonalDimensions,
}

/// `torch.nn.init.calculate_gain(nonlinearity, param)`.
pub fn calculate_gain(nonlinearity: &str, param: Option<f64>) -> Result<f64, FormulaError> {
    Ok(match nonlinearity {
        "linear" | "conv1d" | "conv2d" | "conv3d" | "conv_transpose1d" | "conv_transpose2d"
        | "conv_transpose3d" | "sigmoid" => 1.0,
        "tanh" => 5.0 / 3.0,
        "relu" => 2f64.sqrt(),
        "leaky_relu" => {
            let slope = param.unwrap_or(0.01);
            (2.0 / (1.0 + slope * slope)).sqrt()
        }
        "selu" => 3.0 / 4.0,
        other => return Err(FormulaError::Nonlinearity(other.to_owned())),
    })
}

/// `(fan_in, fan_out)` by PyTorch's rule: `shape[1]·∏shape[2:]` and `shape[0]·∏shape[2:]`.
pub fn fans(shape: &[usize]) -> Result<(usize, usize), FormulaError> {
    if shape.len() < 2 {
        return Err(FormulaError::FewDimensions);
    }
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

impl InitScheme {
    /// New values for a tensor of `shape` in `role`, drawn from `rng` exactly as PyTorch draws them.
    pub fn sample(
        &self,
        shape: &[usize],
        role: Role,
        rng: &mut TorchGenerator,
    ) -> Result<Vec<f32>, InitError> {
        let numel: usize = shape.iter().product();
        let mut out = vec![0f32; numel];
        let unfit = |error: FormulaError| InitError::Unfit {
            scheme: self.name(),
            shape: shape.to_vec(),
            reason: error.to_string(),
        };
        let fans = || fans(shape).map_err(unfit);
        match self {
            InitScheme::Zeros => {}
            InitScheme::Ones => out.fill(1.0),
            InitScheme::Constant { val } => out.fill(*val as f32),
            InitScheme::Uniform { a, b } => rng.fill_uniform(&mut out, *a, *b),
            InitScheme::Normal { mean, std } => rng.fill_normal(&mut out, *mean, *std),
            InitScheme::XavierUniform { gain } => {
                let (fan_in, fan_out) = fans()?;
                let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
                let bound = 3f64.sqrt() * std;
                rng.fill_uniform(&mut out, -bound, bound);
            }
            InitScheme::XavierNormal { gain } => {
                let (fan_in, fan_out) = fans()?;
                let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
                rng.fill_normal(&mut out, 0.0, std);
            }
            InitScheme::KaimingUniform {
                a,
                mode,
                nonlinearity,
            } => {
                if numel > 0 {
                    let std = kaiming_std(*a, *mode, nonlinearity, fans()?).map_err(unfit)?;
                    let bound = 3f64.sqrt() * std;
                    rng.fill_uniform(&mut out, -bound, bound);
                }
            }
            InitScheme::KaimingNormal {
                a,
                mode,
                nonlinearity,
            } => {
                if numel > 0 {
                    let std = kaiming_std(*a, *mode, nonlinearity, fans()?).map_err(unfit)?;
                    rng.fill_normal(&mut out, 0.0, std);
                }
            }
            InitScheme::TruncNormal { mean, std, a, b } => {
                trunc_normal(&mut out, (*mean, *std, *a, *b), rng);
            }
            InitScheme::Orthogonal { gain } => {
                if shape.len() < 2 {
                    return Err(unfit(FormulaError::OrthogonalDimensions));
                }
                if numel > 0 {
                    orthogonal(&mut out, shape[0], *gain, rng);
                }
            }
            InitScheme::Default => match role {
                Role::Weight => {
                    return InitScheme::KaimingUniform {
                        a: 5f64.sqrt(),
                        mode: FanMode::FanIn,
                        nonlinearity: "leaky_relu".into(),
                    }
                    .sample(shape, role, rng)
                    .map_err(|e| match e {
                        InitError::Unfit { shape, reason, .. } => InitError::Unfit {
                            scheme: "default",
                            shape,
                            reason: format!(
                                "{reason} (default initializes a Linear's weight and bias)"
                            ),
                        },
                        other => other,
                    });
                }
                Role::Bias { fan_in } => {
                    let bound = if fan_in > 0 {
                        1.0 / (fan_in as f64).sqrt()
                    } else {
                        0.0
                    };
                    rng.fill_uniform(&mut out, -bound, bound);
                }
            },
            InitScheme::MaskedUniform { a, b, threshold } => {
                rng.fill_uniform(&mut out, *a, *b);
                // `w *= w.abs() >= t`: a multiply, so small negatives become -0.0 as in PyTorch.
                let t = *threshold as f32;
                for v in &mut out {
                    *v *= f32::from(u8::from(v.abs() >= t));
                }
            }
        }
        Ok(out)
    }
}

/// The standard deviation of the Kaiming schemes: gain/√fan.
fn kaiming_std(
    a: f64,
    mode: FanMode,
    nonlinearity: &str,
    fans: (usize, usize),
) -> Result<f64, FormulaError> {
    let fan = match mode {
        FanMode::FanIn => fans.0,
        FanMode::FanOut => fans.1,
    };
    let gain = calculate_gain(nonlinearity, Some(a))?;
    Ok(gain / (fan as f64).sqrt())
}

/// `trunc_normal_` as PyTorch 2.15 draws it: by rejection. When [a, b] holds more than 30% of the
/// mass, normals are redrawn (a whole tensor at a time) where they fall outside; otherwise uniforms on
/// [a, b] are accepted with the normal density relative to its peak.
fn trunc_normal(
    out: &mut [f32],
    (mean, std, a, b): (f64, f64, f64, f64),
    rng: &mut TorchGenerator,
) {
    let norm_cdf = |x: f64| f64::midpoint(1.0, math::erf(x / 2f64.sqrt()));
    let mass = norm_cdf((b - mean) / std) - norm_cdf((a - mean) / std);
    let n = out.len();
    let mut fresh = vec![0f32; n];
    if mass > 0.3 {
        let (low, high) = (a as f32, b as f32);
        rng.fill_normal(out, mean, std);
        while out.iter().any(|v| *v < low || *v > high) {
            rng.fill_normal(&mut fresh, mean, std);
            for (v, f) in out.iter_mut().zip(&fresh) {
                if *v < low || *v > high {
                    *v = *f;
                }
            }
        }
        return;
    }
    let mode = a.max(mean.min(b));
    let log_peak = (-0.5 * ((mode - mean) / std).powi(2)) as f32;
    let (mean32, std32) = (mean as f32, std as f32);
    // The log-density relative to the peak, in f32 as torch's in-place ops compute it.
    let log_density = |v: f32| {
        let z = (v - mean32) / std32;
        z * z * -0.5 - log_peak
    };
    let mut accept = vec![0f32; n];
    rng.fill_uniform(out, a, b);
    rng.fill_uniform(&mut accept, 0.0, 1.0);
    let mut pending: Vec<bool> = out
        .iter()
        .zip(&accept)
        .map(|(v, u)| u.ln() > log_density(*v))
        .collect();
    while pending.iter().any(|p| *p) {
        rng.fill_uniform(&mut fresh, a, b);
        rng.fill_uniform(&mut accept, 0.0, 1.0);
        for i in 0..n {
            if pending[i] {
                out[i] = fresh[i];
                pending[i] = accept[i].ln() > log_density(fresh[i]);
            }
        }
    }
}

/// `orthogonal_`: QR of a rows×cols normal matrix (transposed when wide), columns signed by R's diagonal.
fn orthogonal(out: &mut [f32], rows: usize, gain: f64, rng: &mut TorchGenerator) {
    let cols = out.len() / rows;
    rng.fill_normal(out, 0.0, 1.0);
    let flat = Array2::from_shape_fn((rows, cols), |(i, j)| f64::from(out[i * cols + j]));
    let wide = rows < cols;
    let tall = if wide { flat.t().to_owned() } else { flat };
    let (mut q, r) = math::qr(&tall);
    for (j, mut column) in q.columns_mut().into_iter().enumerate() {
        let sign = r[[j, j]].signum() * f64::from(u8::from(r[[j, j]] != 0.0));
        column *= sign;
    }
    let q = if wide { q.t().to_owned() } else { q };
    for (v, q) in out.iter_mut().zip(q.iter()) {
        *v = (*q as f32) * gain as f32;
    }
}
