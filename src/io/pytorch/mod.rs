//! PyTorch checkpoints (`torch.save`'s `.pt`, `.pth`, `.bin`, `.ckpt`), recognised by their bytes:
//! the zip layout (torch >= 1.6, and TorchScript archives) and the legacy layout, each read from a
//! local file's map or by range from a remote one ([`store`]), by the same parsing. The pickle is run
//! by [`crate::io::pickle`], which never calls anything; storages stay in the file (mapped, or
//! fetched when a tensor is first read).

mod archive;
mod foreign;
mod legacy;
mod record;
mod store;
mod views;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::FileError;
use super::pickle::{self, Leaf, Scalar};
use crate::tensor::{FetchError, Ranged, Tensor};
use store::Store;

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
    /// What the user should hear (globals outside torch's allow-list, a TorchScript archive…),
    /// each starting with the file's name.
    pub warnings: Vec<String>,
    /// Whether this is a TorchScript archive (`torch.jit.save`).
    pub torchscript: bool,
    /// A TorchScript archive's code files (`code/__torch__/…py`), named, never run.
    pub code_files: Vec<String>,
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
    /// The file holds no tensors, and its pickles name globals outside torch's allow-list.
    #[error(
        "the file holds no tensors, and its pickles name {} ({})", foreign::list(.0), foreign::WHAT_TORCH_DOES
    )]
    OnlyForeign(Vec<String>),
    /// An error met after the file's pickles named globals outside torch's allow-list: torch
    /// would have imported them before meeting it.
    #[error(
        "{error}; before it, the file's pickles name {} ({})", foreign::list(.globals), foreign::WHAT_TORCH_DOES
    )]
    AfterForeign {
        /// The foreign globals, raw.
        globals: Vec<String>,
        /// What went wrong.
        error: Box<Error>,
    },
    /// A zip whose central directory lists one name twice: torch reads one entry, other zip
    /// readers the other, so what is shown need not be what torch loads.
    #[error(
        "the zip's directory lists one entry name twice (torch reads the first, other readers the last), so what torch loads cannot be told: refused"
    )]
    DuplicateEntry,
    /// A remote file's bytes could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

/// Which PyTorch layout the first bytes of a file show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A zip archive (any zip: whether it holds `data.pkl` is checked when opened).
    Zip,
    /// The legacy layout: pickles in a row, the first torch's magic number. Any pickle that is
    /// not a zip is read so, as torch.load reads it (running its first pickle), so that the
    /// globals a hostile one names are named even when it is no torch file.
    Legacy,
    /// A tar archive: torch's first layout (members `sys_info`, `pickle`, `storages`,
    /// `tensors`) is one; named, not read.
    Tar,
}

/// The legacy layout's first pickle: protocol 2, then LONG1 of `0x1950a86a20f9469cfc6c`.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// The layout `head` (a file's first bytes) starts, if it is one of torch's.
#[must_use]
pub fn layout(head: &[u8]) -> Option<Layout> {
    if head.starts_with(b"PK\x03\x04") {
        return Some(Layout::Zip);
    }
    if head.get(257..262) == Some(b"ustar") {
        return Some(Layout::Tar);
    }
    // PROTO 2 to 5 starts every binary pickle; protocols 0 and 1 have no PROTO, and a hostile
    // one starts with a GLOBAL: `c`, a module name, a newline.
    let binary = head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]);
    let text_global = head.first() == Some(&b'c')
        && head[1..].iter().position(|&b| b == b'\n').is_some_and(|n| {
            n > 0
                && head[1..=n]
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        });
    (binary || text_global).then_some(Layout::Legacy)
}

/// What a tar archive is said to be.
pub const TAR: &str = "a tar archive: torch.save's oldest layout is one (members sys_info, pickle, storages, tensors), which paramscope does not read; load it with torch and save it again";

/// Opens the PyTorch file at `path` (either layout). Only the pickle is read; tensor bytes stay
/// on disk until asked for, except views that must be gathered and big-endian data.
pub fn open(path: &Path) -> Result<Contents, FileError> {
    let crate::io::mapped::Mapped { file, map } = crate::io::mapped::open(path)?;
    read(path, Store::Mapped { map, file })
}

