//! The layers paramscope knows, how PyTorch prints each, and each layer's forward.

use std::fmt;

use ndarray::{ArrayD, IxDyn};

use crate::{kernel, math};

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

    /// Applies an element-wise layer in place (Linear and Flatten are handled by the forward pass).
    pub fn apply_elementwise(&self, x: &mut ArrayD<f32>) {
        match *self {
            // Not `max`: `ReLU` keeps NaN, as PyTorch's (and the kernel's fused one) does.
            Layer::ReLU => x.mapv_inplace(|v| if v < 0.0 { 0.0 } else { v }),
            Layer::Sigmoid => x.mapv_inplace(|v| 1.0 / (1.0 + (-v).exp())),
            Layer::Tanh => x.mapv_inplace(f32::tanh),
            Layer::Gelu { tanh: false } => x.mapv_inplace(gelu_erf),
            Layer::Gelu { tanh: true } => x.mapv_inplace(gelu_tanh),
            Layer::LeakyReLU { negative_slope } => {
                let slope = negative_slope as f32;
                x.mapv_inplace(|v| if v >= 0.0 { v } else { v * slope });
            }
            Layer::Identity
            | Layer::Dropout { .. }
            | Layer::Linear { .. }
            | Layer::Flatten { .. } => {}
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

/// `x Wᵀ + b` over the last dimension of `x`, through the kernel; `w` is `[out, in]` in C order.
///
/// Packs `w` for this one call: a forward pass keeps its weights packed and calls [`linear_into`].
#[must_use]
pub fn linear(x: &ArrayD<f32>, w: &ndarray::Array2<f32>, b: Option<&[f32]>) -> ArrayD<f32> {
    let in_features = w.ncols();
    let rows = x.shape()[..x.ndim().saturating_sub(1)].iter().product();
    let x2 = x
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((rows, in_features))
        .expect("the caller checked the last dimension");
    let mut y = ndarray::Array2::zeros((rows, w.nrows()));
    kernel::gemm_packed(
        1.0,
        x2.view(),
        &kernel::PackedWeight::new(w.view()),
        0.0,
        y.view_mut(),
        kernel::Epilogue {
            bias: b,
            relu: false,
        },
    );
    let mut out_shape = x.shape().to_vec();
    *out_shape.last_mut().expect("rank >= 1") = w.nrows();
    y.into_shape_with_order(IxDyn(&out_shape))
        .expect("same number of elements")
}

/// `y = x Wᵀ + b` (then `ReLU` when `relu`) for `x` [rows, in] into `y` [rows, out], both in C
/// order, with the weight prepacked; the bias and `ReLU` are applied as the kernel writes `y`, and
/// nothing is allocated for products small enough to stay on one thread.
///
/// The fused `ReLU` keeps NaN, as `PyTorch`'s does.
///
/// # Panics
/// When the lengths disagree with the weight, or the bias has not `out` values.
pub fn linear_into(
    x: &[f32],
    rows: usize,
    w: &kernel::PackedWeight,
    b: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    kernel::linear_packed(x, rows, w, y, kernel::Epilogue { bias: b, relu });
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
