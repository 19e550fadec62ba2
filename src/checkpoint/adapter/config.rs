//! An `adapter_config.json` read as PEFT reads it (r, alpha, rsLoRA, `rank_pattern`/`alpha_pattern`,
//! `target_modules`, `fan_in_fan_out`), or the same facts a llama.cpp GGUF adapter gives.

use std::path::Path;

use regex::Regex;
use serde_json::Value;
use thiserror::Error;

use crate::io::small_file::{self, SmallFileError};
use crate::source::Location;

/// The largest `adapter_config.json` read.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

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
    /// Each module's rank is its `lora_b`'s columns, as llama.cpp takes it (a GGUF adapter keeps
    /// no per-module rank), not the config's.
    rank_from_b: bool,
}

impl Config {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
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
            rank_from_b: false,
        })
    }

    /// What a llama.cpp GGUF adapter says: one `alpha`, each module's rank its `lora_b`'s (`r` the
    /// first pair's, for the summary), the scaling `alpha / rank`; its targets the module names
    /// (`q_proj`) it adapts somewhere, since the file keeps no `target_modules`; its base a Hub
    /// repo, when its metadata names one.
    #[must_use]
    pub(super) fn llama_cpp(
        r: usize,
        alpha: f64,
        targets: Vec<String>,
        base: Option<String>,
    ) -> Config {
        Config {
            r,
            alpha,
            use_rslora: false,
            fan_in_fan_out: false,
            base,
            revision: None,
            targets: Modules::Names(targets),
            excluded: Modules::Nothing,
            rank_pattern: Vec::new(),
            alpha_pattern: Vec::new(),
            rank_from_b: true,
        }
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

    /// The rank and alpha of the module at `path`, whose `lora_b` is of shape `b`.
    pub(super) fn rank_and_alpha(&self, path: &str, b: &[usize]) -> (usize, f64) {
        let r = match b {
            [_, r] if self.rank_from_b => *r,
            _ => self
                .rank_pattern
                .iter()
                .find(|(re, _)| re.is_match(path))
                .map_or(self.r, |p| p.1),
        };
        let alpha = self
            .alpha_pattern
            .iter()
            .find(|(re, _)| re.is_match(path))
            .map_or(self.alpha, |p| p.1);
        (r, alpha)
    }

    /// Whether PEFT would put an adapter on the module at `path`.
    pub(super) fn targets(&self, path: &str) -> bool {
        !self.excluded.names(path) && self.targets.names(path)
    }
}
