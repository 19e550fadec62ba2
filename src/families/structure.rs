//! A family's module tree as PyTorch builds it (classes, registration order, buffers), bound to a
//! checkpoint's tensors by name.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::config::Config;
use super::{Family, FamilyError, bert, gpt2, llama};
use crate::model::layers::Layer;
use crate::model::tree::join;
use crate::model::{Class, Model, Module, ModuleKind, ParamId};

/// A module as the family's code registers it: what it is, its own tensors, its children.
#[derive(Debug, Clone)]
pub struct Node {
    name: String,
    kind: ModuleKind,
    /// Own tensor names in registration order (parameters, then buffers, as state_dict lists them).
    tensors: Vec<String>,
    children: Vec<Node>,
}

impl Node {
    /// A container of class `class` (its repr is the class name).
    #[must_use]
    pub fn class(name: impl Into<String>, class: &str, children: Vec<Node>) -> Self {
        Self {
            name: name.into(),
            kind: ModuleKind::Class(Box::new(Class {
                name: class.to_owned(),
                repr: class.to_owned(),
                buffers: Vec::new(),
            })),
            tensors: Vec::new(),
            children,
        }
    }

    /// A leaf of class `class` with its repr and own parameters.
    #[must_use]
    pub fn leaf(name: impl Into<String>, class: &str, repr: String, params: &[&str]) -> Self {
        Self {
            name: name.into(),
            kind: ModuleKind::Class(Box::new(Class {
                name: class.to_owned(),
                repr,
                buffers: Vec::new(),
            })),
            tensors: params.iter().map(|p| (*p).to_owned()).collect(),
            children: Vec::new(),
        }
    }

    /// `nn.Linear(in, out, bias)`: a layer re-init knows.
    #[must_use]
    pub fn linear(
        name: impl Into<String>,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Self {
        Self {
            name: name.into(),
            kind: ModuleKind::Layer(Layer::Linear {
                in_features,
                out_features,
                bias,
            }),
            tensors: if bias {
                vec!["weight".into(), "bias".into()]
            } else {
                vec!["weight".into()]
            },
            children: Vec::new(),
        }
    }

    /// `nn.Embedding(count, width, padding_idx=...)`.
    #[must_use]
    pub fn embedding(
        name: impl Into<String>,
        count: usize,
        width: usize,
        padding: Option<u64>,
    ) -> Self {
        let pad = padding.map_or_else(String::new, |p| format!(", padding_idx={p}"));
        Self::leaf(
            name,
            "Embedding",
            format!("Embedding({count}, {width}{pad})"),
            &["weight"],
        )
    }

    /// `nn.LayerNorm((width,), eps=...)`.
    #[must_use]
    pub fn layer_norm(name: impl Into<String>, width: usize, eps: f64) -> Self {
        Self::leaf(
            name,
            "LayerNorm",
            format!(
                "LayerNorm(({width},), eps={}, elementwise_affine=True)",
                python_float(eps)
            ),
            &["weight", "bias"],
        )
    }

    /// `nn.ModuleList` of `items`, named `0..n`.
    #[must_use]
    pub fn list(name: impl Into<String>, items: Vec<Node>) -> Self {
        Self {
            name: name.into(),
            kind: ModuleKind::ModuleList,
            tensors: Vec::new(),
            children: items,
        }
    }

    /// Adds a child after the others.
    pub fn push(&mut self, child: Node) {
        self.children.push(child);
    }

    /// Adds buffers after the parameters, as state_dict lists them.
    #[must_use]
    pub fn with_buffers(mut self, buffers: &[&str]) -> Self {
        if let ModuleKind::Class(class) = &mut self.kind {
            class
                .buffers
                .extend(buffers.iter().map(|s| (*s).to_owned()));
        }
        self.tensors.extend(buffers.iter().map(|s| (*s).to_owned()));
        self
    }
}

/// The base model `base`, under a root named by the config's first architecture when the checkpoint's
/// names carry the base model's `prefix` (`model.`), else the base model itself as the root.
#[must_use]
pub fn wrap(base: Node, prefix: &str, config: &Config, fallback: &str) -> Node {
    if prefix.is_empty() {
        return base;
    }
    let class = config
        .architectures
        .first()
        .map_or(fallback, String::as_str);
    Node::class("", class, vec![base])
}

/// A float as Python prints it in a repr: `1e-12`, `1e-05`, `0.5`.
#[must_use]
pub fn python_float(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-4 || v.abs() >= 1e16) {
        let text = format!("{v:e}");
        // Rust writes 1e-12 and 1e-5; Python pads the exponent to two digits.
        match text.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                let sign = if sign == "+" { "+" } else { "-" };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => text,
        }
    } else if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// The family's tree for `config`, rooted as the checkpoint's names are (with or without the base
