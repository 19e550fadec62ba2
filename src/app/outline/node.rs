//! One row of the flattened tree: a module, a parameter path, or a row of what a checkpoint
//! holds besides tensors.

use crate::model::ParamId;

/// What a row of the tree stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A module, with the elements of the distinct tensors under it (PyTorch's `parameters()`).
    Module {
        /// Parameter elements in the subtree, each tensor counted once.
        params: usize,
    },
    /// A parameter path; several paths may share one id.
    Param {
        /// The tensor behind this path.
        id: ParamId,
    },
    /// Not part of the model: a metadata key, a plain value, an array item, or their heading.
    Info {
        /// What the row shows after its label: `: u32 = 4096`, ` = 7`.
        value: String,
    },
}

/// One module or parameter path of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Nesting depth; the root is 0.
    pub depth: usize,
    /// The enclosing module's node.
    pub parent: Option<usize>,
    /// One past the last node of this node's subtree (nodes are in pre-order).
    pub end: usize,
    /// The dotted module path or `state_dict` key (`0.block1`, `0.block1.0.bias`); empty for the root.
    pub path: String,
    /// What the tree shows: `(0): Linear(in_features=4, …)`, or the local name `weight`.
    pub label: String,
    /// The label for a narrow pane, `(0): Linear(4→8)`; `None` when nothing is shorter than
    /// `label` (most rows: a million of them then cost no second text).
    pub short: Option<String>,
    /// Module or parameter.
    pub kind: NodeKind,
}

impl Node {
    /// Whether the node has anything below it to expand.
    #[must_use]
    pub fn has_children(&self, index: usize) -> bool {
        self.end > index + 1
    }

    /// The label for a narrow pane: [`Node::short`], else the label.
    #[must_use]
    pub fn short(&self) -> &str {
        self.short.as_deref().unwrap_or(&self.label)
    }

    /// The parameter id, for a parameter row.
    #[must_use]
    pub fn param(&self) -> Option<ParamId> {
        match self.kind {
            NodeKind::Param { id } => Some(id),
            NodeKind::Module { .. } | NodeKind::Info { .. } => None,
        }
    }
}
