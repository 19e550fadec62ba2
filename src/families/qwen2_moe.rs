//! Qwen2-MoE (`model_type: qwen2_moe`): Qwen2's decoder whose MLPs are mixtures of experts (every
//! `decoder_sparse_step`-th layer not in `mlp_only_layers`; the others a dense MLP): top-k
//! routing, renormalised only with `norm_topk_prob`, plus a shared expert whose output a sigmoid
//! gate scales. Also the layer rule Qwen3-MoE uses ([`sparse`]).

use super::blueprint::Blueprint;
use super::config::Config;
use super::decoder::{self, LayerSpec, MlpSpec, Qkv, Run, Spec};
use super::error::FamilyError;
use super::mlp::MoeSpec;

/// Qwen2-MoE in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Qwen2Moe",
    model_types: &["qwen2_moe"],
    causal: true,
    modules: |scope, c| decoder::draw(scope, c, &spec(c)?),
    forward: |scope, c| decoder::build(scope, c, &spec(c)?, Run::from_config(c)?),
};

fn spec(c: &Config) -> Result<Spec, FamilyError> {
    let moe = MoeSpec {
        class: "Qwen2Moe",
        count: c.num_experts.unwrap_or(60),
        top_k: Config::need(
            "num_experts_per_tok",
            Some(c.num_experts_per_tok.unwrap_or(4)),
        )?,
        inner: Config::need(
            "moe_intermediate_size",
            Some(c.moe_intermediate_size.unwrap_or(1408)),
        )?,
        renormalise: c.norm_topk_prob.unwrap_or(false),
        shared: Some(Config::need(
            "shared_expert_intermediate_size",
            Some(c.shared_expert_intermediate_size.unwrap_or(5632)),
        )?),
        router_first: true,
        per_expert: ("mlp", "Qwen2MoeMLP", false),
    };
    let inner = Config::need("intermediate_size", c.intermediate_size)?;
    let max_window_layers = c.max_window_layers.unwrap_or(28);
    let layers = decoder::layers(c, |i| {
        Ok(LayerSpec {
            window: decoder::qwen_window(c, i, |i| i.is_multiple_of(2) && i < max_window_layers),
            rope: 0,
            mlp: sparse(c, i, &moe, inner)?,
        })
    })?;
    Ok(Spec {
        qkv: Qkv::Separate {
            qkv_bias: c.qkv_bias.unwrap_or(true),
            o_bias: false,
        },
        ..Spec::plain("Qwen2Moe", layers)
    })
}

/// Layer `i`'s block as the Qwen MoE families choose it: the experts on every
/// `decoder_sparse_step`-th layer outside `mlp_only_layers`, else a dense MLP of `inner`.
pub(super) fn sparse(
    c: &Config,
    i: usize,
    moe: &MoeSpec,
    inner: usize,
) -> Result<MlpSpec, FamilyError> {
    let step = Config::need(
        "decoder_sparse_step",
        Some(c.decoder_sparse_step.unwrap_or(1)),
    )?;
    let dense = c.mlp_only_layers.as_ref().is_some_and(|l| l.contains(&i));
    Ok(if !dense && moe.count > 0 && (i + 1).is_multiple_of(step) {
        MlpSpec::Moe(moe.clone())
    } else {
        MlpSpec::Gated(inner, false)
    })
}
