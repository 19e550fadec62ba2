//! Llama (`model_type: llama`), which also serves Mistral and Qwen2: pre-RMSNorm decoder layers,
//! grouped-query attention with RoPE, a SiLU-gated MLP. The flags that tell them apart: QKV biases
//! (Qwen2, or Llama's `attention_bias`), Mistral's sliding window, and the class names.

use ndarray::{ArrayD, IxDyn, s};

use super::attention::{Heads, Mask, view, view_mut};
use super::blueprint::{Batch, Blueprint, Forward};
use super::config::Config;
use super::error::FamilyError;
use super::ops::{Activation, RmsNorm, add, copy};
use super::record::{Recorder, Site};
use super::rope::{self, Rope};
use super::scope::Scope;
use super::weights::{Embedding, Linear};

/// Llama, Mistral and Qwen2 in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "Llama",
    model_types: &["llama", "mistral", "qwen2"],
    causal: true,
    modules: |scope, c| Modules::new(scope, c).map(drop),
    forward: |scope, c| Ok(Box::new(Plan::new(scope, c)?)),
};

/// A Llama-family model ready to run: its settings and modules.
#[derive(Debug)]
struct Plan {
    act: Activation,
    rope: Rope,
    window: Option<usize>,
    m: Modules,
}

/// The modules as transformers registers them, with their weights.
#[derive(Debug)]
struct Modules {
    hidden: usize,
    heads: Heads,
    embed: Embedding,
    embed_site: Site,
    layers: Vec<Layer>,
    norm: RmsNorm,
    norm_site: Site,
    lm_head: Option<(Linear, Site)>,
}

#[derive(Debug)]
struct Layer {
    site: Site,
    self_attn: Site,
    /// Query, key and value in one product: `[q | k | v]` side by side.
    qkv: Linear,
    o: Linear,
    mlp: Site,
    gate: Linear,
    up: Linear,
    down: Linear,
    input_norm: RmsNorm,
    post_norm: RmsNorm,
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
    hidden: usize,
    q_width: usize,
    kv_width: usize,
    layers: usize,
    intermediate: usize,
    vocab: usize,
    eps: f64,
}

impl Plan {
    fn new(scope: &Scope, c: &Config) -> Result<Self, FamilyError> {
        let (theta, scaling) = c.rope();
        let positions = c.max_position_embeddings.unwrap_or(2048);
        let head_dim = c.attention_shape()?.head_dim;
        Ok(Self {
            act: Activation::of("hidden_act", c.hidden_act.as_deref(), "silu")?,
            rope: Rope::new(head_dim, theta, &scaling, positions)?,
            window: flavour(c).window,
            m: Modules::new(scope, c)?,
        })
    }
}

impl Modules {
    fn new(top: &Scope, c: &Config) -> Result<Self, FamilyError> {
        let shape = c.attention_shape()?;
        let s = Sizes {
            hidden: shape.hidden,
            q_width: shape.heads * shape.head_dim,
            kv_width: shape.kv_heads * shape.head_dim,
            layers: Config::need("num_hidden_layers", c.num_hidden_layers)?,
            intermediate: Config::need("intermediate_size", c.intermediate_size)?,
            vocab: Config::need("vocab_size", c.vocab_size)?,
            eps: c.rms_norm_eps.unwrap_or(1e-6),
        };
        let f = flavour(c);
        let (h, class) = (s.hidden, f.class);
        // `*ForCausalLM`'s file stores the base model under `model.`.
        let (root, base) = top.base(
            "model",
            "embed_tokens.weight",
            &format!("{class}ForCausalLM"),
            &format!("{class}Model"),
        );
        let pad = c.pad_token_id.as_ref().and_then(serde_json::Value::as_u64);
        let embed_scope = base.pp("embed_tokens");
        let embed = embed_scope.embedding(s.vocab, h, pad)?;
        let list = base.pp("layers").list();
        let layers = (0..s.layers)
            .map(|i| Layer::new(&list.pp(i).class(&format!("{class}DecoderLayer")), &s, &f))
            .collect::<Result<_, _>>()?;
        let norm_scope = base.pp("norm");
        let norm = norm_scope.rms_norm(&format!("{class}RMSNorm"), h, s.eps)?;
        let head = root.pp("lm_head");
        let lm_head = if root.has("lm_head.weight") {
            Some(head.linear(h, s.vocab, false)?)
        } else if c.tie_word_embeddings == Some(true) {
            Some(head.linear_of(&embed_scope, h, s.vocab)?)
        } else {
            None
        };
        Ok(Self {
            hidden: h,
            heads: Heads::new(shape.heads, shape.kv_heads, shape.head_dim),
            embed,
            embed_site: embed_scope.site(),
            layers,
            norm,
            norm_site: norm_scope.site(),
            lm_head: lm_head.map(|l| (l, head.site())),
        })
    }
}

