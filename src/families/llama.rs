//! Llama (`model_type: llama`), which also serves Mistral and Qwen2: pre-RMSNorm decoder layers,
//! grouped-query attention with RoPE, a SiLU-gated MLP, through the shared decoder. The flags
//! that tell them apart: QKV biases (Qwen2, or Llama's `attention_bias`), the sliding windows
//! (Mistral's on every layer, Qwen2's when asked), and the class names.

use super::blueprint::Blueprint;
use super::config::Config;
use super::decoder::{self, LayerSpec, MlpSpec, Qkv, Run, Spec};
use super::error::FamilyError;

/// Llama, Mistral and Qwen2 in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Llama",
    model_types: &["llama", "mistral", "qwen2"],
    causal: true,
    modules: |scope, c| decoder::draw(scope, c, &spec(c)?),
    forward: |scope, c| decoder::build(scope, c, &spec(c)?, Run::from_config(c)?),
};

fn spec(c: &Config) -> Result<Spec, FamilyError> {
    let inner = Config::need("intermediate_size", c.intermediate_size)?;
    let attention_bias = c.attention_bias.unwrap_or(false);
    let (class, qkv, mlp_bias) = match c.model_type.as_deref() {
        Some("qwen2") => ("Qwen2", (true, false), false),
        Some("mistral") => ("Mistral", (false, false), false),
        _ => (
            "Llama",
            (attention_bias, attention_bias),
            c.mlp_bias.unwrap_or(false),
        ),
    };
    let max_window_layers = c.max_window_layers.unwrap_or(28);
    let layers = decoder::layers(c, |i| {
        let window = match class {
            "Mistral" => c.sliding_window,
            "Qwen2" => decoder::qwen_window(c, i, |i| i >= max_window_layers),
            _ => None,
        };
        Ok(LayerSpec {
            window,
            rope: 0,
            mlp: MlpSpec::Gated(inner, mlp_bias),
        })
    })?;
    Ok(Spec {
        qkv: Qkv::Separate {
            qkv_bias: qkv.0,
            o_bias: qkv.1,
        },
        ..Spec::plain(class, layers)
    })
}
