//! The messages between the app and its worker: the jobs it is given, the replies it sends, and
//! the plain data those carry. The one thing the state and the worker share, so neither imports
//! the other: nothing here computes, and nothing here imports either side.

use std::path::PathBuf;
use std::sync::Arc;

use ndarray::ArrayD;

use super::error::AppError;
use super::extras::Extras;
use super::probe_view::Probes;
use crate::checkpoint::training::Next;
use crate::compare::diff::{Entry, Rename};
use crate::compare::trajectory::Run;
use crate::families::{Config, Family, FamilyError};
use crate::io::pickle::Scalar;
use crate::model::forward::Activation;
use crate::model::init::InitPlan;
use crate::model::{Model, ParamId};
use crate::tensor::Tensor;
use crate::tensor::decode::Undecodable;
use crate::tensor::stats::Stats;

/// A cache key: a tensor at one version; a re-init bumps the version, so old entries stay valid
/// (they are the "before" of a re-init).
pub type SummaryKey = (ParamId, u64);

/// The quantiles the statistics block shows, in percent.
pub const QUANTILES: [f64; 7] = [1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0];

/// A tensor's statistics, value distribution and quantiles.
pub use crate::tensor::summary::Summary;

/// One layer's output, summarized.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// The layer's path.
    pub path: String,
    /// Its repr.
    pub repr: String,
    /// The output's shape.
    pub shape: Vec<usize>,
    /// Mean of the output.
    pub mean: f64,
    /// Unbiased std of the output.
    pub std: f64,
    /// Fraction of exact zeros (what a ReLU switched off).
    pub zeros: f64,
    /// The largest finite magnitude (what shows a spike).
    pub absmax: f64,
}

impl LayerStats {
    /// One layer's output summarized.
    #[must_use]
    pub fn of(a: &Activation) -> LayerStats {
        let s = a.stats();
        LayerStats {
            path: a.path.clone(),
            repr: a.repr.clone(),
            shape: a.output.shape().to_vec(),
            mean: s.mean,
            std: s.std,
            zeros: s.zero_fraction,
            absmax: f64::from(a.absmax()),
        }
    }
}

/// A candidate next token of a causal LM.
#[derive(Debug, Clone, PartialEq)]
pub struct NextToken {
    /// Its id.
    pub id: u32,
    /// Its text as the vocabulary spells it (raw; escaped where drawn).
    pub text: String,
    /// Its probability.
    pub prob: f32,
}

/// What a forward pass produced.
#[derive(Debug, Clone)]
pub struct ForwardResult {
    /// The input's shape.
    pub input_shape: Vec<usize>,
    /// The model's output.
    pub output: ArrayD<f32>,
    /// Every layer's output, summarized, in order (for a family: the blocks and the modules
    /// around them, not what is inside a block).
    pub layers: Vec<LayerStats>,
    /// A causal LM's most likely next tokens after the text, most likely first.
    pub next: Vec<NextToken>,
    /// A sentence-transformers folder's embedding norm.
    pub embedding_norm: Option<f64>,
    /// A family run's probes: the lens, massive activations, one layer's attention.
    pub probes: Option<Box<Probes>>,
    /// What a causal LM says after the text (boxed: most results have none, and the reply
    /// carrying a result stays small).
    pub said: Option<Box<Said>>,
}

/// A causal LM's greedy continuation of the text, and a mixture's choices for its last token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Said {
    /// The continuation (raw; escaped where drawn): what a re-init or an edit does to what the
    /// model says.
    pub continuation: String,
    /// A mixture of experts' choices for the text's last token, per layer (none for a dense one).
    pub experts: Vec<Vec<u32>>,
}

