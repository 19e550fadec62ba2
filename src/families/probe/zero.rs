//! Zero-and-rerun: `PATH[i,j]`, `PATH[i,:]`, `PATH[:,j]` (indices of the tensor as stored, so
//! GPT-2's Conv1D weights are [in, out]) set to 0 in a copy of the model, and the change of the
//! next-token distribution measured as KL(baseline || edited). A block-quantized (GGUF) tensor is
//! held dequantized once edited.

use std::str::FromStr;

use super::ProbeError;
use crate::model::Model;
use crate::tensor::Tensor;
use crate::tensor::decode::Undecodable;

/// Which elements of which tensor to zero: one index or `:` (all) per dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroSpec {
    /// The text given, for messages.
    pub spec: String,
    /// The tensor's name.
    pub path: String,
    /// Per dimension, the index, or `None` for all.
    pub index: Vec<Option<usize>>,
}

impl FromStr for ZeroSpec {
    type Err = ProbeError;

    fn from_str(spec: &str) -> Result<Self, ProbeError> {
        let bad = |why| ProbeError::Spec {
            spec: spec.to_owned(),
            why,
        };
        let body = spec
            .strip_suffix(']')
            .ok_or_else(|| bad("expected PATH[i,j], PATH[i,:] or PATH[:,j]"))?;
        let (path, index) = body
            .rsplit_once('[')
            .ok_or_else(|| bad("expected PATH[i,j], PATH[i,:] or PATH[:,j]"))?;
        if path.is_empty() {
            return Err(bad("no tensor name before ["));
        }
        let index = index
            .split(',')
            .map(|i| match i.trim() {
                ":" => Ok(None),
                i => i
                    .parse()
                    .map(Some)
                    .map_err(|_| bad("an index is a number or :")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            spec: spec.to_owned(),
            path: path.to_owned(),
            index,
        })
    }
}

impl ZeroSpec {
    /// Sets the elements to 0 in `model` (its store is copied on write, so clones keep theirs).
    pub fn apply(&self, model: &mut Model) -> Result<(), ProbeError> {
        let (_, id) = model.find_param(&self.path)?;
        let tensor = model.store.get(id);
        let shape = tensor.shape().to_vec();
        let fits = shape.len() == self.index.len()
            && shape
                .iter()
                .zip(&self.index)
                .all(|(&n, i)| i.is_none_or(|i| i < n));
        if !fits {
            return Err(ProbeError::Index {
                spec: self.spec.clone(),
                shape,
            });
        }
        let unreadable = |source| ProbeError::Unreadable {
            spec: self.spec.clone(),
            source,
        };
        let edited = zeroed(tensor, |flat| {
            let mut rest = flat;
            let mut hit = true;
            for (&n, i) in shape.iter().zip(&self.index).rev() {
                hit &= i.is_none_or(|i| i == rest % n);
                rest /= n;
            }
            hit
        })
        .map_err(unreadable)?;
        model.store.set(id, edited);
        Ok(())
    }
}

/// `tensor` with the elements `hit` picks (flat C-order indices) set to 0. A block-quantized
/// (GGUF) tensor's edited values are its dequantized ones (exact: ggml dequantizes in f32), held
/// as F32 ([`Tensor::with_values`]).
pub fn zeroed(tensor: &Tensor, hit: impl Fn(usize) -> bool) -> Result<Tensor, Undecodable> {
    let mut values = tensor.to_f32_vec()?;
    for (flat, v) in values.iter_mut().enumerate() {
        if hit(flat) {
            *v = 0.0;
        }
    }
    tensor.with_values(&values)
}

/// KL(p || q) in nats between the softmaxes of two logit rows.
#[must_use]
pub fn kl(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let log_p = log_softmax(p_logits);
    let log_q = log_softmax(q_logits);
    log_p
        .iter()
        .zip(&log_q)
        .map(|(&lp, &lq)| lp.exp() * (lp - lq))
        .sum()
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_sum = sum.ln();
    logits
        .iter()
        .map(|&l| f64::from(l - max) - log_sum)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_refuse() {
        let s: ZeroSpec = "a.b.weight[3,:]".parse().unwrap();
        assert_eq!(
            (s.path.as_str(), s.index),
            ("a.b.weight", vec![Some(3), None])
        );
        assert!("a.weight".parse::<ZeroSpec>().is_err());
        assert!("a.weight[x,1]".parse::<ZeroSpec>().is_err());
        assert!("[1,2]".parse::<ZeroSpec>().is_err());
        assert!(kl(&[1.0, 2.0], &[1.0, 2.0]).abs() < 1e-12);
        assert!(kl(&[0.0, 5.0], &[5.0, 0.0]) > 1.0);
    }
}
