//! GPT-2 (`model_type: gpt2`): pre-norm blocks, a fused QKV `Conv1D` (weights stored [in, out]),
//! the tanh GELU, and a final LayerNorm; the LM head is tied to the token embedding unless stored.

use std::collections::HashSet;

use ndarray::{ArrayD, IxDyn, s};

use super::attention::{self, Heads, Mask, view, view_mut};
use super::bert::{Norm, add};
use super::config::Config;
use super::ops::Activation;
use super::structure::Node;
use super::weights::{Embedding, Linear, Weights};
use super::{Batch, FamilyError, Recorder};
use crate::model::{Model, ParamId};

/// GPT-2's weights, read and packed.
#[derive(Debug, Clone)]
pub struct Plan {
    prefix: String,
    hidden: usize,
    act: Activation,
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: Norm,
    lm_head: Option<Linear>,
    pub(super) versions: Vec<(ParamId, u64)>,
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: Norm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: Norm,
    c_fc: Linear,
    mlp_proj: Linear,
    heads: Heads,
}

struct Sizes {
    hidden: usize,
    heads: usize,
    layers: usize,
    inner: usize,
    vocab: usize,
    positions: usize,
    eps: f64,
}

fn sizes(c: &Config) -> Result<Sizes, FamilyError> {
    let shape = c.attention_shape()?;
    Ok(Sizes {
        hidden: shape.hidden,
        heads: shape.heads,
        layers: Config::need("n_layer", c.num_hidden_layers)?,
        inner: Config::need(
            "n_inner",
            Some(c.intermediate_size.unwrap_or(4 * shape.hidden)),
        )?,
        vocab: Config::need("vocab_size", c.vocab_size)?,
        positions: Config::need("n_positions", c.max_position_embeddings)?,
        eps: c.layer_norm_eps.unwrap_or(1e-5),
    })
}

/// `transformer.` when the checkpoint is `GPT2LMHeadModel`'s, else nothing.
fn find_prefix(has: impl Fn(&str) -> bool) -> String {
    ["", "transformer."]
        .into_iter()
        .find(|p| has(&format!("{p}wte.weight")))
        .unwrap_or("")
        .to_owned()
}

impl Plan {
    pub(super) fn new(model: &Model, c: &Config) -> Result<Self, FamilyError> {
        let s = sizes(c)?;
        let act_name = c.hidden_act.as_deref().unwrap_or("gelu_new");
        let act = Activation::from_name(act_name).ok_or_else(|| {
            FamilyError::Input(format!(
                "config.json: activation_function {:?} is not supported",
                crate::text::escape(act_name)
            ))
        })?;
        let mut w = Weights::new(model);
        let p = find_prefix(|n| w.has(n));
        let h = s.hidden;
        let head_dim = h / s.heads;
        let mut blocks = Vec::with_capacity(s.layers);
        for i in 0..s.layers {
            let b = format!("{p}h.{i}");
            let mut heads = Heads::new(s.heads, s.heads, head_dim);
            if c.scale_attn_weights == Some(false) {
                heads.scale = 1.0;
            }
            if c.scale_attn_by_inverse_layer_idx == Some(true) {
                heads.scale /= (i + 1) as f32;
            }
            blocks.push(Block {
                ln_1: Norm::read(&mut w, &format!("{b}.ln_1"), h, s.eps)?,
                c_attn: w.conv1d(&format!("{b}.attn.c_attn"), h, 3 * h)?,
                attn_proj: w.conv1d(&format!("{b}.attn.c_proj"), h, h)?,
                ln_2: Norm::read(&mut w, &format!("{b}.ln_2"), h, s.eps)?,
                c_fc: w.conv1d(&format!("{b}.mlp.c_fc"), h, s.inner)?,
                mlp_proj: w.conv1d(&format!("{b}.mlp.c_proj"), s.inner, h)?,
                heads,
            });
        }
        // GPT-2 ties the head to wte unless the config says otherwise.
        let lm_head = if w.has("lm_head.weight") {
            Some(w.linear("lm_head", h, s.vocab, false)?)
        } else if c.tie_word_embeddings.unwrap_or(true) && is_lm(c, &p) {
            Some(w.linear(&format!("{p}wte"), h, s.vocab, false)?)
        } else {
            None
        };
        Ok(Self {
            hidden: h,
            act,
            wte: Embedding::read(&mut w, &format!("{p}wte"), s.vocab, h)?,
            wpe: Embedding::read(&mut w, &format!("{p}wpe"), s.positions, h)?,
            blocks,
            ln_f: Norm::read(&mut w, &format!("{p}ln_f"), h, s.eps)?,
            lm_head,
            versions: w.versions,
            prefix: p,
        })
    }

