//! A `MODEL` argument made into a [`Model`]: a demo, a checkpoint file or folder (its format sniffed
//! from its bytes), or a `print(model)` architecture text.
//!
//! - [`locate`]: which file a folder or an index stands for;
//! - [`infer`]: the module tree read from a checkpoint's dotted names, with its ties;
//! - [`architecture`]: binding a checkpoint to an architecture text (`--arch`, or stored in the file);
//! - [`save`]: a model written back as safetensors' `save_model` writes it;
//! - [`training`]: an optimizer's state in a training checkpoint, kept apart from the parameters;
//! - [`adapter`]: a LoRA adapter folder attached to its base;
//! - [`quantized`]: quantized safetensors' codes and scales grouped into logical weights.

pub mod adapter;
pub mod architecture;
pub mod dcp;
pub mod family;
pub mod infer;
pub mod locate;
pub mod pytorch;
pub mod quantized;
pub mod remote;
pub mod save;
pub mod training;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::families::{Config as FamilyConfig, ConfigError, Family};
use crate::io::pickle::Scalar;
use crate::io::small_file::{self, SmallFileError};
use crate::io::sniff::{self, Format};
use crate::io::{Checkpoint, FileError, gguf, npy, npz, safetensors, sharded};
use crate::model::arch::{self, ArchError};
use crate::model::budget::TooBig;
use crate::model::{Model, demos};
use crate::source::{Folder, Location, LocationError};

pub use architecture::Architecture;
pub use infer::{from_checkpoint, natural_cmp};
pub use remote::{RemoteError, fetch, fetch_all, fetch_these, pending};

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions<'a> {
    /// A `print(model)` text file giving the architecture of a checkpoint.
    pub arch: Option<&'a Path>,
    /// `torch.manual_seed(seed)` before building a demo or an architecture text.
    pub seed: u64,
    /// Items kept of each GGUF metadata array: `None` keeps a preview of
    /// [`gguf::value::PREVIEW`]; the app asks for more, to list them.
    pub array_items: Option<usize>,
}

/// A model and what the user should hear about how it was read.
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// Where its architecture came from.
    pub architecture: Architecture,
    /// Oddities that did not stop the load (tensors a shard index does not list, …).
    pub warnings: Vec<String>,
    /// A PyTorch checkpoint's plain values by dotted name (`epoch = 7`); empty for other formats.
    pub values: Vec<(String, Scalar)>,
    /// A GGUF file's metadata pairs, in file order; empty for other formats.
    pub gguf: Vec<(String, gguf::Value)>,
    /// The family config.json names, when paramscope runs it (the tree is then the family's).
    pub family: Option<(Family, FamilyConfig)>,
    /// The LoRA adapter opened against this model (its base), when the `MODEL` was one.
    pub adapter: Option<adapter::Attached>,
    /// The remote folder the checkpoint was read from (a Hub repo, an S3 prefix), for the files beside
    /// it (`tokenizer.json`); `None` for a local or a lone remote file.
    pub remote: Option<Arc<dyn Folder>>,
}

