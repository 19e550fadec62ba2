//! A GGUF file's metadata made into the [`Config`] its `config.json` would have been: the keys
//! `{arch}.block_count`, `.embedding_length`, `.attention.head_count`... renamed as transformers'
//! GGUF loader renames them (`integrations/ggml.py`), so the families run a GGUF unchanged.

use thiserror::Error;

use super::config::{Config, Origin};
use crate::io::gguf::Value;

/// Why a GGUF file's metadata does not make a config. Keys travel raw; they are escaped where
/// printed.
#[derive(Debug, Error)]
pub enum GgufConfigError {
    /// `general.architecture` names an architecture paramscope does not map.
    #[error(
        "GGUF architecture {0:?} is not one paramscope runs (it runs {SUPPORTED}); the tree shows the file's own names"
    )]
    Unsupported(String),
    /// A key the architecture needs is absent or not a number.
    #[error("GGUF metadata {key} is {why}, which a {architecture} model needs")]
    Key {
        /// The key.
        key: String,
        /// `missing`, or what it holds instead.
        why: String,
        /// The architecture.
        architecture: String,
    },
}

/// The `general.architecture` values mapped, for messages.
const SUPPORTED: &str =
    "llama, qwen2, qwen3, qwen2moe, qwen3moe, gemma, gemma2, gemma3, phi3, gpt2";

/// What a GGUF file says of the model it holds.
#[derive(Debug, Clone)]
pub struct GgufModel {
    /// `general.architecture`, as the file spells it (`llama`).
    pub architecture: String,
    /// The config transformers builds from the metadata.
    pub config: Config,
}

/// The model `metadata` describes; `Ok(None)` when the file names no architecture or holds no
/// token embedding (a file of tensors, not a model). `has_output` says whether the file stores
/// `output.weight` (a head of its own, not tied to the embedding).
pub fn read(
    metadata: &[(String, Value)],
    has_embedding: bool,
    has_output: bool,
) -> Result<Option<GgufModel>, GgufConfigError> {
    let Some(Value::String(architecture)) = get(metadata, "general.architecture") else {
        return Ok(None);
    };
    if !has_embedding {
        return Ok(None);
    }
    let model_type = model_type(architecture, metadata)
        .ok_or_else(|| GgufConfigError::Unsupported(architecture.clone()))?;
    let keys = Keys {
        metadata,
        architecture,
    };
    let mut c = Config {
        model_type: Some(model_type.to_owned()),
        num_hidden_layers: Some(keys.size("block_count")?),
        hidden_size: Some(keys.size("embedding_length")?),
        num_attention_heads: Some(keys.size("attention.head_count")?),
        num_key_value_heads: keys.optional_size("attention.head_count_kv")?,
        intermediate_size: keys.optional_size("feed_forward_length")?,
        max_position_embeddings: keys.optional_size("context_length")?,
        rope_theta: keys.float("rope.freq_base"),
        rms_norm_eps: keys.float("attention.layer_norm_rms_epsilon"),
        layer_norm_eps: keys.float("attention.layer_norm_epsilon"),
        sliding_window: keys.optional_size("attention.sliding_window")?,
        tie_word_embeddings: Some(!has_output),
        origin: Origin::Gguf,
        vocab_size: keys
            .optional_size("vocab_size")?
            .or_else(|| array_len(metadata, "tokenizer.ggml.tokens")),
        ..Config::default()
    };
    // transformers takes `rope.dimension_count` as the head width for llama and mistral only, and
    // `attention.key_length` where the head is not hidden / heads (Qwen3, Gemma).
    c.head_dim = match model_type {
        "llama" | "mistral" => keys.optional_size("rope.dimension_count")?,
        _ => keys.optional_size("attention.key_length")?,
    };
    if architecture == "gpt2" {
        // GPT-2's files keep no activation: GPT2Config's default.
        c.hidden_act = Some("gelu_new".into());
    }
    Ok(Some(GgufModel {
        architecture: architecture.clone(),
        config: c,
    }))
}

/// The `model_type` transformers gives `architecture` (a Mistral file says `llama` and is told
/// apart by its name), or `None` when it is not mapped.
fn model_type(architecture: &str, metadata: &[(String, Value)]) -> Option<&'static str> {
    Some(match architecture {
        "llama" => match get(metadata, "general.name") {
            Some(Value::String(name)) if name.contains("mistral") => "mistral",
            _ => "llama",
        },
        "qwen2" => "qwen2",
        "qwen3" => "qwen3",
        "qwen2moe" => "qwen2_moe",
        "qwen3moe" => "qwen3_moe",
        "gemma" => "gemma",
        "gemma2" => "gemma2",
        "gemma3" => "gemma3_text",
        "phi3" => "phi3",
        "gpt2" => "gpt2",
        _ => return None,
    })
}

/// The value of `key`, when the file has it.
#[must_use]
pub fn get<'a>(metadata: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The length of the array at `key`, when it is one.
fn array_len(metadata: &[(String, Value)], key: &str) -> Option<usize> {
    match get(metadata, key) {
        Some(Value::Array(a)) => usize::try_from(a.len).ok(),
        _ => None,
    }
}

