//! Why something in the app failed, typed until the status bar (or `main`) turns it into words.
//! Names and paths are carried raw: they are escaped where those words are drawn.

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::checkpoint::OpenError;
use crate::families::FamilyError;
use crate::families::sentence::SentenceError;
use crate::families::tokenize::TokenizeError;
use crate::io::FileError;
use crate::model::LookupError;
use crate::model::forward::ForwardError;
use crate::model::init::InitError;
use crate::tensor::FetchError;
use crate::tensor::decode::Undecodable;

/// Everything the app can report as failed.
#[derive(Debug, Error)]
pub enum AppError {
    /// A model could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A remote model's tensors could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The `--input` array could not be read (the error names the file).
    #[error("--input {0}")]
    Input(FileError),
    /// `--select` names nothing in the model.
    #[error("--select: {0}")]
    Select(#[from] LookupError),
    /// `--select` names something the tree does not show.
    #[error("--select: {0:?} is not in the module tree")]
    NotInTree(String),
    /// The terminal could not be set up or drawn on.
    #[error("the terminal: {0}")]
    Terminal(#[from] std::io::Error),
    /// The worker thread is gone.
    #[error("the worker thread stopped")]
    WorkerGone,
    /// A job on the worker panicked; the worker went on with the next.
    #[error("a bug stopped the job (please report it): {0}")]
    WorkerPanicked(String),
    /// A tensor's bytes cannot be read as numbers.
    #[error("{0}")]
    Undecodable(#[from] Undecodable),
    /// The model has a module whose computation is unknown.
    #[error(
        "cannot run {}: only chains of Linear and activation layers run without an architecture; give --arch FILE (the text print(model) shows) or put NAME.arch.txt beside the checkpoint",
        if .0.is_empty() { "the model".to_owned() } else { format!("module {}", .0) }
    )]
    NeedsArchitecture(String),
    /// A forward pass failed for another reason.
    #[error("{0}")]
    Forward(ForwardError),
    /// A scheme or its arguments are not valid, or do not fit a tensor.
    #[error("{0}")]
    Init(#[from] InitError),
    /// The re-init dialog's scheme field holds text no scheme's name holds.
    #[error("no scheme has {0:?} in its name")]
    NoScheme(String),
    /// The output path is a symbolic link: writing would replace its target.
    #[error("{} is a link: give another name", .0.display())]
    IsLink(PathBuf),
    /// A re-init found nothing to write.
    #[error("no Linear layer under {0}: nothing to initialize")]
    NothingToInit(String),
    /// The typed seed is not a whole number.
    #[error("seed {0:?} is not a whole number")]
    BadSeed(String),
    /// Neither weights nor biases were chosen.
    #[error("choose weights, biases, or both")]
    NoTarget,
    /// The write prompt was left empty.
    #[error("type a path to write to")]
    NoPath,
    /// Two models cannot be compared.
    #[error("{0}")]
    Diff(#[from] crate::compare::diff::DiffError),
    /// Writing the model failed (the error names the file).
    #[error("{0}")]
    Save(#[from] FileError),
    /// A family checkpoint could not be built or run (an unknown `model_type` names the
    /// families paramscope runs).
    #[error("{0}")]
    Family(#[from] FamilyError),
    /// The same, found when the model was opened and kept for every `f`.
    #[error("{0}")]
    FamilyRefused(Arc<FamilyError>),
    /// The forward panel's text could not be tokenized.
    #[error("{0}")]
    Tokenize(TokenizeError),
    /// The folder has no tokenizer for the forward panel's text.
    #[error("{}: no tokenizer.json beside the checkpoint, so the forward panel cannot tokenize a text", .0.display())]
    NoTokenizer(PathBuf),
    /// A sentence-transformers folder's pooling could not be read.
    #[error("{0}")]
    Sentence(#[from] SentenceError),
    /// The forward panel's text was left empty.
    #[error("type a text to run the model on")]
    NoText,
    /// An optimizer's state cannot be put beside the parameters.
    #[error("optimizer state: {0}")]
    Optimizer(#[from] crate::checkpoint::training::OptimizerError),
    /// `--trajectory` names fewer than two checkpoints.
    #[error(
        "a trajectory needs two checkpoints or more; {0} is one (give several MODELs, or a folder of checkpoint-N or step_N subfolders)"
    )]
    OneCheckpoint(String),
    /// A checkpoint of the followed run does not hold the tensor shown.
    #[error("{checkpoint} has no tensor {name}")]
    NotInCheckpoint {
        /// The tensor's state_dict key (raw).
        name: String,
        /// The checkpoint, as the user named it (raw).
        checkpoint: String,
    },
}

impl From<TokenizeError> for AppError {
    fn from(e: TokenizeError) -> Self {
        match e {
            TokenizeError::Absent(folder) => AppError::NoTokenizer(folder),
            other => AppError::Tokenize(other),
        }
    }
}

impl From<ForwardError> for AppError {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::UnknownModule { path, .. } => AppError::NeedsArchitecture(path),
            other => AppError::Forward(other),
        }
    }
}
