//! The grouping step for quantized safetensors: stored codes and their scales made into one
//! logical weight (its real shape, the dtype the scheme's reference returns), the stored parts
//! staying beside it under their own names. Recognised from the tensors, and from `config.json`'s
//! `quantization_config` where the tensors cannot tell (GPTQ's v1 or v2 zeros):
//! - an FP8 `NAME.weight` with `NAME.weight_scale_inv` (block FP8, 128 × 128 blocks) or
//!   `NAME.weight_scale` (per tensor or per output channel), under the codes' name;
//! - `NAME.qweight` + `NAME.qzeros` + `NAME.scales` (+ `NAME.g_idx`), GPTQ or AWQ by the packing
//!   the shapes show, as a new `NAME.weight`;
//! - compressed-tensors' `NAME.weight_packed` + `NAME.weight_scale` + `NAME.weight_shape`
//!   (+ `NAME.weight_zero_point`), as a new `NAME.weight`;
//! - MXFP4's `NAME_blocks` + `NAME_scales` (gpt-oss's experts), as a new `NAME`;
//! - bitsandbytes 4-bit: `W` with `W.quant_state.bitsandbytes__nf4` (or `__fp4`), `W.absmax` and,
//!   double-quantized, `W.nested_absmax` + `W.nested_quant_map`, under the codes' name;
//! - bitsandbytes LLM.int8: an I8 `NAME.weight` with `NAME.SCB` (+ `NAME.weight_format`), under
//!   the codes' name.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::io::small_file;
use crate::tensor::quantized::{Bnb4State, QuantError, Quantized};
use crate::tensor::{DType, Tensor};

/// DeepSeek-V3's `weight_block_size`, the one every block-FP8 checkpoint uses.
const BLOCK: (usize, usize) = (128, 128);
/// The largest `config.json` read for its `quantization_config`.
const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// The largest bitsandbytes `quant_state` JSON read (a real one is under 200 bytes).
const MAX_STATE_BYTES: u64 = 64 << 10;
/// The most dimensions a bitsandbytes `quant_state` shape may have.
const MAX_DIMS: usize = 8;

/// The `quantization_config` of the `config.json` beside `file`, if any.
#[must_use]
pub fn config_beside(file: &Path) -> Option<Value> {
    let text = small_file::read_text(&super::beside(file, "config.json"), MAX_CONFIG_BYTES).ok()?;
    let mut json: Value = serde_json::from_str(&text).ok()?;
    Some(json.get_mut("quantization_config")?.take())
}

/// A stored tensor by name, with its name.
type Part = (String, Tensor);

/// What one tensor makes: the weight, under a new name or (`None`) in the codes' place.
type Made = Option<Result<(Option<String>, Quantized), QuantError>>;

/// Groups the quantized weights of `tensors` (see the module's doc); a group whose parts do not
/// fit is left as stored, with a warning.
pub fn group(tensors: &mut Vec<Part>, config: Option<&Value>, warnings: &mut Vec<String>) {
    let index: HashMap<String, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.clone(), i))
        .collect();
    let part = |name: &str| index.get(name).map(|&i| tensors[i].clone());
    let mut added = Vec::new();
    for (i, (name, tensor)) in tensors.iter().enumerate() {
        let made = bnb4(name, tensor, &part)
            .or_else(|| fp8_or_int8(name, tensor, &part))
            .or_else(|| gptq_or_awq(name, tensor, &part, config))
            .or_else(|| mxfp4(name, tensor, &part))
            .or_else(|| compressed(name, tensor, &part, config, warnings));
        match made {
            None => {}
            Some(Ok((new_name, q))) => added.push((i, new_name, q)),
            Some(Err(e)) => warnings.push(format!("{name}: left as stored: {e}")),
        }
    }
    // The logical weight takes the codes' place (FP8, bitsandbytes), or comes just before them.
    for (i, name, weight) in added.into_iter().rev() {
        let weight = Tensor::from_quantized(weight);
        match name {
            None => tensors[i].1 = weight,
            Some(name) => tensors.insert(i, (name, weight)),
        }
    }
}

