//! A LoRA adapter attached to its base model: a PEFT folder (`adapter_config.json` +
//! `adapter_model.safetensors`) or a llama.cpp GGUF adapter (`general.type = adapter`), both read
//! into one [`Config`] and PEFT's keys, then matched to the base the same way: each stored key to a
//! base weight, a prefix that would fix a key matching none, the targeted modules left without an
//! adapter.
//!
//! - [`config`]: what PEFT's config (or the GGUF's metadata) says of each module's rank and alpha;
//! - [`gguf`]: a llama.cpp adapter read as llama.cpp reads it, its pairs under PEFT's keys.

mod config;
pub mod gguf;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use config::{Config, ConfigError};

use crate::compare::adapter::{Finding, Lora, LoraError, Rename};
use crate::families::Config as FamilyConfig;
use crate::io::{FileError, safetensors};
use crate::model::{Model, ParamId};
use crate::tensor::Tensor;

/// The config file of an adapter folder.
pub const CONFIG: &str = "adapter_config.json";
/// The weights file of an adapter folder.
pub const WEIGHTS: &str = "adapter_model.safetensors";
/// The prefix PEFT's `save_pretrained` puts before every key (the `PeftModel`'s `base_model.model`).
const PEFT_PREFIX: &str = "base_model.model.";

/// Why an adapter could not be attached. Paths and names travel raw.
#[derive(Debug, Error)]
pub enum AdapterError {
    /// `--base` given for something that is not an adapter.
    #[error(
        "{0}: --base applies to a LoRA adapter (a folder holding adapter_config.json and adapter_model.safetensors, or a llama.cpp adapter .gguf)"
    )]
    NotAnAdapter(String),
    /// The config cannot be read.
    #[error("{}: {why}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        why: ConfigError,
    },
    /// The adapter's tensors cannot be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// A llama.cpp adapter llama.cpp itself would refuse.
    #[error("{}: {why}", path.display())]
    Gguf {
        /// The adapter file.
        path: PathBuf,
        /// What is wrong with it.
        why: gguf::GgufAdapterError,
    },
}

/// Where an adapter is.
#[derive(Debug, Clone)]
pub enum Found {
    /// A PEFT folder's two files.
    Peft {
        /// `adapter_config.json`.
        config: PathBuf,
        /// `adapter_model.safetensors`.
        weights: PathBuf,
    },
    /// A llama.cpp GGUF adapter file.
    Gguf(PathBuf),
}

/// The adapter `path` names: a folder holding both PEFT files, either file with the other beside
/// it, or a GGUF file whose `general.type` is `adapter` (a GGUF file that cannot be read is an
/// error).
pub fn find(path: &Path) -> Result<Option<Found>, FileError> {
    if gguf::is_adapter(path)? {
        return Ok(Some(Found::Gguf(path.to_path_buf())));
    }
    let folder = if path.is_dir() {
        path
    } else {
        let name = path.file_name().and_then(|n| n.to_str());
        if name != Some(CONFIG) && name != Some(WEIGHTS) {
            return Ok(None);
        }
        path.parent().unwrap_or(Path::new("."))
    };
    let (config, weights) = (folder.join(CONFIG), folder.join(WEIGHTS));
    Ok((config.is_file() && weights.is_file()).then_some(Found::Peft { config, weights }))
}

/// An adapter read before its base is opened: its config, and its tensors as stored.
pub struct Adapter {
    /// What its config (or metadata) says.
    pub config: Config,
    /// What the user is told it is, when it opens without a base.
    pub kind: &'static str,
    stored: Stored,
}

enum Stored {
    Peft(PathBuf),
    Gguf(PathBuf, gguf::Pairs),
}

impl Found {
    /// Reads the config (a GGUF adapter's metadata and tensor table, checked as llama.cpp checks
    /// them); the tensors stay where they are.
    pub fn read(&self) -> Result<Adapter, AdapterError> {
        Ok(match self {
            Found::Peft { config, weights } => Adapter {
                config: Config::read(config).map_err(|why| AdapterError::Config {
                    path: config.clone(),
                    why,
                })?,
                kind: "a LoRA adapter",
                stored: Stored::Peft(weights.clone()),
            },
            Found::Gguf(path) => {
                let file = crate::io::gguf::open(path, 0)?;
                let (config, pairs) = gguf::parse(&file.metadata, file.tensors).map_err(|why| {
                    AdapterError::Gguf {
                        path: path.clone(),
                        why,
                    }
                })?;
                Adapter {
                    config,
                    kind: "a llama.cpp LoRA adapter (GGUF)",
                    stored: Stored::Gguf(path.clone(), pairs),
                }
            }
        })
    }
}

