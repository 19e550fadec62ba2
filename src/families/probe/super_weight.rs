//! Super weights (Yu et al., 2024): run a text, and wherever a layer's `mlp.down_proj` output
//! reaches a magnitude above [`THRESHOLD`], the weight that makes it is at row = the output's
//! argmax channel, column = the input's argmax channel, as the paper's reference code finds it.

use super::{Probe, ProbeError};
use crate::model::Model;

/// The `down_proj` output magnitude above which a layer holds a super weight.
pub const THRESHOLD: f32 = 50.0;

/// One super weight.
#[derive(Debug, Clone, PartialEq)]
pub struct SuperWeight {
    /// The decoder layer.
    pub layer: usize,
    /// The weight's tensor (`model.layers.2.mlp.down_proj.weight`).
    pub path: String,
    /// Its row: the output channel.
    pub row: usize,
    /// Its column: the input channel.
    pub col: usize,
    /// Its value.
    pub value: f32,
    /// The largest `|output|` of that `down_proj`.
    pub output_magnitude: f32,
}

/// The super weights the `down_proj` peaks of `probe`'s pass point at, read from `model`.
pub fn find(model: &Model, probe: &Probe) -> Result<Vec<SuperWeight>, ProbeError> {
    if probe.down.is_empty() {
        return Err(ProbeError::Unsupported(
            "super weights are found in Llama-style MLPs (mlp.down_proj); this model has none",
        ));
    }
    probe
        .down
        .iter()
        .enumerate()
        .filter(|(_, peak)| peak.output > THRESHOLD)
        .map(|(layer, peak)| {
            let path = format!("{}.down_proj.weight", peak.mlp);
            let (row, col) = (peak.output_at.1, peak.input_at.1);
            let (_, id) = model.find_param(&path)?;
            let tensor = model.store.get(id);
            let value = tensor
                .to_f32_vec()
                .map_err(|source| ProbeError::Unreadable {
                    spec: path.clone(),
                    source,
                })?
                .get(row * tensor.shape().last().copied().unwrap_or(0) + col)
                .copied()
                .unwrap_or(f32::NAN);
            Ok(SuperWeight {
                layer,
                path,
                row,
                col,
                value,
                output_magnitude: peak.output,
            })
        })
        .collect()
}
