//! The module tree: nested modules with their parameters, walked in PyTorch's `state_dict` order.

use super::layers::Layer;
use super::param::ParamId;

/// What a module is.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleKind {
    /// `nn.Sequential`: runs its children in order.
    Sequential,
    /// `nn.ModuleList`: holds numbered children that its owner runs in its own way.
    ModuleList,
    /// A leaf layer of the architecture language.
    Layer(Layer),
    /// A module known only from a checkpoint's names, whose class is unknown.
    Unknown,
    /// A module of a known model family (`BertSelfAttention`, `Embedding`), run by the family's code.
    Class {
        /// The class name, as transformers calls it.
        name: String,
        /// Its `repr` head: `Embedding(30522, 384, padding_idx=0)`.
        repr: String,
        /// Which of its own tensors are buffers (`position_ids`), not parameters.
        buffers: Vec<String>,
    },
}

/// A module: its attribute name in the parent, its kind, its own parameters, and its children.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// The name in the parent (`"0"`, `"block1"`); empty for the root.
    pub name: String,
    /// What the module is.
    pub kind: ModuleKind,
    /// Own parameters by local name (`"weight"`, `"bias"`), in registration order.
    pub params: Vec<(String, ParamId)>,
    /// Child modules in registration order.
    pub children: Vec<Module>,
}

impl Module {
    /// A module with no parameters and no children yet.
    #[must_use]
    pub fn new(name: impl Into<String>, kind: ModuleKind) -> Self {
        Module {
            name: name.into(),
            kind,
            params: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The class name: `Sequential`, `Linear`, a family's class, or `Module` when unknown.
    #[must_use]
    pub fn class_name(&self) -> &str {
        match &self.kind {
            ModuleKind::Sequential => "Sequential",
            ModuleKind::ModuleList => "ModuleList",
            ModuleKind::Layer(layer) => layer.kind(),
            ModuleKind::Unknown => "Module",
            ModuleKind::Class { name, .. } => name,
        }
    }

    /// Whether the own tensor called `local` is a buffer rather than a parameter.
    #[must_use]
    pub fn is_buffer(&self, local: &str) -> bool {
        matches!(&self.kind, ModuleKind::Class { buffers, .. } if buffers.iter().any(|b| b == local))
    }

    /// The `repr` head PyTorch prints for this module: `Sequential`, `Linear(in_features=…)`.
    #[must_use]
    pub fn repr(&self) -> String {
        match &self.kind {
            ModuleKind::Layer(layer) => layer.to_string(),
            ModuleKind::Class { repr, .. } => repr.clone(),
            ModuleKind::Sequential | ModuleKind::ModuleList | ModuleKind::Unknown => {
                self.class_name().to_owned()
            }
        }
    }

    /// The layer, when this module is one.
    #[must_use]
    pub fn layer(&self) -> Option<&Layer> {
        match &self.kind {
            ModuleKind::Layer(layer) => Some(layer),
            _ => None,
        }
    }

    /// The positions missing from children named by number (`0`, `2`, `3` misses `1`), when every
    /// child is numbered and some are missing: a Sequential whose activations were not saved.
    #[must_use]
    pub fn numbering_gaps(&self) -> Option<Vec<usize>> {
        let numbers: Vec<usize> = self
            .children
            .iter()
            .map(|c| c.name.parse().ok())
            .collect::<Option<_>>()?;
        let last = *numbers.iter().max()?;
        let gaps: Vec<usize> = (0..last).filter(|i| !numbers.contains(i)).collect();
        (!gaps.is_empty()).then_some(gaps)
    }

    /// The id of the own parameter called `local` (`"weight"`).
    #[must_use]
    pub fn param(&self, local: &str) -> Option<ParamId> {
        self.params
            .iter()
            .find(|(n, _)| n == local)
            .map(|(_, id)| *id)
    }

    /// Visits this module and every descendant, parents before children, with dotted paths.
    ///
    /// This is PyTorch's `named_modules` order, without its removal of repeated modules.
    pub fn walk<'a>(&'a self, path: &str, visit: &mut impl FnMut(&str, &'a Module)) {
        visit(path, self);
        for child in &self.children {
            child.walk(&join(path, &child.name), visit);
        }
    }

    /// Every `(dotted name, id)` in `state_dict` order: a module's own parameters, then its children's.
    #[must_use]
    pub fn state_dict(&self) -> Vec<(String, ParamId)> {
        let mut out = Vec::new();
        self.walk("", &mut |path, module| {
            for (local, id) in &module.params {
                out.push((join(path, local), *id));
            }
        });
        out
    }

    /// The descendant at `path`: dotted names (`0.block1`) or positions (`[0][1]`); empty is self.
    #[must_use]
    pub fn find(&self, path: &[PathStep]) -> Option<&Module> {
        path.iter().try_fold(self, |m, step| m.child(step))
    }

    /// The child named or numbered by `step`.
    #[must_use]
    pub fn child(&self, step: &PathStep) -> Option<&Module> {
        match step {
            PathStep::Name(name) => self.children.iter().find(|c| &c.name == name),
            PathStep::Index(i) => self.children.get(*i),
        }
    }
}

/// One step down a module path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// By attribute name, as in a state_dict key.
    Name(String),
    /// By position, as the chapter's `rgnet[0][1]` indexes a Sequential.
    Index(usize),
}

/// Joins a parent path and a local name with PyTorch's dot.
#[must_use]
pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}
