//! The worker's reading of a family run's probe for the forward panel: the lens at every layer and
//! position, the massive activations, the one attention layer the panel shows (only that
//! layer's weights are kept, so a long text holds one layer's, not all of them) and the super
//! weights; and `z`'s edit.

use crate::app::error::AppError;
use crate::app::probe_view::{Cell, LensLayer, MassiveRow, Probes};
use crate::families::Plan;
use crate::families::probe::{Probe, Want, Weights, lens, massive, super_weight, zero};
use crate::families::tokenize::TextTokenizer;
use crate::model::{Model, ParamId};
use crate::tensor::Tensor;

/// What the panel asks a pass to record: the residual stream and the down projections' peaks of
/// a causal LM (lens, massive, super weights) and the attention of any family, whole for `layer`
/// only.
#[must_use]
pub fn want(causal: bool, layer: usize) -> Want {
    Want {
        residuals: causal,
        attention: true,
        weights: Weights::Layer(layer),
        down_proj: causal,
    }
}

/// The panel's figures from `probe` after `plan`'s pass over `ids` with `model`'s tensors (its
/// `logits`, `[rows, vocab]`), `k` candidates per lens cell.
#[must_use]
pub fn read(
    plan: &Plan,
    model: &Model,
    (logits, probe): (&[f32], Probe),
    tokenizer: &TextTokenizer,
    ids: &[u32],
    k: usize,
) -> Probes {
    // As the next-token line shows them: as each token reads in text.
    let text = |id: u32| tokenizer.reads(id).unwrap_or_else(|| id.to_string());
    // A model without a head (an encoder) has no lens: the view says so by being empty.
    let lens = lens::lens(plan, &probe, logits, k).unwrap_or_default();
    let lens = lens
        .into_iter()
        .map(|row| LensLayer {
            path: row.path,
            positions: row
                .positions
                .iter()
                .map(|top| {
                    top.iter()
                        .map(|c| Cell {
                            id: c.id,
                            text: text(c.id),
                            prob: c.prob,
                        })
                        .collect()
                })
                .collect(),
        })
        .collect();
    let massive = massive::massive(&probe)
        .into_iter()
        .map(|m| MassiveRow {
            top: m
                .top
                .first()
                .map_or((0.0, 0, 0), |p| (p.value, p.token, p.channel)),
            path: m.path,
            median: m.median,
            flagged: m.flagged,
        })
        .collect();
    // A family without `down_proj` (GPT-2) has none to list: the view says so by being empty.
    let super_weights = super_weight::find(model, &probe).unwrap_or_default();
    let layers = probe.attention.len();
    let attention = probe
        .attention
        .into_iter()
        .enumerate()
        .find(|(_, m)| m.heads.iter().any(|h| h.weights.is_some()));
    Probes {
        tokens: ids.iter().map(|&id| text(id)).collect(),
        lens,
        massive,
        layers,
        attention,
        super_weights,
    }
}

/// Tensor `id` of `model` with its element `flat` (C order) set to 0, as a re-init's reply.
///
/// The snapshot is dropped before the reply, so that the app writes the new tensor into a store
/// no one else holds, which copies nothing.
pub fn zeroed(model: Model, id: ParamId, flat: usize) -> Result<Vec<(ParamId, Tensor)>, AppError> {
    let tensor = model.store.get(id).clone();
    drop(model);
    Ok(vec![(id, zero::zeroed(&tensor, |i| i == flat)?)])
}
