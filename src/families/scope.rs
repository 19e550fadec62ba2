//! The scope a family is written through: one call both finds a weight by its Hugging Face name
//! and records the module it belongs to (class, path, parameters), so a family's tree and its
//! forward come from the same lines and cannot disagree.
//!
//! In the spirit of candle's `VarBuilder`: `scope.pp("encoder").pp("layer").pp(i)` walks down the
//! names, and a leaf call at the end (`.linear(...)`, `.embedding(...)`) says what the module is
//! and reads its tensors. Containers say their class with [`Scope::class`]. A build that only draws
//! the tree ([`Reading::TreeOnly`], what opening a checkpoint does) runs the same code and reads
//! nothing: every leaf comes back empty.

use std::cell::RefCell;
use std::fmt::Display;

use super::error::FamilyError;
use super::ops::{Norm, RmsNorm};
use super::record::Site;
use super::tree::{Tree, python_float};
use super::weights::{Embedding, Linear, Weights};
use crate::model::layers::Layer;
use crate::model::tree::join;
use crate::model::{Class, Model, ModuleKind, ParamId};

/// Whether a build reads the weights or only draws the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Every tensor asked for is read, checked against its shape and upcast: a plan to run.
    Values,
    /// Nothing is read, present or not: leaves come back empty, and only the tree is kept.
    TreeOnly,
}

/// What a build through a scope gave.
pub struct Built<T> {
    /// What the family's code returned.
    pub value: T,
    /// The modules it drew.
    pub tree: Tree,
    /// Every tensor it read, with its version then.
    pub versions: Vec<(ParamId, u64)>,
}

/// Runs `f` on the top scope of `model` (above the root module), reading its weights or not.
pub fn build<T>(
    model: &Model,
    reading: Reading,
    f: impl FnOnce(&Scope) -> Result<T, FamilyError>,
) -> Result<Built<T>, FamilyError> {
    let shared = RefCell::new(Shared {
        weights: Weights::new(model),
        tree: Tree::new(),
    });
    let top = Scope {
        shared: &shared,
        node: Tree::TOP,
        path: String::new(),
        reading,
    };
    let value = f(&top)?;
    let Shared { weights, tree } = shared.into_inner();
    Ok(Built {
        value,
        tree,
        versions: weights.versions,
    })
}

/// What every scope of one build shares: the reader and the tree being drawn.
struct Shared<'m> {
    weights: Weights<'m>,
    tree: Tree,
}

/// One module of a family: its place in the tree and the dotted path of its tensors.
#[derive(Clone)]
pub struct Scope<'s, 'm> {
    shared: &'s RefCell<Shared<'m>>,
    node: usize,
    path: String,
    reading: Reading,
}

