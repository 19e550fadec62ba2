//! The element-wise and row-wise pieces of a transformer: LayerNorm, RMSNorm, GELU, SiLU, softmax.
//!
//! Each works in place on rows of a flat C-order buffer, in f32, with plain loops over slices that
//! LLVM vectorizes (no bounds checks inside: the rows come from `chunks_exact_mut`).

/// `LayerNorm(x)` over each row of `width` values: `(x - mean) / sqrt(var + eps) * weight + bias`,
/// the variance biased, as PyTorch's.
pub fn layer_norm(x: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let width = weight.len();
    for row in x.chunks_exact_mut(width) {
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// `RMSNorm(x)` over each row: `x / sqrt(mean(x²) + eps) * weight`, as Llama's, in f32.
pub fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) {
    let width = weight.len();
    for row in x.chunks_exact_mut(width) {
        let mean_square = row.iter().map(|v| v * v).sum::<f32>() / width as f32;
        let inv = 1.0 / (mean_square + eps).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            // transformers multiplies the normalized value by the weight after the scaling.
            *v = w * (*v * inv);
        }
    }
}

/// An activation function named by `hidden_act` / `activation_function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: `x·Φ(x)` with the exact error function.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    /// `silu` / `swish`.
    Silu,
    /// `relu`.
    Relu,
}

impl Activation {
    /// The activation a config names, or `None` when it is not one of these.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "silu" | "swish" => Self::Silu,
            "relu" => Self::Relu,
            _ => return None,
        })
    }

    /// The class transformers names it by, for the tree.
    #[must_use]
    pub fn class(self) -> &'static str {
        match self {
            Self::Gelu => "GELUActivation",
            Self::GeluTanh => "NewGELUActivation",
            Self::Silu => "SiLUActivation",
            Self::Relu => "ReLU",
        }
    }

    /// Applies the activation to every value.
    pub fn apply(self, x: &mut [f32]) {
        match self {
            Self::Gelu => x.iter_mut().for_each(|v| *v = gelu(*v)),
            Self::GeluTanh => x.iter_mut().for_each(|v| *v = gelu_tanh(*v)),
            Self::Silu => x.iter_mut().for_each(|v| *v = silu(*v)),
            Self::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
    }
}

/// `x·Φ(x)` with the exact error function (`nn.GELU()`).
#[must_use]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's tanh approximation (`gelu_new`): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
#[must_use]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// `x·σ(x)`.
#[must_use]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// The error function in f32, to about 3e-7 absolute: erfc(x) = t·exp(-x² + P(t)) with
/// t = 1/(1 + x/2) (Numerical Recipes' erfcc, after Chebyshev), which is what an f32 GELU needs
/// without the cost of the f64 series.
#[must_use]
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_516 + t * (-0.822_152_2 + t * 0.170_872_8))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

/// Softmax of one row in place: `-inf` entries (masked) become 0. A row masked whole (a padding
/// query outside Mistral's window) becomes uniform, as transformers' additive `finfo.min` mask
/// makes it, rather than NaN, which would reach real positions through a product with 0 weight.
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(1.0 / row.len() as f32);
        return;
    }
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_the_f64_series() {
        for i in -400..=400 {
            let x = i as f32 / 80.0;
            let exact = crate::math::erf(f64::from(x));
            assert!((f64::from(erf(x)) - exact).abs() < 4e-7, "erf({x})");
        }
    }

    #[test]
    fn norms_and_softmax_by_hand() {
        let mut x = [1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0, 1.0], &[0.0, 0.5], 0.0);
        assert_eq!(x, [-1.0, 1.5, -1.0, 1.5]);
        let mut y = [3.0, 4.0];
        rms_norm(&mut y, &[1.0, 2.0], 0.0);
        let r = (12.5f32).sqrt();
        assert_eq!(y, [3.0 / r, 2.0 * (4.0 / r)]);
        let mut s = [0.0, f32::NEG_INFINITY, 0.0];
        softmax(&mut s);
        assert_eq!(s, [0.5, 0.0, 0.5]);
        assert_eq!(
            Activation::from_name("gelu_pytorch_tanh"),
            Some(Activation::GeluTanh)
        );
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
    }
}
