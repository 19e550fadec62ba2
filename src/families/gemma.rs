//! Gemma (`model_type: gemma`): Llama's decoder with RMSNorms that scale by `1 + weight`, the
//! embedding scaled by √hidden (`GemmaTextScaledWordEmbedding`, the factor rounded to f32 as
//! transformers' buffer is), a GeGLU MLP with the tanh GELU (a config's `gelu` means it, as
//! transformers reads it), and the head tied to the embedding. Gemma 2 and 3 start from the same
//! [`gemma_spec`].

use super::blueprint::Blueprint;
use super::config::Config;
use super::decoder::{self, LayerSpec, MlpSpec, Qkv, Run, Spec};
use super::error::FamilyError;
use super::ops::Activation;

/// Gemma in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Gemma",
    model_types: &["gemma"],
    causal: true,
    modules: |scope, c| decoder::draw(scope, c, &spec(c)?),
    forward: |scope, c| decoder::build(scope, c, &spec(c)?, Run::with(c, act(c)?)?),
};

fn spec(c: &Config) -> Result<Spec, FamilyError> {
    let inner = Config::need("intermediate_size", c.intermediate_size)?;
    let layers = decoder::layers(c, |_| {
        Ok(LayerSpec {
            window: None,
            rope: 0,
            mlp: MlpSpec::Gated(inner, false),
        })
    })?;
    Ok(gemma_spec("Gemma", c, layers))
}

/// Gemma's activation: `hidden_act`, where the legacy `gelu` means the tanh approximation.
fn act(c: &Config) -> Result<Activation, FamilyError> {
    let name = match c.hidden_act.as_deref() {
        None | Some("gelu") => "gelu_pytorch_tanh",
        Some(name) => name,
    };
    Ok(Activation::of("hidden_act", Some(name), name)?)
}

/// What the Gemmas share, for class prefix `class`: the scaled embedding, `1 + w` norms,
/// `attention_bias` on all four projections, a tied head.
pub(super) fn gemma_spec(class: &'static str, c: &Config, layers: Vec<LayerSpec>) -> Spec {
    let bias = c.attention_bias.unwrap_or(false);
    Spec {
        scaled_embedding: Some(format!("{class}TextScaledWordEmbedding")),
        gemma_norm: true,
        qkv: Qkv::Separate {
            qkv_bias: bias,
            o_bias: bias,
        },
        tie_default: true,
        ..Spec::plain(class, layers)
    }
}

/// Gemma 2 and 3's activation: `hidden_activation`, the tanh GELU when it names none.
pub(super) fn hidden_activation(c: &Config) -> Result<Activation, FamilyError> {
    Ok(Activation::of(
        "hidden_activation",
        c.hidden_activation.as_deref(),
        "gelu_pytorch_tanh",
    )?)
}
