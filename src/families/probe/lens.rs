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
/// per position.
pub fn lens(plan: &Plan, probe: &Probe, k: usize) -> Result<Vec<LensRow>, ProbeError> {
    (0..probe.residuals.len())
        .map(|l| lens_row(plan, probe, l, k))
        .collect()
}

/// The lens at boundary `layer` alone.
///
/// # Panics
/// When `layer` is not a boundary `probe` kept.
pub fn lens_row(plan: &Plan, probe: &Probe, layer: usize, k: usize) -> Result<LensRow, ProbeError> {
    let residual = &probe.residuals[layer];
    let mut h = residual.values.clone();
    let mut logits = Vec::new();
    if !plan.head(&mut h, &mut logits) {
        return Err(ProbeError::Unsupported(
            "the logit lens needs a language model's head; this model has none",
        ));
    }
    let rows = (probe.lens.len() * probe.len).max(1);
    let vocab = logits.len() / rows;
    let positions = probe
        .lens
        .iter()
        .enumerate()
        .flat_map(|(b, &n)| (0..n).map(move |p| b * probe.len + p))
        .map(|row| predict::top_k(&logits[row * vocab..(row + 1) * vocab], k))
        .collect();
    Ok(LensRow {
        layer,
        path: residual.path.clone(),
        positions,
    })
}