/// Where the forward pass takes its input.
#[derive(Debug, Clone)]
pub enum Input {
    /// `torch.rand(batch, in_features)` after `torch.manual_seed(seed)`.
    Random {
        /// Rows of the batch.
        batch: usize,
        /// The seed.
        seed: u64,
    },
    /// An `.npy` array given with `--input`.
    File {
        /// The file name, for the panel's title.
        name: String,
        /// Its values.
        array: ArrayD<f32>,
    },
}

/// How to open a model: what the user typed, and an architecture text to bind it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSpec {
    /// A `MODEL` argument: `demo:rgnet` or a path.
    pub model: String,
    /// `--arch FILE`, if given.
    pub arch: Option<PathBuf>,
    /// The seed of a demo or an architecture text.
    pub seed: u64,
}

/// A model opened, and what the user should be told about how.
pub struct Opened {
    /// The model.
    pub model: Model,
    /// Notices: an architecture found beside the file, the loader's warnings.
    pub notices: Vec<String>,
    /// How `f` runs it.
    pub runs: Runs,
    /// The checkpoint's metadata and plain values.
    pub extras: Extras,
}

/// How `f` runs the loaded model.
#[derive(Debug, Clone, Default)]
pub enum Runs {
    /// As a chain of layers (or an architecture text), on a random batch or `--input`.
    #[default]
    Chain,
    /// As its family's code, on a text.
    Family(Arc<FamilyCheckpoint>),
    /// Not at all: `config.json` names a family paramscope does not run, or cannot be read.
    Refused(Arc<FamilyError>),
}

/// What a family pass needs beyond the tensors.
#[derive(Debug)]
pub struct FamilyCheckpoint {
    /// The architecture.
    pub family: Family,
    /// Its `config.json`.
    pub config: Config,
    /// The folder holding `tokenizer.json` (and a sentence-transformers pooling).
    pub folder: PathBuf,
    /// The GGUF file the model came from, whose metadata holds its tokenizer, when it is one.
    pub gguf: Option<PathBuf>,
}

impl Runs {
    /// The checkpoint when the model runs as a family.
    #[must_use]
    pub fn family(&self) -> Option<&FamilyCheckpoint> {
        match self {
            Runs::Family(checkpoint) => Some(checkpoint),
            _ => None,
        }
    }
}

/// Which Δ: the tree node (tied paths of A may meet different tensors in B) and A's version.
pub type DetailKey = (usize, SummaryKey);

/// Where the second model comes from.
pub enum Second {
    /// Opened on the worker, as `MODEL` would be.
    Open(OpenSpec),
    /// Already open (a re-diff after A changed), with its source.
    Model(String, Box<Model>),
}

/// What the worker sends back for a comparison.
pub struct Compared {
    /// B as the user typed it.
    pub source: String,
    /// The second model.
    pub b: Model,
    /// The renames that matched the names (see `compare::diff::guess_renames`).
    pub renames: Vec<Rename>,
    /// One entry per state_dict key of A, in order, then the names only B has.
    pub entries: Vec<Entry>,
    /// Per entry, B's tensor under that name.
    pub b_ids: Vec<Option<ParamId>>,
}

/// The B side and the Δ of one selected tensor.
pub struct Detail {
    /// B's tensor.
    pub b: Tensor,
    /// Its summary.
    pub b_summary: Result<Summary, Undecodable>,
    /// B − A in f32 with its summary, or why there is none.
    pub delta: Result<(Tensor, Result<Summary, Undecodable>), NoDelta>,
}

/// Why a compared tensor has no Δ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDelta {
    /// The shapes differ, or a dtype does not decode.
    Incomparable,
    /// The Δ and its assembly would not fit in the memory available.
    TooBig,
}

impl NoDelta {
    /// What the tensor pane says in place of the Δ.
    #[must_use]
    pub fn why(self) -> &'static str {
        match self {
            NoDelta::Incomparable => "no Δ: the shapes differ or do not decode",
            NoDelta::TooBig => "no Δ: it would not fit in the memory available",
        }
    }
}

