//! Why a family cannot be built or run. Names travel raw; they are escaped where printed.

use thiserror::Error;

use super::config::{ConfigError, Origin};
use crate::model::budget::TooBig;
use crate::tensor::decode::Undecodable;

/// Why a family cannot be built or run.
#[derive(Debug, Error)]
pub enum FamilyError {
    /// The config is unusable: the file unread, or a field, named with where it was read.
    #[error("{}", config_message(*origin, source))]
    Config {
        /// Where the config's fields were read.
        origin: Origin,
        /// Why.
        source: ConfigError,
    },
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
    #[error("tensor {name} has shape {found:?}, but {origin} implies {expected:?}")]
    Shape {
        /// Where the config's fields were read.
        origin: Origin,
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
        "{len} tokens is more than the model's {max} positions ({} in {origin})",
        origin.positions_field()
    )]
    TooLong {
        /// Where the config's fields were read.
        origin: Origin,
        /// The sequence's length.
        len: usize,
        /// The config's `max_position_embeddings`.
        max: usize,
    },
    /// The pass would need more memory than the budget allows.
    #[error(transparent)]
    TooBig(#[from] TooBig),
}

/// A field's error after where it was read; a file's (unread, not JSON) names the file already.
fn config_message(origin: Origin, source: &ConfigError) -> String {
    match source {
        ConfigError::Field { .. } => format!("{origin}: {source}"),
        ConfigError::Read { .. } | ConfigError::Json { .. } => source.to_string(),
    }
}

/// The family code that finds a field wrong holds the config's fields, not where they were read:
/// `config.json`, unless the entry point that knows says otherwise ([`FamilyError::read_from`]).
impl From<ConfigError> for FamilyError {
    fn from(source: ConfigError) -> Self {
        Self::Config {
            origin: Origin::ConfigJson,
            source,
        }
    }
}

impl FamilyError {
    /// `self`, naming `origin` where it speaks of the config: what the entry points that take a
    /// config (the tree's build, the plan's) call, so a GGUF's errors name its metadata.
    #[must_use]
    pub(super) fn read_from(mut self, origin: Origin) -> Self {
        if let Self::Config { origin: o, .. } | Self::Shape { origin: o, .. } = &mut self {
            *o = origin;
        }
        self
    }
}
