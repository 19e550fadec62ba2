//! PyTorch Distributed Checkpoint folders (`torch.distributed.checkpoint.save`: FSDP, torchtitan,
//! torchtune, Accelerate): a `.metadata` pickle saying which byte range of which `__R_N.distcp`
//! file holds which chunk of which tensor, read into one tensor of full shape per entry. Opening
//! reads only `.metadata` and checks what it says against the folder (files present, ranges
//! inside them, no stream transform, chunks covering each tensor exactly once), so such damage
//! fails at once, naming the file and the tensor. A chunk's own bytes (its `torch.save` archive)
//! are read and checked when its tensor's values are first asked for ([`pieces`]): a tensor in one
//! contiguous chunk then stays mapped, one in many chunks is put together.

mod chunk;
mod fast;
mod machine;
mod memo;
pub mod metadata;
mod pieces;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::pickle::{self, Leaf, Scalar};
use super::small_file::SmallFileError;
use super::{Checkpoint, FileError, Kind};
use crate::tensor::{Bytes, Shard, Tensor};

pub use metadata::{Entry, Location};

/// The file naming every chunk.
pub const METADATA: &str = ".metadata";

/// The largest `.metadata` read (its offsets fit in 32 bits): 2,000 tensors on 1,000 ranks take
/// some 100 MB.
const MAX_METADATA: u64 = 1 << 30;

/// What is wrong with a distributed checkpoint (the [`FileError`]'s kind, its path the file at
/// fault). Names travel raw.
#[derive(Debug, thiserror::Error)]
pub enum DcpError {
    /// The `.metadata` pickle is broken.
    #[error("damaged .metadata: {0}")]
    Pickle(#[from] pickle::Error),
    /// The `.metadata` pickle runs but is not a DCP `Metadata`.
    #[error("damaged .metadata: {0}")]
    Layout(String),
    /// One entry is wrong.
    #[error("tensor {tensor}: {problem}")]
    Tensor {
        /// The entry's fully qualified name.
        tensor: String,
        /// What is wrong.
        problem: Problem,
    },
}

/// What is wrong with one entry.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The metadata's dtype is not one of torch's.
    #[error("its dtype is not one of torch's")]
    Dtype,
    /// No `storage_data` entry for a chunk.
    #[error("no storage entry for its chunk at offsets {0:?}")]
    NoStorage(Vec<u64>),
    /// A chunk reaching outside the tensor.
    #[error("its chunk at offsets {offsets:?} of sizes {sizes:?} lies outside its size {size:?}")]
    Outside {
        /// The chunk's offsets.
        offsets: Vec<u64>,
        /// The chunk's sizes.
        sizes: Vec<u64>,
        /// The tensor's size.
        size: Vec<u64>,
    },
    /// Two chunks holding the same elements.
    #[error("its chunks at offsets {0:?} and {1:?} overlap")]
    Overlap(Vec<u64>, Vec<u64>),
    /// Chunks leaving elements out.
    #[error("its chunks cover {covered} of its {total} elements")]
    Incomplete {
        /// Elements covered.
        covered: u64,
        /// Elements in the tensor.
        total: u64,
    },
    /// Too many chunks.
    #[error("{0} chunks; no checkpoint has that many for one tensor")]
    TooManyChunks(usize),
    /// Sizes beyond any machine.
    #[error("sizes beyond any real tensor")]
    Absurd,
    /// Bytes that went through a stream transform paramscope does not undo.
    #[error(
        "its bytes went through {0:?} (a compression or other extension), which paramscope does not read"
    )]
    Transform(Vec<String>),
    /// A storage file named with a directory or `..`.
    #[error("its storage file {0:?} is not a file name inside the folder")]
    Escaping(String),
    /// The storage file cannot be opened.
    #[error("{0}")]
    Open(Kind),
    /// A byte range past the file's end.
    #[error(
        "its bytes {offset}..{end} run past the end of the file ({len} bytes; truncated?)",
        end = offset.saturating_add(*length)
    )]
    PastEnd {
        /// First byte.
        offset: u64,
        /// Bytes.
        length: u64,
        /// The file's length.
        len: usize,
    },
    /// The chunk's bytes are not a readable tensor.
    #[error("{0}")]
    Chunk(String),
}

