//! BERT (`model_type: bert`): embeddings, post-norm encoder layers, GELU MLP; the last hidden state
//! is the output (what sentence-transformers pools).

use std::cell::RefCell;

use ndarray::{ArrayD, IxDyn, s};

use super::attention::{self, Heads, Mask};
use super::batch::Batch;
use super::blueprint::{Blueprint, Forward};
use super::config::Config;
use super::error::FamilyError;
use super::ops::{Activation, Norm, view, view_mut};
use super::record::{Recorder, Site};
use super::scope::Scope;
use super::weights::{Embedding, Linear};

/// BERT in the dispatch table.
pub(super) static BLUEPRINT: Blueprint = Blueprint {
    name: "BERT",
    model_types: &["bert"],
    causal: false,
    modules: |scope, c| Modules::new(scope, c).map(drop),
    forward: |scope, c| Ok(Box::new(Plan::new(scope, c)?)),
};

thread_local! {
    /// A pass's working buffers that the recorder does not keep (QKV, attention context), kept for
    /// the thread's next pass: a batch of 8 × 128 tokens needs ~6 MB of them, and fresh memory
    /// every pass cost its page faults and zeroing.
    static SCRATCH: RefCell<[Vec<f32>; 2]> = RefCell::default();
}

/// BERT ready to run: its settings and modules.
#[derive(Debug)]
struct Plan {
    act: Activation,
    m: Modules,
}

/// BERT's modules as transformers registers them, with their weights.
#[derive(Debug)]
struct Modules {
    heads: Heads,
    embeddings: Site,
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: Norm,
    layers: Vec<Layer>,
}

#[derive(Debug)]
struct Layer {
    site: Site,
    /// Query, key and value in one product: `[q | k | v]` side by side.
    qkv: Linear,
    attention: Site,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Site,
    up: Linear,
    output: Site,
    down: Linear,
    output_norm: Norm,
}

struct Sizes {
    hidden: usize,
    heads: usize,
    layers: usize,
    intermediate: usize,
    vocab: usize,
    positions: usize,
    types: usize,
    eps: f64,
}

fn sizes(c: &Config) -> Result<Sizes, FamilyError> {
    let shape = c.attention_shape()?;
    Ok(Sizes {
        hidden: shape.hidden,
        heads: shape.heads,
        layers: Config::need("num_hidden_layers", c.num_hidden_layers)?,
        intermediate: Config::need("intermediate_size", c.intermediate_size)?,
        vocab: Config::need("vocab_size", c.vocab_size)?,
        positions: Config::need(
            "max_position_embeddings",
            c.max_position_embeddings.or(Some(512)),
        )?,
        types: Config::need("type_vocab_size", c.type_vocab_size.or(Some(2)))?,
        eps: c.layer_norm_eps.unwrap_or(1e-12),
    })
}

impl Plan {
    fn new(scope: &Scope, c: &Config) -> Result<Self, FamilyError> {
        Ok(Self {
            act: Activation::of("hidden_act", c.hidden_act.as_deref(), "gelu")?,
            m: Modules::new(scope, c)?,
        })
    }
}

impl Modules {
    fn new(top: &Scope, c: &Config) -> Result<Self, FamilyError> {
        let s = sizes(c)?;
        let h = s.hidden;
        // A task model (`BertForMaskedLM`...) stores the encoder under `bert.`.
        let outer = c
            .architectures
            .first()
            .map_or("BertPreTrainedModel", String::as_str);
        let (_, bert) = top.base(
            "bert",
            "embeddings.word_embeddings.weight",
            outer,
            "BertModel",
        );
        let e = bert.pp("embeddings").class("BertEmbeddings");
        let pad = c.pad_token_id.as_ref().and_then(serde_json::Value::as_u64);
        let word = e.pp("word_embeddings").embedding(s.vocab, h, pad)?;
        let position = e
            .pp("position_embeddings")
            .embedding(s.positions, h, None)?;
        let token_type = e.pp("token_type_embeddings").embedding(s.types, h, None)?;
        let norm = e.pp("LayerNorm").layer_norm(h, s.eps)?;
        e.buffers(&["position_ids", "token_type_ids"]);
        let list = bert.pp("encoder").class("BertEncoder").pp("layer").list();
        let layers = (0..s.layers)
            .map(|i| Layer::new(&list.pp(i).class("BertLayer"), &s))
            .collect::<Result<_, _>>()?;
        // The pooler is registered, but the sentence embedding pools the last hidden state itself.
        let pooler = bert.pp("pooler").class("BertPooler").tree_only();
        pooler.pp("dense").linear(h, h, true)?;
        Ok(Self {
            heads: Heads::new(s.heads, s.heads, h / s.heads),
            embeddings: e.site(),
            word,
            position,
            token_type,
            norm,
            layers,
        })
    }
}

