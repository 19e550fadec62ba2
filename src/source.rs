//! A `MODEL` argument (`demo:NAME`, a `.safetensors` file, or a `print(model)` text) made into a [`Model`].

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

use crate::io::safetensors::{self, Checkpoint, FileError};
use crate::io::sharded;
use crate::io::sniff;
use crate::model::arch::{self, METADATA_KEY};
use crate::model::layers::Layer;
use crate::model::tree::{Module, ModuleKind, PathStep};
use crate::model::{Model, ParamStore, demos};
use crate::text::escape;

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions<'a> {
    /// A `print(model)` text file giving the architecture of a checkpoint.
    pub arch: Option<&'a Path>,
    /// `torch.manual_seed(seed)` before building a demo or an architecture text.
    pub seed: u64,
}

/// A model and what the user should hear about how it was read.
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// Where its architecture came from.
    pub architecture: Architecture,
    /// Oddities that did not stop the load (tensors a shard index does not list, …).
    pub warnings: Vec<String>,
}

/// Where a model's architecture (its module kinds and their order) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Built here: a demo, or a `print(model)` text.
    Built,
    /// A checkpoint bound to the `--arch` text.
    Given,
    /// A checkpoint bound to the text an export stored in its metadata.
    Stored,
    /// A checkpoint's tree read from its tensor names: layers without parameters are invisible.
    Inferred,
}

/// Loads `spec` as the command line's `MODEL`. The error is one line that names what failed.
pub fn load(spec: &str, options: &LoadOptions) -> Result<Model, String> {
    open(spec, options).map(|loaded| loaded.model)
}

/// Loads `spec` as [`load`] does, keeping the warnings.
pub fn open(spec: &str, options: &LoadOptions) -> Result<Loaded, String> {
    if let Some(name) = spec.strip_prefix("demo:") {
        if options.arch.is_some() {
            return Err(
                "--arch gives the architecture of a checkpoint file; a demo has its own".into(),
            );
        }
        let names: Vec<_> = demos::DEMOS
            .iter()
            .map(|(n, _)| format!("demo:{n}"))
            .collect();
        let model = demos::build(name, options.seed).ok_or_else(|| {
            format!(
                "unknown demo {:?}; the demos are {}",
                escape(spec),
                names.join(", ")
            )
        })?;
        return Ok(Loaded {
            model,
            architecture: Architecture::Built,
            warnings: Vec::new(),
        });
    }
    let path = Path::new(spec);
    if !path.exists() {
        return Err(format!(
            "{}: no such file (a MODEL is demo:mlp, demo:rgnet, demo:shared, a .safetensors file, a model.safetensors.index.json, a folder holding either, or a print(model) text file)",
            escape(spec)
        ));
    }
    let file = if path.is_dir() {
        checkpoint_in(path)?
    } else {
        path.to_path_buf()
    };
    if is_index(&file) {
        let sharded = sharded::open(&file).map_err(|e| e.to_string())?;
        let model = from_checkpoint(sharded.checkpoint, ties_word_embeddings(&file));
        let (model, architecture) = apply_architecture(model, options.arch, spec)?;
        return Ok(Loaded {
            model,
            architecture,
            warnings: sharded.warnings,
        });
    }
    let head = safetensors::head(&file, 512).map_err(|e| format!("{}: {e}", escape(spec)))?;
    if looks_like_safetensors(&file, &head) {
        let checkpoint = safetensors::open(&file).map_err(|e| e.to_string())?;
        let model = from_checkpoint(checkpoint, ties_word_embeddings(&file));
        let (model, architecture) = apply_architecture(model, options.arch, spec)?;
        return Ok(Loaded {
            model,
            architecture,
            warnings: Vec::new(),
        });
    }
    if options.arch.is_some() {
        return Err(format!(
            "{}: --arch applies to checkpoint files, and this is an architecture text",
            escape(spec)
        ));
    }
    if let Some(what) = sniff::identify(&head) {
        return Err(FileError::new(&file, what).to_string());
    }
    let not_text = |why: &str| {
        let reason =
            format!("not a safetensors file, and not a print(model) architecture text ({why})");
        FileError::new(&file, reason).to_string()
    };
    let size = std::fs::metadata(&file).map_or(0, |m| m.len());
    if size > MAX_ARCH_BYTES {
        return Err(not_text(&format!("{size} bytes is far too long for one")));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| not_text(&e.to_string()))?;
    let root = arch::parse(&text)
        .map_err(|e| FileError::new(&file, format!("as an architecture text, {e}")).to_string())?;
    Ok(Loaded {
        model: arch::instantiate(&root, options.seed),
        architecture: Architecture::Built,
        warnings: Vec::new(),
    })
}

