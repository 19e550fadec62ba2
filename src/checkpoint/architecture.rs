//! Binding a checkpoint to its architecture text: `--arch`, else the text an export stored in the
//! file's metadata, else nothing (the tree stays as inferred from the names).

use std::path::Path;

use thiserror::Error;

use crate::io::small_file::{self, SmallFileError};
use crate::model::Model;
use crate::model::arch::{self, ArchError, METADATA_KEY};

/// Where a model's architecture (its module kinds and their order) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Built here: a demo, or a `print(model)` text.
    Built,
    /// A checkpoint bound to the `--arch` text.
    Given,
    /// A checkpoint bound to the text an export stored in its metadata.
    Stored,
    /// A checkpoint's tree read from its tensor names: layers without parameters are invisible.
    Inferred,
}

/// An architecture text that cannot be read, parsed, or bound to the checkpoint.
#[derive(Debug, Error)]
pub enum ArchitectureError {
    /// The `--arch` file cannot be read.
    #[error("{path}: {source}")]
    Unreadable {
        /// The `--arch` file.
        path: String,
        /// Why.
        source: SmallFileError,
    },
    /// The text is not an architecture.
    #[error("{origin}: {source}")]
    Parse {
        /// Where the text came from.
        origin: String,
        /// Where it went wrong.
        source: ArchError,
    },
    /// The architecture does not fit the checkpoint's tensors.
    #[error("{spec}: {reason}")]
    Bind {
        /// The checkpoint.
        spec: String,
        /// What does not fit.
        reason: arch::BindError,
    },
}

/// The longest architecture text read: `print(model)` of a model with a million modules fits.
pub(super) const MAX_ARCH_BYTES: u64 = 64 << 20;

/// Gives a checkpoint its architecture: `arch_file`, else the one an export stored, else the tree
/// inferred from its names.
pub fn apply(
    model: Model,
    arch_file: Option<&Path>,
    spec: &str,
) -> Result<(Model, Architecture), ArchitectureError> {
    let (text, origin, architecture) = match arch_file {
        Some(file) => {
            let unreadable = |source| ArchitectureError::Unreadable {
                path: file.display().to_string(),
                source,
            };
            let text = small_file::read_text(file, MAX_ARCH_BYTES).map_err(unreadable)?;
            (text, file.display().to_string(), Architecture::Given)
        }
        None => match model.metadata.get(METADATA_KEY) {
            Some(text) => (
                text.clone(),
                format!("{spec} (its {METADATA_KEY} metadata)"),
                Architecture::Stored,
            ),
            None => return Ok((model, Architecture::Inferred)),
        },
    };
    let root = arch::parse(&text).map_err(|source| ArchitectureError::Parse { origin, source })?;
    let model = arch::bind(&root, &model).map_err(|reason| ArchitectureError::Bind {
        spec: spec.to_owned(),
        reason,
    })?;
    Ok((model, architecture))
}
