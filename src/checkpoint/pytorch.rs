//! PyTorch files (and shards) as checkpoints, and `--key`: the sub-dict of a nested checkpoint
//! taken as the model (`--key model` of `{"model": ..., "optimizer": ..., "epoch": 7}`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use thiserror::Error;

use crate::io::pickle::Scalar;
use crate::io::pytorch;
use crate::io::safetensors::{self, Checkpoint, FileError};
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

/// A PyTorch file read as a checkpoint: its tensors (ties as `__metadata__`-style `dropped: kept`
/// entries, as safetensors' save_model writes them), its plain values, and its warnings.
pub struct Opened {
    /// The tensors and ties.
    pub checkpoint: Checkpoint,
    /// Every plain value by dotted name (`epoch = 7`).
    pub values: Vec<(String, Scalar)>,
    /// What the user should hear (dangerous globals named, a TorchScript archive).
    pub warnings: Vec<String>,
    /// Whether the checkpoint's metadata only records ties (a PyTorch file has no metadata of its
    /// own), so that the model keeps none once the ties are made.
    pub metadata_is_ties: bool,
}

/// Opens the PyTorch file at `path`.
pub fn open(path: &Path) -> Result<Opened, FileError> {
    let contents = pytorch::open(path)?;
    let metadata: BTreeMap<String, String> = contents.ties.into_iter().collect();
    Ok(Opened {
        checkpoint: Checkpoint {
            tensors: contents.tensors,
            metadata,
        },
        values: contents.values,
        warnings: contents.warnings,
        metadata_is_ties: true,
    })
}

/// Whether the file starting with `head` is a PyTorch file.
#[must_use]
pub fn is_pytorch(head: &[u8]) -> bool {
    pytorch::layout(head).is_some()
}

/// Opens one shard of an index: a PyTorch file by its bytes, else safetensors. A PyTorch shard's
/// warnings are added to `warnings`.
pub fn open_shard(path: &Path, warnings: &mut Vec<String>) -> Result<Checkpoint, FileError> {
    let head = crate::io::small_file::head(path, 64).map_err(|e| FileError::new(path, e))?;
    if !is_pytorch(&head) {
        return safetensors::open(path);
    }
    let opened = open(path)?;
    warnings.extend(opened.warnings);
    Ok(opened.checkpoint)
}

/// The part of `opened` under `key`, with `key.` taken off every name.
pub fn select(opened: Opened, key: &str) -> Result<Opened, KeyError> {
    let prefix = format!("{key}.");
    let strip = |name: &str| name.strip_prefix(&prefix).map(str::to_owned);
    let Opened {
        checkpoint,
        values,
        warnings,
        metadata_is_ties,
    } = opened;
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
    for (dropped, kept) in &checkpoint.metadata {
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
    let values = values
        .into_iter()
        .filter_map(|(name, v)| Some((strip(&name)?, v)))
        .collect();
    Ok(Opened {
        checkpoint: Checkpoint { tensors, metadata },
        values,
        warnings,
        metadata_is_ties,
    })
}
