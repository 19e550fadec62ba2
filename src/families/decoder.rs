//! The decoder the Llama-like families share (Llama, Mistral, Qwen2 and 3, Gemma 1-3, Phi-3,
//! Mixtral, Qwen2-MoE and Qwen3-MoE): pre-norm layers of grouped-query attention with RoPE and a
//! gated MLP or a mixture of experts. A family file says what sets it apart in a [`Spec`] (class
//! names, Gemma's `1 + w` norms and scaled embedding, q/k norms, the four norms of Gemma 2 and 3,
//! fused projections, soft caps, per-layer windows and RoPE) and its run settings in a [`Run`];
//! the modules, the forward and the cached generation step are written once, here, and so are
//! the probes' hooks (the residual stream, attention, the down projections, the lens's head).

use ndarray::s;

use super::attention::{Heads, Mask};
use super::blueprint::Forward;
use super::causal::Causal;
use super::config::Config;
use super::error::FamilyError;
use super::generate::KvCache;
use super::mlp::{Gated, Mlp, Moe, MoeSpec};
use super::ops::{Activation, RmsNorm, add, copy, view, view_mut};
use super::record::{Recorder, Site};
use super::rope::{self, Rope};
use super::scope::Scope;
use super::weights::{Embedding, Linear};

/// What a family's decoder is, read from its config: all the tree needs.
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each is one switch of the architecture, independent of the others"
)]
pub struct Spec {
    /// The class prefix: `Qwen3` names `Qwen3ForCausalLM`, `Qwen3Attention`, `Qwen3RMSNorm`...
    pub class: &'static str,
    /// The base model's class (`Qwen3Model`, `Gemma3TextModel`).
    pub base: String,
    /// Gemma's embedding class, which scales by √hidden; `None` for a plain `Embedding`.
    pub scaled_embedding: Option<String>,
    /// Gemma's RMSNorm, which scales by `1 + weight`.
    pub gemma_norm: bool,
    /// How the attention projects.
    pub qkv: Qkv,
    /// Per-head RMSNorm of queries and keys (Qwen3, Gemma 3).
    pub qk_norm: bool,
    /// Gemma 2 and 3's four norms: the attention's and the MLP's outputs normed too.
    pub sandwich: bool,
    /// `tie_word_embeddings` when config.json does not say.
    pub tie_default: bool,
    /// `query_pre_attn_scalar` (Gemma 2 and 3): scores scaled by its inverse square root rather
    /// than the head width's.
    pub query_scalar: Option<f64>,
    /// Gemma 2's attention soft cap.
    pub attn_softcap: Option<f64>,
    /// Gemma 2's final logit soft cap.
    pub final_softcap: Option<f64>,
    /// Each layer.
    pub layers: Vec<LayerSpec>,
}

/// How a decoder's attention projects.
#[derive(Debug, Clone, Copy)]
pub enum Qkv {
    /// `q_proj`, `k_proj`, `v_proj`, then `o_proj`, with or without biases.
    Separate {
        /// Biases on q, k and v.
        qkv_bias: bool,
        /// A bias on o.
        o_bias: bool,
    },
    /// Phi-3: `o_proj`, then one `qkv_proj`.
    Fused,
}

/// One layer of a decoder.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    /// Its sliding window, if it slides.
    pub window: Option<usize>,
    /// Which of the [`Run`]'s RoPEs it uses.
    pub rope: usize,
    /// Its feed-forward block.
    pub mlp: MlpSpec,
}

/// A layer's feed-forward block.
#[derive(Debug, Clone)]
pub enum MlpSpec {
    /// `gate_proj`, `up_proj`, `down_proj` of this inner width, with biases or not.
    Gated(usize, bool),
    /// Phi-3's `gate_up_proj` and `down_proj`.
    Fused(usize),
    /// A mixture of experts.
    Moe(MoeSpec),
}

