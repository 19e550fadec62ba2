//! Mixtral (`model_type: mixtral`): Mistral's decoder with a mixture of experts for the MLP: a
//! router picks the top-k experts per token and their softmax weights are renormalised to sum to
//! one. transformers 5 names the block `mlp` with fused expert tensors; transformers 4's files
//! (`block_sparse_moe.experts.N.w1/w2/w3`) are read and drawn as they are.

use super::blueprint::Blueprint;
use super::config::Config;
use super::decoder::{self, LayerSpec, MlpSpec, Run, Spec};
use super::error::FamilyError;
use super::mlp::MoeSpec;

/// Mixtral in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Mixtral",
    model_types: &["mixtral"],
    causal: true,
    modules: |scope, c| decoder::draw(scope, c, &spec(c)?),
    forward: |scope, c| decoder::build(scope, c, &spec(c)?, Run::from_config(c)?),
};

fn spec(c: &Config) -> Result<Spec, FamilyError> {
    let moe = MoeSpec {
        class: "Mixtral",
        count: Config::need("num_local_experts", Some(c.num_experts.unwrap_or(8)))?,
        top_k: Config::need(
            "num_experts_per_tok",
            Some(c.num_experts_per_tok.unwrap_or(2)),
        )?,
        inner: Config::need("intermediate_size", c.intermediate_size)?,
        renormalise: true,
        shared: None,
        router_first: true,
        per_expert: ("block_sparse_moe", "MixtralBlockSparseTop2MLP", true),
    };
    let layers = decoder::layers(c, |_| {
        Ok(LayerSpec {
            window: c.sliding_window,
            rope: 0,
            mlp: MlpSpec::Moe(moe.clone()),
        })
    })?;
    Ok(Spec::plain("Mixtral", layers))
}
