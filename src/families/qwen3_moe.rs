//! Qwen3-MoE (`model_type: qwen3_moe`): Qwen3's decoder (q/k norms) with Qwen2-MoE's layer rule
//! and routing, without a shared expert; transformers 5 registers its experts before the router.

use super::blueprint::Blueprint;
use super::config::Config;
use super::decoder::{self, LayerSpec, Qkv, Run, Spec};
use super::error::FamilyError;
use super::mlp::MoeSpec;
use super::qwen2_moe::sparse;

/// Qwen3-MoE in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Qwen3Moe",
    model_types: &["qwen3_moe"],
    causal: true,
    modules: |scope, c| decoder::draw(scope, c, &spec(c)?),
    forward: |scope, c| decoder::build(scope, c, &spec(c)?, Run::from_config(c)?),
};

fn spec(c: &Config) -> Result<Spec, FamilyError> {
    let moe = MoeSpec {
        class: "Qwen3Moe",
        count: c.num_experts.unwrap_or(128),
        top_k: Config::need(
            "num_experts_per_tok",
            Some(c.num_experts_per_tok.unwrap_or(8)),
        )?,
        inner: Config::need(
            "moe_intermediate_size",
            Some(c.moe_intermediate_size.unwrap_or(768)),
        )?,
        renormalise: c.norm_topk_prob.unwrap_or(false),
        shared: None,
        router_first: false,
        per_expert: ("mlp", "Qwen3MoeMLP", false),
    };
    let inner = Config::need("intermediate_size", c.intermediate_size)?;
    let max_window_layers = c.max_window_layers.unwrap_or(28);
    let layers = decoder::layers(c, |i| {
        Ok(LayerSpec {
            window: decoder::qwen_window(c, i, |i| i >= max_window_layers),
            rope: 0,
            mlp: sparse(c, i, &moe, inner)?,
        })
    })?;
    let bias = c.attention_bias.unwrap_or(false);
    Ok(Spec {
        qkv: Qkv::Separate {
            qkv_bias: bias,
            o_bias: bias,
        },
        qk_norm: true,
        ..Spec::plain("Qwen3Moe", layers)
    })
}
