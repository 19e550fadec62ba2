//! LoRA updates against their base weights: the coverage findings of an adapter attached to its
//! base, the figures of each update `dW = scaling · B·A` (its norm and singular values, taken from
//! the r × r core, never from the full matrix), and the merge PEFT's `merge_and_unload` makes.

use half::{bf16, f16};
use thiserror::Error;

use crate::model::ParamId;
use crate::tensor::decode::Undecodable;
use crate::tensor::{DType, Tensor};

/// One adapted module: its LoRA pair and what PEFT derives from the config for it.
#[derive(Clone)]
pub struct Lora {
    /// The base module's path (`model.layers.0.self_attn.q_proj`).
    pub module: String,
    /// The base weight's state_dict key.
    pub weight: String,
    /// The base weight's tensor.
    pub id: ParamId,
    /// `lora_A`, (r, in).
    pub a: Tensor,
    /// `lora_B`, (out, r).
    pub b: Tensor,
    /// DoRA's `lora_magnitude_vector`, (out,).
    pub magnitude: Option<Tensor>,
    /// The rank the config gives this module (`rank_pattern`, else `r`).
    pub r: usize,
    /// The alpha the config gives this module (`alpha_pattern`, else `lora_alpha`).
    pub alpha: f64,
    /// `alpha / r`, or `alpha / sqrt(r)` with `use_rslora`.
    pub scaling: f64,
    /// The base weight is stored (in, out) (GPT-2's Conv1D with `fan_in_fan_out`, an Embedding):
    /// `dW` is `(B·A)ᵀ`.
    pub transposed: bool,
}

/// A prefix that, put in place of another, makes an unmatched adapter key name a base module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The key's prefix as stored.
    pub from: String,
    /// The prefix that would match.
    pub to: String,
    /// The base module the renamed key would adapt.
    pub module: String,
}

/// Something about an adapter's coverage of its base that the user should hear.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// An adapter key naming no module of the base: the adapter silently does nothing there.
    UnmatchedKey {
        /// The key, as stored.
        key: String,
        /// The prefix change that would make it match, when one does.
        suggestion: Option<Rename>,
    },
    /// A base module `target_modules` names, with no adapter for it.
    UntargetedModule {
        /// The module's path.
        path: String,
    },
    /// A `lora_B` of zeros: the update is zero, the module unchanged.
    ZeroLoraB {
        /// The module's path.
        path: String,
    },
    /// NaN or ±Inf in an adapter tensor.
    Nonfinite {
        /// The module's path.
        path: String,
        /// The tensor's key.
        key: String,
        /// How many values are not finite.
        count: usize,
    },
    /// An adapter tensor whose shape does not fit its base weight (PEFT refuses to load it).
    ShapeMismatch {
        /// The module's path.
        path: String,
        /// The tensor's key.
        key: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The shape the base weight and the config call for.
        expected: Vec<usize>,
    },
}

impl Finding {
    /// The kind, as `check --json` names it.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::UnmatchedKey { .. } => "unmatched_key",
            Finding::UntargetedModule { .. } => "untargeted_module",
            Finding::ZeroLoraB { .. } => "zero_lora_b",
            Finding::Nonfinite { .. } => "nonfinite",
            Finding::ShapeMismatch { .. } => "shape_mismatch",
        }
    }
}

/// An adapter's values that cannot be used.
#[derive(Debug, Error)]
pub enum LoraError {
    /// A tensor of a dtype that holds no numbers.
    #[error("{key}: {source}")]
    Undecodable {
        /// The tensor's key.
        key: String,
        /// Its dtype.
        source: Undecodable,
    },
}

/// What an update does to its base weight.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Figures {
    /// The module's rank.
    pub r: usize,
    /// Its scaling.
    pub scaling: f64,
    /// ‖dW‖_F.
    pub delta_norm: f64,
    /// ‖W‖_F of the base weight, when it was read.
    pub base_norm: Option<f64>,
    /// The singular values of dW, largest first (at most r of them).
    pub singular_values: Vec<f64>,
}

impl Figures {
    /// One line for a tree row: `lora r=4 scaling=2 |dW|=1.2e0 (3.4% of |W|) σ=[…]`.
    #[must_use]
    pub fn label(&self) -> String {
        let of_base = self
            .base_norm
            .map(|w| format!(" ({:.3}% of |W|)", 100.0 * self.delta_norm / w))
            .unwrap_or_default();
        let sigma: Vec<String> = self
            .singular_values
            .iter()
            .take(4)
            .map(|s| format!("{s:.3e}"))
            .collect();
        let more = if self.singular_values.len() > 4 {
            ", …"
        } else {
            ""
        };
        format!(
            "lora r={} scaling={} |dW|={:.4e}{of_base} σ=[{}{more}]",
            self.r,
            self.scaling,
            self.delta_norm,
            sigma.join(", ")
        )
    }
}

/// The findings about one module's own values: NaN/Inf in its tensors, a `lora_B` of zeros.
#[must_use]
pub fn scan(lora: &Lora) -> Vec<Finding> {
    let mut findings = Vec::new();
    let parts = [
        ("lora_A", Some(&lora.a)),
        ("lora_B", Some(&lora.b)),
        ("lora_magnitude_vector", lora.magnitude.as_ref()),
    ];
    for (part, tensor) in parts {
        // Counted from the bits in one read: a 7B model's adapter is 40M values.
        let Some(counts) = tensor.and_then(|t| t.specials().ok()) else {
            continue;
        };
        let count = counts.nan + counts.inf;
        if count > 0 {
            findings.push(Finding::Nonfinite {
                path: lora.module.clone(),
                key: format!("{}.{part}", lora.module),
                count,
            });
        }
        if part == "lora_B" && counts.zeros == counts.total {
            findings.push(Finding::ZeroLoraB {
                path: lora.module.clone(),
            });
        }
    }
    findings
}

