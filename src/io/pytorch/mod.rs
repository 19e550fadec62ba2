//! PyTorch checkpoints (`torch.save`'s `.pt`, `.pth`, `.bin`, `.ckpt`), recognised by their bytes:
//! the zip layout (torch >= 1.6, and TorchScript archives) and the legacy layout. The pickle is run
//! by [`crate::io::pickle`], which never calls anything; storages stay in the file's map.

mod archive;
mod legacy;
mod views;

use std::fs::File;
use std::path::Path;

use super::FileError;
use super::pickle::{self, Leaf, Scalar};
use crate::tensor::Tensor;

/// What a PyTorch file holds, flattened to dotted names.
#[derive(Default)]
pub struct Contents {
    /// Every tensor, once, in the pickle's order.
    pub tensors: Vec<(String, Tensor)>,
    /// `(name, earlier name)`: a second name for a tensor already listed (same storage, offset,
    /// shape and strides), as a tied weight is.
    pub ties: Vec<(String, String)>,
    /// Every plain value (ints, floats, strings, None, opaque objects) in the pickle's order.
    pub values: Vec<(String, Scalar)>,
    /// What the user should hear (dangerous globals the pickle calls, a TorchScript archive…),
    /// each starting with the file's name.
    pub warnings: Vec<String>,
    /// Whether this is a TorchScript archive (`torch.jit.save`).
    pub torchscript: bool,
}

/// Why a PyTorch file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pickle is broken or hostile.
    #[error(transparent)]
    Pickle(#[from] pickle::Error),
    /// The flattened checkpoint is beyond any real one.
    #[error(transparent)]
    Flatten(#[from] pickle::flatten::FlattenError),
    /// The zip or legacy layout around the pickle is broken.
    #[error("{0}")]
    Layout(String),
    /// One tensor cannot be made.
    #[error("tensor {name}: {reason}")]
    Tensor {
        /// Its name (raw; escaped where shown).
        name: String,
        /// What is wrong.
        reason: views::ViewError,
    },
    /// The file holds no tensors, only a call that would run code.
    #[error(
        "the pickle calls {0}; torch.load(weights_only=False) would run it; paramscope did not (and the file holds no tensors)"
    )]
    OnlyDangerous(String),
}

/// Which PyTorch layout the first bytes of a file show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A zip archive (any zip: whether it holds `data.pkl` is checked when opened).
    Zip,
    /// The legacy layout: a pickled magic number first.
    Legacy,
}

/// The legacy layout's first pickle: protocol 2, then LONG1 of `0x1950a86a20f9469cfc6c`.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// The layout `head` (a file's first bytes) starts, if it is one of torch's.
#[must_use]
pub fn layout(head: &[u8]) -> Option<Layout> {
    if head.starts_with(b"PK\x03\x04") {
        return Some(Layout::Zip);
    }
    let pickled_magic = head.len() >= 14
        && head[0] == 0x80
        && (2..=5).contains(&head[1])
        && head[2] == 0x8a
        && head[3] == 10
        && head[4..14] == LEGACY_MAGIC;
    pickled_magic.then_some(Layout::Legacy)
}

/// Opens the PyTorch file at `path` (either layout). Only the pickle is read; tensor bytes stay
/// on disk until asked for, except views that must be gathered and big-endian data.
pub fn open(path: &Path) -> Result<Contents, FileError> {
    let crate::io::mapped::Mapped { file, map } = crate::io::mapped::open(path)?;
    let shown = path.display().to_string();
    let contents = match layout(&map[..map.len().min(64)]) {
        Some(Layout::Zip) => archive::open(&map, &file, &shown),
        Some(Layout::Legacy) => legacy::open(&map, &file, &shown),
        None => Err(Error::Layout(
            "not a PyTorch file (neither a zip nor a legacy torch.save pickle)".into(),
        )),
    };
    contents.map_err(|e| FileError::new(path, e))
}

/// `N` bytes of `file` at `offset`, read by system call rather than through the map: touching a
/// mapped page maps the pages around it too (fault-around), so reading 2,000 small headers spread
/// over a 1 GiB file through the map would add some 128 MiB to the resident set.
fn read_at<const N: usize>(file: &File, offset: usize) -> Option<[u8; N]> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut buf = [0u8; N];
    let mut file = file;
    file.seek(SeekFrom::Start(offset as u64)).ok()?;
    file.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Turns an unpickled checkpoint into [`Contents`]: tensors made over their storages (found by
/// `storage`), plain values listed, dangerous calls warned about.
fn assemble(
    unpickled: &pickle::Unpickled,
    shown: &str,
    storage: &mut dyn FnMut(&pickle::Storage) -> Result<views::Backing, Error>,
    limit: usize,
) -> Result<Contents, Error> {
    let leaves = pickle::flatten(unpickled)?;
    let mut contents = Contents::default();
    let mut ties = views::Ties::default();
    for (name, leaf) in leaves {
        match leaf {
            Leaf::Tensor(t) => {
                let name = if name.is_empty() {
                    "tensor".into()
                } else {
                    name
                };
                let Some(dtype) = t.dtype.dtype() else {
                    let what = format!("{} tensor of shape {:?}", t.dtype.name(), t.shape);
                    contents.values.push((name, Scalar::Object(what)));
                    continue;
                };
                if let Some(first) = ties.seen(&t, &name) {
                    contents.ties.push((name, first));
                    continue;
                }
                let backing = storage(&t.storage)?;
                let tensor =
                    views::tensor(&t, dtype, &backing, limit).map_err(|reason| Error::Tensor {
                        name: name.clone(),
                        reason,
                    })?;
                contents.tensors.push((name, tensor));
            }
            // The root object's own class says nothing its contents do not.
            Leaf::Value(Scalar::Object(_)) if name.is_empty() => {}
            Leaf::Value(v) => {
                let name = if name.is_empty() {
                    "value".into()
                } else {
                    name
                };
                contents.values.push((name, v));
            }
        }
    }
    if let Some(first) = unpickled.dangerous_calls.first()
        && contents.tensors.is_empty()
    {
        return Err(Error::OnlyDangerous(first.clone()));
    }
    for call in &unpickled.dangerous_calls {
        contents.warnings.push(format!(
            "{shown}: the pickle calls {call}; torch.load(weights_only=False) would run it; paramscope did not"
        ));
    }
    Ok(contents)
}
