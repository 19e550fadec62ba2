//! Probes: what a forward pass can be asked to keep beyond its module outputs, for every family
//! through the same hooks on the [`Recorder`](super::Recorder): the residual stream at each
//! `hidden_states` boundary, each layer's post-softmax attention (summarized, or whole), and each
//! MLP's `down_proj` peaks; and what is computed from them: the logit lens, massive activations,
//! super weights, and the zero-and-rerun edits.
//!
//! A family takes part by calling `rec.residual`, `rec.attend` and `rec.down_projections` where its
//! stream passes, and by giving its final norm and head through [`Forward::head`](super::Forward);
//! nothing here knows which family ran.

pub mod attention;
pub mod down;
pub mod lens;
pub mod massive;
pub mod super_weight;
pub mod zero;

use thiserror::Error;

pub use attention::{HeadMap, LayerMap};
pub use down::DownPeak;

use crate::model::LookupError;
use crate::tensor::decode::Undecodable;

/// Which attention weights a probe keeps whole (`[heads, queries, keys]` of text 0), beside the
/// per-head entropy and sink it always keeps when attention is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weights {
    /// None: summaries only.
    #[default]
    None,
    /// Every layer's (`--attention-full`).
    All,
    /// One layer's: what the app shows, so that a long text holds one layer's weights, not all.
    Layer(usize),
}

/// What a probe records on a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// The residual stream at every `hidden_states` boundary (lens, massive activations).
    pub residuals: bool,
    /// Per-head entropy and sink of every layer's attention.
    pub attention: bool,
    /// Which layers' attention weights are kept whole.
    pub weights: Weights,
    /// Each MLP's `down_proj` input and output peaks (super weights).
    pub down_proj: bool,
}

/// The residual stream at one `hidden_states` boundary: the embeddings (l = 0) or a block's
/// output, before the final norm.
#[derive(Debug, Clone)]
pub struct Residual {
    /// The module whose output it is (`model.embed_tokens`, `model.layers.3`).
    pub path: String,
    /// `batch·len × hidden`, C order.
    pub values: Vec<f32>,
}

/// What to record on a pass, and what the pass recorded.
#[derive(Debug, Default)]
pub struct Probe {
    /// What to record.
    pub want: Want,
    /// The sequences and padded length of the last pass.
    pub(crate) lens: Vec<usize>,
    pub(crate) len: usize,
    /// The residual stream at each boundary, embeddings first.
    pub residuals: Vec<Residual>,
    /// Each layer's attention over text 0, in layer order.
    pub attention: Vec<LayerMap>,
    /// Each layer's `down_proj` peaks, in layer order.
    pub down: Vec<DownPeak>,
    /// The last pass's residual buffers, last first, which the next pass's are copied into.
    spare: Vec<Vec<f32>>,
}

impl Probe {
    /// A probe that records `want`.
    #[must_use]
    pub fn new(want: Want) -> Self {
        Self {
            want,
            ..Self::default()
        }
    }

    /// Forgets the last pass's recordings before a pass over sequences of `lens`, padded to `len`.
    pub(crate) fn start(&mut self, lens: &[usize], len: usize) {
        self.lens = lens.to_vec();
        self.len = len;
        self.spare
            .extend(self.residuals.drain(..).rev().map(|r| r.values));
        self.attention.clear();
        self.down.clear();
    }

    /// The real length of text 0.
    #[must_use]
    pub fn first_len(&self) -> usize {
        self.lens.first().copied().unwrap_or(0)
    }

    /// Keeps the residual stream `h` (`batch·len × hidden`) at the boundary `path`.
    pub(crate) fn residual(&mut self, path: &str, h: &[f32]) {
        if self.want.residuals {
            let mut values = self.spare.pop().unwrap_or_default();
            values.clear();
            values.extend_from_slice(h);
            self.residuals.push(Residual {
                path: path.to_owned(),
                values,
            });
        }
    }
}

/// Why a probe or an edit cannot be done.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// A `--zero` spec that does not parse.
    #[error("--zero {spec}: {why}")]
    Spec {
        /// What was given.
        spec: String,
        /// Why it does not parse.
        why: &'static str,
    },
    /// A tensor that is not there.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// An index past the tensor's shape, or a tensor that is not 2-D.
    #[error("--zero {spec}: the tensor has shape {shape:?}")]
    Index {
        /// What was given.
        spec: String,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// A tensor whose values cannot be rewritten.
    #[error("--zero {spec}: {source}")]
    Unreadable {
        /// What was given.
        spec: String,
        /// Why.
        source: Undecodable,
    },
    /// A probe a model cannot give (no LM head for a lens, no `down_proj` for super weights).
    #[error("{0}")]
    Unsupported(&'static str),
}