/// What only a run needs: the activation and the RoPE tables (a tree is drawn without them).
#[derive(Debug)]
pub struct Run {
    /// The MLPs' activation.
    pub act: Activation,
    /// The RoPEs the layers use (Gemma 3 has two: local and global).
    pub ropes: Vec<Rope>,
}

impl Run {
    /// One RoPE from the config (`rope_parameters` or `rope_theta` and `rope_scaling`) and the
    /// activation `hidden_act` names (`silu` when it names none).
    pub fn from_config(c: &Config) -> Result<Self, FamilyError> {
        Self::with(
            c,
            Activation::of("hidden_act", c.hidden_act.as_deref(), "silu")?,
        )
    }

    /// One RoPE from the config, and `act`.
    pub fn with(c: &Config, act: Activation) -> Result<Self, FamilyError> {
        let (theta, scaling) = c.rope();
        Ok(Self {
            act,
            ropes: vec![Rope::new(
                c.attention_shape()?.head_dim,
                theta,
                &scaling,
                positions(c),
            )?],
        })
    }
}

impl Spec {
    /// A Llama-like decoder of class prefix `class`: plain norms and embedding, separate
    /// projections without biases, an untied head unless config.json ties it, no soft caps.
    #[must_use]
    pub fn plain(class: &'static str, layers: Vec<LayerSpec>) -> Self {
        Self {
            class,
            base: format!("{class}Model"),
            scaled_embedding: None,
            gemma_norm: false,
            qkv: Qkv::Separate {
                qkv_bias: false,
                o_bias: false,
            },
            qk_norm: false,
            sandwich: false,
            tie_default: false,
            query_scalar: None,
            attn_softcap: None,
            final_softcap: None,
            layers,
        }
    }
}

/// The Qwen families' window: only with `use_sliding_window`, on the layers `layer_types` marks
/// (or, in a transformers 4 config, those `default` picks).
#[must_use]
pub fn qwen_window(c: &Config, i: usize, default: impl Fn(usize) -> bool) -> Option<usize> {
    let slides = c.use_sliding_window == Some(true) && c.is_sliding(i, default);
    c.sliding_window.filter(|_| slides)
}

/// The positions RoPE is scaled for (`max_position_embeddings`, else 2048).
#[must_use]
pub fn positions(c: &Config) -> usize {
    c.max_position_embeddings.unwrap_or(2048)
}

/// The layers of `c`, each as `layer(i)` says.
pub fn layers(
    c: &Config,
    layer: impl Fn(usize) -> Result<LayerSpec, FamilyError>,
) -> Result<Vec<LayerSpec>, FamilyError> {
    (0..Config::need("num_hidden_layers", c.num_hidden_layers)?)
        .map(layer)
        .collect()
}

/// Draws the modules `spec` describes, reading nothing.
pub fn draw(top: &Scope, c: &Config, spec: &Spec) -> Result<(), FamilyError> {
    Modules::new(top, c, spec).map(drop)
}

/// Reads the modules `spec` describes and makes them a forward.
pub fn build(
    top: &Scope,
    c: &Config,
    spec: &Spec,
    run: Run,
) -> Result<Box<dyn Forward>, FamilyError> {
    if let Some(bad) = spec.layers.iter().find(|l| l.rope >= run.ropes.len()) {
        return Err(FamilyError::Input(format!(
            "a layer uses RoPE {} of {}",
            bad.rope,
            run.ropes.len()
        )));
    }
    Ok(Box::new(Decoder {
        run,
        positions: c.max_position_embeddings.unwrap_or(usize::MAX),
        m: Modules::new(top, c, spec)?,
    }))
}

/// A decoder ready to run.
#[derive(Debug)]
struct Decoder {
    run: Run,
    /// The sequence cap generation respects.
    positions: usize,
    m: Modules,
}