/// Whether `folder` is a distributed checkpoint: it holds a `.metadata` file.
#[must_use]
pub fn is_dcp(folder: &Path) -> bool {
    folder.join(METADATA).is_file()
}

/// Reads the `.metadata` pickle `bytes`: straight through (fast.rs) when it is laid out as torch
/// writes it, else by the machine (metadata.rs), which also says what is wrong with a damaged one.
fn read_metadata(bytes: &[u8]) -> Result<metadata::Metadata<'_>, DcpError> {
    match fast::read(bytes) {
        Some(metadata) => Ok(metadata),
        None => metadata::read_by_machine(bytes),
    }
}

/// Opens the distributed checkpoint in `folder`: every tensor at its full shape, every other
/// entry as a plain value.
pub fn open(folder: &Path) -> Result<Checkpoint, FileError> {
    let meta_path = folder.join(METADATA);
    let fail = |e: DcpError| FileError::new(&meta_path, e);
    // Mapped, not read: a copy of a few megabytes costs as much as reading them.
    let mapped = crate::io::mapped::open(&meta_path)?;
    let bytes: &[u8] = &mapped.map;
    if bytes.len() as u64 > MAX_METADATA {
        let size = bytes.len() as u64;
        let too_long = SmallFileError::TooLong {
            size,
            cap: MAX_METADATA,
        };
        return Err(FileError::new(&meta_path, too_long));
    }
    let metadata = read_metadata(bytes).map_err(fail)?;
    let mut checkpoint = Checkpoint::default();
    for global in &metadata.foreign {
        checkpoint.warnings.push(format!(
            "{}: the pickle names {global}, outside the classes a distributed checkpoint's metadata holds; paramscope did not run it",
            meta_path.display()
        ));
    }
    let mut files = Files::new(folder);
    for (fqn, entry) in metadata.entries {
        let at = |path: &Path, problem| {
            FileError::new(
                path,
                DcpError::Tensor {
                    tensor: fqn.clone(),
                    problem,
                },
            )
        };
        match entry {
            Entry::Tensor(t) => {
                let tensor = tensor(&fqn, t, &mut files, &at)?;
                checkpoint.tensors.push((fqn, tensor));
            }
            Entry::Bytes(location) => {
                let (map, range, _) = files.locate(&location).map_err(|(p, e)| at(&p, e))?;
                for (name, value) in values(&map[range]) {
                    let name = if name.is_empty() {
                        fqn.clone()
                    } else {
                        format!("{fqn}.{name}")
                    };
                    checkpoint.extras.values.push((name, value));
                }
            }
        }
    }
    Ok(checkpoint)
}

/// One tensor entry made a [`Tensor`] whose chunks are read when its values are first asked for.
fn tensor<'a>(
    fqn: &str,
    t: metadata::TensorEntry<'a>,
    files: &mut Files<'a>,
    at: &dyn Fn(&Path, Problem) -> FileError,
) -> Result<Tensor, FileError> {
    let in_meta = |problem| at(&files.folder.join(METADATA), problem);
    let dtype = t.dtype.dtype().ok_or_else(|| in_meta(Problem::Dtype))?;
    let shape: Vec<usize> = t
        .size
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| in_meta(Problem::Absurd)))
        .collect::<Result<_, _>>()?;
    let len = shape
        .iter()
        .try_fold(t.dtype.size(), |a, &d| a.checked_mul(d))
        .ok_or_else(|| in_meta(Problem::Absurd))?;
    let mut maps = Vec::with_capacity(t.chunks.len());
    let mut shards = Vec::with_capacity(t.chunks.len());
    for c in t.chunks {
        let (map, range, file) = files.locate(&c.location).map_err(|(p, e)| at(&p, e))?;
        maps.push(map);
        shards.push(Shard {
            file,
            bytes: range.start as u64..range.end as u64,
            offsets: c.offsets,
            sizes: c.sizes,
        });
    }
    let pieces = pieces::Pieces::new(
        Arc::clone(&files.folder),
        fqn.to_owned(),
        t.dtype,
        shape.iter().copied().collect(),
        len,
        maps,
        shards,
    );
    Ok(Tensor::new(
        shape,
        dtype,
        Bytes::Assembled(Arc::new(pieces)),
    ))
}

