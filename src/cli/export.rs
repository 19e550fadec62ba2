//! `paramscope export`: the model as a `.safetensors` file PyTorch's `load_model` reads.

use super::CliError;
use super::ExportArgs;
use crate::checkpoint::adapter;
use crate::checkpoint::save::save_model;
use crate::compare::adapter::Finding;
use crate::model::Model;
use crate::tensor::{DType, Tensor};

pub(super) fn run(args: &ExportArgs) -> Result<String, CliError> {
    let loaded = args.model.open()?;
    let mut model = loaded.model;
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
    dequantize(&mut model, args.dequantize)?;
    save_model(&model, &args.output)?;
    eprintln!(
        "wrote {} ({} tensors, {} parameters)",
        crate::text::escape(&args.output.display().to_string()),
        model.store.len(),
        model.total_params()
    );
    Ok(String::new())
}

/// GGUF quantized tensors have no safetensors dtype: with `--dequantize` each becomes F32 (ggml's
/// own dequantized values, exactly); without it they are named and nothing is written.
fn dequantize(model: &mut Model, allowed: bool) -> Result<(), CliError> {
    let quantized: Vec<(String, crate::model::ParamId)> = model
        .named_parameters()
        .into_iter()
        .filter(|(_, id)| matches!(model.store.get(*id).dtype(), DType::Ggml(_)))
        .collect();
    if quantized.is_empty() {
        return Ok(());
    }
    if !allowed {
        let names: Vec<String> = quantized
            .iter()
            .take(5)
            .map(|(n, id)| {
                format!(
                    "{} ({})",
                    crate::text::escape(n),
                    model.store.get(*id).dtype()
                )
            })
            .collect();
        let more = quantized.len().saturating_sub(names.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return Err(CliError::Arguments(format!(
            "{} tensors are ggml-quantized, which safetensors cannot hold: {}{more}; pass --dequantize to write them as F32",
            quantized.len(),
            names.join(", ")
        )));
    }
    for (_, id) in quantized {
        let tensor = model.store.get(id);
        let values = tensor.to_f32_vec()?;
        let f32 = Tensor::from_f32(tensor.shape().to_vec(), &values);
        model.store.set(id, f32);
    }
    Ok(())
}
