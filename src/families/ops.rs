//! The element-wise and row-wise pieces the families share: residual adds, copies, LayerNorm,
//! RMSNorm, the activations, softmax, and the row views of flat buffers they all take.
//!
//! Each works in place on rows of a flat C-order buffer, in f32; the arithmetic is
//! `tensor::simd::math`'s, vectorized for the CPU it runs on.

use std::sync::{Mutex, PoisonError};

use ndarray::{ArrayView2, ArrayViewMut2};

use super::config::ConfigError;
use crate::kernel;
use crate::tensor::simd::math;
pub use crate::tensor::simd::math::softmax;

/// `a += b`, element by element (a residual connection).
pub fn add(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// `dst = src`, reusing `dst`'s allocation.
pub fn copy(dst: &mut Vec<f32>, src: &[f32]) {
    dst.clear();
    dst.extend_from_slice(src);
}

/// A LayerNorm's weight, bias and eps.
#[derive(Debug, Clone)]
pub struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    /// A LayerNorm over rows as wide as `weight`.
    #[must_use]
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, eps: f64) -> Self {
        Self {
            weight,
            bias,
            eps: eps as f32,
        }
    }

    /// The width of a row.
    #[must_use]
    pub fn width(&self) -> usize {
        self.weight.len()
    }

    /// Normalizes each row of `x` in place.
    pub fn apply(&self, x: &mut [f32]) {
        math::layer_norm(x, &self.weight, &self.bias, self.eps);
    }

    /// `x += residual`, then [`Self::apply`], row blocks shared across threads (a batch's
    /// post-norm sublayer ends).
    pub fn add_and_apply(&self, x: &mut [f32], residual: &[f32]) {
        /// Multiply-adds' worth per value: the add, two passes of moments and the scaling.
        const COST: usize = 4;
        in_parts(x, self.weight.len(), COST, &|offset, part| {
            add(part, &residual[offset..offset + part.len()]);
            self.apply(part);
        });
    }
}

/// An RMSNorm's weight and eps.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    /// An RMSNorm over rows as wide as `weight`.
    #[must_use]
    pub fn new(weight: Vec<f32>, eps: f64) -> Self {
        Self {
            weight,
            eps: eps as f32,
        }
    }

    /// Gemma's RMSNorm, which scales by `1 + weight` (its weights are stored as offsets from 1):
    /// the sum taken once here, in f32 as transformers takes it.
    #[must_use]
    pub fn plus_one(mut self) -> Self {
        self.weight.iter_mut().for_each(|w| *w += 1.0);
        self
    }

    /// Normalizes each row of `x` in place.
    pub fn apply(&self, x: &mut [f32]) {
        math::rms_norm(x, &self.weight, self.eps);
    }
}

/// Gemma 2's soft capping: each value becomes `cap·tanh(value / cap)`.
pub fn soft_cap(x: &mut [f32], cap: f32) {
    for v in x {
        *v = (*v / cap).tanh() * cap;
    }
}

/// Runs `f(offset, part)` over `x` cut into parts of whole `chunk`s (the last may be short),
/// shared across the kernel's threads when `x.len()·cost` multiply-adds' worth is enough for
/// more than one; `offset` is the part's first index in `x`.
///
/// For the element-wise and row-wise passes between a batch's products, which would otherwise
/// keep one core busy while the other waits for the next product.
pub fn in_parts(x: &mut [f32], chunk: usize, cost: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    let chunk = chunk.max(1);
    let parts = kernel::parts_for(x.len().saturating_mul(cost), x.len().div_ceil(chunk));
    if parts <= 1 {
        f(0, x);
        return;
    }
    let per_part = x.len().div_ceil(parts).next_multiple_of(chunk);
    let pieces: Vec<_> = x
        .chunks_mut(per_part)
        .map(|p| Mutex::new(Some(p)))
        .collect();
    kernel::run_parts(pieces.len(), &|i| {
        let piece = pieces[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(piece) = piece {
            f(i * per_part, piece);
        }
    });
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

    /// The activation config.json's `field` names (`hidden_act`, GPT-2's `activation_function`),
    /// `default` when it names none.
    pub fn of(field: &'static str, name: Option<&str>, default: &str) -> Result<Self, ConfigError> {
        let name = name.unwrap_or(default);
        Self::from_name(name).ok_or_else(|| ConfigError::Field {
            field,
            why: format!(
                "{name:?} is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, relu are)"
            ),
        })
    }

    /// Applies the activation to every value, in blocks shared across the kernel's threads when
    /// there are enough (a batch's MLP: millions of values, each some tens of instructions).
    pub fn apply(self, x: &mut [f32]) {
        /// What a value costs in the kernel's unit (a multiply-add): about as much as 16 of them
        /// (the exact GELU's erf and exp).
        const COST: usize = 16;
        in_parts(x, 4096, COST, &|_, part| self.apply_here(part));
    }

    /// [`Self::apply`] on the calling thread.
    fn apply_here(self, x: &mut [f32]) {
        match self {
            Self::Gelu => math::gelu(x),
            Self::GeluTanh => math::gelu_tanh(x),
            Self::Silu => math::silu(x),
            Self::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
    }
}

/// C-order views of flat buffers: `rows × width`.
///
/// # Panics
/// When a buffer does not hold `rows·width` values.
#[must_use]
pub fn view(x: &[f32], width: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((x.len() / width, width), x).expect("a buffer of whole rows")
}

/// [`view`], mutable.
///
/// # Panics
/// When a buffer does not hold whole rows.
pub fn view_mut(x: &mut [f32], width: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((x.len() / width, width), x).expect("a buffer of whole rows")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_relu() {
        assert_eq!(
            Activation::from_name("gelu_pytorch_tanh"),
            Some(Activation::GeluTanh)
        );
        assert_eq!(Activation::from_name("tanh"), None);
        let mut x = [-1.0, 2.0, f32::NAN];
        Activation::Relu.apply(&mut x);
        assert_eq!(x[..2], [0.0, 2.0]);
        let mut g = [1.0];
        Activation::Gelu.apply(&mut g);
        assert!((g[0] - 0.841_344_7).abs() < 1e-6);
    }
}