/// What the tensor pane shows of a quantized weight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Part {
    /// Its dequantized values.
    #[default]
    Values,
    /// Its stored codes, unpacked along the weight.
    Codes,
    /// Its scales, one row per output row where the scheme has rows of them.
    Scales,
    /// Its zero points, laid out as its scales (GPTQ, AWQ, asymmetric compressed-tensors).
    Zeros,
}

impl Part {
    /// The part after this one, for a weight with zero points (`zeros`) or without.
    #[must_use]
    pub fn next(self, zeros: bool) -> Part {
        match self {
            Part::Values => Part::Codes,
            Part::Codes => Part::Scales,
            Part::Scales if zeros => Part::Zeros,
            Part::Scales | Part::Zeros => Part::Values,
        }
    }

    /// How the pane's title names it.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Part::Values => "dequantized",
            Part::Codes => "codes",
            Part::Scales => "scales",
            Part::Zeros => "zero points",
        }
    }
}

/// Which part of which weight: the weight's version (a re-init makes it another) and the part.
pub type PartKey = (SummaryKey, Part);

/// A tensor by state_dict key, in the checkpoint of this index of a followed run.
pub type CheckpointKey = (String, usize);

/// A tensor the worker made or read for a view, with its summary: a quantized weight's codes,
/// scales or zero points, or a tensor as another checkpoint of a followed run holds it.
pub struct PartDetail {
    /// The part, laid out along the weight.
    pub tensor: Tensor,
    /// Its statistics, histogram and quantiles.
    pub summary: Result<Summary, Undecodable>,
}

