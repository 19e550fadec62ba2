//! The family a `config.json` beside the checkpoint names (BERT, GPT-2, Llama...) gives a tree read
//! from names its real structure: PyTorch's classes and state_dict order, buffers apart.

use crate::families::{self, Config, ConfigError, Family};
use crate::model::Model;

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
