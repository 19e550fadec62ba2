//! The layers paramscope knows, how PyTorch prints each, and each layer's forward.

use std::fmt;

use crate::math;

/// A leaf module of the architecture language.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// `nn.Linear`: `y = x Wᵀ + b` with W `[out_features, in_features]`.
    Linear {
        /// Input width.
        in_features: usize,
        /// Output width.
        out_features: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `nn.ReLU`.
    ReLU,
    /// `nn.Sigmoid`.
    Sigmoid,
    /// `nn.Tanh`.
    Tanh,
    /// `nn.GELU`, exact (erf) or with the tanh approximation.
    Gelu {
        /// `approximate='tanh'`.
        tanh: bool,
    },
    /// `nn.LeakyReLU`.
    LeakyReLU {
        /// The slope for negative inputs.
        negative_slope: f64,
    },
    /// `nn.Identity`.
    Identity,
    /// `nn.Dropout`: a no-op at inference.
    Dropout {
        /// The drop probability (kept for printing).
        p: f64,
    },
    /// `nn.Flatten`.
    Flatten {
        /// First dimension to flatten.
        start_dim: i64,
        /// Last dimension to flatten (negative counts from the end).
        end_dim: i64,
    },
}

impl Layer {
    /// The class name PyTorch prints.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Linear { .. } => "Linear",
            Layer::ReLU => "ReLU",
            Layer::Sigmoid => "Sigmoid",
            Layer::Tanh => "Tanh",
            Layer::Gelu { .. } => "GELU",
            Layer::LeakyReLU { .. } => "LeakyReLU",
            Layer::Identity => "Identity",
            Layer::Dropout { .. } => "Dropout",
            Layer::Flatten { .. } => "Flatten",
        }
    }

    /// Writes an element-wise layer's output for `input` into `output` (of the same length); a
    /// layer that changes nothing (Identity, Dropout at inference, Flatten's values) copies.
    /// Linear is the forward pass's own.
    ///
    /// # Panics
    /// When the lengths differ.
    pub fn apply_elementwise(&self, input: &[f32], output: &mut [f32]) {
        assert_eq!(
            input.len(),
            output.len(),
            "an element-wise layer keeps the length"
        );
        let map = |f: &dyn Fn(f32) -> f32, output: &mut [f32]| {
            for (y, &x) in output.iter_mut().zip(input) {
                *y = f(x);
            }
        };
        match *self {
            // Not `max`: `ReLU` keeps NaN, as PyTorch's (and the kernel's fused one) does.
            Layer::ReLU => {
                for (y, &x) in output.iter_mut().zip(input) {
                    *y = if x < 0.0 { 0.0 } else { x };
                }
            }
            Layer::Sigmoid => map(&|v| 1.0 / (1.0 + (-v).exp()), output),
            Layer::Tanh => map(&f32::tanh, output),
            Layer::Gelu { tanh: false } => map(&gelu_erf, output),
            Layer::Gelu { tanh: true } => map(&gelu_tanh, output),
            Layer::LeakyReLU { negative_slope } => {
                let slope = negative_slope as f32;
                map(&|v| if v >= 0.0 { v } else { v * slope }, output);
            }
            Layer::Identity
            | Layer::Dropout { .. }
            | Layer::Linear { .. }
            | Layer::Flatten { .. } => output.copy_from_slice(input),
        }
    }
}

/// `x * Φ(x)` with the exact normal CDF, as `nn.GELU()`.
fn gelu_erf(v: f32) -> f32 {
    let x = f64::from(v);
    (0.5 * x * (1.0 + math::erf(x / std::f64::consts::SQRT_2))) as f32
}

/// `nn.GELU(approximate='tanh')`.
fn gelu_tanh(v: f32) -> f32 {
    let x = f64::from(v);
    let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044_715 * x * x * x);
    (0.5 * x * (1.0 + inner.tanh())) as f32
}

impl fmt::Display for Layer {
    /// PyTorch's `repr` of the layer: `Linear(in_features=4, out_features=8, bias=True)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Linear {
                in_features,
                out_features,
                bias,
            } => write!(
                f,
                "Linear(in_features={in_features}, out_features={out_features}, bias={})",
                if *bias { "True" } else { "False" }
            ),
            Layer::Gelu { tanh } => {
                write!(
                    f,
                    "GELU(approximate='{}')",
                    if *tanh { "tanh" } else { "none" }
                )
            }
            Layer::LeakyReLU { negative_slope } => {
                write!(
                    f,
                    "LeakyReLU(negative_slope={})",
                    python_float(*negative_slope)
                )
            }
            Layer::Dropout { p } => write!(f, "Dropout(p={}, inplace=False)", python_float(*p)),
            Layer::Flatten { start_dim, end_dim } => {
                write!(f, "Flatten(start_dim={start_dim}, end_dim={end_dim})")
            }
            Layer::ReLU | Layer::Sigmoid | Layer::Tanh | Layer::Identity => {
                write!(f, "{}()", self.kind())
            }
        }
    }
}

/// A float as Python's `repr` writes it: shortest round-trip digits, with `.0` on whole numbers.
#[must_use]
pub fn python_float(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'n', 'i']) {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_print_as_pytorch_does() {
        let linear = Layer::Linear {
            in_features: 4,
            out_features: 8,
            bias: true,
        };
        assert_eq!(
            linear.to_string(),
            "Linear(in_features=4, out_features=8, bias=True)"
        );
        assert_eq!(
            Layer::Dropout { p: 0.5 }.to_string(),
            "Dropout(p=0.5, inplace=False)"
        );
        assert_eq!(
            Layer::LeakyReLU {
                negative_slope: 0.01
            }
            .to_string(),
            "LeakyReLU(negative_slope=0.01)"
        );
        assert_eq!(
            Layer::Gelu { tanh: false }.to_string(),
            "GELU(approximate='none')"
        );
        assert_eq!(python_float(1.0), "1.0");
    }
}