/// A non-tensor entry's `torch.save` archive as plain values (a tensor inside, such as an RNG
/// state kept in a dict, is named by its dtype and shape).
fn values(bytes: &[u8]) -> Vec<(String, Scalar)> {
    let leaves = chunk::Archive::open(bytes)
        .ok()
        .and_then(|archive| pickle::flatten(&archive.unpickled).ok());
    let Some(leaves) = leaves else {
        return vec![(String::new(), Scalar::Bytes(bytes.len()))];
    };
    leaves
        .into_iter()
        .map(|(name, leaf)| match leaf {
            Leaf::Value(v) => (name, v),
            Leaf::Tensor(t) => (
                name,
                Scalar::Object(format!("{} tensor of shape {:?}", t.dtype.name(), t.shape)),
            ),
        })
        .collect()
}

/// A chunk found: its file's map, its byte range there, and the file's name.
type Located = (Arc<Mmap>, std::ops::Range<usize>, Arc<str>);

/// The folder's storage files, each mapped once.
struct Files<'a> {
    /// Shared with every tensor, to name a chunk's file when it is read.
    folder: Arc<Path>,
    /// Each file's map and its name, shared by its chunks.
    opened: Vec<(Arc<Mmap>, Arc<str>)>,
    /// Each file's place in `opened`, by the name the metadata gives, and by the very str it gives
    /// it with (where the str lies in the metadata and its length): a rank's chunks name their
    /// file by one memoized str, which is found without hashing the name.
    by_name: HashMap<&'a str, usize, foldhash::quality::RandomState>,
    by_str: HashMap<(usize, usize), usize, foldhash::fast::RandomState>,
}

impl<'a> Files<'a> {
    fn new(folder: &Path) -> Self {
        Files {
            folder: Arc::from(folder),
            opened: Vec::new(),
            by_name: HashMap::default(),
            by_str: HashMap::default(),
        }
    }

    /// The map of `location`'s file, its byte range and the file's name, checked: a plain file
    /// name inside the folder, no transform, inside the file. A file is checked and mapped the
    /// first time it is named; every chunk after costs a lookup.
    fn locate(&mut self, location: &Location<'a>) -> Result<Located, (PathBuf, Problem)> {
        let path = || self.folder.join(location.file);
        if !location.transforms.is_empty() {
            return Err((path(), Problem::Transform(location.transforms.clone())));
        }
        let str_key = (location.file.as_ptr() as usize, location.file.len());
        let found = if let Some(&i) = self.by_str.get(&str_key) {
            Some(i)
        } else {
            let found = self.by_name.get(location.file).copied();
            // A metadata naming each chunk's file by a new str would fill this to no use.
            if let Some(i) = found
                && self.by_str.len() < 4096
            {
                self.by_str.insert(str_key, i);
            }
            found
        };
        let (map, name) = if let Some(i) = found {
            let (map, name) = &self.opened[i];
            (Arc::clone(map), Arc::clone(name))
        } else {
            let mut parts = Path::new(location.file).components();
            if !matches!(
                (parts.next(), parts.next()),
                (Some(Component::Normal(_)), None)
            ) {
                let meta = self.folder.join(METADATA);
                return Err((meta, Problem::Escaping(location.file.to_string())));
            }
            let mapped =
                crate::io::mapped::open(&path()).map_err(|e| (path(), Problem::Open(e.kind)))?;
            let name: Arc<str> = Arc::from(location.file);
            self.by_name.insert(location.file, self.opened.len());
            self.by_str.insert(str_key, self.opened.len());
            self.opened
                .push((Arc::clone(&mapped.map), Arc::clone(&name)));
            (mapped.map, name)
        };
        let past = || Problem::PastEnd {
            offset: location.offset,
            length: location.length,
            len: map.len(),
        };
        let start = usize::try_from(location.offset).map_err(|_| (path(), past()))?;
        let end = usize::try_from(location.length)
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= map.len())
            .ok_or_else(|| (path(), past()))?;
        Ok((map, start..end, name))
    }
}