/// The checkpoint a folder holds: its shard index, else its one `.safetensors` file.
fn checkpoint_in(folder: &Path) -> Result<std::path::PathBuf, String> {
    let index = folder.join("model.safetensors.index.json");
    if index.is_file() {
        return Ok(index);
    }
    let entries = std::fs::read_dir(folder)
        .map_err(|e| format!("{}: {e}", escape(&folder.display().to_string())))?;
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && (is_index(p) || p.extension().is_some_and(|e| e == "safetensors"))
        })
        .collect();
    files.sort();
    match files.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "{}: the folder holds no .safetensors file and no model.safetensors.index.json",
            escape(&folder.display().to_string())
        )),
        many => Err(format!(
            "{}: the folder holds {} checkpoints and no model.safetensors.index.json; name one: {}",
            escape(&folder.display().to_string()),
            many.len(),
            many.iter()
                .filter_map(|p| p.file_name())
                .map(|n| escape(&n.to_string_lossy()).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The longest architecture text read: `print(model)` of a model with a million modules fits.
const MAX_ARCH_BYTES: u64 = 64 << 20;

/// Whether `path` names a shard index (`*.safetensors.index.json`, or any `*.index.json`).
fn is_index(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".index.json"))
}

/// The input embedding among `names`: the first of [`EMBEDDING_NAMES`] that some name ends with.
fn input_embedding<'a>(names: impl Iterator<Item = &'a String>) -> Option<String> {
    names
        .filter_map(|name| {
            let rank = EMBEDDING_NAMES
                .iter()
                .position(|e| name == e || name.ends_with(&format!(".{e}")))?;
            Some((rank, name.clone()))
        })
        .min()
        .map(|(_, name)| name)
}

/// Embedding names that Hugging Face models tie `lm_head.weight` to, most common first.
const EMBEDDING_NAMES: [&str; 6] = [
    "embed_tokens.weight",
    "wte.weight",
    "word_embeddings.weight",
    "tok_embeddings.weight",
    "embed_in.weight",
    "shared.weight",
];

/// Whether a `config.json` beside the checkpoint says `tie_word_embeddings: true`: then
/// `lm_head.weight` is the input embedding, whether or not it was saved.
fn ties_word_embeddings(checkpoint: &Path) -> bool {
    let config = checkpoint
        .parent()
        .unwrap_or(Path::new("."))
        .join("config.json");
    std::fs::read(&config)
        .ok()
        .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
        .and_then(|c| {
            c.get("tie_word_embeddings")
                .and_then(serde_json::Value::as_bool)
        })
        == Some(true)
}

/// A `.safetensors` name, or bytes that start as safetensors do: a length, then a JSON object.
fn looks_like_safetensors(path: &Path, head: &[u8]) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
        || head.get(8) == Some(&b'{')
}

/// Gives a checkpoint its architecture: `--arch`, else the one an export stored, else the tree inferred
/// from its names.
fn apply_architecture(
    model: Model,
    arch_file: Option<&Path>,
    spec: &str,
) -> Result<(Model, Architecture), String> {
    let (text, origin, architecture) = match arch_file {
        Some(file) => (
            std::fs::read_to_string(file)
                .map_err(|e| format!("{}: {e}", escape(&file.display().to_string())))?,
            escape(&file.display().to_string()).into_owned(),
            Architecture::Given,
        ),
        None => match model.metadata.get(METADATA_KEY) {
            Some(text) => (
                text.clone(),
                format!("{} (its {METADATA_KEY} metadata)", escape(spec)),
                Architecture::Stored,
            ),
            None => return Ok((model, Architecture::Inferred)),
        },
    };
    let root = arch::parse(&text).map_err(|e| format!("{origin}: {e}"))?;
    let model = arch::bind(&root, &model).map_err(|e| format!("{}: {e}", escape(spec)))?;
    Ok((model, architecture))
}

/// Builds the module tree of a checkpoint from its dotted names, with ties from `__metadata__`,
/// and `lm_head.weight` tied to the input embedding when `tie_word_embeddings` says so.
#[must_use]
pub fn from_checkpoint(checkpoint: Checkpoint, tie_word_embeddings: bool) -> Model {
    let Checkpoint { tensors, metadata } = checkpoint;
    let mut store = ParamStore::default();
    let mut ids = BTreeMap::new();
    for (name, tensor) in tensors {
        ids.insert(name, store.insert(tensor));
    }
    // safetensors' save_model drops all but one name of a shared tensor and records
    // `"dropped": "kept"` in the metadata.
    let mut ties: Vec<(String, String)> = metadata
        .iter()
        .map(|(d, k)| (d.clone(), k.clone()))
        .collect();
    if tie_word_embeddings && let Some(embedding) = input_embedding(ids.keys()) {
        ties.push(("lm_head.weight".to_owned(), embedding));
    }
    let mut aliases: Vec<(String, _)> = Vec::new();
    for (dropped, kept) in ties {
        let is_new = !ids.contains_key(&dropped) && aliases.iter().all(|(d, _)| *d != dropped);
        if let (true, Some(id)) = (is_new, ids.get(&kept)) {
            aliases.push((dropped, *id));
        }
    }
    let mut root = Module::new("", ModuleKind::Unknown);
    for (name, id) in ids.into_iter().chain(aliases) {
        insert_param(&mut root, &name, id);
    }
    sort_naturally(&mut root);
    infer_kinds(&mut root, &store);
    Model {
        root,
        store,
        metadata,
    }
}

