//! `config.json` of a Hugging Face checkpoint: read once, with a size cap, into typed fields that
//! both the loader (`tie_word_embeddings`) and each family (its sizes, naming what is missing) use.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::io::small_file::{self, SmallFileError};

/// The largest `config.json` read: real ones are a few KB.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a `config.json` cannot be used. Paths and names travel raw; they are escaped where printed.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read: not a regular file, too long, or the system's error.
    #[error("{}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: SmallFileError,
    },
    /// Not JSON, or a field of the wrong type.
    #[error("{}: {source}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A field the family needs is absent or out of range; [`FamilyError`](super::FamilyError)
    /// says where the fields were read.
    #[error("{field} {why}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// Where a config's fields were read, named in messages about them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    /// A Hugging Face checkpoint's `config.json`.
    #[default]
    ConfigJson,
    /// A GGUF file's metadata, its keys renamed to `config.json`'s fields.
    Gguf,
}

impl Origin {
    /// The field the model's positions were read from.
    #[must_use]
    pub fn positions_field(self) -> &'static str {
        match self {
            Self::ConfigJson => "max_position_embeddings",
            Self::Gguf => "context_length",
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ConfigJson => "config.json",
            Self::Gguf => "GGUF metadata",
        })
    }
}

/// RoPE's frequency scaling (`rope_scaling`, or the scaling part of `rope_parameters`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct RopeScaling {
    /// `default`, `linear`, `dynamic` or `llama3` (older files say `type`).
    #[serde(alias = "type")]
    pub rope_type: Option<String>,
    /// The scaling factor.
    pub factor: Option<f64>,
    /// llama3: `low_freq_factor`.
    pub low_freq_factor: Option<f64>,
    /// llama3: `high_freq_factor`.
    pub high_freq_factor: Option<f64>,
    /// llama3: the context length the model was trained with.
    pub original_max_position_embeddings: Option<f64>,
    /// transformers 5 keeps the base here.
    pub rope_theta: Option<f64>,
    /// longrope (Phi-3): the frequency divisors up to `original_max_position_embeddings`.
    pub short_factor: Option<Vec<f64>>,
    /// longrope: the divisors past it.
    pub long_factor: Option<Vec<f64>>,
    /// longrope: what cos and sin are multiplied by (else derived from the factor).
    pub attention_factor: Option<f64>,
    /// The share of each head RoPE rotates (Phi-3 keeps it here in transformers 5).
    pub partial_rotary_factor: Option<f64>,
    /// transformers 5's per-layer-type parameters (Gemma 3): the sliding layers' RoPE.
    pub sliding_attention: Option<Box<RopeScaling>>,
    /// transformers 5's per-layer-type parameters (Gemma 3): the global layers' RoPE.
    pub full_attention: Option<Box<RopeScaling>>,
}

/// Every field the families read, each optional; [`Config::need`] turns an absent one into an error.
/// GPT-2's own names (`n_embd`, ...) are aliases of the common ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[expect(missing_docs, reason = "the fields are Hugging Face's config names")]
pub struct Config {
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    pub vocab_size: Option<usize>,
    #[serde(alias = "n_embd")]
    pub hidden_size: Option<usize>,
    #[serde(alias = "n_layer")]
    pub num_hidden_layers: Option<usize>,
    #[serde(alias = "n_head")]
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    #[serde(alias = "n_inner")]
    pub intermediate_size: Option<usize>,
    #[serde(alias = "activation_function")]
    pub hidden_act: Option<String>,
    #[serde(alias = "layer_norm_epsilon")]
    pub layer_norm_eps: Option<f64>,
    pub rms_norm_eps: Option<f64>,
    #[serde(alias = "n_positions")]
    pub max_position_embeddings: Option<usize>,
    pub type_vocab_size: Option<usize>,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<RopeScaling>,
    pub rope_parameters: Option<RopeScaling>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub pad_token_id: Option<serde_json::Value>,
    pub scale_attn_weights: Option<bool>,
    pub scale_attn_by_inverse_layer_idx: Option<bool>,
    pub reorder_and_upcast_attn: Option<bool>,
    pub sliding_window: Option<usize>,
    pub use_sliding_window: Option<bool>,
    pub layer_types: Option<Vec<String>>,
    pub max_window_layers: Option<usize>,
    pub sliding_window_pattern: Option<usize>,
    pub rope_local_base_freq: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
    pub partial_rotary_factor: Option<f64>,
    pub hidden_activation: Option<String>,
    pub query_pre_attn_scalar: Option<f64>,
    pub attn_logit_softcapping: Option<f64>,
    pub final_logit_softcapping: Option<f64>,
    pub qkv_bias: Option<bool>,
    #[serde(alias = "num_local_experts")]
    pub num_experts: Option<usize>,
    pub num_experts_per_tok: Option<usize>,
    pub moe_intermediate_size: Option<usize>,
    pub shared_expert_intermediate_size: Option<usize>,
    pub norm_topk_prob: Option<bool>,
    pub decoder_sparse_step: Option<usize>,
    pub mlp_only_layers: Option<Vec<usize>>,
    pub eos_token_id: Option<serde_json::Value>,
    /// Where the fields were read: not a field of the file.
    #[serde(skip)]
    pub origin: Origin,
}

/// Sizes past these are not real models: refusing them keeps allocations bounded.
const MAX_DIM: usize = 1 << 17;
const MAX_LAYERS: usize = 4096;

