//! A GGUF file's tensors under the Hugging Face names transformers' GGUF loader gives them
//! (`blk.0.attn_q.weight` -> `model.layers.0.self_attn.q_proj.weight`), with the changes llama.cpp's
//! converter made undone: Llama's query and key rows put back in Hugging Face's order, GPT-2's
//! `Conv1D` weights transposed back to [in, out], Gemma 2 and 3's norms given back their `1 +`.
//!
//! Renamed, a GGUF model is an ordinary checkpoint: the families run it, and `diff` pairs it with
//! the folder it was converted from, by name. A llama.cpp LoRA adapter's pairs go back under the
//! keys PEFT saves them as ([`peft_pair`]), the same changes undone on their factors.

use std::sync::Arc;

use thiserror::Error;

use super::config::Config;
use crate::tensor::reordered::Rows;
use crate::tensor::{Bytes, Tensor};

/// The Hugging Face name of GGUF tensor `name` in a file of `architecture`, or `None` when
/// transformers does not load it (`rope_freqs.weight`) or it is not a name of that architecture.
#[must_use]
pub fn hugging_face_name(architecture: &str, name: &str) -> Option<String> {
    let (stem, suffix) = name.rsplit_once('.')?;
    if !matches!(suffix, "weight" | "bias") {
        return None;
    }
    let gpt2 = architecture == "gpt2";
    let base = if gpt2 { "transformer" } else { "model" };
    let top = match (stem, gpt2) {
        ("token_embd", false) => Some("model.embed_tokens".to_owned()),
        ("token_embd", true) => Some("transformer.wte".to_owned()),
        ("position_embd", true) => Some("transformer.wpe".to_owned()),
        ("output_norm", false) => Some("model.norm".to_owned()),
        ("output_norm", true) => Some("transformer.ln_f".to_owned()),
        ("output", _) => Some("lm_head".to_owned()),
        _ => None,
    };
    if let Some(top) = top {
        return Some(format!("{top}.{suffix}"));
    }
    let rest = stem.strip_prefix("blk.")?;
    let (block, part) = rest.split_once('.')?;
    let block: usize = block.parse().ok()?;
    let module = if gpt2 {
        gpt2_module(part)?
    } else {
        decoder_module(architecture, part)?
    };
    let layers = if gpt2 { "h" } else { "layers" };
    Some(format!("{base}.{layers}.{block}.{module}.{suffix}"))
}

/// The module of a GPT-2 block a GGUF part names.
fn gpt2_module(part: &str) -> Option<&'static str> {
    Some(match part {
        "attn_norm" => "ln_1",
        "attn_qkv" => "attn.c_attn",
        "attn_output" => "attn.c_proj",
        "ffn_norm" => "ln_2",
        "ffn_up" => "mlp.c_fc",
        "ffn_down" => "mlp.c_proj",
        _ => return None,
    })
}

/// The module of a Llama-like decoder layer a GGUF part names: Gemma 2 and 3 have a norm on each
/// side of both sublayers, so their `ffn_norm` is the one before the MLP; Phi-3 keeps the fused
/// projections its checkpoints have.
fn decoder_module(architecture: &str, part: &str) -> Option<&'static str> {
    let sandwich = matches!(architecture, "gemma2" | "gemma3");
    let phi3 = architecture == "phi3";
    Some(match part {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_qkv" => "self_attn.qkv_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_norm" if sandwich => "pre_feedforward_layernorm",
        "ffn_norm" | "post_attention_norm" => "post_attention_layernorm",
        "post_ffw_norm" => "post_feedforward_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" if phi3 => "mlp.gate_up_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    })
}

/// The change llama.cpp's converter made to a tensor, undone here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// Stored as it was.
    Nothing,
    /// Rows interleaved per head for GGML's RoPE (Llama's `q_proj` and `k_proj`).
    Permute {
        /// The heads (key/value heads for `k_proj`).
        heads: usize,
    },
    /// GPT-2's `Conv1D` weight, stored [out, in] rather than [in, out].
    Transpose,
    /// Gemma 2 and 3's norm weights, stored as `1 + w`.
    MinusOne,
}

