//! Sharded checkpoints: `model.safetensors.index.json` maps each tensor name to a shard file in the
//! same folder. Every shard's header is read (its data stays on disk), and the index is checked
//! against what the shards really hold.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::small_file::{self, SmallFileError};
use super::{Checkpoint, FileError, safetensors};

/// The index's largest accepted size: a weight map of a million names fits in far less.
pub const MAX_INDEX_BYTES: u64 = 100 * 1024 * 1024;

/// Why a shard index was refused (the [`FileError`]'s kind, naming the index). Names are raw.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index cannot be read: not a regular file, over the cap, or the system's error.
    #[error("the index: {0}")]
    Read(SmallFileError),
    /// Not JSON.
    #[error("the index is not valid JSON: {0}")]
    Json(serde_json::Error),
    /// No `weight_map`.
    #[error("the index has no \"weight_map\" object")]
    NoWeightMap,
    /// A `weight_map` value that is not a string.
    #[error("weight_map[{0}] is not a file name")]
    NotAFileName(String),
    /// A shard name that could leave the index's folder.
    #[error("shard {shard}: {why}")]
    ShardName {
        /// The name.
        shard: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// One tensor held by two shards.
    #[error("tensor {name} is in both {first} and {second}")]
    InTwoShards {
        /// The tensor.
        name: String,
        /// The shard met first.
        first: String,
        /// The other.
        second: String,
    },
    /// A tensor the index places in one shard and another holds.
    #[error("the index puts {name} in {shard} but it is in {holder}")]
    Elsewhere {
        /// The tensor.
        name: String,
        /// The shard the index names.
        shard: String,
        /// The shard that holds it.
        holder: String,
    },
    /// A tensor no shard holds.
    #[error("the index puts {name} in {shard}, which does not hold it")]
    Missing {
        /// The tensor.
        name: String,
        /// The shard the index names.
        shard: String,
    },
}

/// A sharded checkpoint opened through its index, and the notes a user should see.
pub struct Sharded {
    /// All tensors of all shards, in the index's order, then any the index did not list, with the
    /// shards' ties and warnings.
    pub checkpoint: Checkpoint,
    /// What is odd about the index but not fatal (tensors it does not list). Raw: escaped where
    /// shown.
    pub warnings: Vec<String>,
}

/// Opens the safetensors shards named by the index at `index_path`.
pub fn open(index_path: &Path) -> Result<Sharded, FileError> {
    open_with(index_path, &mut safetensors::open)
}

/// Opens the shards named by the index at `index_path` with `open_shard` (which reads one shard
/// of whatever format the index's files are: safetensors, or PyTorch for `pytorch_model.bin`).
pub fn open_with(
    index_path: &Path,
    open_shard: &mut dyn FnMut(&Path) -> Result<Checkpoint, FileError>,
) -> Result<Sharded, FileError> {
    // Only a regular file, read up to the cap: an index that is a FIFO or a device must not hang
    // or stream.
    let text = small_file::read(index_path, MAX_INDEX_BYTES)
        .map_err(|e| FileError::new(index_path, IndexError::Read(e)))?;
    let folder = index_path.parent().unwrap_or(Path::new("."));
    assemble(index_path, &text, &mut |shards| {
        shards
            .iter()
            .map(|shard| open_shard(&folder.join(shard)))
            .collect()
    })
}

/// What opens every shard of an index at once: their names in, their checkpoints out in that order.
pub type OpenShards<'a, E> = dyn FnMut(&[&str]) -> Result<Vec<Checkpoint>, E> + 'a;

