//! A PEFT LoRA adapter folder (`adapter_config.json` + `adapter_model.safetensors`) attached to its
//! base model: the config read as PEFT reads it (r, alpha, rsLoRA, `rank_pattern`/`alpha_pattern`,
//! `target_modules`, `fan_in_fan_out`), each stored key matched to a base weight, a prefix that
//! would fix a key matching none, and the targeted modules left without an adapter.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;
use thiserror::Error;

use crate::compare::adapter::{Finding, Lora, LoraError, Rename};
use crate::io::small_file::{self, SmallFileError};
use crate::model::{Model, ParamId};
use crate::source::Location;
use crate::tensor::Tensor;

/// The config file of an adapter folder.
pub const CONFIG: &str = "adapter_config.json";
/// The weights file of an adapter folder.
pub const WEIGHTS: &str = "adapter_model.safetensors";
/// The prefix PEFT's `save_pretrained` puts before every key (the `PeftModel`'s `base_model.model`).
const PEFT_PREFIX: &str = "base_model.model.";
/// The largest `adapter_config.json` read.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Why an adapter could not be attached. Paths and names travel raw.
#[derive(Debug, Error)]
pub enum AdapterError {
    /// `--base` given for something that is not an adapter.
    #[error(
        "{0}: --base applies to a LoRA adapter (a folder holding adapter_config.json and adapter_model.safetensors)"
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
}