impl Config {
    /// The `config.json` of a checkpoint (a folder, or the file it holds); `Ok(None)` when there is
    /// none. Only a regular file of at most 1 MiB is read, so a FIFO or a device planted there
    /// cannot block or flood the load.
    pub fn beside(checkpoint: &Path) -> Result<Option<Self>, ConfigError> {
        let path = folder_of(checkpoint).join("config.json");
        let bytes = match small_file::read(&path, MAX_CONFIG_BYTES) {
            Ok(bytes) => bytes,
            Err(SmallFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ConfigError::Json { path, source })
    }

    /// Whether the LM head is the input embedding (`tie_word_embeddings: true`), stored or not.
    #[must_use]
    pub fn ties_word_embeddings(&self) -> bool {
        self.tie_word_embeddings == Some(true)
    }

    /// A size field that must be present, positive and plausible.
    pub fn need(field: &'static str, value: Option<usize>) -> Result<usize, ConfigError> {
        let limit = if field == "num_hidden_layers" {
            MAX_LAYERS
        } else {
            MAX_DIM * 64
        };
        match value {
            None => Err(ConfigError::Field {
                field,
                why: "is missing".into(),
            }),
            Some(0) => Err(ConfigError::Field {
                field,
                why: "is 0".into(),
            }),
            Some(v) if v > limit => Err(ConfigError::Field {
                field,
                why: format!("is {v}, more than {limit}"),
            }),
            Some(v) => Ok(v),
        }
    }

    /// `hidden_size / num_attention_heads` (or `head_dim`), checked to divide evenly.
    pub fn attention_shape(&self) -> Result<AttentionShape, ConfigError> {
        let hidden = Self::need("hidden_size", self.hidden_size)?;
        let heads = Self::need("num_attention_heads", self.num_attention_heads)?;
        let kv_heads = Self::need(
            "num_key_value_heads",
            Some(self.num_key_value_heads.unwrap_or(heads)),
        )?;
        let head_dim = match self.head_dim {
            Some(d) => Self::need("head_dim", Some(d))?,
            None if hidden % heads == 0 => hidden / heads,
            None => {
                return Err(ConfigError::Field {
                    field: "num_attention_heads",
                    why: format!("({heads}) does not divide hidden_size ({hidden})"),
                });
            }
        };
        if heads % kv_heads != 0 {
            return Err(ConfigError::Field {
                field: "num_key_value_heads",
                why: format!("({kv_heads}) does not divide num_attention_heads ({heads})"),
            });
        }
        if head_dim > MAX_DIM || heads > MAX_DIM {
            return Err(ConfigError::Field {
                field: "head_dim",
                why: format!("{head_dim} x {heads} heads is implausible"),
            });
        }
        Ok(AttentionShape {
            hidden,
            heads,
            kv_heads,
            head_dim,
        })
    }

    /// Whether layer `i` attends through a sliding window: `layer_types` when the config lists
    /// them (transformers 5), else `default(i)` (the family's own rule in transformers 4).
    #[must_use]
    pub fn is_sliding(&self, i: usize, default: impl Fn(usize) -> bool) -> bool {
        match &self.layer_types {
            Some(types) => types.get(i).is_some_and(|t| t == "sliding_attention"),
            None => default(i),
        }
    }

    /// The end-of-sequence ids generation stops at (`eos_token_id`: one id or a list).
    #[must_use]
    pub fn eos_ids(&self) -> Vec<u32> {
        let one = |v: &serde_json::Value| v.as_u64().and_then(|id| u32::try_from(id).ok());
        match &self.eos_token_id {
            Some(serde_json::Value::Array(ids)) => ids.iter().filter_map(one).collect(),
            Some(v) => one(v).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// The RoPE settings: transformers 5's `rope_parameters`, else `rope_theta` and `rope_scaling`.
    #[must_use]
    pub fn rope(&self) -> (f64, RopeScaling) {
        let scaling = self
            .rope_parameters
            .clone()
            .or_else(|| self.rope_scaling.clone())
            .unwrap_or_default();
        let theta = scaling.rope_theta.or(self.rope_theta).unwrap_or(10_000.0);
        (theta, scaling)
    }
}

/// The head layout of an attention layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// The model width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (fewer than `heads` in grouped-query attention).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// The folder a checkpoint argument stands for: itself, or the file's folder (where config.json,
/// tokenizer.json and modules.json live).
#[must_use]
pub fn folder_of(checkpoint: &Path) -> PathBuf {
    if checkpoint.is_dir() {
        checkpoint.to_owned()
    } else {
        match checkpoint.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_names_are_aliases_and_rope_parameters_win() {
        let c: Config = serde_json::from_str(
            r#"{"model_type":"gpt2","n_embd":8,"n_head":2,"n_layer":1,
                "rope_theta":5.0,"rope_parameters":{"rope_type":"llama3","rope_theta":7.0,"factor":8}}"#,
        )
        .unwrap();
        assert_eq!(c.attention_shape().unwrap().head_dim, 4);
        let (theta, scaling) = c.rope();
        assert_eq!(theta, 7.0);
        assert_eq!(scaling.rope_type.as_deref(), Some("llama3"));
    }

    #[test]
    fn uneven_heads_and_absurd_sizes_are_refused() {
        let c: Config =
            serde_json::from_str(r#"{"hidden_size":10,"num_attention_heads":3}"#).unwrap();
        assert!(c.attention_shape().is_err());
        assert!(Config::need("num_hidden_layers", Some(1 << 30)).is_err());
        assert!(Config::need("vocab_size", None).is_err());
    }
}
