//! `paramscope export`: the model as a `.safetensors` file PyTorch's `load_model` reads.

use std::collections::HashSet;

use super::{CliError, ExportArgs, all_ids, fetch_said};
use crate::checkpoint::adapter;
use crate::checkpoint::save;
use crate::compare::adapter::Finding;
use crate::io::safetensors;
use crate::model::Model;
use crate::tensor::{DType, Tensor};

pub(super) fn run(args: &ExportArgs) -> Result<String, CliError> {
    let loaded = args.model.open()?;
    let mut model = loaded.model;
    fetch_said(&model, &all_ids(&model), "")?;
    match (&loaded.adapter, args.merge) {
        (Some(adapter), true) => {
            if let Some(Finding::ShapeMismatch { key, .. }) = adapter
                .findings
                .iter()
                .find(|f| matches!(f, Finding::ShapeMismatch { .. }))
            {
                return Err(CliError::Arguments(format!(
                    "{} does not fit its base weight (check lists why), so the adapter cannot be merged",
                    crate::text::escape(key)
                )));
            }
            adapter::merge_into(&mut model, adapter)?;
        }
        (Some(_), false) => {
            return Err(CliError::Arguments(
                "the model is a LoRA adapter on its base: pass --merge to write the base with the adapter merged in".into(),
            ));
        }
        (None, true) => {
            return Err(CliError::Arguments(
                "--merge applies to a LoRA adapter opened with its base (--base MODEL)".into(),
            ));
        }
        (None, false) => {}
    }
    // A file of no tensors is no model: an empty safetensors file with exit 0 would look like success.
    if model.store.is_empty() {
        return Err(CliError::Arguments(
            "the model holds no tensors, so there is nothing to export".into(),
        ));
    }
    let parts = dequantize(&mut model, args.dequantize)?;
    // A dequantized weight's packed parts are left out: the file is the model with plain
    // weights, and parts written beside them would be grouped into a second weight on reopening.
    let (mut tensors, metadata) = save::contents(&model);
    tensors.retain(|(name, _)| !parts.contains(name));
    safetensors::save(&args.output, &tensors, &metadata)?;
    eprintln!(
        "wrote {} ({} tensors, {} parameters)",
        crate::text::escape(&args.output.display().to_string()),
        tensors.len(),
        tensors
            .iter()
            .map(|(_, t)| t.shape().iter().product::<usize>())
            .sum::<usize>()
    );
    Ok(String::new())
}

/// GGUF quantized tensors have no safetensors dtype: with `--dequantize` each becomes F32 (ggml's
/// own dequantized values, exactly); a quantized safetensors weight becomes its dequantized values
/// in the dtype its reference returns. Without it they are named and nothing is written. Returns
/// the names of the dequantized weights' stored parts.
fn dequantize(model: &mut Model, allowed: bool) -> Result<HashSet<String>, CliError> {
    let quantized: Vec<(String, crate::model::ParamId)> = model
        .named_parameters()
        .into_iter()
        .filter(|(_, id)| {
            let tensor = model.store.get(*id);
            matches!(tensor.dtype(), DType::Ggml(_)) || tensor.quantization().is_some()
        })
        .collect();
    if quantized.is_empty() {
        return Ok(HashSet::new());
    }
    if !allowed {
        let names: Vec<String> = quantized
            .iter()
            .take(5)
            .map(|(n, id)| {
                let tensor = model.store.get(*id);
                let scheme = tensor.quantization().map_or_else(
                    || tensor.dtype().to_string(),
                    |q| q.scheme().name().to_owned(),
                );
                format!("{} ({scheme})", crate::text::escape(n))
            })
            .collect();
        let layouts = quantized
            .iter()
            .any(|(_, id)| model.store.get(*id).quantization().is_some());
        let kind = if layouts {
            "quantized"
        } else {
            "ggml-quantized"
        };
        let more = quantized.len().saturating_sub(names.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return Err(CliError::Arguments(format!(
            "{} tensors are {kind}, which safetensors cannot hold as such: {}{more}; pass --dequantize to write their dequantized values",
            quantized.len(),
            names.join(", ")
        )));
    }
    let mut parts = HashSet::new();
    for (_, id) in &quantized {
        if let Some(layout) = model.store.get(*id).quantization() {
            parts.extend(layout.parts().iter().map(|(name, _)| name.clone()));
        }
    }
    // FP8 keeps its codes under the weight's own name, which the dequantized values now hold.
    for (name, _) in &quantized {
        parts.remove(name);
    }
    for (_, id) in quantized {
        let tensor = model.store.get(id);
        let plain = if tensor.quantization().is_some() {
            let bytes = crate::tensor::Bytes::Owned(tensor.bytes().into());
            Tensor::new(tensor.shape().to_vec(), tensor.dtype(), bytes)
        } else {
            Tensor::from_f32(tensor.shape().to_vec(), &tensor.to_f32_vec()?)
        };
        model.store.set(id, plain);
    }
    Ok(parts)
}