/// What is wrong with an `adapter_config.json`.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error(transparent)]
    File(#[from] SmallFileError),
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Another PEFT method.
    #[error("peft_type {0:?}: only LORA adapters open against a base")]
    NotLora(String),
    /// A field of the wrong type.
    #[error("{field} should be {expected}")]
    Field {
        /// The field.
        field: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// A pattern PEFT would match as a regular expression that is not one here.
    #[error("{field}: {source}")]
    Pattern {
        /// The field holding it.
        field: &'static str,
        /// Why it does not compile.
        source: Box<regex::Error>,
    },
}

/// An adapter folder's two files.
#[derive(Debug, Clone)]
pub struct Found {
    /// `adapter_config.json`.
    pub config: PathBuf,
    /// `adapter_model.safetensors`.
    pub weights: PathBuf,
}

/// The adapter `path` names: a folder holding both files, or either file with the other beside it.
#[must_use]
pub fn find(path: &Path) -> Option<Found> {
    let folder = if path.is_dir() {
        path
    } else {
        let name = path.file_name()?.to_str()?;
        if name != CONFIG && name != WEIGHTS {
            return None;
        }
        path.parent().unwrap_or(Path::new("."))
    };
    let found = Found {
        config: folder.join(CONFIG),
        weights: folder.join(WEIGHTS),
    };
    (found.config.is_file() && found.weights.is_file()).then_some(found)
}

/// Which base modules an adapter targets, as PEFT's `check_target_module_exists` decides.
#[derive(Debug)]
enum Modules {
    /// None named.
    Nothing,
    /// A regular expression the whole module path must match.
    Pattern(Regex),
    /// Names: a module whose path is one, or ends with `.` and one.
    Names(Vec<String>),
}

impl Modules {
    fn read(value: Option<&Value>, field: &'static str) -> Result<Modules, ConfigError> {
        Ok(match value {
            None | Some(Value::Null) => Modules::Nothing,
            Some(Value::String(pattern)) => {
                Modules::Pattern(compile(field, &format!("^(?:{pattern})$"))?)
            }
            Some(Value::Array(items)) => Modules::Names(
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or(ConfigError::Field {
                        field,
                        expected: "a string or a list of strings",
                    })?,
            ),
            Some(_) => {
                return Err(ConfigError::Field {
                    field,
                    expected: "a string or a list of strings",
                });
            }
        })
    }

    fn names(&self, path: &str) -> bool {
        match self {
            Modules::Nothing => false,
            Modules::Pattern(re) => re.is_match(path),
            Modules::Names(names) => names.iter().any(|n| {
                path == n
                    || (path.ends_with(n.as_str()) && path[..path.len() - n.len()].ends_with('.'))
            }),
        }
    }
}

fn compile(field: &'static str, pattern: &str) -> Result<Regex, ConfigError> {
    Regex::new(pattern).map_err(|e| ConfigError::Pattern {
        field,
        source: Box::new(e),
    })
}

/// An `adapter_config.json`, as far as a LoRA's update depends on it.
#[derive(Debug)]
pub struct Config {
    /// The default rank.
    pub r: usize,
    /// The default alpha.
    pub alpha: f64,
    /// Scaling by `alpha / sqrt(r)` instead of `alpha / r`.
    pub use_rslora: bool,
    /// The base weights are stored (in, out) (GPT-2's Conv1D).
    pub fan_in_fan_out: bool,
    /// `base_model_name_or_path`.
    pub base: Option<String>,
    /// The base's Hub revision (`revision`), when it names one.
    pub revision: Option<String>,
    targets: Modules,
    excluded: Modules,
    /// `(pattern, rank)`, in the file's order: the first match wins, as PEFT's `get_pattern_key`.
    rank_pattern: Vec<(Regex, usize)>,
    /// `(pattern, alpha)`, likewise.
    alpha_pattern: Vec<(Regex, f64)>,
}

impl Config {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Config, AdapterError> {
        Config::parse(path).map_err(|why| AdapterError::Config {
            path: path.to_path_buf(),
            why,
        })
    }

    fn parse(path: &Path) -> Result<Config, ConfigError> {
        let json: Value = serde_json::from_str(&small_file::read_text(path, MAX_CONFIG_BYTES)?)?;
        if let Some(kind) = json.get("peft_type").and_then(Value::as_str)
            && kind != "LORA"
        {
            return Err(ConfigError::NotLora(kind.to_owned()));
        }
        let flag = |field: &'static str| match json.get(field) {
            None | Some(Value::Null) => Ok(false),
            Some(v) => v.as_bool().ok_or(ConfigError::Field {
                field,
                expected: "true or false",
            }),
        };
        let number = |field: &'static str, value: Option<&Value>, default: f64| match value {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().ok_or(ConfigError::Field {
                field,
                expected: "a number",
            }),
        };
        let rank = |field: &'static str, value: Option<&Value>| match value {
            None | Some(Value::Null) => Ok(8),
            Some(v) => v
                .as_u64()
                .and_then(|r| usize::try_from(r).ok())
                .filter(|r| *r > 0)
                .ok_or(ConfigError::Field {
                    field,
                    expected: "a positive integer",
                }),
        };
        let patterns = |field: &'static str| -> Result<Vec<(Regex, &Value)>, ConfigError> {
            match json.get(field) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Object(map)) => map
                    .iter()
                    .map(|(k, v)| Ok((compile(field, &format!(r"^(?:.*\.)?(?:{k})$"))?, v)))
                    .collect(),
                Some(_) => Err(ConfigError::Field {
                    field,
                    expected: "an object",
                }),
            }
        };
        Ok(Config {
            r: rank("r", json.get("r"))?,
            alpha: number("lora_alpha", json.get("lora_alpha"), 8.0)?,
            use_rslora: flag("use_rslora")?,
            fan_in_fan_out: flag("fan_in_fan_out")?,
            base: json
                .get("base_model_name_or_path")
                .and_then(Value::as_str)
                .map(str::to_owned),
            revision: json
                .get("revision")
                .and_then(Value::as_str)
                .map(str::to_owned),
            targets: Modules::read(json.get("target_modules"), "target_modules")?,
            excluded: Modules::read(json.get("exclude_modules"), "exclude_modules")?,
            rank_pattern: patterns("rank_pattern")?
                .into_iter()
                .map(|(re, v)| Ok((re, rank("rank_pattern", Some(v))?)))
                .collect::<Result<_, ConfigError>>()?,
            alpha_pattern: patterns("alpha_pattern")?
                .into_iter()
                .map(|(re, v)| Ok((re, number("alpha_pattern", Some(v), 0.0)?)))
                .collect::<Result<_, ConfigError>>()?,
        })
    }

    /// The base the config names: a path here, else a Hub repo (`ORG/NAME`, at the config's
    /// `revision`) as `hf://ORG/NAME[@REVISION]`, as PEFT's `from_pretrained` would fetch it.
    #[must_use]
    pub fn named_base(&self) -> Option<String> {
        let base = self.base.as_deref()?;
        if Path::new(base).exists() {
            return Some(base.to_owned());
        }
        let hub = match &self.revision {
            Some(revision) => format!("hf://{base}@{revision}"),
            None => format!("hf://{base}"),
        };
        matches!(Location::parse(&hub), Ok(Location::Hub(_))).then_some(hub)
    }

    /// `alpha / r`, or `alpha / sqrt(r)` with rsLoRA, as PEFT's `update_layer` computes it.
    #[must_use]
    pub fn scaling(&self, r: usize, alpha: f64) -> f64 {
        if self.use_rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        }
    }

    /// The rank and alpha of the module at `path`.
    fn rank_and_alpha(&self, path: &str) -> (usize, f64) {
        let r = self
            .rank_pattern
            .iter()
            .find(|(re, _)| re.is_match(path))
            .map_or(self.r, |p| p.1);
        let alpha = self
            .alpha_pattern
            .iter()
            .find(|(re, _)| re.is_match(path))
            .map_or(self.alpha, |p| p.1);
        (r, alpha)
    }

    /// Whether PEFT would put an adapter on the module at `path`.
    fn targets(&self, path: &str) -> bool {
        !self.excluded.names(path) && self.targets.names(path)
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
    let (r, alpha) = config.rank_and_alpha(module);
    let ((a_key, a), (b_key, b)) = (pair.a.expect("matched"), pair.b.expect("matched"));
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
