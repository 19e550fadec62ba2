//! GPT-2 (`model_type: gpt2`): pre-norm blocks, a fused QKV `Conv1D` (weights stored [in, out]),
//! the tanh GELU, and a final LayerNorm; the LM head is tied to the token embedding unless stored.

use ndarray::s;

use super::attention::{Heads, Mask};
use super::blueprint::Blueprint;
use super::causal::Causal;
use super::config::Config;
use super::error::FamilyError;
use super::generate::KvCache;
use super::ops::{Activation, Norm, add, copy, view, view_mut};
use super::record::{Recorder, Site};
use super::scope::Scope;
use super::weights::{Embedding, Linear};

/// GPT-2 in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "GPT-2",
    model_types: &["gpt2"],
    causal: true,
    modules: |scope, c| Modules::new(scope, c).map(drop),
    forward: |scope, c| Ok(Box::new(Plan::new(scope, c)?)),
};

/// GPT-2 ready to run: its settings and modules.
#[derive(Debug)]
struct Plan {
    act: Activation,
    m: Modules,
}

/// GPT-2's modules as transformers registers them, with their weights.
#[derive(Debug)]
struct Modules {
    hidden: usize,
    wte: Embedding,
    wte_site: Site,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: Norm,
    ln_f_site: Site,
    lm_head: Option<(Linear, Site)>,
}

