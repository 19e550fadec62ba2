//! Model families run as code: BERT, GPT-2, and Llama (which also serves Mistral and Qwen2), each a
//! forward over tensors found by their Hugging Face names, chosen by `config.json`'s `model_type`.
//!
//! A family gives the checkpoint its real structure ([`structure`]: PyTorch's module classes and
//! state_dict order) and a [`Plan`]: weights upcast to f32 and packed once, run on a batch of token
//! ids, recording every module boundary's output as the same [`Activation`] list the Sequential
//! plan produces, under the paths the tree shows.

pub mod attention;
mod bert;
pub mod config;
mod gpt2;
mod llama;
pub mod ops;
pub mod predict;
mod record;
pub mod rope;
pub mod sentence;
pub mod structure;
pub mod tokenize;
mod weights;

use ndarray::ArrayD;
use thiserror::Error;

pub use config::{Config, ConfigError};
pub use record::Recorder;

use crate::model::Model;
use crate::model::forward::Activation;
use crate::text::escape;

/// The `model_type` values run as code, for messages.
pub const SUPPORTED: &str = "bert, gpt2, llama, mistral, qwen2";

/// Why a family cannot be built or run.
#[derive(Debug, Error)]
pub enum FamilyError {
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `model_type` is not one of ours.
    #[error(
        "config.json: model_type {0:?} is not a family paramscope runs (it runs {SUPPORTED}); the tree still shows every tensor"
    )]
    Unsupported(String),
    /// A tensor the family needs is absent.
    #[error("no tensor {} in the checkpoint, which this family needs", escape(.0))]
    Missing(String),
    /// A tensor has another shape than the config implies.
    #[error("tensor {} has shape {found:?}, but config.json implies {expected:?}", escape(.name))]
    Shape {
        /// The tensor.
        name: String,
        /// What the config implies.
        expected: Vec<usize>,
        /// What the file holds.
        found: Vec<usize>,
    },
    /// A tensor's dtype cannot be read as numbers.
    #[error("tensor {}: {reason}", escape(.name))]
    Unreadable {
        /// The tensor.
        name: String,
        /// Why.
        reason: String,
    },
    /// A token id past the embedding table.
    #[error("token id {id} is out of range: the embedding has {count} rows")]
    TokenRange {
        /// The id.
        id: usize,
        /// The table's rows.
        count: usize,
    },
    /// The batch does not fit the model.
    #[error("{0}")]
    Input(String),
}

/// A supported architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `bert`: an encoder.
    Bert,
    /// `gpt2`.
    Gpt2,
    /// `llama`, `mistral`, `qwen2`: the same decoder with flags.
    Llama,
}

impl Family {
    /// The family a config names; `Ok(None)` when it names no `model_type` at all.
    pub fn detect(config: &Config) -> Result<Option<Self>, FamilyError> {
        match config.model_type.as_deref() {
            None => Ok(None),
            Some("bert") => Ok(Some(Self::Bert)),
            Some("gpt2") => Ok(Some(Self::Gpt2)),
            Some("llama" | "mistral" | "qwen2") => Ok(Some(Self::Llama)),
            Some(other) => Err(FamilyError::Unsupported(other.to_owned())),
        }
    }

    /// Whether the family predicts the next token (and so has logits and top-k).
    #[must_use]
    pub fn is_causal(self) -> bool {
        self != Self::Bert
    }
}

/// Token ids of a batch, right-padded to one length, with each sequence's real length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `batch × len` ids in C order; padding positions hold `pad`.
    pub ids: Vec<u32>,
    /// The real length of each sequence.
    pub lens: Vec<usize>,
    /// The padded length.
    pub len: usize,
}

impl Batch {
    /// Pads `sequences` on the right with `pad`; refuses an empty batch or an empty sequence.
    pub fn new(sequences: &[Vec<u32>], pad: u32) -> Result<Self, FamilyError> {
        if sequences.is_empty() || sequences.iter().any(Vec::is_empty) {
            return Err(FamilyError::Input(
                "every sequence needs at least one token".into(),
            ));
        }
        let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(len * sequences.len());
        for s in sequences {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad, len - s.len()));
        }
        Ok(Self {
            ids,
            lens: sequences.iter().map(Vec::len).collect(),
            len,
        })
    }

    /// The number of sequences.
    #[must_use]
    pub fn size(&self) -> usize {
        self.lens.len()
    }
}

/// What a pass produced.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Every module boundary's output, in execution order, under its tree path.
    pub activations: Vec<Activation>,
    /// The model's output: the last hidden state `[batch, len, hidden]` for an encoder, the logits
    /// `[batch, len, vocab]` for a causal LM.
    pub output: ArrayD<f32>,
}

/// A family's model ready to run: its weights read, upcast and packed once.
#[derive(Debug, Clone)]
pub enum Plan {
    /// BERT.
    Bert(bert::Plan),
    /// GPT-2.
    Gpt2(gpt2::Plan),
    /// Llama, Mistral, Qwen2.
    Llama(llama::Plan),
}

impl Plan {
    /// Reads the weights `config` implies from `model`.
    pub fn new(family: Family, model: &Model, config: &Config) -> Result<Self, FamilyError> {
        Ok(match family {
            Family::Bert => Self::Bert(bert::Plan::new(model, config)?),
            Family::Gpt2 => Self::Gpt2(gpt2::Plan::new(model, config)?),
            Family::Llama => Self::Llama(llama::Plan::new(model, config)?),
        })
    }

    /// Runs the batch, recording every module boundary.
    pub fn run(&self, batch: &Batch) -> Result<Pass, FamilyError> {
        self.run_with_progress(batch, &mut |_, _| {})
    }

    /// [`run`](Self::run), telling `progress` (blocks done, blocks in all) after each block.
    pub fn run_with_progress(
        &self,
        batch: &Batch,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Pass, FamilyError> {
        self.record(batch, Recorder::new(batch.size(), batch.len, progress))
    }

    /// [`run`](Self::run), writing into the buffers of `last`, an earlier pass's result: what a
    /// loop of passes (`forward --repeat`, the app re-running a model) does, so that it touches
    /// no fresh memory once the batch's shape is set.
    pub fn rerun(&self, batch: &Batch, last: Pass) -> Result<Pass, FamilyError> {
        let mut progress = |_, _| {};
        let spare = last.activations;
        self.record(
            batch,
            Recorder::reusing(batch.size(), batch.len, &mut progress, spare),
        )
    }

    fn record(&self, batch: &Batch, mut recorder: Recorder) -> Result<Pass, FamilyError> {
        let output = match self {
            Self::Bert(p) => p.run(batch, &mut recorder)?,
            Self::Gpt2(p) => p.run(batch, &mut recorder)?,
            Self::Llama(p) => p.run(batch, &mut recorder)?,
        };
        Ok(Pass {
            activations: recorder.into_activations(),
            output,
        })
    }

    /// Whether the plan predicts tokens (logits and top-k) rather than encoding.
    #[must_use]
    pub fn is_causal(&self) -> bool {
        !matches!(self, Self::Bert(_))
    }

    /// Whether `model`'s tensors are still those the plan read (no re-init since).
    #[must_use]
    pub fn is_current(&self, model: &Model) -> bool {
        let versions = match self {
            Self::Bert(p) => &p.versions,
            Self::Gpt2(p) => &p.versions,
            Self::Llama(p) => &p.versions,
        };
        versions
            .iter()
            .all(|&(id, v)| id.0 < model.store.len() && model.store.version(id) == v)
    }
}