fn undo(architecture: &str, name: &str, config: &Config) -> Undo {
    let heads = config.num_attention_heads.unwrap_or(1);
    match architecture {
        "llama" if name.contains(".attn_q.") => Undo::Permute { heads },
        "llama" if name.contains(".attn_k.") => Undo::Permute {
            heads: config.num_key_value_heads.unwrap_or(heads),
        },
        "gpt2"
            if ["attn_qkv", "attn_output", "ffn_up", "ffn_down"]
                .iter()
                .any(|p| name.ends_with(&format!(".{p}.weight"))) =>
        {
            Undo::Transpose
        }
        "gemma2" | "gemma3" if name.ends_with("norm.weight") => Undo::MinusOne,
        _ => Undo::Nothing,
    }
}

/// `tensors` of a GGUF file of `architecture` under their Hugging Face names, each undone as
/// transformers undoes it. Tensors transformers does not load keep their GGUF name (the tree
/// lists them at the root). A tensor whose values cannot be read for an undo is kept as stored.
#[must_use]
pub fn rename(
    architecture: &str,
    config: &Config,
    tensors: Vec<(String, Tensor)>,
) -> Vec<(String, Tensor)> {
    tensors
        .into_iter()
        .map(|(name, tensor)| {
            let Some(hf) = hugging_face_name(architecture, &name) else {
                return (name, tensor);
            };
            let undone = match undo(architecture, &name, config) {
                Undo::Nothing => Some(tensor.clone()),
                Undo::Permute { heads } => unpermute(&tensor, heads),
                Undo::Transpose => transpose(&tensor),
                Undo::MinusOne => minus_one(&tensor),
            };
            (hf, undone.unwrap_or(tensor))
        })
        .collect()
}

/// Why a llama.cpp LoRA pair cannot be put back as PEFT stored it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LoraUndoError {
    /// Llama's query and key rows were permuted per head, and the base gives no head count.
    #[error(
        "{0}: llama.cpp reordered its rows per attention head, and the base names no head count (config.json's num_attention_heads) to put them back"
    )]
    NoHeads(String),
    /// The rows of `lora_b` do not split into the base's heads.
    #[error("{name}: lora_b's {rows} rows do not split into {heads} heads")]
    Rows {
        /// The GGUF name of the base weight.
        name: String,
        /// `lora_b`'s rows.
        rows: usize,
        /// The heads.
        heads: usize,
    },
    /// A weight llama.cpp stores changed in a way a low-rank pair does not carry over
    /// (GPT-2's transposed `Conv1D`, Gemma's `1 + w` norms).
    #[error("{0}: a LoRA pair on this weight is not read (llama.cpp stores the weight changed)")]
    Unsupported(String),
}

