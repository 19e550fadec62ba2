//! The grouping step for quantized safetensors: stored codes and their scales made into one
//! logical weight (its real shape, the dtype the scheme's reference returns), the stored parts
//! staying beside it under their own names. Recognised from the tensors, and from `config.json`'s
//! `quantization_config` where the tensors cannot tell (GPTQ's v1 or v2 zeros):
//! - an FP8 `NAME.weight` with `NAME.weight_scale_inv` (block FP8, 128 × 128 blocks) or
//!   `NAME.weight_scale` (per tensor or per output channel), under the codes' name;
//! - `NAME.qweight` + `NAME.qzeros` + `NAME.scales` (+ `NAME.g_idx`), GPTQ or AWQ by the packing
//!   the shapes show, as a new `NAME.weight`;
//! - compressed-tensors' `NAME.weight_packed` + `NAME.weight_scale` + `NAME.weight_shape`, as a new
//!   `NAME.weight`;
//! - MXFP4's `NAME_blocks` + `NAME_scales` (gpt-oss's experts), as a new `NAME`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::io::small_file;
use crate::tensor::quantized::Quantized;
use crate::tensor::{DType, Tensor};

/// DeepSeek-V3's `weight_block_size`, the one every block-FP8 checkpoint uses.
const BLOCK: (usize, usize) = (128, 128);
/// The largest `config.json` read for its `quantization_config`.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// The `quantization_config` of the `config.json` beside `file`, if any.
#[must_use]
pub fn config_beside(file: &Path) -> Option<Value> {
    let text = small_file::read_text(&super::beside(file, "config.json"), MAX_CONFIG_BYTES).ok()?;
    let mut json: Value = serde_json::from_str(&text).ok()?;
    Some(json.get_mut("quantization_config")?.take())
}

/// Groups the quantized weights of `tensors` (see the module's doc); a group whose parts do not
/// fit is left as stored, with a warning.
pub fn group(
    tensors: &mut Vec<(String, Tensor)>,
    config: Option<&Value>,
    warnings: &mut Vec<String>,
) {
    let index: HashMap<String, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.clone(), i))
        .collect();
    let part = |name: &str| index.get(name).map(|&i| tensors[i].clone());
    let mut added = Vec::new();
    for (i, (name, tensor)) in tensors.iter().enumerate() {
        let made = if matches!(tensor.dtype(), DType::F8_E4M3 | DType::F8_E5M2) {
            let scale = [("_scale_inv", Some(BLOCK)), ("_scale", None)]
                .into_iter()
                .find_map(|(suffix, block)| part(&format!("{name}{suffix}")).map(|s| (s, block)));
            let Some((scale, block)) = scale else {
                continue;
            };
            Quantized::fp8((name.clone(), tensor.clone()), scale, block).map(|q| (i, None, q))
        } else if let Some(module) = name.strip_suffix(".qweight") {
            let parts = (
                part(&format!("{module}.qzeros")),
                part(&format!("{module}.scales")),
            );
            let (Some(qzeros), Some(scales)) = parts else {
                continue;
            };
            // GPTQ packs qweight along the input (its width is the output's), AWQ along the output.
            let gptq = tensor.shape().get(1) == scales.1.shape().get(1);
            let v1 = config
                .and_then(|c| c.get("checkpoint_format"))
                .and_then(Value::as_str)
                .is_none_or(|f| f != "gptq_v2");
            let g_idx = part(&format!("{module}.g_idx")).filter(|_| gptq);
            Quantized::packed(
                gptq.then_some(v1),
                tensors[i].clone(),
                qzeros,
                scales,
                g_idx,
            )
            .map(|q| (i, Some(format!("{module}.weight")), q))
        } else if let Some(weight) = name.strip_suffix("_blocks") {
            let Some(scales) = part(&format!("{weight}_scales")) else {
                continue;
            };
            Quantized::mxfp4((name.clone(), tensor.clone()), scales)
                .map(|q| (i, Some(weight.to_owned()), q))
        } else if let Some(module) = name.strip_suffix(".weight_packed") {
            let Some(scale) = part(&format!("{module}.weight_scale")) else {
                continue;
            };
            let shape = part(&format!("{module}.weight_shape"))
                .and_then(|(_, t)| t.to_f32_vec().ok())
                .and_then(|s| match s[..] {
                    [out, inputs] => Some([out as usize, inputs as usize]),
                    _ => None,
                });
            let Some(shape) = shape else {
                warnings.push(format!("{name}: no weight_shape beside it; left as stored"));
                continue;
            };
            if part(&format!("{module}.weight_zero_point")).is_some() {
                warnings.push(format!(
                    "{name}: asymmetric pack-quantized weights are not dequantized yet; left as stored"
                ));
                continue;
            }
            Quantized::compressed((name.clone(), tensor.clone()), scale, shape)
                .map(|q| (i, Some(format!("{module}.weight")), q))
        } else {
            continue;
        };
        match made {
            Ok(found) => added.push(found),
            Err(e) => warnings.push(format!("{name}: left as stored: {e}")),
        }
    }
    // The logical weight takes the codes' place (FP8), or comes just before them (GPTQ, AWQ).
    for (i, name, weight) in added.into_iter().rev() {
        let weight = Tensor::from_quantized(weight);
        match name {
            None => tensors[i].1 = weight,
            Some(name) => tensors.insert(i, (name, weight)),
        }
    }
}
