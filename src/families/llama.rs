//! Llama (`model_type: llama`), which also serves Mistral and Qwen2: pre-RMSNorm decoder layers,
//! grouped-query attention with RoPE, a SiLU-gated MLP. The flags that tell them apart: QKV biases
//! (Qwen2, or Llama's `attention_bias`), Mistral's sliding window, and the class names.

use std::collections::HashSet;

use ndarray::{ArrayD, IxDyn, s};

use super::attention::{self, Heads, Mask, view, view_mut};
use super::bert::add;
use super::config::Config;
use super::gpt2::copy;
use super::ops::{self, Activation};
use super::rope::{self, Rope};
use super::structure::{Node, python_float};
use super::weights::{Embedding, Linear, Weights};
use super::{Batch, FamilyError, Recorder};
use crate::model::{Model, ParamId};

/// A Llama-family model's weights, read and packed.
#[derive(Debug, Clone)]
pub struct Plan {
    prefix: String,
    class: &'static str,
    hidden: usize,
    heads: Heads,
    act: Activation,
    rope: Rope,
    window: Option<usize>,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Option<Linear>,
    pub(super) versions: Vec<(ParamId, u64)>,
}

#[derive(Debug, Clone)]
struct Layer {
    input_norm: RmsNorm,
    /// Query, key and value in one product: `[q | k | v]` side by side.
    qkv: Linear,
    o: Linear,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn read(w: &mut Weights, path: &str, width: usize, eps: f64) -> Result<Self, FamilyError> {
        Ok(Self {
            weight: w.get(&format!("{path}.weight"), &[width])?,
            eps: eps as f32,
        })
    }
}

/// What tells the three apart.
struct Flavour {
    class: &'static str,
    qkv_bias: bool,
    o_bias: bool,
    mlp_bias: bool,
    window: Option<usize>,
}

fn flavour(c: &Config) -> Flavour {
    let attention_bias = c.attention_bias.unwrap_or(false);
    match c.model_type.as_deref() {
        Some("qwen2") => Flavour {
            class: "Qwen2",
            qkv_bias: true,
            o_bias: false,
            mlp_bias: false,
            // Qwen2 slides only when asked, and then only in its upper layers: not done here.
            window: None,
        },
        Some("mistral") => Flavour {
            class: "Mistral",
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            window: c.sliding_window,
        },
        _ => Flavour {
            class: "Llama",
            qkv_bias: attention_bias,
            o_bias: attention_bias,
            mlp_bias: c.mlp_bias.unwrap_or(false),
            window: None,
        },
    }
}

struct Sizes {
    layers: usize,
    intermediate: usize,
    vocab: usize,
    eps: f64,
}

fn sizes(c: &Config) -> Result<Sizes, FamilyError> {
    Ok(Sizes {
        layers: Config::need("num_hidden_layers", c.num_hidden_layers)?,
        intermediate: Config::need("intermediate_size", c.intermediate_size)?,
        vocab: Config::need("vocab_size", c.vocab_size)?,
        eps: c.rms_norm_eps.unwrap_or(1e-6),
    })
}

/// `model.` for `*ForCausalLM` checkpoints, else nothing.
fn find_prefix(has: impl Fn(&str) -> bool) -> String {
    ["model.", ""]
        .into_iter()
        .find(|p| has(&format!("{p}embed_tokens.weight")))
        .unwrap_or("")
        .to_owned()
}