    /// The logits `[batch, len, vocab]` (the last hidden state for a bare `GPT2Model`), recording
    /// wte, each block, its attention and MLP, and ln_f.
    pub(super) fn run(
        &self,
        batch: &Batch,
        rec: &mut Recorder,
    ) -> Result<ArrayD<f32>, FamilyError> {
        let len = batch.len;
        self.wpe.check_positions(len)?;
        let (p, c) = (&self.prefix, self.hidden);
        let mut h = Vec::new();
        for &id in &batch.ids {
            self.wte.push(id as usize, &mut h)?;
        }
        rec.record(
            &format!("{p}wte"),
            &format!("Embedding({}, {c})", self.wte.count()),
            &h,
        );
        for (r, row) in h.chunks_exact_mut(c).enumerate() {
            self.wpe.add(r % len, row)?;
        }
        let mask = Mask {
            lens: &batch.lens,
            causal: true,
            window: None,
        };
        let [mut x, mut qkv, mut ctx, mut mid]: [Vec<f32>; 4] = Default::default();
        for (i, block) in self.blocks.iter().enumerate() {
            let b = format!("{p}h.{i}");
            copy(&mut x, &h);
            block.ln_1.apply(&mut x);
            block.c_attn.forward(&x, &mut qkv);
            let fused = view(&qkv, 3 * c);
            ctx.resize(h.len(), 0.0);
            attention::attend(
                fused.slice(s![.., ..c]),
                fused.slice(s![.., c..2 * c]),
                fused.slice(s![.., 2 * c..]),
                view_mut(&mut ctx, c),
                len,
                block.heads,
                mask,
            );
            let mut a = rec.buffer();
            block.attn_proj.forward(&ctx, &mut a);
            let a = rec.keep(&format!("{b}.attn"), "GPT2Attention", a);
            add(&mut h, rec.kept(a));
            copy(&mut x, &h);
            block.ln_2.apply(&mut x);
            block.c_fc.forward(&x, &mut mid);
            self.act.apply(&mut mid);
            let mut m = rec.buffer();
            block.mlp_proj.forward(&mid, &mut m);
            let m = rec.keep(&format!("{b}.mlp"), "GPT2MLP", m);
            add(&mut h, rec.kept(m));
            rec.record(&b, "GPT2Block", &h);
            rec.block_done(i + 1, self.blocks.len());
        }
        self.ln_f.apply(&mut h);
        rec.record(&format!("{p}ln_f"), "LayerNorm", &h);
        let mut out = h;
        if let Some(head) = &self.lm_head {
            let mut logits = Vec::new();
            head.forward(&out, &mut logits);
            rec.record("lm_head", "Linear", &logits);
            out = logits;
        }
        let width = out.len() / (batch.size() * len);
        Ok(
            ArrayD::from_shape_vec(IxDyn(&[batch.size(), len, width]), out)
                .expect("batch·len·width"),
        )
    }
}

/// Whether the checkpoint is a language model (`GPT2LMHeadModel`), whose head is computed even when
/// tied and not stored.
fn is_lm(c: &Config, prefix: &str) -> bool {
    !prefix.is_empty() || c.architectures.iter().any(|a| a.contains("LMHead"))
}

/// `dst = src`, reusing `dst`'s allocation.
pub(super) fn copy(dst: &mut Vec<f32>, src: &[f32]) {
    dst.clear();
    dst.extend_from_slice(src);
}

/// GPT-2's modules as transformers registers them.
pub(super) fn skeleton(c: &Config, names: &HashSet<String>) -> Result<Node, FamilyError> {
    let s = sizes(c)?;
    let p = find_prefix(|n| names.contains(n));
    let h = s.hidden;
    let conv = |name: &str, nx: usize, nf: usize| {
        Node::leaf(
            name,
            "Conv1D",
            format!("Conv1D(nf={nf}, nx={nx})"),
            &["weight", "bias"],
        )
    };
    let block = |i: usize| {
        Node::class(
            i.to_string(),
            "GPT2Block",
            vec![
                Node::layer_norm("ln_1", h, s.eps),
                Node::class(
                    "attn",
                    "GPT2Attention",
                    vec![conv("c_attn", h, 3 * h), conv("c_proj", h, h)],
                )
                .with_buffers(&["bias", "masked_bias"]),
                Node::layer_norm("ln_2", h, s.eps),
                Node::class(
                    "mlp",
                    "GPT2MLP",
                    vec![conv("c_fc", h, s.inner), conv("c_proj", s.inner, h)],
                ),
            ],
        )
    };
    let base = Node::class(
        p.trim_end_matches('.'),
        "GPT2Model",
        vec![
            Node::embedding("wte", s.vocab, h, None),
            Node::embedding("wpe", s.positions, h, None),
            Node::list("h", (0..s.layers).map(block).collect()),
            Node::layer_norm("ln_f", h, s.eps),
        ],
    );
    if p.is_empty() {
        // A head stored beside unprefixed names (rare) still shows; an absent one is left out.
        let mut base = base;
        base.push(Node::linear("lm_head", h, s.vocab, false));
        return Ok(base);
    }
    Ok(Node::class(
        "",
        "GPT2LMHeadModel",
        vec![base, Node::linear("lm_head", h, s.vocab, false)],
    ))
}