#[derive(Debug)]
struct Modules {
    hidden: usize,
    heads: Heads,
    embed: Embedding,
    /// Gemma's √hidden, rounded to f32 as transformers' buffer is.
    embed_scale: Option<f32>,
    embed_site: Site,
    layers: Vec<Layer>,
    norm: RmsNorm,
    norm_site: Site,
    lm_head: Option<(Linear, Site)>,
    final_softcap: Option<f32>,
    has_moe: bool,
}

#[derive(Debug)]
struct Layer {
    site: Site,
    self_attn: Site,
    /// Query, key and value in one product: `[q | k | v]` side by side.
    qkv: Linear,
    o: Linear,
    qk_norm: Option<(RmsNorm, RmsNorm)>,
    window: Option<usize>,
    rope: usize,
    mlp_site: Site,
    mlp: Mlp,
    input_norm: RmsNorm,
    post_attn_norm: RmsNorm,
    /// Gemma 2 and 3: the norms before and after the MLP.
    sandwich: Option<(RmsNorm, RmsNorm)>,
}

/// The sizes every layer shares.
struct Sizes {
    hidden: usize,
    q_width: usize,
    kv_width: usize,
    head_dim: usize,
    eps: f64,
}

impl Modules {
    fn new(top: &Scope, c: &Config, spec: &Spec) -> Result<Self, FamilyError> {
        let shape = c.attention_shape()?;
        let vocab = Config::need("vocab_size", c.vocab_size)?;
        let s = Sizes {
            hidden: shape.hidden,
            q_width: shape.heads * shape.head_dim,
            kv_width: shape.kv_heads * shape.head_dim,
            head_dim: shape.head_dim,
            eps: c.rms_norm_eps.unwrap_or(1e-6),
        };
        let h = s.hidden;
        let class = spec.class;
        // `*ForCausalLM`'s file stores the base model under `model.`.
        let (root, base) = top.base(
            "model",
            "embed_tokens.weight",
            &format!("{class}ForCausalLM"),
            &spec.base,
        );
        let pad = c.pad_token_id.as_ref().and_then(serde_json::Value::as_u64);
        let embed_scope = base.pp("embed_tokens");
        let embed = match &spec.scaled_embedding {
            Some(name) => embed_scope.embedding_of(name, vocab, h, pad)?,
            None => embed_scope.embedding(vocab, h, pad)?,
        };
        let list = base.pp("layers").list();
        let layers = spec
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let scope = list.pp(i).class(&format!("{class}DecoderLayer"));
                Layer::new(&scope, spec, l, &s)
            })
            .collect::<Result<_, _>>()?;
        let norm_scope = base.pp("norm");
        let norm = rms(&norm_scope, spec, h, s.eps)?;
        let head = root.pp("lm_head");
        let lm_head = if root.has("lm_head.weight") {
            Some(head.linear(h, vocab, false)?)
        } else if c.tie_word_embeddings.unwrap_or(spec.tie_default) {
            Some(head.linear_of(&embed_scope, h, vocab)?)
        } else {
            None
        };
        let mut heads = Heads::new(shape.heads, shape.kv_heads, shape.head_dim);
        if let Some(q) = spec.query_scalar {
            heads.scale = q.powf(-0.5) as f32;
        }
        heads.softcap = spec.attn_softcap.map(|c| c as f32);
        Ok(Self {
            hidden: h,
            heads,
            embed,
            embed_scale: spec
                .scaled_embedding
                .as_ref()
                .map(|_| (h as f64).sqrt() as f32),
            embed_site: embed_scope.site(),
            layers,
            norm,
            norm_site: norm_scope.site(),
            lm_head: lm_head.map(|l| (l, head.site())),
            final_softcap: spec.final_softcap.map(|c| c as f32),
            has_moe: spec.layers.iter().any(|l| matches!(l.mlp, MlpSpec::Moe(_))),
        })
    }
}

/// The family's RMSNorm at `scope`, Gemma's `1 + w` applied.
fn rms(scope: &Scope, spec: &Spec, width: usize, eps: f64) -> Result<RmsNorm, FamilyError> {
    let norm = scope.rms_norm(&format!("{}RMSNorm", spec.class), width, eps)?;
    Ok(if spec.gemma_norm {
        norm.plus_one()
    } else {
        norm
    })
}

