//! The grouping step for quantized safetensors: the stored codes and their scales made into one
//! logical weight under the codes' name (its real shape, the dtype the scheme's reference returns),
//! the scales staying beside it as stored. Recognised from the tensors themselves:
//! an FP8 `NAME.weight` with `NAME.weight_scale_inv` (block FP8, 128 × 128 blocks) or
//! `NAME.weight_scale` (per tensor or per output channel).

use std::collections::HashMap;

use crate::tensor::Tensor;
use crate::tensor::quantized::Quantized;

/// DeepSeek-V3's `weight_block_size`, the one every block-FP8 checkpoint uses.
const BLOCK: (usize, usize) = (128, 128);

/// Replaces each recognised group's codes in `tensors` by its logical weight; a group whose parts
/// do not fit is left as stored, with a warning.
pub fn group(tensors: &mut [(String, Tensor)], warnings: &mut Vec<String>) {
    let index: HashMap<String, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.clone(), i))
        .collect();
    for i in 0..tensors.len() {
        let (name, codes) = &tensors[i];
        if !matches!(
            codes.dtype(),
            crate::tensor::DType::F8_E4M3 | crate::tensor::DType::F8_E5M2
        ) {
            continue;
        }
        let scale = [("_scale_inv", Some(BLOCK)), ("_scale", None)]
            .into_iter()
            .find_map(|(suffix, block)| index.get(&format!("{name}{suffix}")).map(|&s| (s, block)));
        let Some((s, block)) = scale else {
            continue;
        };
        let made = Quantized::fp8(tensors[i].clone(), tensors[s].clone(), block);
        match made {
            Ok(weight) => tensors[i].1 = Tensor::from_quantized(weight),
            Err(e) => warnings.push(format!("{name}: left as stored codes: {e}")),
        }
    }
}
