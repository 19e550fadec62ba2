//! A MODEL that lives on a server (`hf://`, `https://`, `s3://`): the source layer finds the file or
//! folder; this reads only what each format needs to list its tensors (a safetensors shard's header by
//! one ranged GET of its first 256 KiB, every shard at once; a GGUF header by reads that double; an
//! index and `config.json` whole) and builds the checkpoint over ranges fetched when first read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use thiserror::Error;

use super::locate::{self, LocateError};
use crate::families::{Config as FamilyConfig, ConfigError};
use crate::io::sniff::{self, Format};
use crate::io::{Checkpoint, FileError, gguf, safetensors, sharded};
use crate::model::budget::{self, Kind};
use crate::model::{Model, ParamId};
use crate::source::fetch::{self, MAX_PARALLEL, Need};
use crate::source::location::HubRef;
use crate::source::remote::PROBE;
use crate::source::{ByteSource, Folder, Location, Opened, SourceError, Sources, TensorSource};
use crate::tensor::{FetchError, Ranged, Tensor};

/// The reference crate's cap on a safetensors header, with its 8 bytes of length.
const SAFETENSORS_HEAD_CAP: u64 = 100_000_000 + 8;
/// GGUF heads are read from 1 MiB, doubling, up to this (a 256k-token vocabulary takes a few MiB).
const GGUF_FIRST: u64 = 1 << 20;
const GGUF_HEAD_CAP: u64 = 256 << 20;
/// A `config.json` longer than this is not one (as for a local file).
const CONFIG_CAP: u64 = 1 << 20;