impl Layer {
    fn new(l: &Scope, s: &Sizes) -> Result<Self, FamilyError> {
        let (h, eps) = (s.hidden, s.eps);
        let attention = l.pp("attention").class("BertAttention");
        let qkv = attention.pp("self").class("BertSelfAttention").linears(
            &[("query", h), ("key", h), ("value", h)],
            h,
            true,
        )?;
        let out = attention.pp("output").class("BertSelfOutput");
        let attention_out = out.pp("dense").linear(h, h, true)?;
        let attention_norm = out.pp("LayerNorm").layer_norm(h, eps)?;
        let intermediate = l.pp("intermediate").class("BertIntermediate");
        let up = intermediate.pp("dense").linear(h, s.intermediate, true)?;
        let output = l.pp("output").class("BertOutput");
        let down = output.pp("dense").linear(s.intermediate, h, true)?;
        let output_norm = output.pp("LayerNorm").layer_norm(h, eps)?;
        Ok(Self {
            site: l.site(),
            qkv,
            attention: attention.site(),
            attention_out,
            attention_norm,
            intermediate: intermediate.site(),
            up,
            output: output.site(),
            down,
            output_norm,
        })
    }
}

impl Forward for Plan {
    /// The last hidden state `[batch, len, hidden]`, recording embeddings, each layer, its
    /// attention, intermediate and output.
    fn run(&self, batch: &Batch, rec: &mut Recorder) -> Result<ArrayD<f32>, FamilyError> {
        let (len, m) = (batch.len, &self.m);
        m.position.check_positions(len)?;
        let h_width = m.norm.width();
        let mut h = rec.buffer();
        h.clear();
        for (r, &id) in batch.ids.iter().enumerate() {
            m.word.push(id as usize, &mut h)?;
            let row = h.len() - h_width..;
            // token_type_ids default to zeros, position_ids to 0..len.
            m.token_type.add(0, &mut h[row.clone()])?;
            m.position.add(r % len, &mut h[row])?;
        }
        m.norm.apply(&mut h);
        let mut h = rec.keep(&m.embeddings, h);
        let mask = Mask {
            lens: &batch.lens,
            causal: false,
            window: None,
            past: 0,
        };
        let [mut qkv, mut ctx] = SCRATCH.take();
        // Each sublayer writes its output into the buffer the recorder keeps, and the next reads
        // it from there: the only copy is a layer's output, which is also its BertOutput's.
        for (i, layer) in m.layers.iter().enumerate() {
            layer.qkv.forward(rec.kept(h), &mut qkv);
            ctx.resize(qkv.len() / 3, 0.0);
            let all = view(&qkv, 3 * h_width);
            attention::attend(
                all.slice(s![.., ..h_width]),
                all.slice(s![.., h_width..2 * h_width]),
                all.slice(s![.., 2 * h_width..]),
                view_mut(&mut ctx, h_width),
                len,
                m.heads,
                mask,
            );
            let mut a = rec.buffer();
            layer.attention_out.forward(&ctx, &mut a);
            layer.attention_norm.add_and_apply(&mut a, rec.kept(h));
            let a = rec.keep(&layer.attention, a);
            let mut mid = rec.buffer();
            layer.up.forward(rec.kept(a), &mut mid);
            self.act.apply(&mut mid);
            let mid = rec.keep(&layer.intermediate, mid);
            let mut out = rec.buffer();
            layer.down.forward(rec.kept(mid), &mut out);
            layer.output_norm.add_and_apply(&mut out, rec.kept(a));
            let out = rec.keep(&layer.output, out);
            h = rec.record_kept(&layer.site, out);
            rec.block_done(i + 1, m.layers.len());
        }
        SCRATCH.set([qkv, ctx]);
        let h = rec.kept(h).to_vec();
        Ok(
            ArrayD::from_shape_vec(IxDyn(&[batch.size(), len, h_width]), h)
                .expect("batch·len·hidden"),
        )
    }
}
