//! Which checkpoint file a folder stands for.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::io::sniff::is_index;

/// A folder that does not name one checkpoint.
#[derive(Debug, Error)]
pub enum LocateError {
    /// The folder cannot be listed.
    #[error("{folder}: {source}")]
    Unreadable {
        /// The folder.
        folder: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No checkpoint in the folder.
    #[error("{0}: the folder holds no .safetensors file and no model.safetensors.index.json")]
    Empty(String),
    /// Several checkpoints and no index to say which.
    #[error(
        "{folder}: the folder holds {} checkpoints and no model.safetensors.index.json; name one: {}",
        .names.len(),
        .names.join(", ")
    )]
    Several {
        /// The folder.
        folder: String,
        /// The checkpoint files' names.
        names: Vec<String>,
    },
}

/// The checkpoint a folder holds: its shard index, else its one `.safetensors` file.
pub fn checkpoint_in(folder: &Path) -> Result<PathBuf, LocateError> {
    let index = folder.join("model.safetensors.index.json");
    if index.is_file() {
        return Ok(index);
    }
    let shown = || folder.display().to_string();
    let entries = std::fs::read_dir(folder).map_err(|source| LocateError::Unreadable {
        folder: shown(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && (is_index(p) || p.extension().is_some_and(|e| e == "safetensors"))
        })
        .collect();
    files.sort();
    match files.len() {
        1 => Ok(files.swap_remove(0)),
        0 => Err(LocateError::Empty(shown())),
        _ => Err(LocateError::Several {
            folder: shown(),
            names: files
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect(),
        }),
    }
}