/// Why a remote MODEL could not be opened.
#[derive(Debug, Error)]
pub enum RemoteError {
    /// A file or folder that could not be listed or read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A file whose format refused it.
    #[error(transparent)]
    File(#[from] FileError),
    /// A folder that holds no single checkpoint.
    #[error(transparent)]
    Folder(#[from] LocateError),
    /// A format read only from local files for now.
    #[error("{name}: {what} is not supported remotely yet; download it and open the local copy")]
    NotSupported {
        /// The file.
        name: String,
        /// What it is.
        what: &'static str,
    },
    /// A shard index opened as a lone file: its shards are found beside it in its folder.
    #[error("{name}: open the folder holding this index (its shards are beside it)")]
    IndexAlone {
        /// The index.
        name: String,
    },
    /// An index or `config.json` too long to be one.
    #[error("{name}: {size} bytes is over the {cap}-byte limit for this kind of file")]
    TooLong {
        /// The file.
        name: String,
        /// Its length.
        size: u64,
        /// The cap.
        cap: u64,
    },
}

/// A remote MODEL, opened as far as the source layer and the codecs go.
pub enum Remote {
    /// The Hugging Face cache holds it: this local file or folder opens like any other.
    Local(PathBuf),
    /// Read from the server.
    Read(Box<Read>),
}

/// A remote checkpoint read: its tensors, the name messages give it, its folder's `config.json`.
pub struct Read {
    /// The tensors over their remote ranges.
    pub checkpoint: Checkpoint,
    /// The file's name (`hf://ORG/NAME@REV/PATH`, `s3://BUCKET/KEY`, the URL).
    pub name: String,
    /// The folder's `config.json`: `Ok(None)` when there is none (or the MODEL is one file).
    pub config: Result<Option<FamilyConfig>, ConfigError>,
}

/// Opens a remote `location`, keeping `keep` items of each GGUF metadata array.
pub fn open(location: &Location, keep: usize) -> Result<Remote, RemoteError> {
    let sources = Sources::from_env();
    match sources.open(location)? {
        Opened::Local(path) => Ok(Remote::Local(path)),
        Opened::File(source) if sniff::is_index(Path::new(source.name())) => {
            // An index names its shards beside it: open it in its folder.
            let (parent, index) = parent_of(location).ok_or_else(|| RemoteError::IndexAlone {
                name: source.name().to_owned(),
            })?;
            match sources.open(&parent)? {
                Opened::Folder(folder) => in_folder(&folder, &index, keep),
                Opened::Local(path) => Ok(Remote::Local(path.join(&index))),
                Opened::File(_) => Err(RemoteError::IndexAlone { name: index }),
            }
        }
        Opened::File(source) => Ok(Remote::Read(Box::new(Read {
            checkpoint: open_file(&source, None, keep)?,
            name: source.name().to_owned(),
            config: Ok(None),
        }))),
        Opened::Folder(folder) => {
            let top: Vec<&str> = folder
                .files()
                .iter()
                .map(|f| f.path.as_str())
                .filter(|p| !p.contains('/'))
                .collect();
            let chosen = locate::checkpoint_among(folder.name(), &top)?;
            in_folder(&folder, &chosen, keep)
        }
    }
}

/// The file `chosen` of `folder` opened, with the folder's `config.json`.
fn in_folder(folder: &Arc<dyn Folder>, chosen: &str, keep: usize) -> Result<Remote, RemoteError> {
    let source = folder.open(chosen)?;
    // config.json comes in while the checkpoint's heads do.
    let (config, checkpoint) = std::thread::scope(|scope| {
        let config = scope.spawn(|| config_in(&**folder));
        let checkpoint = open_file(&source, Some(&**folder), keep);
        let config = config.join().unwrap_or(Ok(Ok(None)));
        (config, checkpoint)
    });
    Ok(Remote::Read(Box::new(Read {
        checkpoint: checkpoint?,
        name: source.name().to_owned(),
        config: config?,
    })))
}

/// The folder holding a Hub file or an S3 object, and the file's name in it.
fn parent_of(location: &Location) -> Option<(Location, String)> {
    match location {
        Location::Hub(at) => {
            let (folder, name) = at.path.rsplit_once('/').unwrap_or(("", &at.path));
            let parent = HubRef {
                path: folder.to_owned(),
                ..at.clone()
            };
            Some((Location::Hub(parent), name.to_owned()))
        }
        Location::S3 { bucket, key } => {
            let (folder, name) = key
                .rsplit_once('/')
                .map_or(("", key.as_str()), |(f, n)| (f, n));
            let prefix = if folder.is_empty() {
                String::new()
            } else {
                format!("{folder}/")
            };
            Some((
                Location::S3 {
                    bucket: bucket.clone(),
                    key: prefix,
                },
                name.to_owned(),
            ))
        }
        Location::Http(_) | Location::Local(_) => None,
    }
}

/// The folder's `config.json`, read whole, when it has one.
fn config_in(
    folder: &dyn Folder,
) -> Result<Result<Option<FamilyConfig>, ConfigError>, RemoteError> {
    if !folder.files().iter().any(|f| f.path == "config.json") {
        return Ok(Ok(None));
    }
    let source = folder.open("config.json")?;
    let bytes = whole(&*source, CONFIG_CAP)?;
    Ok(serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ConfigError::Json {
            path: Path::new(folder.name()).join("config.json"),
            source,
        }))
}

/// A small file read whole, refused past `cap` before anything is fetched.
fn whole(source: &dyn ByteSource, cap: u64) -> Result<Vec<u8>, RemoteError> {
    if source.len() > cap {
        return Err(RemoteError::TooLong {
            name: source.name().to_owned(),
            size: source.len(),
            cap,
        });
    }
    Ok(crate::source::read_range(source, 0..source.len())?)
}

/// One remote file opened by its format; `folder` is where an index finds its shards.
fn open_file(
    source: &Arc<dyn ByteSource>,
    folder: Option<&dyn Folder>,
    keep: usize,
) -> Result<Checkpoint, RemoteError> {
    let name = source.name();
    let path = Path::new(name);
    if sniff::is_index(path) {
        let folder = folder.ok_or_else(|| RemoteError::IndexAlone {
            name: name.to_owned(),
        })?;
        let text = whole(&**source, sharded::MAX_INDEX_BYTES)?;
        let opened = sharded::assemble(path, &text, &mut |shards| open_shards(folder, shards))?;
        let mut checkpoint = opened.checkpoint;
        checkpoint.warnings.extend(opened.warnings);
        return Ok(checkpoint);
    }
    let len = source.len();
    let first = if name.to_ascii_lowercase().ends_with(".gguf") {
        GGUF_FIRST
    } else {
        PROBE
    };
    let need = |head: &[u8]| head_need(head, len, keep);
    let head = fetch::read_head(&**source, first, GGUF_HEAD_CAP, &need)?;
    open_head(source, &head, keep)
}

/// What a head needs, by its magic: a GGUF header parsed whole, or a safetensors header's length.
fn head_need(head: &[u8], len: u64, keep: usize) -> Need {
    if gguf::sniff(head) {
        return match gguf::read_header_sized(head, len, keep) {
            Err(gguf::GgufError::Truncated { .. } | gguf::GgufError::TooLong { .. })
                if (head.len() as u64) < len =>
            {
                Need::More
            }
            _ => Need::Enough,
        };
    }
    safetensors_need(head)
}

/// A safetensors head: up to the end of its header, unless that is past the cap or the bytes are no
/// safetensors header at all (the parser then says what is wrong, without more bytes).
fn safetensors_need(head: &[u8]) -> Need {
    match fetch::safetensors_need(head) {
        Need::Until(end) if end > SAFETENSORS_HEAD_CAP || !looks_like_json(head) => Need::Enough,
        need => need,
    }
}

/// Whether the bytes after a safetensors length start a JSON object (else it is not safetensors, and
/// its length field means nothing).
fn looks_like_json(head: &[u8]) -> bool {
    head.get(8..)
        .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()))
        == Some(&b'{')
}

