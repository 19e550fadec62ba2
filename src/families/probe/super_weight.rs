//! Super weights (Yu et al., 2024): run a text, and wherever a layer's `mlp.down_proj` output
//! reaches a magnitude above [`THRESHOLD`], the weight that makes it is at row = the output's
//! argmax channel, column = the input's argmax channel, as the paper's reference code finds it.

use super::{Probe, ProbeError};
use crate::model::Model;
use crate::tensor::decode::{Undecodable, decode_f64};

/// The `down_proj` output magnitude above which a layer holds a super weight.
pub const THRESHOLD: f32 = 50.0;

/// One super weight.
#[derive(Debug, Clone, PartialEq)]
pub struct SuperWeight {
    /// The decoder layer.
    pub layer: usize,
    /// The weight's tensor (`model.layers.2.mlp.down_proj.weight`, an expert's in a mixture).
    pub path: String,
    /// The expert's index in the tensor when it stacks a mixture's experts
    /// (`mlp.experts.down_proj`, `[expert, row, col]`).
    pub expert: Option<usize>,
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
        .filter(|peak| peak.output > THRESHOLD)
        .map(|peak| {
            let path = peak.weight.name.clone();
            let expert = peak.weight.expert;
            let (row, col) = (peak.output_at.1, peak.input_at.1);
            let (_, id) = model.find_param(&path)?;
            let tensor = model.store.get(id);
            let shape = tensor.shape();
            let (rows, cols) = match shape {
                [.., rows, cols] => (*rows, *cols),
                _ => (0, 0),
            };
            let at = (expert.unwrap_or(0) * rows + row) * cols + col;
            // One element decoded, not the tensor: the app finds these on every run of its panel.
            let mut value = Vec::new();
            let undecodable = Undecodable(tensor.dtype());
            let bytes = (!tensor.is_pending())
                .then(|| tensor.bytes())
                .ok_or(undecodable);
            bytes
                .and_then(|bytes| decode_f64(tensor.dtype(), bytes, at, 1, &mut value))
                .map_err(|source| ProbeError::Unreadable {
                    spec: path.clone(),
                    source,
                })?;
            let value = value.first().map_or(f32::NAN, |&v| v as f32);
            Ok(SuperWeight {
                layer: peak.layer,
                path,
                expert,
                row,
                col,
                value,
                output_magnitude: peak.output,
            })
        })
        .collect()
}