/// A parameter's optimizer state with its next update, and the statistics the tensor pane shows.
pub struct Optimizer {
    /// The state, the update `step()` would make with a zero gradient, and its ratio.
    pub next: Next,
    /// Each state tensor's statistics by name (as stored), then the update's.
    pub stats: Vec<(&'static str, Result<Stats, Undecodable>)>,
}

/// Slow work for the worker.
pub enum Job {
    /// Statistics and histograms of the tensor versions one screen shows (a tensor, and its
    /// state before a re-init), in order, each under its cache key.
    Summarize {
        /// The cache keys and the tensors (their bytes are shared, not copied).
        tensors: Vec<(SummaryKey, Tensor)>,
    },
    /// A forward pass.
    Forward {
        /// A snapshot of the model as it is now (an O(1) clone: the tree and store are shared).
        model: Model,
        /// Which load of the app this model is: a plan made for another load is not reused.
        load: u64,
        /// The input.
        input: Input,
        /// The panel's run number.
        generation: u64,
    },
    /// A forward pass of a family checkpoint on a text.
    Family {
        /// A snapshot of the model as it is now (an O(1) clone: the tree and store are shared).
        model: Model,
        /// Which load of the app this model is.
        load: u64,
        /// The family, its config and its folder.
        checkpoint: Arc<FamilyCheckpoint>,
        /// The text.
        text: String,
        /// The attention layer whose weights the panel shows.
        attention_layer: usize,
        /// The panel's run number.
        generation: u64,
    },
    /// One element of a tensor set to 0, the new tensor coming back as a re-init's do.
    Zero {
        /// A snapshot of the model as it is now.
        model: Model,
        /// The tensor.
        id: ParamId,
        /// The element's flat index (C order).
        flat: usize,
        /// What is done, for the status line and the undo record.
        label: String,
    },
    /// A re-initialization, drawn on a copy of the model whose new tensors come back.
    Init {
        /// What is done, for the status line and the undo record.
        label: String,
        /// A snapshot of the model as it is now (an O(1) clone: the tree and store are shared).
        model: Model,
        /// The module the plan applies to.
        path: String,
        /// The schemes and seed.
        plan: InitPlan,
    },
    /// Saving the model; without `overwrite`, an existing file is asked about first.
    Save {
        /// The model to write.
        model: Model,
        /// Where.
        path: PathBuf,
        /// Whether replacing an existing file was confirmed.
        overwrite: bool,
    },
    /// Loading another model.
    Load(OpenSpec),
    /// Comparing the model with a second one, opening it first when asked to.
    Compare {
        /// A snapshot of the model as it is now (an O(1) clone: the tree and store are shared).
        a: Model,
        /// The second model.
        b: Second,
        /// The comparison's number: the reply of an outdated one is dropped.
        generation: u64,
    },
    /// The B side and the Δ of one compared tensor.
    Detail {
        /// The tree node and A's tensor version.
        key: DetailKey,
        /// A's tensor.
        a: Tensor,
        /// B's tensor.
        b: Tensor,
    },
    /// The codes or the scales of a quantized weight.
    Part {
        /// The weight's version and the part.
        key: PartKey,
        /// The weight (its stored parts are shared, not copied).
        weight: Tensor,
    },
    /// A job about what training left behind.
    Training(TrainingJob),
}

/// Slow work about what training left behind.
pub enum TrainingJob {
    /// A parameter's optimizer state and next update.
    Optimizer {
        /// The parameter's version.
        key: SummaryKey,
        /// A snapshot of the model (the state tensors are among its tensors).
        model: Model,
        /// The checkpoint's plain values, the optimizer's `param_groups` among them.
        values: Arc<[(String, Scalar)]>,
        /// The parameter's state_dict key.
        name: String,
    },
    /// One tensor as a checkpoint of the followed run holds it.
    Checkpoint {
        /// The tensor's state_dict key and the checkpoint's index in the run.
        key: CheckpointKey,
        /// The checkpoint, as the user named it.
        spec: String,
        /// The seed of a demo or an architecture text.
        seed: u64,
    },
    /// Following every tensor across a run's checkpoints.
    Trajectory {
        /// The checkpoints, in order, as the user named them.
        checkpoints: Vec<String>,
        /// The seed of a demo or an architecture text among them.
        seed: u64,
    },
}

/// What the worker tells the app.
pub enum Reply {
    /// A summary is this far along (0 to 1).
    SummaryProgress(SummaryKey, f64),
    /// A summary is done.
    Summary(SummaryKey, Result<Summary, Undecodable>),
    /// A forward pass has run this many layers of all of them.
    ForwardProgress(u64, usize, usize),
    /// A forward pass is done.
    Forward(u64, Result<ForwardResult, AppError>),
    /// A re-init is done (its label echoed): the new tensors, or why it failed.
    Init(String, Result<Vec<(ParamId, Tensor)>, AppError>),
    /// The file exists and was not written; the user must confirm.
    SaveExists(PathBuf),
    /// The model was written, or why not.
    Saved(Result<PathBuf, AppError>),
    /// Another model is loaded.
    Loaded(String, Result<Box<Opened>, AppError>),
    /// A comparison is done (its number echoed), or why it failed.
    Compared(u64, Result<Box<Compared>, AppError>),
    /// The B side and Δ of the tensor version asked for.
    Detail(DetailKey, Box<Detail>),
    /// The codes or the scales asked for.
    Part(PartKey, Box<PartDetail>),
    /// A parameter's optimizer state (`None`: the optimizer keeps none for it), or why it
    /// cannot be told.
    Optimizer(SummaryKey, Result<Option<Box<Optimizer>>, AppError>),
    /// A trajectory has followed this many tensors of all of them.
    TrajectoryProgress(usize, usize),
    /// A trajectory is done, or why it failed.
    Trajectory(Result<Box<Run>, AppError>),
    /// A tensor of a checkpoint of the run, with its summary, or why it cannot be shown.
    Checkpoint(CheckpointKey, Result<Box<PartDetail>, AppError>),
    /// A tensor's values could not be read (fetched or put together), and why.
    Unread(AppError),
    /// A job panicked (its message): its own reply never comes.
    Panicked(String),
}