/// The two PEFT keys and factors of the LoRA pair llama.cpp's `convert_lora_to_gguf.py` stored as
/// `NAME.lora_a` and `NAME.lora_b` (`NAME` a base weight of a file of `architecture`), with what
/// the converter did undone: Llama's query and key rows put back in `lora_b` (the converter
/// permutes the pair as it permutes the weight, which moves B's rows only), the token embedding's
/// `lora_a` transposed back (stored (vocabulary, r) for llama.cpp's `ggml_get_rows`). A name
/// transformers does not load keeps its GGUF stem, so it shows as a key matching no base module.
pub fn peft_pair(
    architecture: &str,
    config: &Config,
    name: &str,
    a: Tensor,
    b: Tensor,
) -> Result<[(String, Tensor); 2], LoraUndoError> {
    if name == "token_embd.weight" {
        let a = transpose(&a).ok_or_else(|| LoraUndoError::Unsupported(name.to_owned()))?;
        let module = hugging_face_name(architecture, name)
            .and_then(|hf| hf.strip_suffix(".weight").map(str::to_owned))
            .unwrap_or_else(|| "token_embd".to_owned());
        return Ok([
            (format!("{module}.lora_embedding_A"), a),
            (format!("{module}.lora_embedding_B"), b),
        ]);
    }
    let module = match hugging_face_name(architecture, name) {
        Some(hf) => hf.strip_suffix(".weight").unwrap_or(&hf).to_owned(),
        None => name.strip_suffix(".weight").unwrap_or(name).to_owned(),
    };
    let b = match undo(architecture, name, config) {
        Undo::Nothing => b,
        Undo::Permute { heads } => {
            if config.num_attention_heads.is_none() {
                return Err(LoraUndoError::NoHeads(name.to_owned()));
            }
            unpermute(&b, heads).ok_or_else(|| LoraUndoError::Rows {
                name: name.to_owned(),
                rows: b.shape().first().copied().unwrap_or(0),
                heads,
            })?
        }
        Undo::Transpose | Undo::MinusOne => {
            return Err(LoraUndoError::Unsupported(name.to_owned()));
        }
    };
    Ok([
        (format!("{module}.lora_A.weight"), a),
        (format!("{module}.lora_B.weight"), b),
    ])
}

/// Llama's query or key rows shown in Hugging Face's order: llama.cpp stores, within each head of
/// `2·d` rows, the rows `0, d, 1, d+1, ...` (GGML's RoPE rotates adjacent pairs, Hugging Face's
/// the two halves). The stored rows stay where they are: a product reads them in place and puts
/// its outputs in order, and only a reader of the bytes gets them copied in order (so a quantized
/// tensor stays quantized, and a model run from a mapped file holds no second copy of them).
/// `None` when the rows do not split into heads.
fn unpermute(tensor: &Tensor, heads: usize) -> Option<Tensor> {
    let rows = *tensor.shape().first()?;
    let pair_rows = heads.checked_mul(2)?;
    if heads == 0 || !rows.is_multiple_of(pair_rows) || u32::try_from(rows).is_err() {
        return None;
    }
    let half = rows / heads / 2;
    let mut order = Vec::with_capacity(rows);
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..half {
                order.push((h * 2 * half + i * 2 + j) as u32);
            }
        }
    }
    Some(Tensor::reordered(Rows::new(tensor.clone(), order)?))
}

/// A matrix transposed: a plain dtype by moving its elements, a quantized one (whose blocks run
/// along the rows) dequantized to F32 first.
fn transpose(tensor: &Tensor) -> Option<Tensor> {
    let &[rows, cols] = tensor.shape() else {
        return None;
    };
    let shape = vec![cols, rows];
    if let Some(size) = tensor.dtype().byte_len(1) {
        let bytes = tensor.bytes();
        let mut out = vec![0u8; bytes.len()];
        for r in 0..rows {
            for c in 0..cols {
                let (from, to) = ((r * cols + c) * size, (c * rows + r) * size);
                out[to..to + size].copy_from_slice(&bytes[from..from + size]);
            }
        }
        return Some(Tensor::new(
            shape,
            tensor.dtype(),
            Bytes::Owned(Arc::from(out)),
        ));
    }
    let values = tensor.to_f32_vec().ok()?;
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    Some(Tensor::from_f32(shape, &out))
}

