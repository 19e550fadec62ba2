//! Gemma 2 (`model_type: gemma2`): Gemma with four norms per layer (the attention's and the
//! MLP's outputs normed too), attention scores scaled by `query_pre_attn_scalar` and soft-capped,
//! the final logits soft-capped, and sliding-window layers alternating with global ones (the
//! even layers slide, unless `layer_types` says otherwise).

use super::blueprint::Blueprint;
use super::config::Config;
use super::decoder::{self, LayerSpec, MlpSpec, Run, Spec};
use super::error::FamilyError;
use super::gemma::{gemma_spec, hidden_activation};

/// Gemma 2 in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Gemma2",
    model_types: &["gemma2"],
    causal: true,
    modules: |scope, c| decoder::draw(scope, c, &spec(c)?),
    forward: |scope, c| decoder::build(scope, c, &spec(c)?, Run::with(c, hidden_activation(c)?)?),
};

fn spec(c: &Config) -> Result<Spec, FamilyError> {
    let inner = Config::need("intermediate_size", c.intermediate_size)?;
    let window = c.sliding_window.unwrap_or(4096);
    let layers = decoder::layers(c, |i| {
        Ok(LayerSpec {
            window: c.is_sliding(i, |i| i.is_multiple_of(2)).then_some(window),
            rope: 0,
            mlp: MlpSpec::Gated(inner, false),
        })
    })?;
    Ok(Spec {
        sandwich: true,
        query_scalar: Some(c.query_pre_attn_scalar.unwrap_or(256.0)),
        attn_softcap: c.attn_logit_softcapping,
        final_softcap: c.final_logit_softcapping,
        ..gemma_spec("Gemma2", c, layers)
    })
}
