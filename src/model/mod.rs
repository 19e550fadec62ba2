//! The vocabulary of the chapter: a model is a module tree over a store of parameter tensors.

pub mod arch;
pub mod budget;
pub mod demos;
pub mod forward;
pub mod init;
pub mod layers;
pub mod param;
pub mod rng;
pub mod tree;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use thiserror::Error;

pub use param::{ParamId, ParamStore};
pub use tree::{Class, Module, ModuleKind, PathStep};

/// A loaded model: its module tree, the tensors the tree refers to, and any file metadata.
///
/// Cloning is O(1) but for the metadata: the tree and the store are shared with the clone and
/// copied only when one side writes to a shared one (`Arc::make_mut` on the tree; the store does
/// it itself). The app gives its worker such a snapshot of a million-tensor model on the key loop.
#[derive(Clone)]
pub struct Model {
    /// The root module (its name is empty); shared with clones, `Arc::make_mut` to edit it.
    pub root: Arc<Module>,
    /// Every distinct parameter tensor.
    pub store: ParamStore,
    /// A checkpoint's `__metadata__`, kept so that an export carries it on.
    pub metadata: BTreeMap<String, String>,
}

/// A name or path that does not lead anywhere in the model.
#[derive(Debug, Error)]
pub enum LookupError {
    /// The text is not a path at all.
    #[error(
        "cannot read {0:?} as a parameter or module path (use a state_dict key like 0.block1.0.bias or indexing like [0][1][0].bias)"
    )]
    Syntax(String),
    /// No parameter has this name.
    #[error("no parameter {name:?} in this model{hint}")]
    NoParam {
        /// What the user asked for.
        name: String,
        /// A suggestion, starting with "; ".
        hint: String,
    },
    /// No module at this path.
    #[error("no module {name:?} in this model{hint}")]
    NoModule {
        /// What the user asked for.
        name: String,
        /// A suggestion, starting with "; ".
        hint: String,
    },
}

impl Model {
    /// Every `(state_dict key, id)`, in `state_dict` order, listing a tied tensor under each of its paths.
    #[must_use]
    pub fn state_dict(&self) -> Vec<(String, ParamId)> {
        self.root.state_dict()
    }

    /// `named_parameters()`: like `state_dict` but each tensor only under its first path.
    #[must_use]
    pub fn named_parameters(&self) -> Vec<(String, ParamId)> {
        let mut seen = HashSet::new();
        self.state_dict()
            .into_iter()
            .filter(|(_, id)| seen.insert(*id))
            .collect()
    }

    /// Elements of all distinct tensors under `module`, each counted once (PyTorch's `parameters()`);
    /// buffers are not parameters.
    #[must_use]
    pub fn count_params(&self, module: &Module) -> usize {
        self.count_tensors(module, false)
    }

    /// Elements of the buffers under `module` (`position_ids`), each counted once.
    #[must_use]
    pub fn count_buffers(&self, module: &Module) -> usize {
        self.count_tensors(module, true)
    }

    fn count_tensors(&self, module: &Module, buffers: bool) -> usize {
        // The subtree's ids, sorted and deduplicated: no paths built, no hashing, and the cost is
        // the subtree's, whatever the model's size (the app counts every module).
        let mut ids = Vec::new();
        module.for_each_param(&mut |_, m, local, id| {
            if m.is_buffer(local) == buffers {
                ids.push(id);
            }
        });
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().map(|id| self.store.get(id).numel()).sum()
    }

    /// Elements of all distinct tensors of the model.
    #[must_use]
    pub fn total_params(&self) -> usize {
        self.count_params(&self.root)
    }

    /// Every state_dict key that refers to `id`, in state_dict order.
    #[must_use]
    pub fn paths_of(&self, id: ParamId) -> Vec<String> {
        let mut paths = Vec::new();
        self.root.for_each_param(&mut |segments, _, local, other| {
            if other == id {
                paths.push(tree::join_all(segments, local));
            }
        });
        paths
    }

