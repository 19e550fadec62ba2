//! Qwen3 (`model_type: qwen3`): Qwen2's decoder with a per-head RMSNorm on queries and keys
//! (before RoPE) and no QKV bias unless `attention_bias`.

use super::blueprint::Blueprint;
use super::config::Config;
use super::decoder::{self, LayerSpec, MlpSpec, Qkv, Run, Spec};
use super::error::FamilyError;

/// Qwen3 in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Qwen3",
    model_types: &["qwen3"],
    causal: true,
    modules: |scope, c| decoder::draw(scope, c, &spec(c)?),
    forward: |scope, c| decoder::build(scope, c, &spec(c)?, Run::from_config(c)?),
};

fn spec(c: &Config) -> Result<Spec, FamilyError> {
    let inner = Config::need("intermediate_size", c.intermediate_size)?;
    let bias = c.attention_bias.unwrap_or(false);
    let max_window_layers = c.max_window_layers.unwrap_or(28);
    let layers = decoder::layers(c, |i| {
        Ok(LayerSpec {
            window: decoder::qwen_window(c, i, |i| i >= max_window_layers),
            rope: 0,
            mlp: MlpSpec::Gated(inner, false),
        })
    })?;
    Ok(Spec {
        qkv: Qkv::Separate {
            qkv_bias: bias,
            o_bias: bias,
        },
        qk_norm: true,
        ..Spec::plain("Qwen3", layers)
    })
}