#[derive(Debug)]
struct Block {
    site: Site,
    ln_1: Norm,
    attn: Site,
    c_attn: Linear,
    attn_proj: Linear,
    heads: Heads,
    ln_2: Norm,
    mlp: Site,
    c_fc: Linear,
    mlp_proj: Linear,
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

impl Plan {
    fn new(scope: &Scope, c: &Config) -> Result<Self, FamilyError> {
        Ok(Self {
            act: Activation::of("activation_function", c.hidden_act.as_deref(), "gelu_new")?,
            m: Modules::new(scope, c)?,
        })
    }
}

impl Modules {
    fn new(top: &Scope, c: &Config) -> Result<Self, FamilyError> {
        let s = sizes(c)?;
        let h = s.hidden;
        // `GPT2LMHeadModel`'s file stores the base model under `transformer.`.
        let (root, base) = top.base("transformer", "wte.weight", "GPT2LMHeadModel", "GPT2Model");
        let wte_scope = base.pp("wte");
        let wte = wte_scope.embedding(s.vocab, h, None)?;
        let wpe = base.pp("wpe").embedding(s.positions, h, None)?;
        let list = base.pp("h").list();
        let blocks = (0..s.layers)
            .map(|i| Block::new(&list.pp(i).class("GPT2Block"), &s, i, c))
            .collect::<Result<_, _>>()?;
        let ln_f_scope = base.pp("ln_f");
        let ln_f = ln_f_scope.layer_norm(h, s.eps)?;
        // A language model computes its head even when it is tied and not stored.
        let is_lm =
            base.path() != root.path() || c.architectures.iter().any(|a| a.contains("LMHead"));
        let head = root.pp("lm_head");
        let lm_head = if root.has("lm_head.weight") {
            Some(head.linear(h, s.vocab, false)?)
        } else if c.tie_word_embeddings.unwrap_or(true) && is_lm {
            Some(head.linear_of(&wte_scope, h, s.vocab)?)
        } else {
            None
        };
        Ok(Self {
            hidden: h,
            wte,
            wte_site: wte_scope.site(),
            wpe,
            blocks,
            ln_f,
            ln_f_site: ln_f_scope.site(),
            lm_head: lm_head.map(|l| (l, head.site())),
        })
    }
}

impl Block {
    fn new(b: &Scope, s: &Sizes, i: usize, c: &Config) -> Result<Self, FamilyError> {
        let h = s.hidden;
        let mut heads = Heads::new(s.heads, s.heads, h / s.heads);
        if c.scale_attn_weights == Some(false) {
            heads.scale = 1.0;
        }
        if c.scale_attn_by_inverse_layer_idx == Some(true) {
            heads.scale /= (i + 1) as f32;
        }
        let ln_1 = b.pp("ln_1").layer_norm(h, s.eps)?;
        let attn = b.pp("attn").class("GPT2Attention");
        attn.buffers(&["bias", "masked_bias"]);
        let c_attn = attn.pp("c_attn").conv1d(h, 3 * h)?;
        let attn_proj = attn.pp("c_proj").conv1d(h, h)?;
        let ln_2 = b.pp("ln_2").layer_norm(h, s.eps)?;
        let mlp = b.pp("mlp").class("GPT2MLP");
        let c_fc = mlp.pp("c_fc").conv1d(h, s.inner)?;
        let mlp_proj = mlp.pp("c_proj").conv1d(s.inner, h)?;
        Ok(Self {
            site: b.site(),
            ln_1,
            attn: attn.site(),
            c_attn,
            attn_proj,
            heads,
            ln_2,
            mlp: mlp.site(),
            c_fc,
            mlp_proj,
        })
    }
}

impl Causal for Plan {
    /// The final hidden state (after ln_f) of `ids` (sequences of `len`, real lengths `lens`), at
    /// the cache's next positions when there is one (a batch of one, then).
    fn pass(
        &self,
        ids: &[u32],
        lens: &[usize],
        len: usize,
        mut cache: Option<&mut KvCache>,
        rec: &mut Recorder,
    ) -> Result<Vec<f32>, FamilyError> {
        let m = &self.m;
        let c = m.hidden;
        let past = cache.as_ref().map_or(0, |cache| cache.len());
        m.wpe.check_positions(past + len)?;
        let mut h = Vec::with_capacity(ids.len() * c);
        for &id in ids {
            m.wte.push(id as usize, &mut h)?;
        }
        rec.record(&m.wte_site, &h);
        for (r, row) in h.chunks_exact_mut(c).enumerate() {
            m.wpe.add(past + r % len, row)?;
        }
        rec.residual(&m.wte_site, &h);
        let mask = Mask {
            past,
            ..Mask::causal(lens, None)
        };
        let [mut x, mut qkv, mut ctx, mut mid]: [Vec<f32>; 4] = Default::default();
        for (i, block) in m.blocks.iter().enumerate() {
            copy(&mut x, &h);
            block.ln_1.apply(&mut x);
            block.c_attn.forward(&x, &mut qkv);
            let fused = view(&qkv, 3 * c);
            ctx.resize(h.len(), 0.0);
            let q = fused.slice(s![.., ..c]);
            let out = view_mut(&mut ctx, c);
            if let Some(cache) = cache.as_deref_mut() {
                let (k, v) = cache.extend(i, &qkv, 3 * c, c..2 * c, 2 * c..3 * c);
                rec.attend(q, k, v, out, len, block.heads, mask);
            } else {
                let (k, v) = (fused.slice(s![.., c..2 * c]), fused.slice(s![.., 2 * c..]));
                rec.attend(q, k, v, out, len, block.heads, mask);
            }
            let mut a = rec.buffer();
            block.attn_proj.forward(&ctx, &mut a);
            let a = rec.keep(&block.attn, a);
            add(&mut h, rec.kept(a));
            copy(&mut x, &h);
            block.ln_2.apply(&mut x);
            block.c_fc.forward(&x, &mut mid);
            self.act.apply(&mut mid);
            let mut out = rec.buffer();
            block.mlp_proj.forward(&mid, &mut out);
            let out = rec.keep(&block.mlp, out);
            add(&mut h, rec.kept(out));
            rec.record_stream(&block.site, &h);
            rec.block_done(i + 1, m.blocks.len());
        }
        if let Some(cache) = cache {
            cache.advance(len);
        }
        m.ln_f.apply(&mut h);
        rec.record(&m.ln_f_site, &h);
        Ok(h)
    }

    fn final_norm(&self, h: &mut [f32]) {
        self.m.ln_f.apply(h);
    }

    fn lm_head(&self) -> Option<&(Linear, Site)> {
        self.m.lm_head.as_ref()
    }

    fn logit_cap(&self) -> Option<f32> {
        None
    }

    fn hidden(&self) -> usize {
        self.m.hidden
    }

    fn cache_size(&self) -> (usize, usize) {
        (self.m.blocks.len(), self.m.wpe.count())
    }
}