impl<'m> Scope<'_, 'm> {
    /// The child module `name`, registered after the others; [`class`](Self::class), a leaf call
    /// or [`list`](Self::list) says what it is.
    #[must_use]
    pub fn pp(&self, name: impl Display) -> Self {
        let name = name.to_string();
        let path = join(&self.path, &name);
        let node = self.shared.borrow_mut().tree.add(self.node, name);
        Self {
            shared: self.shared,
            node,
            path,
            reading: self.reading,
        }
    }

    /// The base model: under a root of class `outer` as its child `name` (`bert`, `transformer`,
    /// `model`) when the checkpoint's names carry that prefix (a task model's file: `probe` is
    /// one of its tensors), else the root itself. Called on the top scope; gives (root, base).
    #[must_use]
    pub fn base(&self, name: &str, probe: &str, outer: &str, class: &str) -> (Self, Self) {
        if self.has(&format!("{name}.{probe}")) {
            let root = self.pp("").class(outer);
            let base = root.pp(name).class(class);
            (root, base)
        } else {
            let root = self.pp("").class(class);
            (root.clone(), root)
        }
    }

    /// This module is a container of class `class` (its repr is the class name).
    #[must_use]
    pub fn class(self, class: &str) -> Self {
        self.set_class(class, class.to_owned(), &[]);
        self
    }

    /// This module is an `nn.ModuleList`, its children named `0..n`.
    #[must_use]
    pub fn list(self) -> Self {
        self.set(ModuleKind::ModuleList, &[]);
        self
    }

    /// This module also holds `buffers`, listed after its parameters (`position_ids`).
    pub fn buffers(&self, buffers: &[&str]) {
        self.shared
            .borrow_mut()
            .tree
            .add_buffers(self.node, buffers);
    }

    /// The modules under this one are drawn but not read: the family registers them, its forward
    /// does not run them (BERT's pooler), so a checkpoint without them still runs.
    #[must_use]
    pub fn tree_only(mut self) -> Self {
        self.reading = Reading::TreeOnly;
        self
    }

    /// Whether the checkpoint holds the tensor `local` under this module.
    #[must_use]
    pub fn has(&self, local: &str) -> bool {
        self.shared.borrow().weights.has(&join(&self.path, local))
    }

    /// This module's dotted path (`encoder.layer.0`; the root's is empty).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where this module's output is recorded, once the module has said what it is.
    ///
    /// # Panics
    /// When it has not (a family's bug, which its tests meet at once).
    #[must_use]
    pub fn site(&self) -> Site {
        let repr = self.shared.borrow().tree.repr(self.node);
        Site {
            path: self.path.clone(),
            repr: repr.expect("a module says what it is before its output is recorded"),
        }
    }

    /// This module is an `nn.Linear(in, out, bias)`.
    pub fn linear(
        &self,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Linear, FamilyError> {
        self.set_linear(in_features, out_features, bias);
        self.read_linear(|w| w.linear(&self.path, in_features, out_features, bias))
    }

    /// This module is an `nn.Linear(in, out, bias=False)` whose weight is `source`'s (a language
    /// model head tied to the input embedding, not stored under its own name).
    pub fn linear_of(
        &self,
        source: &Self,
        in_features: usize,
        out_features: usize,
    ) -> Result<Linear, FamilyError> {
        self.set_linear(in_features, out_features, false);
        self.read_linear(|w| w.linear(&source.path, in_features, out_features, false))
    }

    /// The children `parts` (name, out features) are `nn.Linear`s reading the same input, run as
    /// one product: their weights stacked and packed once, their outputs side by side (query,
    /// key and value).
    pub fn linears(
        &self,
        parts: &[(&str, usize)],
        in_features: usize,
        bias: bool,
    ) -> Result<Linear, FamilyError> {
        let paths: Vec<String> = parts
            .iter()
            .map(|&(name, out)| {
                let child = self.pp(name);
                child.set_linear(in_features, out, bias);
                child.path
            })
            .collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let outs: Vec<usize> = parts.iter().map(|&(_, out)| out).collect();
        self.read_linear(|w| w.linear_stack(&paths, in_features, &outs, bias))
    }

    /// This module is GPT-2's `Conv1D(nf, nx)`: a Linear whose weight is stored [in, out].
    pub fn conv1d(&self, nx: usize, nf: usize) -> Result<Linear, FamilyError> {
        self.set_class(
            "Conv1D",
            format!("Conv1D(nf={nf}, nx={nx})"),
            &["weight", "bias"],
        );
        self.read_linear(|w| w.conv1d(&self.path, nx, nf))
    }

    /// This module is an `nn.Embedding(count, width, padding_idx=...)`.
    pub fn embedding(
        &self,
        count: usize,
        width: usize,
        padding: Option<u64>,
    ) -> Result<Embedding, FamilyError> {
        self.embedding_of("Embedding", count, width, padding)
    }

    /// This module is an `nn.Embedding` subclass `class` (Gemma's scaled embedding), printed as
    /// the Embedding is.
    pub fn embedding_of(
        &self,
        class: &str,
        count: usize,
        width: usize,
        padding: Option<u64>,
    ) -> Result<Embedding, FamilyError> {
        let pad = padding.map_or_else(String::new, |p| format!(", padding_idx={p}"));
        self.set_class(
            class,
            format!("{class}({count}, {width}{pad})"),
            &["weight"],
        );
        match self.reading {
            Reading::TreeOnly => Ok(Embedding::new(Vec::new(), width)),
            Reading::Values => self.shared.borrow_mut().weights.embedding(
                &join(&self.path, "weight"),
                count,
                width,
            ),
        }
    }

    /// This module is an `nn.LayerNorm((width,), eps=...)`.
    pub fn layer_norm(&self, width: usize, eps: f64) -> Result<Norm, FamilyError> {
        let repr = format!(
            "LayerNorm(({width},), eps={}, elementwise_affine=True)",
            python_float(eps)
        );
        self.set_class("LayerNorm", repr, &["weight", "bias"]);
        Ok(Norm::new(
            self.values("weight", &[width])?,
            self.values("bias", &[width])?,
            eps,
        ))
    }

    /// This module is an RMSNorm of class `class` (`LlamaRMSNorm((width,), eps=...)`).
    pub fn rms_norm(&self, class: &str, width: usize, eps: f64) -> Result<RmsNorm, FamilyError> {
        let repr = format!("{class}(({width},), eps={})", python_float(eps));
        self.set_class(class, repr, &["weight"]);
        Ok(RmsNorm::new(self.values("weight", &[width])?, eps))
    }

    /// This module is a router of class `class` holding `weight` [out, in] (transformers 5's
    /// `*TopKRouter`), read as a Linear without bias.
    pub fn router(
        &self,
        class: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Linear, FamilyError> {
        self.set_class(class, class.to_owned(), &["weight"]);
        self.read_linear(|w| w.linear(&self.path, in_features, out_features, false))
    }

    /// This module is transformers 5's fused experts of class `class`: `gate_up_proj`
    /// [count, 2·inner, hidden] and `down_proj` [count, hidden, inner], read as each expert's
    /// two Linears (none when only the tree is drawn).
    pub fn experts(
        &self,
        class: &str,
        count: usize,
        hidden: usize,
        inner: usize,
    ) -> Result<Vec<(Linear, Linear)>, FamilyError> {
        self.set_class(class, class.to_owned(), &["gate_up_proj", "down_proj"]);
        if self.reading == Reading::TreeOnly {
            return Ok(Vec::new());
        }
        let mut weights = self.shared.borrow_mut();
        let w = &mut weights.weights;
        let gate_up =
            w.linear_slices(&join(&self.path, "gate_up_proj"), count, 2 * inner, hidden)?;
        let down = w.linear_slices(&join(&self.path, "down_proj"), count, hidden, inner)?;
        Ok(gate_up.into_iter().zip(down).collect())
    }

    fn set(&self, kind: ModuleKind, params: &[&str]) {
        self.shared.borrow_mut().tree.set(self.node, kind, params);
    }

    fn set_class(&self, class: &str, repr: String, params: &[&str]) {
        let class = Class {
            name: class.to_owned(),
            repr,
            buffers: Vec::new(),
        };
        self.set(ModuleKind::Class(Box::new(class)), params);
    }

    fn set_linear(&self, in_features: usize, out_features: usize, bias: bool) {
        let layer = Layer::Linear {
            in_features,
            out_features,
            bias,
        };
        let params: &[&str] = if bias {
            &["weight", "bias"]
        } else {
            &["weight"]
        };
        self.set(ModuleKind::Layer(layer), params);
    }

    /// The own tensor `local` with exactly `shape`, as f32; nothing when only the tree is drawn.
    fn values(&self, local: &str, shape: &[usize]) -> Result<Vec<f32>, FamilyError> {
        match self.reading {
            Reading::TreeOnly => Ok(Vec::new()),
            Reading::Values => self
                .shared
                .borrow_mut()
                .weights
                .get(&join(&self.path, local), shape),
        }
    }

    /// `read`'s Linear; an empty one when only the tree is drawn.
    fn read_linear(
        &self,
        read: impl FnOnce(&mut Weights<'m>) -> Result<Linear, FamilyError>,
    ) -> Result<Linear, FamilyError> {
        match self.reading {
            Reading::TreeOnly => Ok(Linear::empty()),
            Reading::Values => read(&mut self.shared.borrow_mut().weights),
        }
    }
}
