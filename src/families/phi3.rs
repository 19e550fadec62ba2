//! Phi-3 (`model_type: phi3`): Llama's decoder with one fused `qkv_proj` (registered after
//! `o_proj`) and one fused `gate_up_proj` (gate first), a sliding window on every layer when the
//! config sets one, and longrope scaling (short factors up to `original_max_position_embeddings`,
//! long ones past it, cos and sin scaled by the attention factor).

use super::blueprint::Blueprint;
use super::config::{Config, ConfigError};
use super::decoder::{self, LayerSpec, MlpSpec, Qkv, Run, Spec};
use super::error::FamilyError;
use super::ops::Activation;
use super::rope::Rope;

/// Phi-3 in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Phi3",
    model_types: &["phi3"],
    causal: true,
    modules: |scope, c| decoder::draw(scope, c, &spec(c)?),
    forward: |scope, c| decoder::build(scope, c, &spec(c)?, run(c)?),
};

fn spec(c: &Config) -> Result<Spec, FamilyError> {
    let inner = Config::need("intermediate_size", c.intermediate_size)?;
    let layers = decoder::layers(c, |_| {
        Ok(LayerSpec {
            window: c.sliding_window,
            rope: 0,
            mlp: MlpSpec::Fused(inner),
        })
    })?;
    Ok(Spec {
        qkv: Qkv::Fused,
        ..Spec::plain("Phi3", layers)
    })
}

fn run(c: &Config) -> Result<Run, FamilyError> {
    let (theta, mut scaling) = c.rope();
    let partial = scaling
        .partial_rotary_factor
        .or(c.partial_rotary_factor)
        .unwrap_or(1.0);
    if (partial - 1.0).abs() > f64::EPSILON {
        return Err(ConfigError::Field {
            field: "partial_rotary_factor",
            why: format!("{partial} is not supported (RoPE over whole heads is)"),
        }
        .into());
    }
    // transformers 4 keeps the original context beside rope_scaling, not in it.
    if scaling.original_max_position_embeddings.is_none() {
        scaling.original_max_position_embeddings =
            c.original_max_position_embeddings.map(|o| o as f64);
    }
    Ok(Run {
        act: Activation::of("hidden_act", c.hidden_act.as_deref(), "silu")?,
        ropes: vec![Rope::new(
            c.attention_shape()?.head_dim,
            theta,
            &scaling,
            decoder::positions(c),
        )?],
    })
}
