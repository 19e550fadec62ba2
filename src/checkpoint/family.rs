//! The family a `config.json` beside the checkpoint names (BERT, GPT-2, Llama...) gives a tree read
//! from names its real structure: PyTorch's classes and state_dict order, buffers apart.

use crate::families::{self, Config, ConfigError, Family, gguf_config, gguf_names};
use crate::io::gguf::Value;
use crate::model::Model;
use crate::tensor::Tensor;

/// A GGUF file's tensors under their Hugging Face names, with the config its metadata gives, when
/// the file holds a model of an architecture paramscope maps; its tensors as stored otherwise, and
/// one warning when its metadata names an architecture that does not fit.
pub fn from_gguf(
    metadata: &[(String, Value)],
    tensors: Vec<(String, Tensor)>,
    warnings: &mut Vec<String>,
) -> (Vec<(String, Tensor)>, Option<Config>) {
    let has = |name: &str| tensors.iter().any(|(n, _)| n == name);
    match gguf_config::read(metadata, has("token_embd.weight"), has("output.weight")) {
        Ok(Some(model)) => {
            let tensors = gguf_names::rename(&model.architecture, &model.config, tensors);
            (tensors, Some(model.config))
        }
        Ok(None) => (tensors, None),
        Err(e) => {
            warnings.push(e.to_string());
            (tensors, None)
        }
    }
}

/// `model` with its family's tree, and the family with its config, when `config` (config.json
/// beside the checkpoint, read once by the loader) names one paramscope runs. A config that cannot
/// be read, an unknown `model_type` or a config that does not fit adds one warning line and leaves
/// the tree as the names gave it.
pub fn apply(
    model: Model,
    config: Result<Option<Config>, ConfigError>,
    warnings: &mut Vec<String>,
) -> (Model, Option<(Family, Config)>) {
    let found = config
        .map_err(families::FamilyError::from)
        .and_then(families::named);
    let (family, config) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return (model, None),
        Err(e) => {
            warnings.push(e.to_string());
            return (model, None);
        }
    };
    match families::apply(family, &config, &model) {
        Ok(applied) => {
            if !applied.extra.is_empty() {
                warnings.push(format!(
                    "{} tensor(s) that the {family:?} family does not have are listed at the root: {}",
                    applied.extra.len(),
                    applied
                        .extra
                        .iter()
                        .take(5)
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            (applied.model, Some((family, config)))
        }
        Err(e) => {
            warnings.push(e.to_string());
            (model, None)
        }
    }
}
