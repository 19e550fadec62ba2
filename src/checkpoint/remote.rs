//! A MODEL that lives on a server (`hf://`, `https://`, `s3://`): the source layer finds the file or
//! folder; this reads only what each format needs to list its tensors (a safetensors shard's header by
//! one ranged GET of its first 256 KiB, every shard at once; a GGUF header by reads that double; a
//! PyTorch zip's first 256 KiB, which hold its `data.pkl`, and its last, which hold its central
//! directory; a legacy PyTorch file's pickles by reads that double; an index and `config.json` whole)
//! and builds the checkpoint over ranges fetched when first read. Files beside the checkpoint
//! (`tokenizer.json`) are read whole when a command needs them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::locate::{self, LocateError};
use crate::families::{Config as FamilyConfig, ConfigError};
use crate::io::sniff::{self, Format};
use crate::io::{Checkpoint, FileError, gguf, pytorch, safetensors, sharded};
use crate::model::budget::{self, Kind};
use crate::model::{Model, ParamId};
use crate::source::fetch::{self, Need};
use crate::source::location::HubRef;
use crate::source::remote::PROBE;
use crate::source::{ByteSource, Folder, Location, Opened, SourceError, Sources, TensorSource};
use crate::tensor::{FetchError, Ranged, Tensor};

/// The reference crate's cap on a safetensors header, with its 8 bytes of length.
const SAFETENSORS_HEAD_CAP: u64 = 100_000_000 + 8;
/// GGUF heads are read from 1 MiB, doubling (a 256k-token vocabulary takes a few MiB).
const GGUF_FIRST: u64 = 1 << 20;
/// Heads that double (a GGUF header, a legacy PyTorch file's pickles) stop growing here.
const HEAD_CAP: u64 = 256 << 20;
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
    /// The folder the checkpoint was chosen in, for the files beside it; `None` for a lone file.
    pub folder: Option<Arc<dyn Folder>>,
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
            folder: None,
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
        folder: Some(Arc::clone(folder)),
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
    let Some(bytes) = beside(folder, "config.json", CONFIG_CAP)? else {
        return Ok(Ok(None));
    };
    Ok(serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ConfigError::Json {
            path: Path::new(folder.name()).join("config.json"),
            source,
        }))
}

/// The file `name` of `folder` read whole (and so cached whole, by its content), when the folder has
/// it: `config.json`, `tokenizer.json`. Refused past `cap` bytes before anything is fetched.
pub fn beside(folder: &dyn Folder, name: &str, cap: u64) -> Result<Option<Vec<u8>>, RemoteError> {
    if !folder.files().iter().any(|f| f.path == name) {
        return Ok(None);
    }
    let source = folder.open(name)?;
    whole(&*source, cap).map(Some)
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
    if !sniff::is_index(path) {
        return open_one(source, keep, false);
    }
    let folder = folder.ok_or_else(|| RemoteError::IndexAlone {
        name: name.to_owned(),
    })?;
    let text = whole(&**source, sharded::MAX_INDEX_BYTES)?;
    let opened = sharded::assemble(path, &text, &mut |shards| open_shards(folder, shards))?;
    let mut checkpoint = opened.checkpoint;
    checkpoint.warnings.extend(opened.warnings);
    Ok(checkpoint)
}

/// One file that is no index, from its head: read from its first bytes as far as its format needs. A
/// `shard` of an index may not be a GGUF file.
fn open_one(
    source: &Arc<dyn ByteSource>,
    keep: usize,
    shard: bool,
) -> Result<Checkpoint, RemoteError> {
    let name = source.name();
    let len = source.len();
    let first = if name.to_ascii_lowercase().ends_with(".gguf") {
        GGUF_FIRST
    } else {
        PROBE
    };
    // A GGUF shard is refused from its first read, not read on until its header parses.
    let refused = |head: &[u8]| shard && gguf::sniff(head);
    let need = |head: &[u8]| {
        if refused(head) {
            Need::Enough
        } else {
            head_need(head, len, keep)
        }
    };
    let head = fetch::read_head(&**source, first, HEAD_CAP, &need)?;
    if refused(&head) {
        return Err(RemoteError::NotSupported {
            name: name.to_owned(),
            what: "a GGUF shard of an index",
        });
    }
    open_head(source, &head, keep)
}

