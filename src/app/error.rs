//! Why something in the app failed, typed until the status bar (or `main`) turns it into words.

use thiserror::Error;

use crate::checkpoint::OpenError;
use crate::io::safetensors::FileError;
use crate::model::LookupError;
use crate::model::forward::ForwardError;
use crate::model::init::InitError;
use crate::tensor::decode::Undecodable;

/// Everything the app can report as failed.
#[derive(Debug, Error)]
pub enum AppError {
    /// A model could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
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
    /// A tensor's bytes cannot be read as numbers.
    #[error("{0}")]
    Undecodable(#[from] Undecodable),
    /// The model has a module whose computation is unknown.
    #[error(
        "cannot run {}: only chains of Linear and activation layers run without an architecture; give --arch FILE (the text print(model) shows) or put NAME.arch.txt beside the checkpoint",
        if .0.is_empty() { "the model".to_owned() } else { format!("module {}", crate::text::escape(.0)) }
    )]
    NeedsArchitecture(String),
    /// A forward pass failed for another reason.
    #[error("{0}")]
    Forward(ForwardError),
    /// A scheme or its arguments are not valid, or do not fit a tensor.
    #[error("{0}")]
    Init(#[from] InitError),
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
}

impl From<ForwardError> for AppError {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::UnknownModule { path, .. } => AppError::NeedsArchitecture(path),
            other => AppError::Forward(other),
        }
    }
}