/// Opens the shards named by the index `text` (the file `index_path` holds) with `open_shards`,
/// which is given every shard's name at once (so a remote reader fetches their headers together)
/// and returns their checkpoints in the same order; then checks the index against them.
pub fn assemble<E: From<FileError>>(
    index_path: &Path,
    text: &[u8],
    open_shards: &mut OpenShards<'_, E>,
) -> Result<Sharded, E> {
    let fail = |error: IndexError| E::from(FileError::new(index_path, error));
    let index: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| fail(IndexError::Json(e)))?;
    let weight_map = index
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| fail(IndexError::NoWeightMap))?;
    let mut wanted: Vec<(String, String)> = Vec::with_capacity(weight_map.len());
    for (name, shard) in weight_map {
        let shard = shard
            .as_str()
            .ok_or_else(|| fail(IndexError::NotAFileName(name.clone())))?;
        check_shard_name(shard).map_err(|why| {
            fail(IndexError::ShardName {
                shard: shard.to_owned(),
                why,
            })
        })?;
        wanted.push((name.clone(), shard.to_owned()));
    }
    let mut shard_names: Vec<&str> = wanted.iter().map(|(_, s)| s.as_str()).collect();
    shard_names.sort_unstable();
    shard_names.dedup();

    // Where each tensor really is, refusing a name held by two shards.
    let mut found: HashMap<String, (&str, crate::tensor::Tensor)> = HashMap::new();
    let mut metadata = BTreeMap::new();
    let mut ties = Vec::new();
    let mut shard_warnings = Vec::new();
    let opened_shards = open_shards(&shard_names)?;
    for (shard, opened) in shard_names.iter().zip(opened_shards) {
        for (key, value) in opened.metadata {
            metadata.entry(key).or_insert(value);
        }
        ties.extend(opened.ties);
        shard_warnings.extend(opened.warnings);
        for (name, tensor) in opened.tensors {
            if let Some((other, _)) = found.get(&name) {
                return Err(fail(IndexError::InTwoShards {
                    name,
                    first: (*other).to_owned(),
                    second: (*shard).to_owned(),
                }));
            }
            found.insert(name, (shard, tensor));
        }
    }
    let mut tensors = Vec::with_capacity(found.len());
    for (name, shard) in &wanted {
        match found.remove(name) {
            Some((holder, tensor)) if holder == shard => tensors.push((name.clone(), tensor)),
            Some((holder, _)) => {
                return Err(fail(IndexError::Elsewhere {
                    name: name.clone(),
                    shard: shard.clone(),
                    holder: holder.to_owned(),
                }));
            }
            None => {
                return Err(fail(IndexError::Missing {
                    name: name.clone(),
                    shard: shard.clone(),
                }));
            }
        }
    }
    let mut unlisted: Vec<(String, (&str, crate::tensor::Tensor))> = found.into_iter().collect();
    unlisted.sort_by(|a, b| a.0.cmp(&b.0));
    let warnings = if unlisted.is_empty() {
        Vec::new()
    } else {
        let names: Vec<String> = unlisted
            .iter()
            .map(|(name, (shard, _))| format!("{name} (in {shard})"))
            .collect();
        vec![format!(
            "{}: the shards hold tensors the index does not list: {}",
            index_path.display(),
            names.join(", ")
        )]
    };
    tensors.extend(
        unlisted
            .into_iter()
            .map(|(name, (_, tensor))| (name, tensor)),
    );
    Ok(Sharded {
        checkpoint: Checkpoint {
            ties,
            warnings: shard_warnings,
            ..Checkpoint::new(tensors, metadata)
        },
        warnings,
    })
}

/// A shard must be a plain file name in the index's folder: no separators, no `..`, not absolute.
fn check_shard_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("an empty file name")
    } else if name.contains(['/', '\\']) || name == ".." || name == "." {
        Err("shard names must be file names in the index's folder, without '/' or '..'")
    } else if name.contains('\0') {
        Err("a file name cannot hold a NUL byte")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_shard_name;

    #[test]
    fn shard_names_cannot_leave_the_folder() {
        assert!(check_shard_name("model-00001-of-00002.safetensors").is_ok());
        for bad in [
            "../secret.safetensors",
            "/etc/passwd",
            "a/b.safetensors",
            "..",
            "",
            "a\\b",
        ] {
            assert!(check_shard_name(bad).is_err(), "{bad}");
        }
    }
}
