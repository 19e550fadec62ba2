//! The element-wise and row-wise pieces of a transformer: LayerNorm, RMSNorm, GELU, SiLU, softmax.
//!
//! Each works in place on rows of a flat C-order buffer, in f32; the arithmetic is
//! `tensor::simd::math`'s, vectorized for the CPU it runs on.

use std::sync::{Mutex, PoisonError};

use crate::kernel;
use crate::tensor::simd::math;
pub use crate::tensor::simd::math::{layer_norm, rms_norm, softmax};

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
