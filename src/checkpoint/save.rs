//! Saving a whole model as safetensors' `save_model` does: a tied tensor stored once under its
//! first name (sorted), each dropped name mapped to the kept one in `__metadata__`, and the
//! architecture text alongside so the file runs `forward` on its own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use crate::io::{FileError, safetensors};
use crate::model::arch::{self, METADATA_KEY};
use crate::model::tree::{Module, ModuleKind};
use crate::model::{Model, ParamId};
use crate::tensor::Tensor;

/// Writes `model` to `path` (temp file and rename), keeping the source's metadata and dtypes.
pub fn save_model(model: &Model, path: &Path) -> Result<(), FileError> {
    let (tensors, metadata) = contents(model);
    safetensors::save(path, &tensors, &metadata)
}

/// The tensors to store and the metadata to write for `model`.
#[must_use]
pub fn contents(model: &Model) -> (Vec<(String, &Tensor)>, BTreeMap<String, String>) {
    let state_dict = model.state_dict();
    let mut names_of: HashMap<ParamId, Vec<&str>> = HashMap::new();
    for (name, id) in &state_dict {
        names_of.entry(*id).or_default().push(name);
    }
    // Old tie entries describe the source file; the ties are written anew below.
    let names: HashSet<&str> = state_dict.iter().map(|(name, _)| name.as_str()).collect();
    let mut metadata = model.metadata.clone();
    metadata.retain(|key, _| !names.contains(key.as_str()));
    let mut tensors = Vec::new();
    for (id, mut names) in names_of {
        names.sort_unstable();
        let kept = stored_name(&names, &model.metadata);
        for dropped in names.iter().filter(|n| **n != kept) {
            metadata.insert((*dropped).to_owned(), kept.to_owned());
        }
        tensors.push((kept.to_owned(), model.store.get(id)));
    }
    if in_arch_language(&model.root) {
        metadata.insert(METADATA_KEY.to_owned(), arch::print(&model.root));
    } else {
        metadata.remove(METADATA_KEY);
    }
    (tensors, metadata)
}

/// Which of a shared tensor's `names` (sorted) is stored: the one the source stored, so that a
/// re-written file keeps its tie direction. A name the source's metadata maps to another was an
/// alias there; `lm_head.weight` tied by `config.json`'s `tie_word_embeddings` was never stored.
/// A tie made here (the demos') keeps save_model's choice, the first name.
fn stored_name<'a>(names: &[&'a str], source_metadata: &BTreeMap<String, String>) -> &'a str {
    let stored_in_source = |name: &&&str| !source_metadata.contains_key(**name);
    names
        .iter()
        .filter(stored_in_source)
        .find(|name| **name != TIED_HEAD)
        .or_else(|| names.iter().find(stored_in_source))
        .unwrap_or(&names[0])
}

/// The output head that `tie_word_embeddings` ties to the input embedding.
const TIED_HEAD: &str = "lm_head.weight";

/// Whether the architecture text can describe the model: every module a container or a layer of
/// its language. A family's modules (`BertModel`, `Embedding`) are not in it: their structure comes
/// from `config.json`, and writing them as architecture text made the written file refuse to open.
fn in_arch_language(module: &Module) -> bool {
    matches!(
        module.kind,
        ModuleKind::Sequential | ModuleKind::ModuleList | ModuleKind::Layer(_)
    ) && module.children.iter().all(in_arch_language)
}
