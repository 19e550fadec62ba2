//! BERT (`model_type: bert`): embeddings, post-norm encoder layers, GELU MLP; the last hidden state
//! is the output (what sentence-transformers pools).

use std::cell::RefCell;
use std::collections::HashSet;

use ndarray::{ArrayD, IxDyn, s};

use super::attention::{self, Heads, Mask, view, view_mut};
use super::config::Config;
use super::ops::{self, Activation};
use super::structure::{Node, wrap};
use super::weights::{Embedding, Linear, Weights};
use super::{Batch, FamilyError, Recorder};
use crate::model::{Model, ParamId};

thread_local! {
    /// A pass's working buffers that the recorder does not keep (QKV, attention context), kept for
    /// the thread's next pass: a batch of 8 × 128 tokens needs ~6 MB of them, and fresh memory
    /// every pass cost its page faults and zeroing.
    static SCRATCH: RefCell<[Vec<f32>; 2]> = RefCell::default();
}

/// BERT's weights, read and packed.
#[derive(Debug, Clone)]
pub struct Plan {
    prefix: String,
    heads: Heads,
    act: Activation,
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: Norm,
    layers: Vec<Layer>,
    pub(super) versions: Vec<(ParamId, u64)>,
}

#[derive(Debug, Clone)]
struct Layer {
    /// Query, key and value in one product: `[q | k | v]` side by side.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// A LayerNorm's weight, bias and eps.
#[derive(Debug, Clone)]
pub(super) struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    pub(super) fn read(
        w: &mut Weights,
        path: &str,
        width: usize,
        eps: f64,
    ) -> Result<Self, FamilyError> {
        Ok(Self {
            weight: w.get(&format!("{path}.weight"), &[width])?,
            bias: w.get(&format!("{path}.bias"), &[width])?,
            eps: eps as f32,
        })
    }

    pub(super) fn apply(&self, x: &mut [f32]) {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps);
    }

    /// `x += residual`, then [`Self::apply`], row blocks shared across threads (a batch's
    /// post-norm sublayer ends).
    fn add_and_apply(&self, x: &mut [f32], residual: &[f32]) {
        /// Multiply-adds' worth per value: the add, two passes of moments and the scaling.
        const COST: usize = 4;
        ops::in_parts(x, self.weight.len(), COST, &|offset, part| {
            add(part, &residual[offset..offset + part.len()]);
            self.apply(part);
        });
    }
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

fn activation(c: &Config) -> Result<Activation, FamilyError> {
    let name = c.hidden_act.as_deref().unwrap_or("gelu");
    Activation::from_name(name).ok_or_else(|| {
        FamilyError::Input(format!(
            "config.json: hidden_act {:?} is not supported (gelu, gelu_new, gelu_pytorch_tanh, silu, relu are)",
            crate::text::escape(name)
        ))
    })
}

/// `bert.` when the checkpoint is a task model (`BertForMaskedLM`...), else nothing.
fn find_prefix(has: impl Fn(&str) -> bool) -> String {
    ["", "bert."]
        .into_iter()
        .find(|p| has(&format!("{p}embeddings.word_embeddings.weight")))
        .unwrap_or("")
        .to_owned()
}

impl Plan {
    pub(super) fn new(model: &Model, c: &Config) -> Result<Self, FamilyError> {
        let s = sizes(c)?;
        let act = activation(c)?;
        let mut w = Weights::new(model);
        let p = find_prefix(|n| w.has(n));
        let h = s.hidden;
        let mut layers = Vec::with_capacity(s.layers);
        for i in 0..s.layers {
            let l = format!("{p}encoder.layer.{i}");
            layers.push(Layer {
                qkv: w.linear_stack(
                    &[
                        &format!("{l}.attention.self.query"),
                        &format!("{l}.attention.self.key"),
                        &format!("{l}.attention.self.value"),
                    ],
                    h,
                    &[h, h, h],
                    true,
                )?,
                attention_out: w.linear(&format!("{l}.attention.output.dense"), h, h, true)?,
                attention_norm: Norm::read(
                    &mut w,
                    &format!("{l}.attention.output.LayerNorm"),
                    h,
                    s.eps,
                )?,
                intermediate: w.linear(
                    &format!("{l}.intermediate.dense"),
                    h,
                    s.intermediate,
                    true,
                )?,
                output: w.linear(&format!("{l}.output.dense"), s.intermediate, h, true)?,
                output_norm: Norm::read(&mut w, &format!("{l}.output.LayerNorm"), h, s.eps)?,
            });
        }
        let e = format!("{p}embeddings");
        Ok(Self {
            heads: Heads::new(s.heads, s.heads, h / s.heads),
            act,
            word: Embedding::read(&mut w, &format!("{e}.word_embeddings"), s.vocab, h)?,
            position: Embedding::read(&mut w, &format!("{e}.position_embeddings"), s.positions, h)?,
            token_type: Embedding::read(&mut w, &format!("{e}.token_type_embeddings"), s.types, h)?,
            norm: Norm::read(&mut w, &format!("{e}.LayerNorm"), h, s.eps)?,
            layers,
            versions: w.versions,
            prefix: p,
        })
    }

