//! A second model B compared with the open one, A: the per-tensor figures of `compare::diff` laid
//! over the tree (each module's aggregate computed once, bottom-up), which side the tensor pane
//! shows, and the B and Δ = B − A of the selected tensor. The slow parts (opening B, the diff,
//! each Δ) run on the worker (`work::compare`); this is the state they come back into.

use std::collections::HashMap;

use super::job::{Compared, Detail, DetailKey};
use super::outline::{NodeKind, Outline};
use crate::compare::diff::{self, Entry, Rename, Status};
use crate::model::{Model, ParamId};
use crate::tensor::Tensor;

/// The app's comparison: the one shown, and the number of the last one asked for.
#[derive(Default)]
pub struct Compare {
    /// The comparison laid over the tree, once the worker is done.
    pub loaded: Option<Comparison>,
    /// Bumped per comparison asked for, so that the reply of an outdated one is dropped.
    pub generation: u64,
}

/// What the tensor pane shows of a compared tensor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Side {
    /// The open model's tensor.
    #[default]
    A,
    /// The compared model's.
    B,
    /// B − A.
    Delta,
}

impl Side {
    /// The side after this one.
    #[must_use]
    pub fn next(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::Delta,
            Side::Delta => Side::A,
        }
    }

    /// How the pane's title names it.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Side::A => "A",
            Side::B => "B",
            Side::Delta => "Δ = B − A",
        }
    }
}

/// What a tree row shows of the comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    /// ‖B − A‖ / ‖A‖ of a tensor, or of a module's comparable tensors together.
    Rel(f64),
    /// A tensor whose names or types differ (`only_a`, `shape`, `dtype`), or that has no figures.
    Word(Status),
}

/// A comparison laid over the open model's tree.
pub struct Comparison {
    /// B as the user typed it.
    pub source: String,
    /// The second model, kept for the Δ of each selected tensor and for re-diffs.
    pub b: Model,
    /// The renames the names were matched under.
    pub renames: Vec<Rename>,
    /// The diff's entries.
    pub entries: Vec<Entry>,
    /// Per entry, B's tensor.
    b_ids: Vec<Option<ParamId>>,
    /// Per outline node, its entry (parameter nodes).
    by_node: Vec<Option<usize>>,
    /// Per outline node, the module aggregate.
    modules: Vec<Option<f64>>,
    /// `(same, changed, only_a, only_b, mismatched)`.
    pub summary: [usize; 5],
    /// The side the tensor pane shows.
    pub side: Side,
    /// The B and Δ of the selected tensor: asked for under this key, and there once it came.
    pub detail: Option<(DetailKey, Option<Detail>)>,
}

impl Comparison {
    /// Lays `compared` over `outline`, whose parameter nodes are A's state_dict keys in order, as
    /// the entries are; then sums each module's tensors bottom-up, a tied tensor once.
    #[must_use]
    pub fn new(compared: Compared, outline: &Outline) -> Comparison {
        let Compared {
            source,
            b,
            renames,
            entries,
            b_ids,
        } = compared;
        let mut by_node = vec![None; outline.nodes.len()];
        let mut next = 0;
        for (i, node) in outline.nodes.iter().enumerate() {
            if node.param().is_some() && next < entries.len() {
                by_node[i] = Some(next);
                next += 1;
            }
        }
        // (Σ ‖B − A‖², Σ ‖A‖²) per node over parameters (buffers and integer tensors left out);
        // a param adds its own, a module its subtree's.
        let mut sums = vec![(0.0, 0.0); outline.nodes.len()];
        let own = |i: usize| by_node[i].and_then(|e| entries[e].norms());
        let mut any = vec![false; outline.nodes.len()];
        for i in (0..outline.nodes.len()).rev() {
            if let Some(s) = own(i) {
                sums[i] = s;
                any[i] = true;
            }
            if let Some(p) = outline.nodes[i].parent {
                sums[p].0 += sums[i].0;
                sums[p].1 += sums[i].1;
                any[p] |= any[i];
            }
        }
        // A tensor under several paths of one module was added once per path: take back the extra.
        for paths in outline.aliases.values().filter(|p| p.len() > 1) {
            let Some(s) = own(paths[0]) else { continue };
            let mut under: HashMap<usize, usize> = HashMap::new();
            for &n in paths {
                let mut up = outline.nodes[n].parent;
                while let Some(m) = up {
                    *under.entry(m).or_default() += 1;
                    up = outline.nodes[m].parent;
                }
            }
            for (m, times) in under {
                let extra = (times - 1) as f64;
                sums[m].0 -= extra * s.0;
                sums[m].1 -= extra * s.1;
            }
        }
        let modules = outline
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (matches!(n.kind, NodeKind::Module { .. }) && any[i])
                    .then(|| (sums[i].0 / sums[i].1).sqrt())
            })
            .collect();
        let summary = diff::summary(&entries);
        Comparison {
            source,
            b,
            renames,
            entries,
            b_ids,
            by_node,
            modules,
            summary,
            side: Side::A,
            detail: None,
        }
    }

    /// The entry of outline node `i`, for a parameter.
    #[must_use]
    pub fn entry(&self, i: usize) -> Option<&Entry> {
        self.by_node
            .get(i)
            .copied()
            .flatten()
            .map(|e| &self.entries[e])
    }

    /// What node `i`'s row shows.
    #[must_use]
    pub fn mark(&self, i: usize) -> Option<Mark> {
        if let Some(rel) = self.modules.get(i).copied().flatten() {
            return Some(Mark::Rel(rel));
        }
        let e = self.entry(i)?;
        // A dtype change is named even though it has figures (the pane shows them): the
        // rounding of a cast is not a change of the weights.
        Some(match (&e.figures, e.status) {
            (_, status @ (Status::OnlyA | Status::OnlyB | Status::Shape | Status::Dtype)) => {
                Mark::Word(status)
            }
            (Some(f), _) => Mark::Rel(f.rel_l2),
            (None, Status::Same) => Mark::Rel(0.0),
            (None, status) => Mark::Word(status),
        })
    }

    /// Per outline node, whether the `/` filter's "changed only" keeps it: a parameter whose
    /// tensor is not the same in B (modules show as the ancestors of what is kept).
    #[must_use]
    pub fn changed(&self) -> Vec<bool> {
        (0..self.by_node.len())
            .map(|i| self.entry(i).is_some_and(|e| e.status != Status::Same))
            .collect()
    }

    /// B's tensor for A's parameter node `i`, when B has the name.
    #[must_use]
    pub fn b_tensor(&self, i: usize) -> Option<&Tensor> {
        let id = self.by_node.get(i).copied().flatten()?;
        self.b_ids[id].map(|id| self.b.store.get(id))
    }
}
