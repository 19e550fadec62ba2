//! PyTorch files (and shards) as checkpoints, and `--key`: the sub-dict of a nested checkpoint
//! taken as the model (`--key model` of `{"model": ..., "optimizer": ..., "epoch": 7}`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use thiserror::Error;

use crate::io::{Checkpoint, Extras, FileError, pytorch, safetensors};
use crate::tensor::Tensor;

/// A `--key` that names nothing in the checkpoint.
#[derive(Debug, Error)]
#[error("--key {key}: no tensor is under {key:?}; the top-level keys holding tensors are {known}")]
pub struct KeyError {
    /// The key asked for.
    pub key: String,
    /// The top-level keys that hold tensors, comma-separated.
    pub known: String,
}

/// Opens the PyTorch file at `path`: its tensors, ties, plain values and warnings.
pub fn open(path: &Path) -> Result<Checkpoint, FileError> {
    pytorch::open(path).map(checkpoint)
}

/// What a PyTorch file holds (read from a local or a remote file) as a checkpoint.
#[must_use]
pub fn checkpoint(contents: pytorch::Contents) -> Checkpoint {
    Checkpoint {
        tensors: contents.tensors,
        metadata: BTreeMap::new(),
        ties: contents.ties,
        warnings: contents.warnings,
        extras: Extras {
            values: contents.values,
            gguf: Vec::new(),
        },
    }
}

/// Whether the file starting with `head` is a PyTorch file.
#[must_use]
pub fn is_pytorch(head: &[u8]) -> bool {
    pytorch::layout(head).is_some()
}

/// Opens one shard of an index: a PyTorch file by its bytes, else safetensors.
pub fn open_shard(path: &Path) -> Result<Checkpoint, FileError> {
    let head = crate::io::small_file::head(path, 64).map_err(|e| FileError::new(path, e))?;
    if is_pytorch(&head) {
        open(path)
    } else {
        safetensors::open(path)
    }
}

/// The part of `checkpoint` under `key`, with `key.` taken off every name.
pub fn select(checkpoint: Checkpoint, key: &str) -> Result<Checkpoint, KeyError> {
    let prefix = format!("{key}.");
    let strip = |name: &str| name.strip_prefix(&prefix).map(str::to_owned);
    let mut tensors: Vec<_> = checkpoint
        .tensors
        .iter()
        .filter_map(|(name, t)| Some((strip(name)?, t.clone())))
        .collect();
    // A name under the key tied to a tensor outside it (`ema.w` to `model.w`) takes the tensor.
    let by_name: HashMap<&str, &Tensor> = checkpoint
        .tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t))
        .collect();
    let ties = checkpoint.metadata.iter().chain(
        checkpoint
            .ties
            .iter()
            .map(|(dropped, kept)| (dropped, kept)),
    );
    for (dropped, kept) in ties {
        if let (Some(name), None, Some(tensor)) =
            (strip(dropped), strip(kept), by_name.get(kept.as_str()))
        {
            tensors.push((name, (*tensor).clone()));
        }
    }
    if tensors.is_empty() {
        let mut known: Vec<&str> = checkpoint
            .tensors
            .iter()
            .map(|(n, _)| n.split('.').next().unwrap_or(n))
            .collect();
        known.sort_unstable();
        known.dedup();
        return Err(KeyError {
            key: key.to_owned(),
            known: known.join(", "),
        });
    }
    let metadata = checkpoint
        .metadata
        .iter()
        .filter_map(|(dropped, kept)| Some((strip(dropped)?, strip(kept)?)))
        .collect();
    let ties = checkpoint
        .ties
        .iter()
        .filter_map(|(dropped, kept)| Some((strip(dropped)?, strip(kept)?)))
        .collect();
    let values = checkpoint
        .extras
        .values
        .into_iter()
        .filter_map(|(name, v)| Some((strip(&name)?, v)))
        .collect();
    Ok(Checkpoint {
        tensors,
        metadata,
        ties,
        warnings: checkpoint.warnings,
        extras: Extras {
            values,
            gguf: checkpoint.extras.gguf,
        },
    })
}