impl Layer {
    fn new(l: &Scope, spec: &Spec, layer: &LayerSpec, s: &Sizes) -> Result<Self, FamilyError> {
        let (h, class) = (s.hidden, spec.class);
        let attn = l.pp("self_attn").class(&format!("{class}Attention"));
        let (qkv, o) = match spec.qkv {
            Qkv::Separate { qkv_bias, o_bias } => {
                let qkv = attn.linears(
                    &[
                        ("q_proj", s.q_width),
                        ("k_proj", s.kv_width),
                        ("v_proj", s.kv_width),
                    ],
                    h,
                    qkv_bias,
                )?;
                (qkv, attn.pp("o_proj").linear(s.q_width, h, o_bias)?)
            }
            Qkv::Fused => {
                let o = attn.pp("o_proj").linear(s.q_width, h, false)?;
                let width = s.q_width + 2 * s.kv_width;
                (attn.pp("qkv_proj").linear(h, width, false)?, o)
            }
        };
        let qk_norm = if spec.qk_norm {
            Some((
                rms(&attn.pp("q_norm"), spec, s.head_dim, s.eps)?,
                rms(&attn.pp("k_norm"), spec, s.head_dim, s.eps)?,
            ))
        } else {
            None
        };
        let (mlp, mlp_site) = match &layer.mlp {
            MlpSpec::Gated(inner, bias) => {
                let m = l.pp("mlp").class(&format!("{class}MLP"));
                let names = ["gate_proj", "up_proj", "down_proj"];
                (
                    Mlp::Dense(Gated::new(&m, names, h, *inner, *bias)?),
                    m.site(),
                )
            }
            MlpSpec::Fused(inner) => {
                let m = l.pp("mlp").class(&format!("{class}MLP"));
                (Mlp::Dense(Gated::fused(&m, h, *inner)?), m.site())
            }
            MlpSpec::Moe(moe) => {
                let (m, block) = Moe::new(l, moe, h)?;
                (Mlp::Moe(m), block.site())
            }
        };
        let input_norm = rms(&l.pp("input_layernorm"), spec, h, s.eps)?;
        let post_attn_norm = rms(&l.pp("post_attention_layernorm"), spec, h, s.eps)?;
        let sandwich = if spec.sandwich {
            Some((
                rms(&l.pp("pre_feedforward_layernorm"), spec, h, s.eps)?,
                rms(&l.pp("post_feedforward_layernorm"), spec, h, s.eps)?,
            ))
        } else {
            None
        };
        Ok(Self {
            site: l.site(),
            self_attn: attn.site(),
            qkv,
            o,
            qk_norm,
            window: layer.window,
            rope: layer.rope,
            mlp_site,
            mlp,
            input_norm,
            post_attn_norm,
            sandwich,
        })
    }
}