/// What a head needs, by its magic: a GGUF header parsed whole, a legacy PyTorch file's pickles whole,
/// or a safetensors header's length.
fn head_need(head: &[u8], len: u64, keep: usize) -> Need {
    let short = (head.len() as u64) < len;
    if gguf::sniff(head) {
        return match gguf::read_header_sized(head, len, keep) {
            Err(gguf::GgufError::Truncated { .. } | gguf::GgufError::TooLong { .. }) if short => {
                Need::More
            }
            _ => Need::Enough,
        };
    }
    if short && !pytorch::has_pickles(head) {
        return Need::More;
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
    // An .npz is a zip too, told from a PyTorch one here by its name: its members may be compressed,
    // which no range read can serve.
    if head.starts_with(b"PK\x03\x04") && name.to_ascii_lowercase().ends_with(".npz") {
        return not_yet("a NumPy .npz archive");
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
        Format::PytorchZip | Format::PytorchLegacy => Ok(super::pytorch::checkpoint(
            pytorch::open_ranged(path, head, len, ranged)?,
        )),
        Format::NotCheckpoint(what) => Err(FileError::new(path, what).into()),
        Format::Npz | Format::Npy => not_yet("a NumPy array"),
        Format::ArchitectureText => not_yet("a print(model) text"),
        Format::ShardIndex => Err(RemoteError::IndexAlone {
            name: name.to_owned(),
        }),
    }
}

/// Every shard opened at once (each from its head, and a PyTorch zip's tail too), [`fetch::MAX_PARALLEL`] at a
/// time.
fn open_shards(folder: &dyn Folder, shards: &[&str]) -> Result<Vec<Checkpoint>, RemoteError> {
    let sources = shards
        .iter()
        .map(|shard| folder.open(shard))
        .collect::<Result<Vec<_>, _>>()?;
    fetch::try_each(&sources, &|source| open_one(source, 0, true))
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
    tensor.fetch()
}

/// Fetches (or puts together) the bytes of every tensor of `model` not read yet,
/// [`fetch::MAX_PARALLEL`] at a time: what `forward`, `export`, `check` and `diff` need before they
/// read values. Nothing for a model of files read in place.
pub fn fetch_all(model: &Model) -> Result<(), FetchError> {
    let all: Vec<ParamId> = (0..model.store.len()).map(ParamId).collect();
    fetch_these(model, &all)
}

/// Fetches the bytes of the tensors `ids` of `model` not fetched yet, [`fetch::MAX_PARALLEL`] at a time.
pub fn fetch_these(model: &Model, ids: &[ParamId]) -> Result<(), FetchError> {
    let pending: Vec<ParamId> = ids
        .iter()
        .copied()
        .filter(|&id| model.store.get(id).is_pending())
        .collect();
    fetch::try_each(&pending, &|&id| fetch(model.store.get(id))).map(|_| ())
}

/// The bytes `fetch_these` would fetch over the network for `ids`, and how many tensors: what a
/// command says before it starts. A quantized weight's or reordered rows' bytes are those of the
/// remote parts they are made of, not the values they give.
#[must_use]
pub fn pending(model: &Model, ids: &[ParamId]) -> (u64, usize) {
    ids.iter()
        .map(|&id| model.store.get(id))
        .filter(|t| t.is_pending() && t.is_remote())
        .fold((0, 0), |(bytes, n), t| {
            (bytes + t.pending_download(), n + 1)
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ops::Range;

    use super::*;
    use crate::model::{Module, ModuleKind, ParamStore};
    use crate::tensor::quantized::Quantized;
    use crate::tensor::reordered::Rows;
    use crate::tensor::{Bytes, DType};

    /// A server whose every byte is zero.
    struct Zeros;

    impl Ranged for Zeros {
        fn read(&self, range: Range<u64>) -> Result<Vec<u8>, FetchError> {
            Ok(vec![0; usize::try_from(range.end - range.start).unwrap()])
        }
    }

    fn remote(shape: Vec<usize>, dtype: DType, range: Range<u64>) -> Tensor {
        Tensor::new(shape, dtype, Bytes::remote(Arc::new(Zeros), range))
    }

    /// A quantized weight over remote parts counts the parts' bytes still to come, not its
    /// dequantized length (128 bytes of F32 here, against 32 + 16 to download); reordered rows
    /// count their stored rows; a local tensor counts nothing.
    #[test]
    fn pending_counts_the_remote_parts_bytes() {
        let codes = remote(vec![4, 8], DType::F8_E4M3, 0..32);
        let scale = remote(vec![4, 1], DType::F32, 32..48);
        let fp8 = Quantized::fp8(("w".into(), codes.clone()), ("s".into(), scale), None).unwrap();
        let fp8 = Tensor::from_quantized(fp8);
        assert_eq!(fp8.byte_len(), 128);
        let rows = Rows::new(remote(vec![3, 2], DType::F32, 48..72), vec![2, 0, 1]).unwrap();
        let mut store = ParamStore::default();
        let ids = [
            store.insert(fp8),
            store.insert(Tensor::reordered(rows)),
            store.insert(Tensor::from_f32(vec![2], &[1.0, 2.0])),
        ];
        let model = Model {
            root: Module::new("", ModuleKind::Unknown).into(),
            store,
            metadata: BTreeMap::new(),
        };
        assert_eq!(pending(&model, &ids), (48 + 24, 2));
        codes.fetch().unwrap();
        assert_eq!(pending(&model, &ids), (16 + 24, 2));
    }
}