/// A Gemma norm's `1 + w` back to `w`, in F32.
fn minus_one(tensor: &Tensor) -> Option<Tensor> {
    let values: Vec<f32> = tensor
        .to_f32_vec()
        .ok()?
        .into_iter()
        .map(|v| v - 1.0)
        .collect();
    Some(Tensor::from_f32(tensor.shape().to_vec(), &values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_transformers() {
        let hf = |arch, name| hugging_face_name(arch, name);
        assert_eq!(
            hf("llama", "blk.3.attn_q.weight").as_deref(),
            Some("model.layers.3.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf("llama", "blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(
            hf("gemma3", "blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.pre_feedforward_layernorm.weight")
        );
        assert_eq!(
            hf("gpt2", "blk.1.attn_qkv.bias").as_deref(),
            Some("transformer.h.1.attn.c_attn.bias")
        );
        assert_eq!(
            hf("llama", "output.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(hf("llama", "rope_freqs.weight"), None);
        assert_eq!(hf("llama", "blk.x.attn_q.weight"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(heads, 2, d, ...).swapaxes(1, 2): row h·2d + 2i + j holds HF row
        // h·2d + j·d + i. Rows of one F32 value holding their HF index make the check direct.
        let (heads, d) = (2, 3);
        let rows = heads * 2 * d;
        let mut stored = vec![0f32; rows];
        for h in 0..heads {
            for i in 0..d {
                for j in 0..2 {
                    stored[h * 2 * d + 2 * i + j] = (h * 2 * d + j * d + i) as f32;
                }
            }
        }
        let t = Tensor::from_f32(vec![rows, 1], &stored);
        let back = unpermute(&t, heads).unwrap().to_f32_vec().unwrap();
        let want: Vec<f32> = (0..rows).map(|r| r as f32).collect();
        assert_eq!(back, want);
        assert!(unpermute(&Tensor::from_f32(vec![3, 1], &[0.0; 3]), 2).is_none());
    }

    #[test]
    fn lora_pairs_go_back_under_peft_keys() {
        let config = Config {
            num_attention_heads: Some(2),
            num_key_value_heads: Some(1),
            ..Config::default()
        };
        // B (4 rows, rank 1) as llama.cpp stores a key projection of 1 head of 2·2 rows: rows
        // 0, 2, 1, 3 of Hugging Face's.
        let a = Tensor::from_f32(vec![1, 3], &[1.0, 2.0, 3.0]);
        let b = Tensor::from_f32(vec![4, 1], &[0.0, 2.0, 1.0, 3.0]);
        let [(a_key, a_back), (b_key, b_back)] = peft_pair(
            "llama",
            &config,
            "blk.1.attn_k.weight",
            a.clone(),
            b.clone(),
        )
        .unwrap();
        assert_eq!(a_key, "model.layers.1.self_attn.k_proj.lora_A.weight");
        assert_eq!(b_key, "model.layers.1.self_attn.k_proj.lora_B.weight");
        assert_eq!(a_back.to_f32_vec().unwrap(), [1.0, 2.0, 3.0]);
        assert_eq!(b_back.to_f32_vec().unwrap(), [0.0, 1.0, 2.0, 3.0]);
        // Other architectures keep their rows; the embedding's A comes back (r, vocabulary).
        let [_, (_, kept)] = peft_pair(
            "qwen2",
            &config,
            "blk.1.attn_k.weight",
            a.clone(),
            b.clone(),
        )
        .unwrap();
        assert_eq!(kept.to_f32_vec().unwrap(), [0.0, 2.0, 1.0, 3.0]);
        let [(embed_key, embed_a), _] =
            peft_pair("llama", &config, "token_embd.weight", b.clone(), a.clone()).unwrap();
        assert_eq!(embed_key, "model.embed_tokens.lora_embedding_A");
        assert_eq!(embed_a.shape(), [1, 4]);
        // Without head counts the rows cannot be put back; GPT-2's Conv1D pairs are not read.
        let no_heads = peft_pair(
            "llama",
            &Config::default(),
            "blk.0.attn_q.weight",
            a.clone(),
            b.clone(),
        );
        assert!(matches!(no_heads, Err(LoraUndoError::NoHeads(_))));
        let conv = peft_pair("gpt2", &config, "blk.0.attn_qkv.weight", a, b);
        assert!(matches!(conv, Err(LoraUndoError::Unsupported(_))));
    }

    #[test]
    fn transpose_moves_elements() {
        let t = Tensor::from_f32(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let back = transpose(&t).unwrap();
        assert_eq!(back.shape(), [3, 2]);
        assert_eq!(back.to_f32_vec().unwrap(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
