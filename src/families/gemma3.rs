//! Gemma 3's text model (`model_type: gemma3_text`): Gemma 2's four norms and scaled queries,
//! with per-head q/k RMSNorms, and local (sliding) and global layers, each kind with its own RoPE:
//! transformers 5's `rope_parameters` per layer type, or transformers 4's `rope_local_base_freq`
//! for the local layers and `rope_theta` with `rope_scaling` for the global ones; five local
//! layers to a global one unless `layer_types` or `sliding_window_pattern` says otherwise.

use super::blueprint::Blueprint;
use super::config::{Config, RopeScaling};
use super::decoder::{self, LayerSpec, MlpSpec, Run, Spec};
use super::error::FamilyError;
use super::gemma::{gemma_spec, hidden_activation};
use super::rope::Rope;

/// Gemma 3 (text) in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Gemma3",
    model_types: &["gemma3_text"],
    causal: true,
    modules: |scope, c| decoder::draw(scope, c, &spec(c)?),
    forward: |scope, c| decoder::build(scope, c, &spec(c)?, run(c)?),
};

/// The RoPE the local layers use; the global ones use the other.
const LOCAL: usize = 0;
const GLOBAL: usize = 1;

fn spec(c: &Config) -> Result<Spec, FamilyError> {
    let inner = Config::need("intermediate_size", c.intermediate_size)?;
    let window = c.sliding_window.unwrap_or(4096);
    let pattern = c.sliding_window_pattern.unwrap_or(6).max(1);
    let layers = decoder::layers(c, |i| {
        let local = c.is_sliding(i, |i| !(i + 1).is_multiple_of(pattern));
        Ok(LayerSpec {
            window: local.then_some(window),
            rope: if local { LOCAL } else { GLOBAL },
            mlp: MlpSpec::Gated(inner, false),
        })
    })?;
    Ok(Spec {
        base: "Gemma3TextModel".into(),
        qk_norm: true,
        sandwich: true,
        query_scalar: Some(c.query_pre_attn_scalar.unwrap_or(256.0)),
        attn_softcap: c.attn_logit_softcapping,
        final_softcap: c.final_logit_softcapping,
        ..gemma_spec("Gemma3", c, layers)
    })
}

fn run(c: &Config) -> Result<Run, FamilyError> {
    let head_dim = c.attention_shape()?.head_dim;
    let positions = decoder::positions(c);
    let per_type = c.rope_parameters.as_ref();
    let local = per_type
        .and_then(|p| p.sliding_attention.as_deref())
        .cloned()
        .unwrap_or_default();
    let global = per_type
        .and_then(|p| p.full_attention.as_deref())
        .cloned()
        .or_else(|| c.rope_scaling.clone())
        .unwrap_or_default();
    let rope = |s: &RopeScaling, theta: f64| Rope::new(head_dim, theta, s, positions);
    let local_theta = local
        .rope_theta
        .or(c.rope_local_base_freq)
        .unwrap_or(10_000.0);
    let global_theta = global.rope_theta.or(c.rope_theta).unwrap_or(1_000_000.0);
    Ok(Run {
        act: hidden_activation(c)?,
        ropes: vec![rope(&local, local_theta)?, rope(&global, global_theta)?],
    })
}