/// The `{architecture}.` keys of one file.
struct Keys<'a> {
    metadata: &'a [(String, Value)],
    architecture: &'a str,
}

impl Keys<'_> {
    fn value(&self, key: &str) -> (String, Option<&Value>) {
        let key = format!("{}.{key}", self.architecture);
        let value = get(self.metadata, &key);
        (key, value)
    }

    /// A size that must be present.
    fn size(&self, key: &str) -> Result<usize, GgufConfigError> {
        self.optional_size(key)?
            .ok_or_else(|| GgufConfigError::Key {
                key: format!("{}.{key}", self.architecture),
                why: "missing".into(),
                architecture: self.architecture.to_owned(),
            })
    }

    /// A size, when present; a value that is not an unsigned integer is refused (the config's own
    /// checks then bound it).
    fn optional_size(&self, key: &str) -> Result<Option<usize>, GgufConfigError> {
        let (key, value) = self.value(key);
        let Some(value) = value else {
            return Ok(None);
        };
        value
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| GgufConfigError::Key {
                key,
                why: format!("{value}, not a size"),
                architecture: self.architecture.to_owned(),
            })
    }

    /// A float, when present as one.
    fn float(&self, key: &str) -> Option<f64> {
        match self.value(key).1? {
            Value::Float(_, v) => Some(*v),
            other => other.as_u64().map(|v| v as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::gguf::ValueType;

    fn metadata(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    /// A small Llama's metadata.
    fn llama() -> Vec<(String, Value)> {
        let u = |v| Value::Uint(ValueType::U32, v);
        metadata(&[
            ("general.architecture", Value::String("llama".into())),
            ("llama.block_count", u(2)),
            ("llama.embedding_length", u(64)),
            ("llama.attention.head_count", u(4)),
            ("llama.attention.head_count_kv", u(2)),
            ("llama.feed_forward_length", u(128)),
            ("llama.rope.freq_base", Value::Float(ValueType::F32, 5e5)),
        ])
    }

    #[test]
    fn llama_keys_become_config_fields() {
        let m = llama();
        let model = read(&m, true, false).unwrap().unwrap();
        let c = model.config;
        assert_eq!(c.model_type.as_deref(), Some("llama"));
        assert_eq!(c.num_hidden_layers, Some(2));
        assert_eq!(c.num_key_value_heads, Some(2));
        assert_eq!(c.rope_theta, Some(5e5));
        assert_eq!(c.tie_word_embeddings, Some(true), "no output.weight");
        let mut broken = m.clone();
        broken.retain(|(k, _)| k != "llama.block_count");
        let e = read(&broken, true, false).unwrap_err().to_string();
        assert!(e.contains("llama.block_count is missing"), "{e}");
        assert!(read(&m, false, false).unwrap().is_none(), "not a model");
        let other = metadata(&[("general.architecture", Value::String("rwkv6".into()))]);
        assert!(matches!(
            read(&other, true, false),
            Err(GgufConfigError::Unsupported(_))
        ));
    }

    /// Every architecture mapped names a `model_type` a family runs: so a GGUF never meets the
    /// "config.json: model_type ... is not a family" message, which its metadata did not give.
    #[test]
    fn every_mapped_architecture_is_a_family() {
        let u = |v| Value::Uint(ValueType::U32, v);
        for architecture in SUPPORTED.split(", ") {
            let m = metadata(&[
                ("general.architecture", Value::String(architecture.into())),
                (&format!("{architecture}.block_count"), u(2)),
                (&format!("{architecture}.embedding_length"), u(64)),
                (&format!("{architecture}.attention.head_count"), u(4)),
            ]);
            let config = read(&m, true, false).unwrap().unwrap().config;
            assert!(
                matches!(super::super::named(Some(config)), Ok(Some(_))),
                "{architecture}"
            );
        }
    }

    /// A field the family needs and the metadata lacks is said as the metadata's, not
    /// config.json's; the same config read from a config.json says config.json.
    #[test]
    fn a_missing_field_names_the_gguf_metadata() {
        let mut m = llama();
        m.retain(|(k, _)| k != "llama.feed_forward_length");
        let config = read(&m, true, false).unwrap().unwrap().config;
        let model = crate::model::Model {
            root: crate::model::Module::new("", crate::model::ModuleKind::Unknown).into(),
            store: crate::model::ParamStore::default(),
            metadata: std::collections::BTreeMap::new(),
        };
        let (family, config) = super::super::named(Some(config)).unwrap().unwrap();
        let error = |config: &Config| match super::super::apply(family, config, &model) {
            Ok(_) => "built".to_owned(),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            error(&config),
            "GGUF metadata: intermediate_size is missing"
        );
        let json = Config {
            origin: Origin::ConfigJson,
            ..config
        };
        assert_eq!(error(&json), "config.json: intermediate_size is missing");
    }
}