/// An FP8 weight with its `_scale_inv` or `_scale`, or an I8 one with bitsandbytes' `SCB`.
fn fp8_or_int8(name: &str, tensor: &Tensor, part: &dyn Fn(&str) -> Option<Part>) -> Made {
    let codes = (name.to_owned(), tensor.clone());
    if matches!(tensor.dtype(), DType::F8_E4M3 | DType::F8_E5M2) {
        let (scale, block) = [("_scale_inv", Some(BLOCK)), ("_scale", None)]
            .into_iter()
            .find_map(|(suffix, block)| part(&format!("{name}{suffix}")).map(|s| (s, block)))?;
        return Some(Quantized::fp8(codes, scale, block).map(|q| (None, q)));
    }
    let module = name.strip_suffix(".weight")?;
    let scb = part(&format!("{module}.SCB")).filter(|_| tensor.dtype() == DType::I8)?;
    let format = part(&format!("{module}.weight_format"));
    Some(Quantized::bnb_int8(codes, scb, format).map(|q| (None, q)))
}

/// GPTQ's or AWQ's `qweight` with its `qzeros`, `scales` and GPTQ's `g_idx`.
fn gptq_or_awq(
    name: &str,
    tensor: &Tensor,
    part: &dyn Fn(&str) -> Option<Part>,
    config: Option<&Value>,
) -> Made {
    let module = name.strip_suffix(".qweight")?;
    let qzeros = part(&format!("{module}.qzeros"))?;
    let scales = part(&format!("{module}.scales"))?;
    // GPTQ packs qweight along the input (its width is the output's), AWQ along the output.
    let gptq = tensor.shape().get(1) == scales.1.shape().get(1);
    let v1 = config
        .and_then(|c| c.get("checkpoint_format"))
        .and_then(Value::as_str)
        .is_none_or(|f| f != "gptq_v2");
    let g_idx = part(&format!("{module}.g_idx")).filter(|_| gptq);
    let qweight = (name.to_owned(), tensor.clone());
    Some(
        Quantized::packed(gptq.then_some(v1), qweight, qzeros, scales, g_idx)
            .map(|q| (Some(format!("{module}.weight")), q)),
    )
}

/// MXFP4's `_blocks` with their `_scales`.
fn mxfp4(name: &str, tensor: &Tensor, part: &dyn Fn(&str) -> Option<Part>) -> Made {
    let weight = name.strip_suffix("_blocks")?;
    let scales = part(&format!("{weight}_scales"))?;
    let blocks = (name.to_owned(), tensor.clone());
    Some(Quantized::mxfp4(blocks, scales).map(|q| (Some(weight.to_owned()), q)))
}