impl Adapter {
    /// The config, and the tensors under the keys PEFT saves them as, for a base whose family
    /// config is `base_config` and whose GGUF metadata (when it is a GGUF file) is `base_gguf`.
    pub fn into_parts(
        self,
        base_config: Option<&FamilyConfig>,
        base_gguf: &[(String, crate::io::gguf::Value)],
    ) -> Result<(Config, Vec<(String, Tensor)>), AdapterError> {
        let tensors = match self.stored {
            Stored::Peft(weights) => safetensors::open(&weights)?.tensors,
            Stored::Gguf(path, pairs) => pairs
                .peft_tensors(base_config, base_gguf)
                .map_err(|why| AdapterError::Gguf { path, why })?,
        };
        Ok((self.config, tensors))
    }
}

/// An adapter attached to its base.
pub struct Attached {
    /// The base, as given.
    pub base: String,
    /// The config's rank.
    pub r: usize,
    /// The config's alpha.
    pub alpha: f64,
    /// The config's scaling (`alpha` over `r` or its square root).
    pub scaling: f64,
    /// Each adapted module, in the adapter's order.
    pub loras: Vec<Lora>,
    /// Keys, targets and shapes that went wrong.
    pub findings: Vec<Finding>,
    /// Base modules `target_modules` names.
    pub targets: usize,
    /// Of those, how many got an adapter.
    pub adapted: usize,
    /// Stored tensors that are not LoRA weights (`modules_to_save`, biases): not applied.
    pub ignored: Vec<String>,
}

impl Attached {
    /// The adapted module whose base weight is `id`.
    #[must_use]
    pub fn lora_of(&self, id: ParamId) -> Option<&Lora> {
        self.loras.iter().find(|l| l.id == id)
    }
}

/// Which part of a LoRA pair a stored key is.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    A,
    B,
    Magnitude,
}

/// The stored key's module and part (`….q_proj.lora_A.weight` → `….q_proj`, A); `embedding` for
/// an Embedding's `lora_embedding_A`/`_B`, whose update is transposed.
fn split(key: &str) -> Option<(&str, Part, bool)> {
    const SUFFIXES: [(&str, Part, bool); 6] = [
        (".lora_A.weight", Part::A, false),
        (".lora_B.weight", Part::B, false),
        (".lora_magnitude_vector", Part::Magnitude, false),
        (".lora_magnitude_vector.weight", Part::Magnitude, false),
        (".lora_embedding_A", Part::A, true),
        (".lora_embedding_B", Part::B, true),
    ];
    SUFFIXES
        .iter()
        .find_map(|(s, part, emb)| key.strip_suffix(s).map(|m| (m, *part, *emb)))
}

/// The stored tensors of one module, with their keys.
#[derive(Default)]
struct Pair {
    a: Option<(String, Tensor)>,
    b: Option<(String, Tensor)>,
    magnitude: Option<(String, Tensor)>,
    embedding: bool,
}