/// The values of `tensor`, part `part` of `lora`'s module, as f32.
pub(super) fn values(tensor: &Tensor, lora: &Lora, part: &str) -> Result<Vec<f32>, LoraError> {
    tensor
        .to_f32_vec()
        .map_err(|source| LoraError::Undecodable {
            key: format!("{}.{part}", lora.module),
            source,
        })
}

/// The update's norm and singular values, and the norm of `base` when given: with `B = Q_B R_B` and `Aᵀ = Q_A R_A`,
/// `B·A = Q_B (R_B R_Aᵀ) Q_Aᵀ`, so dW's singular values are those of the small core `R_B R_Aᵀ`
/// times the scaling; dW itself is never formed.
pub fn figures(lora: &Lora, base: Option<&Tensor>) -> Result<Figures, LoraError> {
    let (a, b) = (
        values(&lora.a, lora, "lora_A")?,
        values(&lora.b, lora, "lora_B")?,
    );
    let base_norm = match base {
        Some(base) => {
            let w = base.to_f32_vec().map_err(|source| LoraError::Undecodable {
                key: lora.weight.clone(),
                source,
            })?;
            Some(w.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt())
        }
        None => None,
    };
    let (out, r, inputs) = (lora.b.shape()[0], lora.b.shape()[1], lora.a.shape()[1]);
    let b = faer::Mat::<f64>::from_fn(out, r, |i, k| f64::from(b[i * r + k]));
    let a_t = faer::Mat::<f64>::from_fn(inputs, r, |j, k| f64::from(a[k * inputs + j]));
    let (qr_b, qr_a) = (b.qr(), a_t.qr());
    let core = qr_b.thin_R() * qr_a.thin_R().transpose();
    // The SVD fails only on NaN/Inf, which `scan` reports: no singular values then.
    let mut singular_values: Vec<f64> = core
        .singular_values()
        .unwrap_or_default()
        .into_iter()
        .map(|s| s * lora.scaling.abs())
        .collect();
    singular_values.sort_by(|x, y| y.total_cmp(x));
    Ok(Figures {
        r: lora.r,
        scaling: lora.scaling,
        delta_norm: singular_values.iter().map(|s| s * s).sum::<f64>().sqrt(),
        base_norm,
        singular_values,
    })
}

/// `dW` as PEFT's `get_delta_weight` makes it on the CPU, in the base weight's layout: `B @ A` in
/// f32 (each sum an FMA chain over r, as the BLAS kernel runs it), times the scaling as an f32,
/// transposed for `fan_in_fan_out`, then rounded to the adapter's dtype when that is F16/BF16.
fn delta(lora: &Lora, a: &[f32], b: &[f32]) -> Vec<f32> {
    let (out, r, inputs) = (lora.b.shape()[0], lora.b.shape()[1], lora.a.shape()[1]);
    let scale = lora.scaling as f32;
    let round: fn(f32) -> f32 = match lora.b.dtype() {
        DType::BF16 => |v| bf16::from_f32(v).to_f32(),
        DType::F16 => |v| f16::from_f32(v).to_f32(),
        _ => |v| v,
    };
    let mut delta = vec![0.0f32; out * inputs];
    for i in 0..out {
        let row = &b[i * r..(i + 1) * r];
        for j in 0..inputs {
            let sum = row
                .iter()
                .enumerate()
                .fold(0.0f32, |acc, (k, bk)| bk.mul_add(a[k * inputs + j], acc));
            let at = if lora.transposed {
                j * out + i
            } else {
                i * inputs + j
            };
            delta[at] = round(sum * scale);
        }
    }
    delta
}

/// The base weight with the update merged in as `merge_and_unload` merges it: `W + dW` in f32,
/// rounded once to the base's dtype (kept in f32 when the base is block-quantized, whose values
/// cannot be written one by one: `Tensor::with_values`); with DoRA, each output row then scaled by its magnitude over
/// the norm of that row of `W + dW`.
pub fn merge(lora: &Lora, base: &Tensor) -> Result<Tensor, LoraError> {
    let (a, b) = (
        values(&lora.a, lora, "lora_A")?,
        values(&lora.b, lora, "lora_B")?,
    );
    let undecodable = |source| LoraError::Undecodable {
        key: lora.weight.clone(),
        source,
    };
    let w = base.to_f32_vec().map_err(undecodable)?;
    let delta = delta(lora, &a, &b);
    let mut merged: Vec<f32> = w.iter().zip(&delta).map(|(w, d)| w + d).collect();
    if let Some(magnitude) = &lora.magnitude {
        let magnitude = values(magnitude, lora, "lora_magnitude_vector")?;
        dora(&mut merged, &magnitude, lora.transposed);
    }
    base.with_values(&merged).map_err(undecodable)
}

/// DoRA's merge of `W + dW` (in place): row `o` of the (out, in) weight times `m[o] / ‖row o‖`.
/// The norm is summed in f64 and rounded to f32 (torch's reduction order differs: within a few ulp).
fn dora(merged: &mut [f32], magnitude: &[f32], transposed: bool) {
    let out = magnitude.len();
    let inputs = merged.len() / out.max(1);
    let at = |o: usize, i: usize| {
        if transposed {
            i * out + o
        } else {
            o * inputs + i
        }
    };
    for (o, m) in magnitude.iter().enumerate() {
        let norm = (0..inputs)
            .map(|i| f64::from(merged[at(o, i)]).powi(2))
            .sum::<f64>()
            .sqrt() as f32;
        let factor = m / norm;
        for i in 0..inputs {
            merged[at(o, i)] *= factor;
        }
    }
}
