//! Pure codecs, no Model: safetensors read through a map and written atomically, PyTorch, GGUF and
//! NumPy files, safe small-file reads; and the format-neutral types every codec shares (the opened
//! [`Checkpoint`], the [`FileError`] naming the file at fault).
//!
//! This file imports no codec that imports it back: a codec takes [`FileError`] and [`Checkpoint`]
//! from here, and the only codec types named here (a pickle's plain values, GGUF metadata values)
//! come from modules that import nothing of this one.

pub mod aliases;
pub mod atomic;
pub mod dcp;
pub mod diagnose;
pub mod fault;
pub mod gguf;
pub mod mapped;
pub mod npy;
pub mod npz;
pub mod pickle;
pub mod pytorch;
pub mod safetensors;
pub mod sharded;
pub mod small_file;
pub mod sniff;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::tensor::Tensor;

/// A codec's own typed error, kept whole as the [`FileError`]'s source.
pub type Kind = Box<dyn std::error::Error + Send + Sync>;

/// A failure to read or write a file: the file, and the codec's typed error saying what went wrong.
///
/// The path is kept raw (as the user or the index named it); it is escaped where the error is
/// shown (`main`'s error line, the CLI's printing, the app's status bar).
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct FileError {
    /// The file, as the user named it.
    pub path: PathBuf,
    /// What went wrong: the codec's error (a `HeaderError`, a `GgufError`, an `std::io::Error`…).
    #[source]
    pub kind: Kind,
}

impl FileError {
    /// An error about `path`: `kind` is a typed error (not a sentence made here), so that the
    /// text is made once, where it is shown.
    pub fn new(path: &Path, kind: impl std::error::Error + Send + Sync + 'static) -> Self {
        FileError {
            path: path.to_path_buf(),
            kind: Box::new(kind),
        }
    }
}

/// An opened checkpoint, whatever its format: its tensors, its string metadata, the names it
/// stores once under another name (ties), and what only some formats hold.
#[derive(Default)]
pub struct Checkpoint {
    /// `(name, tensor)` for every stored tensor, in the file's order.
    pub tensors: Vec<(String, Tensor)>,
    /// A safetensors `__metadata__` map (where `save_model` also records its ties); empty for
    /// formats that have none.
    pub metadata: BTreeMap<String, String>,
    /// `(name, stored name)`: a second name for a tensor listed once, as a PyTorch file shares a
    /// tied weight's storage.
    pub ties: Vec<(String, String)>,
    /// What a user should hear about how the file was read (dangerous globals named, tensors a
    /// shard index does not list…). Raw: escaped where shown.
    pub warnings: Vec<String>,
    /// What only some formats hold.
    pub extras: Extras,
}

/// What only some formats hold beside their tensors.
#[derive(Default)]
pub struct Extras {
    /// A PyTorch checkpoint's plain values by dotted name (`epoch = 7`).
    pub values: Vec<(String, pickle::Scalar)>,
    /// A GGUF file's metadata pairs, in file order.
    pub gguf: Vec<(String, gguf::value::Value)>,
}

impl Checkpoint {
    /// Named tensors with string metadata and nothing else (safetensors, shards).
    #[must_use]
    pub fn new(tensors: Vec<(String, Tensor)>, metadata: BTreeMap<String, String>) -> Self {
        Checkpoint {
            tensors,
            metadata,
            ..Checkpoint::default()
        }
    }
}
