//! The logit lens: the family's final norm and LM head applied to the residual stream at every
//! `hidden_states` boundary, read as a next-token prediction at each position. The last
//! boundary's row is the model's own prediction (transformers norms `hidden_states[L]` itself;
//! here the stream is kept before the norm and normed once, which is the same).

use super::{Probe, ProbeError};
use crate::families::Plan;
use crate::families::predict::{self, Candidate};

/// One boundary's predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct LensRow {
    /// `l` of `hidden_states[l]`: 0 for the embeddings.
    pub layer: usize,
    /// The module whose output it reads.
    pub path: String,
    /// The top-k at every real position of every text, text 0's first.
    pub positions: Vec<Vec<Candidate>>,
}

/// The lens over every boundary `probe` kept (it must have recorded residuals), `k` candidates
/// per position. `logits` are the pass's own (`[rows, vocab]`, C order): the last boundary through
/// the final norm and head is exactly them, so its row is read from them rather than recomputed,
/// and the lens costs one head product per layer, not per boundary.
pub fn lens(
    plan: &Plan,
    probe: &Probe,
    logits: &[f32],
    k: usize,
) -> Result<Vec<LensRow>, ProbeError> {
    let last = probe.residuals.len().saturating_sub(1);
    // One pair of buffers for every boundary: the normed stream and its logits.
    let (mut h, mut scratch) = (Vec::new(), Vec::new());
    (0..probe.residuals.len())
        .map(|l| {
            // The head's width is known once a boundary went through it: the pass's logits are
            // the last row's only when they have that shape (a pass without a head has none).
            if l == last && l > 0 && logits.len() == scratch.len() {
                return Ok(read(probe, l, logits, k));
            }
            through_head(plan, probe, l, &mut h, &mut scratch)?;
            Ok(read(probe, l, &scratch, k))
        })
        .collect()
}

/// The lens at boundary `layer` alone, through the final norm and head.
///
/// # Panics
/// When `layer` is not a boundary `probe` kept.
pub fn lens_row(plan: &Plan, probe: &Probe, layer: usize, k: usize) -> Result<LensRow, ProbeError> {
    let mut logits = Vec::new();
    through_head(plan, probe, layer, &mut Vec::new(), &mut logits)?;
    Ok(read(probe, layer, &logits, k))
}

/// The logits of boundary `layer` into `logits`, its stream normed in `h`.
fn through_head(
    plan: &Plan,
    probe: &Probe,
    layer: usize,
    h: &mut Vec<f32>,
    logits: &mut Vec<f32>,
) -> Result<(), ProbeError> {
    h.clear();
    h.extend_from_slice(&probe.residuals[layer].values);
    if !plan.head(h, logits) {
        return Err(ProbeError::Unsupported(
            "the logit lens needs a language model's head; this model has none",
        ));
    }
    Ok(())
}

/// The top-k of boundary `layer`'s `logits` at every real position.
fn read(probe: &Probe, layer: usize, logits: &[f32], k: usize) -> LensRow {
    let rows = (probe.lens.len() * probe.len).max(1);
    let vocab = logits.len() / rows;
    let positions = probe
        .lens
        .iter()
        .enumerate()
        .flat_map(|(b, &n)| (0..n).map(move |p| b * probe.len + p))
        .map(|row| predict::top_k(&logits[row * vocab..(row + 1) * vocab], k))
        .collect();
    LensRow {
        layer,
        path: probe.residuals[layer].path.clone(),
        positions,
    }
}