/// Matches the adapter's `tensors` to the base `model` as PEFT's `load_adapter` does: each key
/// less PEFT's prefix, less its LoRA suffix, names a base module whose `.weight` is adapted.
#[must_use]
pub fn attach(
    config: &Config,
    tensors: Vec<(String, Tensor)>,
    model: &Model,
    base: &str,
) -> Attached {
    let weights: HashMap<String, ParamId> = model.state_dict().into_iter().collect();
    let mut modules: BTreeMap<String, Pair> = BTreeMap::new();
    let mut ignored = Vec::new();
    for (key, tensor) in tensors {
        let stored = key.strip_prefix(PEFT_PREFIX).unwrap_or(&key);
        let Some((module, part, embedding)) = split(stored) else {
            ignored.push(key);
            continue;
        };
        let pair = modules.entry(module.to_owned()).or_default();
        pair.embedding |= embedding;
        let slot = match part {
            Part::A => &mut pair.a,
            Part::B => &mut pair.b,
            Part::Magnitude => &mut pair.magnitude,
        };
        *slot = Some((key, tensor));
    }
    let index = suffix_index(&weights);
    let mut findings = Vec::new();
    let mut loras = Vec::new();
    for (module, pair) in modules {
        let weight = format!("{module}.weight");
        let matched = weights
            .get(&weight)
            .filter(|_| pair.a.is_some() && pair.b.is_some());
        let Some(&id) = matched else {
            let suggestion = suggest(&module, &index);
            for (key, _) in [&pair.a, &pair.b, &pair.magnitude].into_iter().flatten() {
                // The key kept PEFT's own prefix, when it had one, in front of the module.
                let peft = if key.starts_with(PEFT_PREFIX) {
                    PEFT_PREFIX
                } else {
                    ""
                };
                let suggestion = suggestion.as_ref().map(|(drop, put, base_module)| Rename {
                    from: format!("{peft}{drop}"),
                    to: format!("{peft}{put}"),
                    module: base_module.clone(),
                });
                findings.push(Finding::UnmatchedKey {
                    key: key.clone(),
                    suggestion,
                });
            }
            continue;
        };
        match fit(config, &module, weight, id, pair, model) {
            Ok(lora) => loras.push(lora),
            Err(finding) => findings.push(finding),
        }
    }
    // A module whose weights do not fit is named once, by its shape_mismatch.
    let mismatched: HashSet<String> = findings
        .iter()
        .filter_map(|f| match f {
            Finding::ShapeMismatch { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    let adapted: HashSet<&str> = loras.iter().map(|l| l.module.as_str()).collect();
    let (mut targets, mut covered) = (0, 0);
    for (key, id) in model.state_dict() {
        let Some(path) = key.strip_suffix(".weight") else {
            continue;
        };
        if model.store.get(id).shape().len() != 2 || !config.targets(path) {
            continue;
        }
        targets += 1;
        if adapted.contains(path) {
            covered += 1;
        } else if !mismatched.contains(path) {
            findings.push(Finding::UntargetedModule {
                path: path.to_owned(),
            });
        }
    }
    Attached {
        base: base.to_owned(),
        r: config.r,
        alpha: config.alpha,
        scaling: config.scaling(config.r, config.alpha),
        loras,
        findings,
        targets,
        adapted: covered,
        ignored,
    }
}

/// The LoRA of one matched module, or the shape that does not fit its base weight. The
/// orientation is the config's `fan_in_fan_out` when the shapes allow it, else the other (PEFT
/// itself overrides the flag by the layer's class: Conv1D is stored (in, out), Linear (out, in)).
fn fit(
    config: &Config,
    module: &str,
    weight: String,
    id: ParamId,
    pair: Pair,
    model: &Model,
) -> Result<Lora, Finding> {
    let ((a_key, a), (b_key, b)) = (pair.a.expect("matched"), pair.b.expect("matched"));
    let (r, alpha) = config.rank_and_alpha(module, b.shape());
    let base = model.store.get(id).shape();
    let mismatch = |key: &str, tensor: &Tensor, expected: Vec<usize>| Finding::ShapeMismatch {
        path: module.to_owned(),
        key: key.to_owned(),
        shape: tensor.shape().to_vec(),
        expected,
    };
    let &[rows, cols] = base else {
        return Err(mismatch(&a_key, &a, vec![r, 0]));
    };
    let fits = |(out, inputs): (usize, usize)| a.shape() == [r, inputs] && b.shape() == [out, r];
    let preferred = config.fan_in_fan_out || pair.embedding;
    let orientations = [preferred, !preferred];
    let transposed = orientations
        .into_iter()
        .find(|&t| fits(if t { (cols, rows) } else { (rows, cols) }));
    let Some(transposed) = transposed else {
        let (out, inputs) = if preferred {
            (cols, rows)
        } else {
            (rows, cols)
        };
        return Err(if a.shape() == [r, inputs] {
            mismatch(&b_key, &b, vec![out, r])
        } else {
            mismatch(&a_key, &a, vec![r, inputs])
        });
    };
    let out = if transposed { cols } else { rows };
    if let Some((key, m)) = &pair.magnitude
        && m.shape() != [out]
    {
        return Err(mismatch(key, m, vec![out]));
    }
    Ok(Lora {
        module: module.to_owned(),
        weight,
        id,
        a,
        b,
        magnitude: pair.magnitude.map(|(_, m)| m),
        r,
        alpha,
        scaling: config.scaling(r, alpha),
        transposed,
    })
}

/// Each dotted suffix of a base module path (two segments or more) to the one module ending in
/// it, or `None` when several do.
fn suffix_index(weights: &HashMap<String, ParamId>) -> HashMap<&str, Option<&str>> {
    let mut index: HashMap<&str, Option<&str>> = HashMap::new();
    for key in weights.keys() {
        let Some(module) = key.strip_suffix(".weight") else {
            continue;
        };
        let starts = std::iter::once(0).chain(module.match_indices('.').map(|(at, _)| at + 1));
        for start in starts {
            let suffix = &module[start..];
            if !suffix.contains('.') {
                break;
            }
            index
                .entry(suffix)
                .and_modify(|m| {
                    if *m != Some(module) {
                        *m = None;
                    }
                })
                .or_insert(Some(module));
        }
    }
    index
}

/// The prefix change that makes `module` a base module: `(prefix to drop, prefix to put, base
/// module)`, from the longest tail of `module` that names exactly one base module.
fn suggest(module: &str, index: &HashMap<&str, Option<&str>>) -> Option<(String, String, String)> {
    let starts = std::iter::once(0).chain(module.match_indices('.').map(|(at, _)| at + 1));
    for start in starts {
        let tail = &module[start..];
        if !tail.contains('.') {
            return None;
        }
        if let Some(found) = index.get(tail) {
            let base = (*found)?;
            let kept = base.len() - tail.len();
            return Some((
                module[..start].to_owned(),
                base[..kept].to_owned(),
                base.to_owned(),
            ));
        }
    }
    None
}

/// The base `model` with every update of `attached` merged in, as PEFT's `merge_and_unload`.
pub fn merge_into(model: &mut Model, attached: &Attached) -> Result<(), LoraError> {
    for lora in &attached.loras {
        let merged = crate::compare::adapter::merge(lora, model.store.get(lora.id))?;
        model.store.set(lora.id, merged);
    }
    Ok(())
}