/// The checkpoint in `head`, the first bytes of `source`.
fn open_head(
    source: &Arc<dyn ByteSource>,
    head: &[u8],
    keep: usize,
) -> Result<Checkpoint, RemoteError> {
    let name = source.name();
    let path = Path::new(name);
    let len = source.len();
    let not_yet = |what| {
        Err(RemoteError::NotSupported {
            name: name.to_owned(),
            what,
        })
    };
    // A zip is told from an .npz by reading its members, which only a local file allows here.
    if head.starts_with(b"PK\x03\x04") {
        return not_yet("a PyTorch or NumPy zip archive");
    }
    let ranged: Arc<dyn Ranged> = Arc::new(TensorSource(Arc::clone(source)));
    match sniff::format(path, head) {
        Format::Safetensors => Ok(safetensors::open_ranged(path, head, len, &ranged)?),
        Format::Gguf => {
            let gguf = gguf::open_ranged(path, head, len, keep, &ranged)?;
            let mut checkpoint = Checkpoint::new(gguf.tensors, std::collections::BTreeMap::new());
            checkpoint.extras.gguf = gguf.metadata;
            Ok(checkpoint)
        }
        Format::NotCheckpoint(what) => Err(FileError::new(path, what).into()),
        Format::PytorchZip | Format::PytorchLegacy => not_yet("a PyTorch pickle"),
        Format::Npz | Format::Npy => not_yet("a NumPy array"),
        Format::ArchitectureText => not_yet("a print(model) text"),
        Format::ShardIndex => Err(RemoteError::IndexAlone {
            name: name.to_owned(),
        }),
    }
}

/// Every shard's header, fetched at once (one ranged GET each, [`MAX_PARALLEL`] at a time).
fn open_shards(folder: &dyn Folder, shards: &[&str]) -> Result<Vec<Checkpoint>, RemoteError> {
    let sources = shards
        .iter()
        .map(|shard| folder.open(shard))
        .collect::<Result<Vec<_>, _>>()?;
    let need = |head: &[u8]| {
        if gguf::sniff(head) {
            Need::Enough
        } else {
            safetensors_need(head)
        }
    };
    let heads = fetch::read_heads(&sources, PROBE, SAFETENSORS_HEAD_CAP, &need);
    sources
        .iter()
        .zip(heads)
        .map(|(source, head)| {
            let head = head?;
            if gguf::sniff(&head) {
                return Err(RemoteError::NotSupported {
                    name: source.name().to_owned(),
                    what: "a GGUF shard of an index",
                });
            }
            open_head(source, &head, 0)
        })
        .collect()
}

/// Fetches a remote tensor's bytes, or puts a distributed checkpoint's sharded tensor together,
/// when they are not in yet, after checking that they fit in memory: a server's listing and
/// header, or a `.metadata`, give the length, and none is trusted with an allocation unchecked.
pub fn fetch(tensor: &Tensor) -> Result<(), FetchError> {
    if tensor.is_pending() {
        let what = if tensor.is_remote() {
            "a remote tensor"
        } else {
            "a sharded tensor"
        };
        budget::check(what, Kind::Values, Some(tensor.byte_len()))
            .map_err(|e| FetchError(Box::new(e)))?;
    }
    tensor.try_bytes().map(|_| ())
}

/// Fetches (or puts together) the bytes of every tensor of `model` not read yet, [`MAX_PARALLEL`]
/// at a time: what `forward`, `export`, `check` and `diff` need before they read values. Nothing
/// for a model of files read in place.
pub fn fetch_all(model: &Model) -> Result<(), FetchError> {
    let pending: Vec<ParamId> = (0..model.store.len())
        .map(ParamId)
        .filter(|&id| model.store.get(id).is_pending())
        .collect();
    let next = AtomicUsize::new(0);
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..pending.len().min(MAX_PARALLEL) {
            scope.spawn(|| {
                while let Some(&id) = pending.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(e) = fetch(model.store.get(id)) {
                        if let Ok(mut slot) = failure.lock() {
                            slot.get_or_insert(e);
                        }
                        // The first failure ends the run: stop handing out work.
                        next.store(pending.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    match failure.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// The bytes `fetch_all` would fetch over the network, and how many tensors: what a command says
/// before it starts.
#[must_use]
pub fn pending(model: &Model) -> (u64, usize) {
    (0..model.store.len())
        .map(|i| model.store.get(ParamId(i)))
        .filter(|t| t.is_pending() && t.is_remote())
        .fold((0, 0), |(bytes, n), t| (bytes + t.byte_len(), n + 1))
}