/// Puts `name` into the tree: every segment but the last is a module. A name with an empty segment
/// (`a..b`) stays whole at the root, so that its key survives unchanged.
fn insert_param(root: &mut Module, name: &str, id: crate::model::ParamId) {
    let segments: Vec<&str> = name.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        root.params.push((name.to_owned(), id));
        return;
    }
    let (local, modules) = segments
        .split_last()
        .expect("split yields at least one segment");
    let mut module = root;
    for segment in modules {
        let step = PathStep::Name((*segment).to_owned());
        let position = if let Some(i) = module.children.iter().position(|c| module_named(c, &step))
        {
            i
        } else {
            module
                .children
                .push(Module::new(*segment, ModuleKind::Unknown));
            module.children.len() - 1
        };
        module = &mut module.children[position];
    }
    module.params.push(((*local).to_owned(), id));
}

fn module_named(module: &Module, step: &PathStep) -> bool {
    matches!(step, PathStep::Name(n) if *n == module.name)
}

/// Orders children naturally (`2` before `10`) and parameters as PyTorch registers them (weight first).
fn sort_naturally(module: &mut Module) {
    module
        .children
        .sort_by(|a, b| natural_cmp(&a.name, &b.name));
    module.params.sort_by(|(a, _), (b, _)| {
        let rank = |n: &str| match n {
            "weight" => 0,
            "bias" => 1,
            _ => 2,
        };
        rank(a).cmp(&rank(b)).then_with(|| natural_cmp(a, b))
    });
    module.children.iter_mut().for_each(sort_naturally);
}

/// Compares strings with runs of digits taken as numbers: `layers.2` < `layers.10`.
#[must_use]
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (na, nb) = (digits(a), digits(b));
                let (da, db) = (
                    a[..na].trim_start_matches('0'),
                    b[..nb].trim_start_matches('0'),
                );
                let order = da
                    .len()
                    .cmp(&db.len())
                    .then_with(|| da.cmp(db))
                    .then_with(|| na.cmp(&nb));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (&a[na..], &b[nb..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            }
        }
    }
}

/// Recognises what names alone make certain: a leaf with a 2-D float `weight` and an optional
/// matching 1-D `bias` is a Linear (unless its name says embedding, which has the same shape);
/// a module whose children are exactly `0..n` is a Sequential.
fn infer_kinds(module: &mut Module, store: &ParamStore) {
    module
        .children
        .iter_mut()
        .for_each(|c| infer_kinds(c, store));
    let numbered = !module.children.is_empty()
        && module.params.is_empty()
        && module
            .children
            .iter()
            .enumerate()
            .all(|(i, c)| c.name == i.to_string());
    if numbered {
        module.kind = ModuleKind::Sequential;
    } else if module.children.is_empty()
        && let Some(layer) = linear_from_params(module, store)
    {
        module.kind = ModuleKind::Layer(layer);
    }
}

fn linear_from_params(module: &Module, store: &ParamStore) -> Option<Layer> {
    let name = module.name.to_ascii_lowercase();
    if name.contains("embed") || name == "wte" || name == "wpe" {
        return None;
    }
    let weight = store.get(module.param("weight")?);
    let &[out_features, in_features] = weight.shape() else {
        return None;
    };
    let bias = module.param("bias").map(|id| store.get(id));
    let fits = |t: &crate::tensor::Tensor| t.dtype().is_float();
    let bias_fits = bias.is_none_or(|b| b.shape() == [out_features] && fits(b));
    let only_these = module.params.len() == 1 + usize::from(bias.is_some());
    (fits(weight) && bias_fits && only_these).then_some(Layer::Linear {
        in_features,
        out_features,
        bias: bias.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;
    use std::cmp::Ordering;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        assert_eq!(natural_cmp("layers.2", "layers.10"), Ordering::Less);
        assert_eq!(natural_cmp("block 10", "block 9"), Ordering::Greater);
        assert_eq!(natural_cmp("a", "a.0"), Ordering::Less);
        assert_eq!(natural_cmp("x01", "x1"), Ordering::Greater);
        assert_eq!(natural_cmp("bias", "weight"), Ordering::Less);
    }
}