    /// The last hidden state `[batch, len, hidden]`, recording embeddings, each layer, its
    /// attention, intermediate and output.
    pub(super) fn run(
        &self,
        batch: &Batch,
        rec: &mut Recorder,
    ) -> Result<ArrayD<f32>, FamilyError> {
        let len = batch.len;
        self.position.check_positions(len)?;
        let p = &self.prefix;
        let mut h = rec.buffer();
        h.clear();
        for (r, &id) in batch.ids.iter().enumerate() {
            self.word.push(id as usize, &mut h)?;
            let row = h.len() - self.norm.weight.len()..;
            // token_type_ids default to zeros, position_ids to 0..len.
            self.token_type.add(0, &mut h[row.clone()])?;
            self.position.add(r % len, &mut h[row])?;
        }
        self.norm.apply(&mut h);
        let mut h = rec.keep(&format!("{p}embeddings"), "BertEmbeddings", h);
        let mask = Mask {
            lens: &batch.lens,
            causal: false,
            window: None,
        };
        let [mut qkv, mut ctx] = SCRATCH.take();
        let h_width = self.norm.weight.len();
        // Each sublayer writes its output into the buffer the recorder keeps, and the next reads
        // it from there: the only copy is a layer's output, which is also its BertOutput's.
        for (i, layer) in self.layers.iter().enumerate() {
            let l = format!("{p}encoder.layer.{i}");
            layer.qkv.forward(rec.kept(h), &mut qkv);
            ctx.resize(qkv.len() / 3, 0.0);
            let all = view(&qkv, 3 * h_width);
            attention::attend(
                all.slice(s![.., ..h_width]),
                all.slice(s![.., h_width..2 * h_width]),
                all.slice(s![.., 2 * h_width..]),
                view_mut(&mut ctx, h_width),
                len,
                self.heads,
                mask,
            );
            let mut a = rec.buffer();
            layer.attention_out.forward(&ctx, &mut a);
            layer.attention_norm.add_and_apply(&mut a, rec.kept(h));
            let a = rec.keep(&format!("{l}.attention"), "BertAttention", a);
            let mut mid = rec.buffer();
            layer.intermediate.forward(rec.kept(a), &mut mid);
            self.act.apply(&mut mid);
            let mid = rec.keep(&format!("{l}.intermediate"), "BertIntermediate", mid);
            let mut out = rec.buffer();
            layer.output.forward(rec.kept(mid), &mut out);
            layer.output_norm.add_and_apply(&mut out, rec.kept(a));
            let out = rec.keep(&format!("{l}.output"), "BertOutput", out);
            h = rec.record_kept(&l, "BertLayer", out);
            rec.block_done(i + 1, self.layers.len());
        }
        SCRATCH.set([qkv, ctx]);
        let h = rec.kept(h).to_vec();
        let width = self.norm.weight.len();
        Ok(
            ArrayD::from_shape_vec(IxDyn(&[batch.size(), len, width]), h)
                .expect("batch·len·hidden"),
        )
    }
}

/// `a += b`, element by element (a residual connection).
pub(super) fn add(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// BERT's modules as transformers registers them.
pub(super) fn skeleton(c: &Config, names: &HashSet<String>) -> Result<Node, FamilyError> {
    let s = sizes(c)?;
    let p = find_prefix(|n| names.contains(n));
    let h = s.hidden;
    let pad = c.pad_token_id.as_ref().and_then(serde_json::Value::as_u64);
    let embeddings = Node::class(
        "embeddings",
        "BertEmbeddings",
        vec![
            Node::embedding("word_embeddings", s.vocab, h, pad),
            Node::embedding("position_embeddings", s.positions, h, None),
            Node::embedding("token_type_embeddings", s.types, h, None),
            Node::layer_norm("LayerNorm", h, s.eps),
        ],
    )
    .with_buffers(&["position_ids", "token_type_ids"]);
    let layer = |i: usize| {
        let attention = Node::class(
            "attention",
            "BertAttention",
            vec![
                Node::class(
                    "self",
                    "BertSelfAttention",
                    vec![
                        Node::linear("query", h, h, true),
                        Node::linear("key", h, h, true),
                        Node::linear("value", h, h, true),
                    ],
                ),
                Node::class(
                    "output",
                    "BertSelfOutput",
                    vec![
                        Node::linear("dense", h, h, true),
                        Node::layer_norm("LayerNorm", h, s.eps),
                    ],
                ),
            ],
        );
        Node::class(
            i.to_string(),
            "BertLayer",
            vec![
                attention,
                Node::class(
                    "intermediate",
                    "BertIntermediate",
                    vec![Node::linear("dense", h, s.intermediate, true)],
                ),
                Node::class(
                    "output",
                    "BertOutput",
                    vec![
                        Node::linear("dense", s.intermediate, h, true),
                        Node::layer_norm("LayerNorm", h, s.eps),
                    ],
                ),
            ],
        )
    };
    let model = Node::class(
        p.trim_end_matches('.'),
        "BertModel",
        vec![
            embeddings,
            Node::class(
                "encoder",
                "BertEncoder",
                vec![Node::list("layer", (0..s.layers).map(layer).collect())],
            ),
            Node::class(
                "pooler",
                "BertPooler",
                vec![Node::linear("dense", h, h, true)],
            ),
        ],
    );
    Ok(wrap(model, &p, c, "BertPreTrainedModel"))
}