/// compressed-tensors' `weight_packed` with its `weight_scale`, `weight_shape` and, when
/// asymmetric, `weight_zero_point`.
fn compressed(
    name: &str,
    tensor: &Tensor,
    part: &dyn Fn(&str) -> Option<Part>,
    config: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Made {
    let module = name.strip_suffix(".weight_packed")?;
    let scale = part(&format!("{module}.weight_scale"))?;
    let shape = part(&format!("{module}.weight_shape"))
        .and_then(|(_, t)| t.to_f32_vec().ok())
        .and_then(|s| match s[..] {
            [out, inputs] => Some([out as usize, inputs as usize]),
            _ => None,
        });
    let Some(shape) = shape else {
        warnings.push(format!("{name}: no weight_shape beside it; left as stored"));
        return None;
    };
    let zero_point = part(&format!("{module}.weight_zero_point"));
    let packed = (name.to_owned(), tensor.clone());
    Some(
        Quantized::compressed(packed, scale, zero_point, shape, num_bits(config))
            .map(|q| (Some(format!("{module}.weight")), q)),
    )
}

/// The bits per code compressed-tensors' config gives its weights, when every group says the same
/// (a config whose groups differ leaves each weight's width to its packed shape).
fn num_bits(config: Option<&Value>) -> Option<u32> {
    let groups = config?.get("config_groups")?.as_object()?;
    let mut bits = groups.values().map(|g| {
        g.get("weights")?
            .get("num_bits")?
            .as_u64()
            .and_then(|b| u32::try_from(b).ok())
    });
    let first = bits.next()??;
    bits.all(|b| b == Some(first)).then_some(first)
}

/// bitsandbytes 4-bit codes `name` with the parts its `quant_state` names.
fn bnb4(name: &str, tensor: &Tensor, part: &dyn Fn(&str) -> Option<Part>) -> Made {
    let state = ["nf4", "fp4"]
        .into_iter()
        .find_map(|t| part(&format!("{name}.quant_state.bitsandbytes__{t}")).map(|p| (t, p)));
    let (quant_type, state) = state?;
    let codes = (name.to_owned(), tensor.clone());
    let read = read_state(&state, quant_type);
    let made = read.and_then(|read| {
        let absmax = part(&format!("{name}.absmax")).ok_or_else(|| QuantError::State {
            part: name.to_owned(),
            why: "no absmax beside it".into(),
        })?;
        let nested = part(&format!("{name}.nested_absmax"))
            .zip(part(&format!("{name}.nested_quant_map")))
            .map(|(a, m)| [a, m]);
        let mut more: Vec<Part> = part(&format!("{name}.quant_map")).into_iter().collect();
        more.push(state);
        Quantized::bnb4(codes, absmax, nested, more, &read)
    });
    Some(made.map(|q| (None, q)))
}

/// The `quant_state` JSON of a bitsandbytes 4-bit weight (`bitsandbytes__{quant_type}`), read.
fn read_state(state: &Part, quant_type: &str) -> Result<Bnb4State, QuantError> {
    let invalid = |why: String| QuantError::State {
        part: state.0.clone(),
        why,
    };
    if state.1.dtype() != DType::U8 || state.1.byte_len() > MAX_STATE_BYTES {
        return Err(invalid(format!(
            "a {} tensor of {} bytes, not the U8 JSON bitsandbytes writes",
            state.1.dtype(),
            state.1.byte_len()
        )));
    }
    let bytes = state.1.try_bytes().map_err(|e| invalid(e.to_string()))?;
    let json: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let field = |key: &str| json.get(key).ok_or_else(|| invalid(format!("no {key:?}")));
    let text = |key: &str| {
        field(key)?
            .as_str()
            .ok_or_else(|| invalid(format!("{key:?} is not a string")))
    };
    let size = |v: &Value, key: &str| {
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| invalid(format!("{key:?} is not a size")))
    };
    let dtype = |key: &str| match text(key)? {
        "float32" => Ok(DType::F32),
        "bfloat16" => Ok(DType::BF16),
        "float16" => Ok(DType::F16),
        other => Err(invalid(format!("{key:?} is {other:?}, not a float dtype"))),
    };
    let named = text("quant_type")?;
    if named != quant_type {
        return Err(invalid(format!(
            "quant_type {named:?} under a {quant_type} key"
        )));
    }
    let shape = field("shape")?
        .as_array()
        .filter(|dims| dims.len() <= MAX_DIMS)
        .ok_or_else(|| {
            invalid(format!(
                "\"shape\" is not a list of at most {MAX_DIMS} sizes"
            ))
        })?
        .iter()
        .map(|d| size(d, "shape"))
        .collect::<Result<Vec<_>, _>>()?;
    let nested = match json.get("nested_offset") {
        None => None,
        Some(offset) => {
            let offset = offset
                .as_f64()
                .ok_or_else(|| invalid("\"nested_offset\" is not a number".into()))?;
            // torch.tensor(float(offset)): the f32 nearest.
            Some((
                size(field("nested_blocksize")?, "nested_blocksize")?,
                dtype("nested_dtype")?,
                offset as f32,
            ))
        }
    };
    Ok(Bnb4State {
        fp4: quant_type == "fp4",
        blocksize: size(field("blocksize")?, "blocksize")?,
        dtype: dtype("dtype")?,
        shape,
        nested,
    })
}