/// model's prefix).
fn skeleton(family: Family, config: &Config, names: &HashSet<String>) -> Result<Node, FamilyError> {
    match family {
        Family::Bert => bert::skeleton(config, names),
        Family::Gpt2 => gpt2::skeleton(config, names),
        Family::Llama => llama::skeleton(config, names),
    }
}

/// What [`apply`] did.
pub struct Applied {
    /// The model with the family's tree.
    pub model: Model,
    /// Tensors the family does not have, kept at the root under their full names.
    pub extra: Vec<String>,
}

/// Rebuilds `model`'s tree as `family` registers its modules. Modules none of whose tensors the
/// checkpoint holds are left out; tensors the family does not know are kept at the root, whole.
pub fn apply(family: Family, config: &Config, model: &Model) -> Result<Applied, FamilyError> {
    let state_dict = model.state_dict();
    let names: HashSet<String> = state_dict.iter().map(|(n, _)| n.clone()).collect();
    let node = skeleton(family, config, &names)?;
    let ids: HashMap<String, ParamId> = state_dict.iter().cloned().collect();
    let mut used = HashSet::new();
    let mut root =
        bind(&node, "", &ids, &mut used).unwrap_or_else(|| Module::new("", node.kind.clone()));
    root.name.clear();
    let mut extra = Vec::new();
    let bound: HashSet<ParamId> = used.iter().map(|n| ids[n]).collect();
    for (name, id) in state_dict {
        // A second name of a tensor the family already placed is a tie this family does not have
        // (config.json's tie_word_embeddings on an encoder): it is dropped, not listed twice.
        if !used.contains(&name) && !bound.contains(&id) {
            root.params.push((name.as_str().into(), id));
            extra.push(name);
        }
    }
    Ok(Applied {
        model: Model {
            root: root.into(),
            ..model.clone()
        },
        extra,
    })
}

/// The module for `node` at `path` with the tensors `ids` holds; `None` when it would be empty.
fn bind(
    node: &Node,
    path: &str,
    ids: &HashMap<String, ParamId>,
    used: &mut HashSet<String>,
) -> Option<Module> {
    let mut module = Module::new(node.name.clone(), node.kind.clone());
    for local in &node.tensors {
        let full = join(path, local);
        if let Some(id) = ids.get(&full) {
            module.params.push((local.as_str().into(), *id));
            used.insert(full);
        }
    }
    for child in &node.children {
        if let Some(m) = bind(child, &join(path, &child.name), ids, used) {
            module.children.push(m);
        }
    }
    (!module.params.is_empty() || !module.children.is_empty()).then_some(module)
}

/// The family a checkpoint's `config.json` names, with the config; `Ok(None)` when there is no
/// config beside it or it names no `model_type`.
pub fn detect(checkpoint: &Path) -> Result<Option<(Family, Config)>, FamilyError> {
    let Some(path) = config_path(checkpoint) else {
        return Ok(None);
    };
    let config = Config::read(&path)?;
    Ok(Family::detect(&config)?.map(|family| (family, config)))
}

/// `config.json` in the folder or beside the file, when there is one.
#[must_use]
pub fn config_path(checkpoint: &Path) -> Option<std::path::PathBuf> {
    let path = folder_of(checkpoint).join("config.json");
    path.is_file().then_some(path)
}

/// The folder a checkpoint argument stands for: itself, or the file's folder (where config.json,
/// tokenizer.json and modules.json live).
#[must_use]
pub fn folder_of(checkpoint: &Path) -> std::path::PathBuf {
    if checkpoint.is_dir() {
        checkpoint.to_owned()
    } else {
        match checkpoint.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => std::path::PathBuf::from("."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::python_float;

    #[test]
    fn floats_print_as_python_does() {
        assert_eq!(python_float(1e-12), "1e-12");
        assert_eq!(python_float(1e-5), "1e-05");
        assert_eq!(python_float(1e-6), "1e-06");
        assert_eq!(python_float(0.5), "0.5");
        assert_eq!(python_float(0.001), "0.001");
    }
}