impl Layer {
    fn new(l: &Scope, s: &Sizes, f: &Flavour) -> Result<Self, FamilyError> {
        let (h, class) = (s.hidden, f.class);
        let self_attn = l.pp("self_attn").class(&format!("{class}Attention"));
        let qkv = self_attn.linears(
            &[
                ("q_proj", s.q_width),
                ("k_proj", s.kv_width),
                ("v_proj", s.kv_width),
            ],
            h,
            f.qkv_bias,
        )?;
        let o = self_attn.pp("o_proj").linear(s.q_width, h, f.o_bias)?;
        let mlp = l.pp("mlp").class(&format!("{class}MLP"));
        let gate = mlp.pp("gate_proj").linear(h, s.intermediate, f.mlp_bias)?;
        let up = mlp.pp("up_proj").linear(h, s.intermediate, f.mlp_bias)?;
        let down = mlp.pp("down_proj").linear(s.intermediate, h, f.mlp_bias)?;
        let norm = format!("{class}RMSNorm");
        Ok(Self {
            site: l.site(),
            self_attn: self_attn.site(),
            qkv,
            o,
            mlp: mlp.site(),
            gate,
            up,
            down,
            input_norm: l.pp("input_layernorm").rms_norm(&norm, h, s.eps)?,
            post_norm: l.pp("post_attention_layernorm").rms_norm(&norm, h, s.eps)?,
        })
    }
}

impl Forward for Plan {
    /// The logits `[batch, len, vocab]` (the last hidden state without a head), recording the
    /// embedding, each layer, its attention and MLP, the final norm and the head.
    fn run(&self, batch: &Batch, rec: &mut Recorder) -> Result<ArrayD<f32>, FamilyError> {
        let (len, m) = (batch.len, &self.m);
        let mut h = Vec::new();
        for &id in &batch.ids {
            m.embed.push(id as usize, &mut h)?;
        }
        rec.record(&m.embed_site, &h);
        rec.residual(&m.embed_site, &h);
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
        } = m.heads;
        let (q_width, kv_width) = (heads * head_dim, kv_heads * head_dim);
        let width = q_width + 2 * kv_width;
        let [mut x, mut qkv, mut ctx, mut gate, mut up]: [Vec<f32>; 5] = Default::default();
        for (i, layer) in m.layers.iter().enumerate() {
            copy(&mut x, &h);
            layer.input_norm.apply(&mut x);
            layer.qkv.forward(&x, &mut qkv);
            let (q_cols, k_cols) = (0..q_width, q_width..q_width + kv_width);
            rope::apply(&mut qkv, width, q_cols.clone(), head_dim, len, &cos, &sin);
            rope::apply(&mut qkv, width, k_cols.clone(), head_dim, len, &cos, &sin);
            ctx.resize(qkv.len() / width * q_width, 0.0);
            let all = view(&qkv, width);
            rec.attend(
                all.slice(s![.., q_cols]),
                all.slice(s![.., k_cols]),
                all.slice(s![.., q_width + kv_width..]),
                view_mut(&mut ctx, q_width),
                len,
                m.heads,
                mask,
            );
            let mut a = rec.buffer();
            layer.o.forward(&ctx, &mut a);
            let a = rec.keep(&layer.self_attn, a);
            add(&mut h, rec.kept(a));
            copy(&mut x, &h);
            layer.post_norm.apply(&mut x);
            layer.gate.forward(&x, &mut gate);
            layer.up.forward(&x, &mut up);
            self.act.apply(&mut gate);
            gate.iter_mut().zip(&up).for_each(|(g, u)| *g *= u);
            let mut out = rec.buffer();
            layer.down.forward(&gate, &mut out);
            rec.down_proj(&layer.mlp, &gate, &out);
            let out = rec.keep(&layer.mlp, out);
            add(&mut h, rec.kept(out));
            rec.record(&layer.site, &h);
            rec.residual(&layer.site, &h);
            rec.block_done(i + 1, m.layers.len());
        }
        m.norm.apply(&mut h);
        rec.record(&m.norm_site, &h);
        let mut out = h;
        if let Some((head, site)) = &m.lm_head {
            let mut logits = Vec::new();
            head.forward(&out, &mut logits);
            rec.record(site, &logits);
            out = logits;
        }
        let width = out.len() / (batch.size() * len);
        debug_assert!(
            out.len() == batch.size() * len * width && (width == m.hidden || m.lm_head.is_some())
        );
        Ok(
            ArrayD::from_shape_vec(IxDyn(&[batch.size(), len, width]), out)
                .expect("batch·len·width"),
        )
    }

    fn head(&self, h: &mut [f32], logits: &mut Vec<f32>) -> bool {
        self.m.norm.apply(h);
        self.m.lm_head.as_ref().is_some_and(|(head, _)| {
            head.forward(h, logits);
            true
        })
    }
}
