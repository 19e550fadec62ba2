//! The worker's side of a family checkpoint's pass on a text, and of a causal LM's greedy
//! continuation of it. The family plan (weights upcast and packed)
//! is kept across passes until a re-init, an undo or a load, as the chain's plan is; the
//! tokenizer until a load.

use ndarray::s;

use super::kept::keep_or_make;
use super::probes;
use crate::app::error::AppError;
use crate::app::job::{FamilyCheckpoint, ForwardResult, LayerStats, NextToken, Said};
use crate::families::probe::Probe;
use crate::families::sentence::Pooling;
use crate::families::tokenize::TextTokenizer;
use crate::families::{Batch, Plan, Stop, gguf_tokenizer, predict};
use crate::model::Model;
use crate::model::forward::Activation;

/// How many next tokens the panel lists.
pub const TOP_K: usize = 5;

/// How many tokens the panel's greedy continuation runs to.
pub const CONTINUATION: usize = 12;

/// What the worker keeps between text passes.
#[derive(Default)]
pub struct Kept {
    /// The plan and the load it was made for.
    plan: Option<(u64, Plan)>,
    /// The tokenizer and pooling of a load.
    text: Option<(u64, TextTokenizer, Option<Pooling>)>,
}

impl Kept {
    /// Runs `checkpoint` on `text` with `model`'s tensors, keeping `attention_layer`'s weights
    /// whole, telling `progress` each block done; `built` counts the plans made.
    #[expect(
        clippy::too_many_arguments,
        reason = "the job's fields, the progress callback and the plan count"
    )]
    pub fn run(
        &mut self,
        model: &Model,
        load: u64,
        checkpoint: &FamilyCheckpoint,
        text: &str,
        attention_layer: usize,
        progress: &mut dyn FnMut(usize, usize),
        built: &mut usize,
    ) -> Result<ForwardResult, AppError> {
        if self.text.as_ref().is_none_or(|(l, ..)| *l != load) {
            self.text = None;
            let tokenizer = match &checkpoint.gguf {
                Some(file) => gguf_tokenizer::open(file)?,
                None => TextTokenizer::open(&checkpoint.folder)?,
            };
            let pooling = if checkpoint.family.is_causal() {
                None
            } else {
                Pooling::detect(&checkpoint.folder)?
            };
            self.text = Some((load, tokenizer, pooling));
        }
        let plan = keep_or_make(
            &mut self.plan,
            load,
            |plan| plan.is_current(model),
            || Plan::new(checkpoint.family, model, &checkpoint.config).map_err(AppError::from),
            built,
        )?;
        let (_, tokenizer, pooling) = self.text.as_ref().expect("just made");
        let ids = tokenizer.encode(text)?;
        let batch = Batch::new(std::slice::from_ref(&ids), 0)?;
        let mut probe = Probe::new(probes::want(plan.is_causal(), attention_layer));
        let pass = plan.run_probed_with_progress(&batch, &mut probe, progress)?;
        let next = if plan.is_causal() && pass.output.ndim() == 3 {
            let row = pass.output.slice(s![0, batch.len - 1, ..]).to_vec();
            predict::top_k(&row, TOP_K)
                .into_iter()
                .map(|c| NextToken {
                    id: c.id,
                    // As the token reads in text (` The`, a newline), not as the vocabulary
                    // spells it (`ĠThe`, `Ċ`); the edge shows a newline as `\n`.
                    text: tokenizer.reads(c.id).unwrap_or_default(),
                    prob: c.prob,
                })
                .collect()
        } else {
            Vec::new()
        };
        let said = if next.is_empty() {
            None
        } else {
            let eos = checkpoint.config.eos_ids();
            // A text already past the model's positions still shows its pass; the panel says
            // why there is no continuation.
            let continuation = match plan.generate(&batch.ids, CONTINUATION, &eos, &mut |_| {}) {
                Ok(g) => {
                    let text = tokenizer.decode(&g.ids).unwrap_or_default();
                    match g.stop {
                        Stop::Positions(p) => {
                            format!("{text} … (the model's {p} positions end here)")
                        }
                        Stop::Length | Stop::Eos => text,
                    }
                }
                Err(e) => format!("({e})"),
            };
            let experts = pass
                .experts
                .iter()
                .map(|layer| layer.last().cloned().unwrap_or_default())
                .collect();
            Some(Box::new(Said {
                continuation,
                experts,
            }))
        };
        let embedding_norm = pooling.as_ref().map(|p| {
            let e = p.embed(&pass.output, &batch.lens);
            e.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt()
        });
        let logits = pass.output.as_slice().unwrap_or_default();
        let probes = Box::new(probes::read(
            plan,
            model,
            (logits, probe),
            tokenizer,
            &ids,
            TOP_K,
        ));
        Ok(ForwardResult {
            input_shape: vec![1, batch.len],
            layers: outermost(&pass.activations).map(LayerStats::of).collect(),
            output: pass.output,
            next,
            embedding_norm,
            probes: Some(probes),
            said,
        })
    }
}

/// The activations not inside another recorded module: the embeddings, each block, the final
/// norm and head, in execution order.
fn outermost(all: &[Activation]) -> impl Iterator<Item = &Activation> {
    all.iter().filter(|a| {
        !all.iter().any(|outer| {
            !outer.path.is_empty()
                && a.path.len() > outer.path.len()
                && a.path.starts_with(outer.path.as_str())
                && a.path.as_bytes()[outer.path.len()] == b'.'
        })
    })
}
