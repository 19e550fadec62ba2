//! Why a subcommand failed: every layer's typed error, and the few the command line adds. The text
//! is made once, in `main`, where it is escaped for the terminal.

use std::path::PathBuf;

use thiserror::Error;

use crate::checkpoint::OpenError;
use crate::compare::adapter::LoraError;
use crate::compare::diff::DiffError;
use crate::families::FamilyError;
use crate::families::sentence::SentenceError;
use crate::families::tokenize::TokenizeError;
use crate::io::FileError;
use crate::model::LookupError;
use crate::model::forward::ForwardError;
use crate::model::init::InitError;
use crate::tensor::FetchError;
use crate::tensor::decode::Undecodable;

/// A subcommand's failure.
#[derive(Debug, Error)]
pub enum CliError {
    /// The MODEL could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A remote tensor's bytes could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A name or path that leads nowhere.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// A re-initialization that cannot be done.
    #[error(transparent)]
    Init(#[from] InitError),
    /// A scheme flag that does not parse.
    #[error("--{flag} {value}: {source}")]
    Scheme {
        /// `weight` or `bias`.
        flag: &'static str,
        /// What was given.
        value: String,
        /// Why it does not parse.
        source: InitError,
    },
    /// `init` found nothing to write.
    #[error(
        "no Linear layer under {0:?}: nothing to initialize (paramscope tree lists the modules)"
    )]
    NothingToInit(String),
    /// A forward pass that cannot run.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// A family's forward pass that cannot run.
    #[error(transparent)]
    Family(#[from] FamilyError),
    /// A probe or edit that cannot be done.
    #[error(transparent)]
    Probe(#[from] crate::families::probe::ProbeError),
    /// Text that cannot be tokenized.
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    /// A sentence-transformers folder that cannot be read.
    #[error(transparent)]
    Sentence(#[from] SentenceError),
    /// Two models that cannot be compared.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// A LoRA update that cannot be computed.
    #[error(transparent)]
    Lora(#[from] LoraError),
    /// Values that cannot be read as numbers.
    #[error(transparent)]
    Undecodable(#[from] Undecodable),
    /// An output file that cannot be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Arguments that do not fit the model (the sentence says how).
    #[error("{0}")]
    Arguments(String),
}