/// Why a `MODEL` argument could not be opened. Names travel raw; they are escaped where printed.
#[derive(Debug, Error)]
pub enum OpenError {
    /// `demo:NAME` with an unknown name.
    #[error("unknown demo {spec:?}; the demos are {known}")]
    UnknownDemo {
        /// What the user typed.
        spec: String,
        /// The demos, comma-separated.
        known: String,
    },
    /// `--arch` given with a demo.
    #[error("--arch gives the architecture of a checkpoint file; a demo has its own")]
    ArchForDemo,
    /// `--arch` given with an architecture text.
    #[error("{0}: --arch applies to checkpoint files, and this is an architecture text")]
    ArchForText(String),
    /// Nothing at that path.
    #[error(
        "{0}: no such file (a MODEL is demo:mlp, demo:rgnet, demo:shared, a .safetensors file, a PyTorch .pt/.pth/.bin file, a model.safetensors.index.json or pytorch_model.bin.index.json, a folder holding one, or a print(model) text file)"
    )]
    NoSuchFile(String),
    /// A folder that holds no single checkpoint.
    #[error(transparent)]
    Folder(#[from] locate::LocateError),
    /// A checkpoint file that could not be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// A file that is neither a checkpoint nor a readable architecture text.
    #[error("{path}: not a safetensors file, and not a print(model) architecture text ({why})")]
    NotText {
        /// The file.
        path: String,
        /// Why it cannot be read as text.
        why: SmallFileError,
    },
    /// A file that reads as text but not as an architecture.
    #[error("{path}: as an architecture text, {error}")]
    BadText {
        /// The file.
        path: String,
        /// Where the text went wrong.
        error: ArchError,
    },
    /// An architecture text whose parameters would not fit in memory.
    #[error("{path}: {error}")]
    TooBig {
        /// The file.
        path: String,
        /// How much it needs.
        error: TooBig,
    },
    /// A checkpoint whose architecture text is unreadable or does not fit it.
    #[error(transparent)]
    Architecture(#[from] architecture::ArchitectureError),
    /// `--key` naming nothing in the checkpoint.
    #[error(transparent)]
    Key(#[from] pytorch::KeyError),
    /// `--key` given with a demo or an architecture text.
    #[error("--key takes part of a checkpoint file; {0} is not one")]
    KeyWithoutCheckpoint(String),
    /// An `hf://`, `s3://` or `http(s)://` MODEL that does not parse.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// A remote file or folder that could not be listed or read, or a format read only locally.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// An adapter that cannot be attached, or `--base` without one.
    #[error(transparent)]
    Adapter(#[from] adapter::AdapterError),
}

/// Loads `spec` as the command line's `MODEL`.
pub fn load(spec: &str, options: &LoadOptions) -> Result<Model, OpenError> {
    open(spec, options).map(|loaded| loaded.model)
}

/// Loads `spec` as [`load`] does, keeping the warnings.
pub fn open(spec: &str, options: &LoadOptions) -> Result<Loaded, OpenError> {
    open_adapted(spec, options, None, None)
}

/// Loads `spec` as [`open_keyed`] does, but a LoRA adapter folder opens as its base with the
/// adapter attached: the base is `base`, else the config's `base_model_name_or_path` when that
/// is a path here or a Hub repo; without either (or with a Hub base that does not open), the
/// adapter's own tensors open, with a warning.
pub fn open_adapted(
    spec: &str,
    options: &LoadOptions,
    key: Option<&str>,
    base: Option<&str>,
) -> Result<Loaded, OpenError> {
    let Some(found) = adapter::find(Path::new(spec))? else {
        if base.is_some() {
            return Err(adapter::AdapterError::NotAnAdapter(spec.to_owned()).into());
        }
        return open_keyed(spec, options, key);
    };
    let adapter = found.read()?;
    let alone = |why: String| -> Result<Loaded, OpenError> {
        let mut loaded = open_keyed(spec, options, key)?;
        loaded.warnings.push(format!(
            "{spec} is {}{why}: pass --base MODEL to see it against its base",
            adapter.kind
        ));
        Ok(loaded)
    };
    let (base, named) = match base {
        Some(base) => (base.to_owned(), false),
        None => match adapter.config.named_base() {
            Some(base) => (base, true),
            None => return alone(String::new()),
        },
    };
    let mut loaded = match open_keyed(&base, options, key) {
        Ok(loaded) => loaded,
        // A Hub base the user did not ask for that cannot be had (offline, gated, gone) leaves
        // the adapter alone, saying why; one asked for is an error.
        Err(e) if named && base.starts_with("hf://") => {
            return alone(format!(" whose base {base} did not open ({e})"));
        }
        Err(e) => return Err(e),
    };
    let (config, tensors) =
        adapter.into_parts(loaded.family.as_ref().map(|(_, c)| c), &loaded.gguf)?;
    loaded.adapter = Some(adapter::attach(&config, tensors, &loaded.model, &base));
    Ok(loaded)
}

/// Loads `spec` as [`open`] does; with `key`, the model is the part of the checkpoint under it.
pub fn open_keyed(
    spec: &str,
    options: &LoadOptions,
    key: Option<&str>,
) -> Result<Loaded, OpenError> {
    if let Some(name) = spec.strip_prefix("demo:") {
        if key.is_some() {
            return Err(OpenError::KeyWithoutCheckpoint(spec.to_owned()));
        }
        return open_demo(spec, name, options);
    }
    let path = Path::new(spec);
    // A local path wins, even one that happens to hold "://".
    if !path.exists() {
        return match Location::parse(spec)? {
            Location::Local(_) => Err(OpenError::NoSuchFile(spec.to_owned())),
            remote => open_remote(&remote, options, key, spec),
        };
    }
    let dcp_folder = dcp::is_folder(path);
    let (file, outside) = if dcp_folder {
        (path.join(crate::io::dcp::METADATA), None)
    } else if path.is_dir() {
        let located = locate::checkpoint_in(path)?;
        (located.file, located.outside)
    } else {
        (path.to_path_buf(), None)
    };
    let head = small_file::head(&file, sniff::HEAD).map_err(|e| FileError::new(&file, e))?;
    // A GGUF file's config is its metadata's, whatever config.json lies beside it.
    let mut gguf_config = None;
    let checkpoint = match sniff::format(&file, &head) {
        _ if dcp_folder => dcp::open(path)?,
        Format::ShardIndex => {
            let sharded = sharded::open_with(&file, &mut pytorch::open_shard)?;
            let mut checkpoint = sharded.checkpoint;
            checkpoint.warnings.extend(sharded.warnings);
            checkpoint
        }
        Format::Safetensors => safetensors::open(&file)?,
        Format::PytorchZip | Format::PytorchLegacy => pytorch::open(&file)?,
        Format::Gguf => {
            let keep = options.array_items.unwrap_or(gguf::value::PREVIEW);
            let gguf = gguf::open(&file, keep)?;
            let mut warnings = Vec::new();
            let (tensors, config) = family::from_gguf(&gguf.metadata, gguf.tensors, &mut warnings);
            gguf_config = Some(config);
            let mut checkpoint = Checkpoint::new(tensors, BTreeMap::new());
            checkpoint.warnings.extend(warnings);
            checkpoint.extras.gguf = gguf.metadata;
            checkpoint
        }
        Format::Npz => Checkpoint::new(npz::open(&file)?, BTreeMap::new()),
        Format::Npy => Checkpoint::new(npy::open(&file)?, BTreeMap::new()),
        Format::NotCheckpoint(what) => return Err(FileError::new(&file, what).into()),
        Format::ArchitectureText if key.is_some() => {
            return Err(OpenError::KeyWithoutCheckpoint(spec.to_owned()));
        }
        Format::ArchitectureText => return open_text(&file, options),
    };
    // Read once: it says whether the head is tied, and which family the tree is.
    let config = gguf_config.map_or_else(|| FamilyConfig::beside(&file), Ok);
    let mut loaded = from_opened(checkpoint, &file, key, config, options, spec)?;
    if let Some(target) = outside {
        loaded.warnings.insert(
            0,
            format!(
                "{} is a link leading out of the folder, to {}",
                file.display(),
                target.display()
            ),
        );
    }
    Ok(loaded)
}

/// A remote MODEL: the Hugging Face cache's copy by the local route, else the checkpoint the remote
/// layer read, made into a model as a local one is.
fn open_remote(
    location: &Location,
    options: &LoadOptions,
    key: Option<&str>,
    spec: &str,
) -> Result<Loaded, OpenError> {
    let keep = options.array_items.unwrap_or(gguf::value::PREVIEW);
    match remote::open(location, keep)? {
        remote::Remote::Local(path) => match path.to_str() {
            Some(local) => open_keyed(local, options, key),
            None => Err(OpenError::NoSuchFile(path.display().to_string())),
        },
        remote::Remote::Read(read) => {
            let remote::Read {
                checkpoint,
                name,
                config,
                folder,
            } = *read;
            let mut loaded = from_opened(checkpoint, Path::new(&name), key, config, options, spec)?;
            loaded.remote = folder;
            Ok(loaded)
        }
    }
}

/// A checkpoint made into a model: the part under `key`, its tree inferred from its names, then
/// bound to its architecture.
fn from_opened(
    checkpoint: Checkpoint,
    file: &Path,
    key: Option<&str>,
    config: Result<Option<FamilyConfig>, ConfigError>,
    options: &LoadOptions,
    spec: &str,
) -> Result<Loaded, OpenError> {
    let mut checkpoint = match key {
        Some(key) => pytorch::select(checkpoint, key)?,
        None => checkpoint,
    };
    let ties = matches!(&config, Ok(Some(c)) if c.ties_word_embeddings());
    let mut warnings = std::mem::take(&mut checkpoint.warnings);
    let quantization = quantized::config_beside(file);
    quantized::group(
        &mut checkpoint.tensors,
        quantization.as_ref(),
        &mut warnings,
    );
    let extras = std::mem::take(&mut checkpoint.extras);
    let mut model = from_checkpoint(checkpoint, ties).map_err(|e| FileError::new(file, e))?;
    // `tree` lists these tensors apart from the parameters it counts.
    training::mark_optimizer_state(std::sync::Arc::make_mut(&mut model.root), &extras.values);
    let arch = arch_for(file, options.arch, &model, &mut warnings);
    let (model, architecture) = architecture::apply(model, arch.as_deref(), spec)?;
    let (model, family) = if architecture == Architecture::Inferred && key.is_none() {
        family::apply(model, config, &mut warnings)
    } else {
        (model, None)
    };
    Ok(Loaded {
        model,
        architecture,
        warnings,
        values: extras.values,
        gguf: extras.gguf,
        family,
        adapter: None,
        remote: None,
    })
}

/// A demo of the chapter, built from the seed.
fn open_demo(spec: &str, name: &str, options: &LoadOptions) -> Result<Loaded, OpenError> {
    if options.arch.is_some() {
        return Err(OpenError::ArchForDemo);
    }
    let model = demos::build(name, options.seed).ok_or_else(|| OpenError::UnknownDemo {
        spec: spec.to_owned(),
        known: demos::DEMOS
            .iter()
            .map(|(n, _)| format!("demo:{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    Ok(Loaded {
        model,
        architecture: Architecture::Built,
        warnings: Vec::new(),
        values: Vec::new(),
        gguf: Vec::new(),
        family: None,
        adapter: None,
        remote: None,
    })
}

/// A `print(model)` text, built fresh with PyTorch's default init.
fn open_text(file: &Path, options: &LoadOptions) -> Result<Loaded, OpenError> {
    let display = || file.display().to_string();
    if options.arch.is_some() {
        return Err(OpenError::ArchForText(display()));
    }
    let text = small_file::read_text(file, architecture::MAX_ARCH_BYTES).map_err(|why| {
        OpenError::NotText {
            path: display(),
            why,
        }
    })?;
    let root = arch::parse(&text).map_err(|error| OpenError::BadText {
        path: display(),
        error,
    })?;
    Ok(Loaded {
        model: arch::instantiate(&root, options.seed).map_err(|error| OpenError::TooBig {
            path: display(),
            error,
        })?,
        architecture: Architecture::Built,
        warnings: Vec::new(),
        values: Vec::new(),
        gguf: Vec::new(),
        family: None,
        adapter: None,
        remote: None,
    })
}

/// The architecture text for a checkpoint: `--arch`, else (when the file stores none) a
/// `NAME.arch.txt` beside `NAME.safetensors` (or beside the shard index), which `notes` mentions.
fn arch_for(
    file: &Path,
    given: Option<&Path>,
    model: &Model,
    notes: &mut Vec<String>,
) -> Option<PathBuf> {
    if let Some(given) = given {
        return Some(given.to_path_buf());
    }
    if model.metadata.contains_key(arch::METADATA_KEY) {
        return None;
    }
    let name = file.file_name()?.to_str()?;
    let stem = [".safetensors.index.json", ".index.json", ".safetensors"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    let text = beside(file, &format!("{stem}.arch.txt"));
    text.is_file().then(|| {
        notes.push(format!("architecture from {}", text.display()));
        text
    })
}

/// The path a checkpoint's companion file (`config.json`, `NAME.arch.txt`) would have.
#[must_use]
pub fn beside(checkpoint: &Path, name: &str) -> PathBuf {
    checkpoint.parent().unwrap_or(Path::new(".")).join(name)
}