impl Causal for Decoder {
    /// The final hidden state (normed) of `ids` (sequences of `len`, real lengths `lens`), at the
    /// cache's next positions when there is one (a batch of one, then).
    fn pass(
        &self,
        ids: &[u32],
        lens: &[usize],
        len: usize,
        mut cache: Option<&mut KvCache>,
        rec: &mut Recorder,
    ) -> Result<Vec<f32>, FamilyError> {
        let m = &self.m;
        let mut h = Vec::with_capacity(ids.len() * m.hidden);
        for &id in ids {
            m.embed.push(id as usize, &mut h)?;
        }
        if let Some(scale) = m.embed_scale {
            for v in &mut h {
                *v *= scale;
            }
        }
        rec.record_stream(&m.embed_site, &h);
        let past = cache.as_ref().map_or(0, |c| c.len());
        let tables: Vec<_> = self
            .run
            .ropes
            .iter()
            .map(|r| r.tables_at(past, len))
            .collect();
        let head_dim = m.heads.head_dim;
        let (qw, kvw) = (m.heads.heads * head_dim, m.heads.kv_heads * head_dim);
        let width = qw + 2 * kvw;
        let (q_cols, k_cols, v_cols) = (0..qw, qw..qw + kvw, qw + kvw..width);
        let [mut x, mut qkv, mut ctx]: [Vec<f32>; 3] = Default::default();
        let mut scratch: [Vec<f32>; 2] = Default::default();
        for (i, layer) in m.layers.iter().enumerate() {
            copy(&mut x, &h);
            layer.input_norm.apply(&mut x);
            layer.qkv.forward(&x, &mut qkv);
            if let Some((q_norm, k_norm)) = &layer.qk_norm {
                for row in qkv.chunks_exact_mut(width) {
                    q_norm.apply(&mut row[q_cols.clone()]);
                    k_norm.apply(&mut row[k_cols.clone()]);
                }
            }
            let (cos, sin) = &tables[layer.rope];
            rope::apply(&mut qkv, width, q_cols.clone(), head_dim, len, cos, sin);
            rope::apply(&mut qkv, width, k_cols.clone(), head_dim, len, cos, sin);
            ctx.resize(qkv.len() / width * qw, 0.0);
            let mask = Mask {
                lens,
                causal: true,
                window: layer.window,
                past,
            };
            let all = view(&qkv, width);
            let q = all.slice(s![.., q_cols.clone()]);
            let out = view_mut(&mut ctx, qw);
            if let Some(cache) = cache.as_deref_mut() {
                let (k, v) = cache.extend(i, &qkv, width, k_cols.clone(), v_cols.clone());
                rec.attend(q, k, v, out, len, m.heads, mask);
            } else {
                let (k, v) = (
                    all.slice(s![.., k_cols.clone()]),
                    all.slice(s![.., v_cols.clone()]),
                );
                rec.attend(q, k, v, out, len, m.heads, mask);
            }
            let mut a = rec.buffer();
            layer.o.forward(&ctx, &mut a);
            let a = rec.keep(&layer.self_attn, a);
            if layer.sandwich.is_some() {
                copy(&mut x, rec.kept(a));
                layer.post_attn_norm.apply(&mut x);
                add(&mut h, &x);
            } else {
                add(&mut h, rec.kept(a));
            }
            copy(&mut x, &h);
            match &layer.sandwich {
                Some((pre, _)) => pre.apply(&mut x),
                None => layer.post_attn_norm.apply(&mut x),
            }
            let mut out = rec.buffer();
            let chosen = rec.down_projections(i, |seen| {
                layer
                    .mlp
                    .forward(&x, self.run.act, &mut out, &mut scratch, seen)
            });
            let out = rec.keep(&layer.mlp_site, out);
            if let Some((_, post)) = &layer.sandwich {
                copy(&mut x, rec.kept(out));
                post.apply(&mut x);
                add(&mut h, &x);
            } else {
                add(&mut h, rec.kept(out));
            }
            if m.has_moe {
                let mut chosen = chosen.unwrap_or_default();
                chosen.truncate(lens[0]);
                rec.route(i, chosen);
            }
            rec.record_stream(&layer.site, &h);
            rec.block_done(i + 1, m.layers.len());
        }
        if let Some(cache) = cache {
            cache.advance(len);
        }
        m.norm.apply(&mut h);
        rec.record(&m.norm_site, &h);
        Ok(h)
    }

    fn final_norm(&self, h: &mut [f32]) {
        self.m.norm.apply(h);
    }

    fn lm_head(&self) -> Option<&(Linear, Site)> {
        self.m.lm_head.as_ref()
    }

    fn logit_cap(&self) -> Option<f32> {
        self.m.final_softcap
    }

    fn hidden(&self) -> usize {
        self.m.hidden
    }

    fn cache_size(&self) -> (usize, usize) {
        (self.m.layers.len(), self.positions)
    }
}