/// Opens a PyTorch file of `len` bytes read by range from `source` (a remote one), whose first bytes
/// `head` are in: a legacy file's pickles must lie in them (see [`has_pickles`]); a zip's last bytes
/// are fetched in one request for its central directory, then any pickle outside the head. Each
/// storage is fetched, with its header, when a tensor over it is first read.
pub fn open_ranged(
    path: &Path,
    head: &[u8],
    len: u64,
    source: Arc<dyn Ranged>,
) -> Result<Contents, FileError> {
    let mut store = Store::fetched(source, len, head);
    if layout(head) == Some(Layout::Zip) {
        store.fetch_tail().map_err(|e| FileError::new(path, e))?;
    }
    read(path, store)
}

/// Whether `head`, the first bytes of a legacy file, holds its five pickles whole: `false` when
/// parsing them ran out of bytes, so a remote reader fetches more. Any other file needs no more.
#[must_use]
pub fn has_pickles(head: &[u8]) -> bool {
    if layout(head) != Some(Layout::Legacy) {
        return true;
    }
    let mut foreign = foreign::Foreign::default();
    match legacy::pickles(head, &mut foreign) {
        Err(Error::Pickle(e)) => !matches!(
            e.problem,
            pickle::Problem::Truncated { .. } | pickle::Problem::NoStop
        ),
        _ => true,
    }
}

/// Reads either layout from `store`, and says what the user should hear about it.
fn read(path: &Path, store: Store) -> Result<Contents, FileError> {
    let shown = path.display().to_string();
    let mut foreign = foreign::Foreign::default();
    let head = store.prefix();
    let contents = match layout(&head[..head.len().min(512)]) {
        Some(Layout::Zip) => archive::open(&store, &mut foreign),
        Some(Layout::Legacy) => legacy::open(&store, &mut foreign),
        Some(Layout::Tar) => Err(Error::Layout(TAR.into())),
        None => Err(Error::Layout(
            "not a PyTorch file (neither a zip nor a legacy torch.save pickle)".into(),
        )),
    };
    let globals = foreign.globals;
    let mut contents = match contents {
        Err(error) if !globals.is_empty() => {
            let error = Box::new(error);
            return Err(FileError::new(path, Error::AfterForeign { globals, error }));
        }
        Err(error) => return Err(FileError::new(path, error)),
        Ok(contents) if contents.tensors.is_empty() && !globals.is_empty() => {
            return Err(FileError::new(path, Error::OnlyForeign(globals)));
        }
        Ok(contents) => contents,
    };
    if contents.torchscript {
        let note = if contents.tensors.is_empty() {
            "a TorchScript archive (torch.jit.save) with no tensors reachable from its data.pkl"
        } else {
            "a TorchScript archive (torch.jit.save): the tensors reachable from its data.pkl are listed"
        };
        let code = foreign::list(&contents.code_files);
        contents
            .warnings
            .push(format!("{shown}: {note}; its code ({code}) is not run"));
    }
    for global in globals.iter().take(foreign::MAX_NAMED) {
        contents.warnings.push(format!(
            "{shown}: the pickle names {global} ({})",
            foreign::WHAT_TORCH_DOES
        ));
    }
    if globals.len() > foreign::MAX_NAMED {
        contents.warnings.push(format!(
            "{shown}: the pickles name {} more globals outside torch's weights_only allow-list",
            globals.len() - foreign::MAX_NAMED
        ));
    }
    Ok(contents)
}

/// Turns an unpickled checkpoint into [`Contents`]: tensors made over their storages (each found
/// in `store` by its `record`, swapped once if the file is big-endian), plain values listed. Every
/// byte made in memory (swapped storages, gathered views) counts against one budget for the file.
fn assemble(
    unpickled: &pickle::Unpickled,
    store: &Store,
    record: &mut dyn FnMut(&pickle::Storage) -> Result<record::Record, Error>,
    big_endian: bool,
) -> Result<Contents, Error> {
    let leaves = pickle::flatten(unpickled)?;
    let mut contents = Contents::default();
    let mut ties = views::Ties::default();
    let mut budget = views::Budget::for_file(store.len());
    let mut backings: HashMap<String, views::Backing> = HashMap::new();
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
                let at = |reason| Error::Tensor {
                    name: name.clone(),
                    reason,
                };
                let backing = if let Some(backing) = backings.get(&t.storage.key) {
                    backing.clone()
                } else {
                    let mut backing = store.backing(record(&t.storage)?)?;
                    if big_endian {
                        backing = backing
                            .into_little_endian(&t.storage, &mut budget)
                            .map_err(at)?;
                    }
                    backings.insert(t.storage.key.clone(), backing.clone());
                    backing
                };
                let tensor = views::tensor(&t, dtype, &backing, &mut budget).map_err(at)?;
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
    Ok(contents)
}