impl Plan {
    pub(super) fn new(model: &Model, c: &Config) -> Result<Self, FamilyError> {
        let shape = c.attention_shape()?;
        let s = sizes(c)?;
        let f = flavour(c);
        let act_name = c.hidden_act.as_deref().unwrap_or("silu");
        let act = Activation::from_name(act_name).ok_or_else(|| {
            FamilyError::Input(format!(
                "config.json: hidden_act {:?} is not supported",
                crate::text::escape(act_name)
            ))
        })?;
        let (theta, scaling) = c.rope();
        let positions = c.max_position_embeddings.unwrap_or(2048);
        let rope = Rope::new(shape.head_dim, theta, &scaling, positions)?;
        let mut w = Weights::new(model);
        let p = find_prefix(|n| w.has(n));
        let h = shape.hidden;
        let (q_width, kv_width) = (
            shape.heads * shape.head_dim,
            shape.kv_heads * shape.head_dim,
        );
        let mut layers = Vec::with_capacity(s.layers);
        for i in 0..s.layers {
            let l = format!("{p}layers.{i}");
            let mlp = |w: &mut Weights, name: &str, k, n| {
                w.linear(&format!("{l}.mlp.{name}"), k, n, f.mlp_bias)
            };
            layers.push(Layer {
                input_norm: RmsNorm::read(&mut w, &format!("{l}.input_layernorm"), h, s.eps)?,
                qkv: w.linear_stack(
                    &[
                        &format!("{l}.self_attn.q_proj"),
                        &format!("{l}.self_attn.k_proj"),
                        &format!("{l}.self_attn.v_proj"),
                    ],
                    h,
                    &[q_width, kv_width, kv_width],
                    f.qkv_bias,
                )?,
                o: w.linear(&format!("{l}.self_attn.o_proj"), q_width, h, f.o_bias)?,
                post_norm: RmsNorm::read(
                    &mut w,
                    &format!("{l}.post_attention_layernorm"),
                    h,
                    s.eps,
                )?,
                gate: mlp(&mut w, "gate_proj", h, s.intermediate)?,
                up: mlp(&mut w, "up_proj", h, s.intermediate)?,
                down: mlp(&mut w, "down_proj", s.intermediate, h)?,
            });
        }
        let lm_head = if w.has("lm_head.weight") {
            Some(w.linear("lm_head", h, s.vocab, false)?)
        } else if c.tie_word_embeddings == Some(true) {
            Some(w.linear(&format!("{p}embed_tokens"), h, s.vocab, false)?)
        } else {
            None
        };
        Ok(Self {
            class: f.class,
            hidden: h,
            heads: Heads::new(shape.heads, shape.kv_heads, shape.head_dim),
            act,
            rope,
            window: f.window,
            embed: Embedding::read(&mut w, &format!("{p}embed_tokens"), s.vocab, h)?,
            layers,
            norm: RmsNorm::read(&mut w, &format!("{p}norm"), h, s.eps)?,
            lm_head,
            versions: w.versions,
            prefix: p,
        })
    }

    /// The logits `[batch, len, vocab]` (the last hidden state without a head), recording the
    /// embedding, each layer, its attention and MLP, and the final norm.
    pub(super) fn run(
        &self,
        batch: &Batch,
        rec: &mut Recorder,
    ) -> Result<ArrayD<f32>, FamilyError> {
        let (len, p, c, class) = (batch.len, &self.prefix, self.hidden, self.class);
        let mut h = Vec::new();
        for &id in &batch.ids {
            self.embed.push(id as usize, &mut h)?;
        }
        rec.record(&format!("{p}embed_tokens"), "Embedding", &h);
        let (cos, sin) = self.rope.tables(len);
        let mask = Mask {
            lens: &batch.lens,
            causal: true,
            window: self.window,
        };
        let Heads {
            heads,
            kv_heads,
            head_dim,
            ..
        } = self.heads;
        let (q_width, kv_width) = (heads * head_dim, kv_heads * head_dim);
        let width = q_width + 2 * kv_width;
        let [mut x, mut qkv, mut ctx, mut gate, mut up]: [Vec<f32>; 5] = Default::default();
        for (i, layer) in self.layers.iter().enumerate() {
            let l = format!("{p}layers.{i}");
            copy(&mut x, &h);
            ops::rms_norm(&mut x, &layer.input_norm.weight, layer.input_norm.eps);
            layer.qkv.forward(&x, &mut qkv);
            let (q_cols, k_cols) = (0..q_width, q_width..q_width + kv_width);
            rope::apply(&mut qkv, width, q_cols.clone(), head_dim, len, &cos, &sin);
            rope::apply(&mut qkv, width, k_cols.clone(), head_dim, len, &cos, &sin);
            ctx.resize(qkv.len() / width * q_width, 0.0);
            let all = view(&qkv, width);
            attention::attend(
                all.slice(s![.., q_cols]),
                all.slice(s![.., k_cols]),
                all.slice(s![.., q_width + kv_width..]),
                view_mut(&mut ctx, q_width),
                len,
                self.heads,
                mask,
            );
            let mut a = rec.buffer();
            layer.o.forward(&ctx, &mut a);
            let a = rec.keep(&format!("{l}.self_attn"), &format!("{class}Attention"), a);
            add(&mut h, rec.kept(a));
            copy(&mut x, &h);
            ops::rms_norm(&mut x, &layer.post_norm.weight, layer.post_norm.eps);
            layer.gate.forward(&x, &mut gate);
            layer.up.forward(&x, &mut up);
            self.act.apply(&mut gate);
            gate.iter_mut().zip(&up).for_each(|(g, u)| *g *= u);
            let mut m = rec.buffer();
            layer.down.forward(&gate, &mut m);
            let m = rec.keep(&format!("{l}.mlp"), &format!("{class}MLP"), m);
            add(&mut h, rec.kept(m));
            rec.record(&l, &format!("{class}DecoderLayer"), &h);
            rec.block_done(i + 1, self.layers.len());
        }
        ops::rms_norm(&mut h, &self.norm.weight, self.norm.eps);
        rec.record(&format!("{p}norm"), &format!("{class}RMSNorm"), &h);
        let mut out = h;
        if let Some(head) = &self.lm_head {
            let mut logits = Vec::new();
            head.forward(&out, &mut logits);
            rec.record("lm_head", "Linear", &logits);
            out = logits;
        }
        let width = out.len() / (batch.size() * len);
        debug_assert!(
            out.len() == batch.size() * len * width && (width == c || self.lm_head.is_some())
        );
        Ok(
            ArrayD::from_shape_vec(IxDyn(&[batch.size(), len, width]), out)
                .expect("batch·len·width"),
        )
    }
}

