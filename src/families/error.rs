//! Why a family cannot be built or run. Names travel raw; they are escaped where printed.

use thiserror::Error;

use super::config::ConfigError;
use crate::model::budget::TooBig;
use crate::tensor::decode::Undecodable;

/// Why a family cannot be built or run.
#[derive(Debug, Error)]
pub enum FamilyError {
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `model_type` is not one of ours.
    #[error(
        "config.json: model_type {model_type:?} is not a family paramscope runs (it runs {supported}); the tree still shows every tensor"
    )]
    Unsupported {
        /// What config.json names.
        model_type: String,
        /// The `model_type` values paramscope runs, comma-separated.
        supported: String,
    },
    /// A tensor the family needs is absent.
    #[error("no tensor {0} in the checkpoint, which this family needs")]
    Missing(String),
    /// A tensor has another shape than the config implies.
    #[error("tensor {name} has shape {found:?}, but config.json implies {expected:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// What the config implies.
        expected: Vec<usize>,
        /// What the file holds.
        found: Vec<usize>,
    },
    /// A tensor's dtype cannot be read as numbers.
    #[error("tensor {name}: {source}")]
    Unreadable {
        /// The tensor.
        name: String,
        /// Why.
        source: Undecodable,
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
    /// A sequence longer than the model's positions.
    #[error(
        "{len} tokens is more than the model's {max} positions (max_position_embeddings in config.json)"
    )]
    TooLong {
        /// The sequence's length.
        len: usize,
        /// The config's `max_position_embeddings`.
        max: usize,
    },
    /// The pass would need more memory than the budget allows.
    #[error(transparent)]
    TooBig(#[from] TooBig),
}