    /// Resolves a parameter name: a state_dict key (`0.block1.0.bias`) or the chapter's indexing
    /// (`[0][1][0].bias`, `rgnet[0][1][0].bias`). Returns the canonical key and the id.
    pub fn find_param(&self, name: &str) -> Result<(String, ParamId), LookupError> {
        // Walking the path first spares building every key of a large model (a million names)
        // for the common case; the keys are listed only for a name kept whole (`a..b`) or a miss.
        let walked = self.parse_path(name).map(|mut steps| {
            let Some(PathStep::Name(local)) = steps.pop() else {
                return None;
            };
            let (path, module) = self.resolve(&steps)?;
            let id = module.param(&local)?;
            Some((tree::join(&path, &local), id))
        });
        if let Ok(Some(found)) = walked {
            return Ok(found);
        }
        let state_dict = self.state_dict();
        if let Some((key, id)) = state_dict.iter().find(|(key, _)| key == name) {
            return Ok((key.clone(), *id));
        }
        walked?;
        Err(LookupError::NoParam {
            name: name.to_owned(),
            hint: suggest(name, state_dict.iter().map(|(k, _)| k.as_str())),
        })
    }

    /// Resolves a module path (dotted or indexed; empty for the whole model) to its canonical path.
    pub fn find_module(&self, path: &str) -> Result<(String, &Module), LookupError> {
        let steps = self.parse_path(path)?;
        self.resolve(&steps).ok_or_else(|| {
            let mut paths = Vec::new();
            self.root.walk("", &mut |p, _| paths.push(p.to_owned()));
            LookupError::NoModule {
                name: path.to_owned(),
                hint: suggest(
                    path,
                    paths.iter().map(String::as_str).filter(|p| !p.is_empty()),
                ),
            }
        })
    }

    /// Walks `steps` from the root, returning the dotted path of the module reached.
    fn resolve(&self, steps: &[PathStep]) -> Option<(String, &Module)> {
        let mut path = String::new();
        let mut module: &Module = &self.root;
        for step in steps {
            module = module.child(step)?;
            path = tree::join(&path, &module.name);
        }
        Some((path, module))
    }

    /// Splits a path into steps. A leading variable name before `[` (`rgnet[0]`) is dropped unless
    /// the root has a child of that name.
    fn parse_path(&self, text: &str) -> Result<Vec<PathStep>, LookupError> {
        let syntax = || LookupError::Syntax(text.to_owned());
        let mut steps = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(inner) = rest.strip_prefix('[') {
                let close = inner.find(']').ok_or_else(syntax)?;
                let index = inner[..close].trim().parse().map_err(|_| syntax())?;
                steps.push(PathStep::Index(index));
                rest = &inner[close + 1..];
            } else {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                if end == 0 {
                    return Err(syntax());
                }
                let name = &rest[..end];
                let is_variable = steps.is_empty()
                    && rest[end..].starts_with('[')
                    && self.root.child(&PathStep::Name(name.to_owned())).is_none();
                if !is_variable {
                    steps.push(PathStep::Name(name.to_owned()));
                }
                rest = &rest[end..];
            }
            if let Some(after_dot) = rest.strip_prefix('.') {
                if after_dot.is_empty() {
                    return Err(syntax());
                }
                rest = after_dot;
            }
        }
        Ok(steps)
    }
}

/// "; did you mean …" with the model's name closest to `name`, or a pointer to `tree`.
fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    did_you_mean(name, known)
        .unwrap_or_else(|| "; `paramscope tree MODEL` lists the names".to_owned())
}

/// "; did you mean …" with the known name closest to `name`, when one is close enough to be a typo
/// (an edit distance of about a third of the name's length).
#[must_use]
pub fn did_you_mean<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    known
        .map(|k| (edit_distance(name, k), k))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= name.len().max(3) / 3 + 1)
        .map(|(_, k)| format!("; did you mean {k:?}?"))
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}