/// The Llama family's modules as transformers registers them.
pub(super) fn skeleton(c: &Config, names: &HashSet<String>) -> Result<Node, FamilyError> {
    let shape = c.attention_shape()?;
    let s = sizes(c)?;
    let f = flavour(c);
    let p = find_prefix(|n| names.contains(n));
    let (h, class) = (shape.hidden, f.class);
    let (q_width, kv_width) = (
        shape.heads * shape.head_dim,
        shape.kv_heads * shape.head_dim,
    );
    let rms = |name: &str| {
        Node::leaf(
            name,
            &format!("{class}RMSNorm"),
            format!("{class}RMSNorm(({h},), eps={})", python_float(s.eps)),
            &["weight"],
        )
    };
    let layer = |i: usize| {
        Node::class(
            i.to_string(),
            &format!("{class}DecoderLayer"),
            vec![
                Node::class(
                    "self_attn",
                    &format!("{class}Attention"),
                    vec![
                        Node::linear("q_proj", h, q_width, f.qkv_bias),
                        Node::linear("k_proj", h, kv_width, f.qkv_bias),
                        Node::linear("v_proj", h, kv_width, f.qkv_bias),
                        Node::linear("o_proj", q_width, h, f.o_bias),
                    ],
                ),
                Node::class(
                    "mlp",
                    &format!("{class}MLP"),
                    vec![
                        Node::linear("gate_proj", h, s.intermediate, f.mlp_bias),
                        Node::linear("up_proj", h, s.intermediate, f.mlp_bias),
                        Node::linear("down_proj", s.intermediate, h, f.mlp_bias),
                    ],
                ),
                rms("input_layernorm"),
                rms("post_attention_layernorm"),
            ],
        )
    };
    let pad = c.pad_token_id.as_ref().and_then(serde_json::Value::as_u64);
    let mut base = Node::class(
        p.trim_end_matches('.'),
        &format!("{class}Model"),
        vec![
            Node::embedding("embed_tokens", s.vocab, h, pad),
            Node::list("layers", (0..s.layers).map(layer).collect()),
            rms("norm"),
        ],
    );
    let head = Node::linear("lm_head", h, s.vocab, false);
    if p.is_empty() {
        base.push(head);
        return Ok(base);
    }
    Ok(Node::class(
        "",
        &format!("{class}ForCausalLM"),
        vec![base, head],
    ))
}
