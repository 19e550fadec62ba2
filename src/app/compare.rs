//! A second model B compared with the open one, A: the per-tensor figures of `compare::diff` laid
//! over the tree (each module's aggregate computed once, bottom-up), which side the tensor pane
//! shows, and the B and Δ = B − A of the selected tensor. The slow parts (opening B, the diff,
//! each Δ) run on the worker: [`compare`] and [`detail`] are what it calls.

use std::collections::HashMap;

use super::error::AppError;
use super::job::{OpenSpec, Summary, SummaryKey};
use super::outline::{NodeKind, Outline};
use super::summary::summarize;
use crate::compare::diff::{self, Entry, Rename, Status};
use crate::model::{Model, ParamId, budget};
use crate::tensor::decode::{self, Undecodable};
use crate::tensor::{Bytes, DType, Tensor, parallel};

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

/// Which Δ: the tree node (tied paths of A may meet different tensors in B) and A's version.
pub type DetailKey = (usize, SummaryKey);

/// Where the second model comes from.
pub enum Second {
    /// Opened on the worker, as `MODEL` would be.
    Open(OpenSpec),
    /// Already open (a re-diff after A changed), with its source.
    Model(String, Box<Model>),
}

/// What the worker sends back for a comparison.
pub struct Compared {
    /// B as the user typed it.
    pub source: String,
    /// The second model.
    pub b: Model,
    /// The renames that matched the names (see [`diff::guess_renames`]).
    pub renames: Vec<Rename>,
    /// One entry per state_dict key of A, in order, then the names only B has.
    pub entries: Vec<Entry>,
    /// Per entry, B's tensor under that name.
    pub b_ids: Vec<Option<ParamId>>,
}

/// Opens B if needed and diffs A against it, matching names after the guessed renames.
pub fn compare(a: &Model, second: Second) -> Result<Compared, AppError> {
    let (source, b) = match second {
        Second::Open(spec) => (spec.model.clone(), super::open::open(&spec)?.model),
        Second::Model(source, b) => (source, *b),
    };
    let guessed = diff::guess_renames(a, &b);
    // A guessed rename that merges two names is dropped rather than reported: nobody asked for it.
    let (renames, entries) = match diff::diff(a, &b, &guessed) {
        Ok(entries) => (guessed, entries),
        Err(_) => (Vec::new(), diff::diff(a, &b, &[])?),
    };
    let ids: HashMap<String, ParamId> = b
        .state_dict()
        .into_iter()
        .map(|(k, id)| (diff::renamed(&k, &renames), id))
        .collect();
    let b_ids = entries.iter().map(|e| ids.get(&e.name).copied()).collect();
    Ok(Compared {
        source,
        b,
        renames,
        entries,
        b_ids,
    })
}

/// The B side and the Δ of one selected tensor.
pub struct Detail {
    /// B's tensor.
    pub b: Tensor,
    /// Its summary.
    pub b_summary: Result<Summary, Undecodable>,
    /// B − A in f32 with its summary, or why there is none.
    pub delta: Result<(Tensor, Result<Summary, Undecodable>), NoDelta>,
}

/// Why a compared tensor has no Δ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDelta {
    /// The shapes differ, or a dtype does not decode.
    Incomparable,
    /// The Δ and its assembly would not fit in the memory available.
    TooBig,
}

impl NoDelta {
    /// What the tensor pane says in place of the Δ.
    #[must_use]
    pub fn why(self) -> &'static str {
        match self {
            NoDelta::Incomparable => "no Δ: the shapes differ or do not decode",
            NoDelta::TooBig => "no Δ: it would not fit in the memory available",
        }
    }
}

/// Elements decoded at a time for the Δ.
const CHUNK: usize = 4096;

/// B's summary and, for tensors of one shape, Δ = B − A (from f64 differences) and its summary.
/// The Δ is an f32 copy of the tensor, assembled from per-thread parts: a tensor whose two copies
/// would not fit in the memory available gets none, rather than an abort in the allocator.
#[must_use]
pub fn detail(a: &Tensor, b: Tensor) -> Detail {
    let b_summary = summarize(&b, &mut |_| {});
    let comparable = a.shape() == b.shape()
        && decode::is_decodable(a.dtype())
        && decode::is_decodable(b.dtype());
    let needed = budget::bytes_of(Some(a.numel() as u64), 2 * 4);
    let delta = if !comparable {
        Err(NoDelta::Incomparable)
    } else if budget::check("the Δ", budget::Kind::Values, needed).is_err() {
        Err(NoDelta::TooBig)
    } else {
        Ok(delta(a, &b))
    };
    Detail {
        b,
        b_summary,
        delta,
    }
}

/// Δ = B − A as an f32 tensor, and its summary.
fn delta(a: &Tensor, b: &Tensor) -> (Tensor, Result<Summary, Undecodable>) {
    let bytes = a.bytes().len() + b.bytes().len();
    let parts = parallel::split(
        a.numel(),
        bytes,
        CHUNK,
        &|range, _| {
            let (mut xa, mut xb) = (Vec::new(), Vec::new());
            let mut out = Vec::with_capacity(range.len() * 4);
            for at in range.clone().step_by(CHUNK) {
                let count = CHUNK.min(range.end - at);
                // Both decodable (checked above): these cannot fail.
                let _ = decode::decode_f64(a.dtype(), a.bytes(), at, count, &mut xa);
                let _ = decode::decode_f64(b.dtype(), b.bytes(), at, count, &mut xb);
                out.extend(
                    xa.iter()
                        .zip(&xb)
                        .flat_map(|(x, y)| ((y - x) as f32).to_le_bytes()),
                );
            }
            out
        },
        &mut |_| {},
    );
    let joined = parts.concat();
    // The parts go before the shared copy is made: two copies at most, as budgeted.
    drop(parts);
    let delta = Tensor::new(a.shape().to_vec(), DType::F32, Bytes::Owned(joined.into()));
    let summary = summarize(&delta, &mut |_| {});
    (delta, summary)
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
        // (Σ ‖B − A‖², Σ ‖A‖²) per node; a param adds its own, a module its subtree's.
        let mut sums = vec![(0.0, 0.0); outline.nodes.len()];
        let own = |i: usize| {
            by_node[i]
                .and_then(|e| entries[e].figures.as_ref())
                .map(|f| (f.sum_sq_diff, f.sum_sq_a))
        };
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{Comparison, Mark, NoDelta, Second, compare, detail};
    use crate::app::outline::Outline;
    use crate::model::{Model, Module, ModuleKind, ParamStore};
    use crate::tensor::Tensor;

    #[test]
    fn the_delta_is_b_minus_a_and_shapes_that_differ_have_none() {
        let a = Tensor::from_f32(vec![3], &[1.0, 2.0, 3.0]);
        let d = detail(&a, Tensor::from_f32(vec![3], &[1.5, 2.0, 1.0]));
        let (delta, _) = d.delta.expect("one shape: a Δ");
        assert_eq!(delta.to_f32_vec().unwrap(), [0.5, 0.0, -2.0]);
        let d = detail(&a, Tensor::from_f32(vec![1, 3], &[1.0, 2.0, 3.0]));
        assert_eq!(d.delta.err(), Some(NoDelta::Incomparable));
    }

    /// `enc.weight` and `dec.weight` tied to one tensor, and `dec.bias`.
    fn tied(weight: &[f32], bias: &[f32]) -> Model {
        let mut store = ParamStore::default();
        let w = store.insert(Tensor::from_f32(vec![2], weight));
        let b = store.insert(Tensor::from_f32(vec![2], bias));
        let mut root = Module::new("", ModuleKind::Unknown);
        let mut enc = Module::new("enc", ModuleKind::Unknown);
        enc.params.push(("weight".into(), w));
        let mut dec = Module::new("dec", ModuleKind::Unknown);
        dec.params.push(("weight".into(), w));
        dec.params.push(("bias".into(), b));
        root.children = vec![enc, dec];
        Model {
            root,
            store,
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn a_module_counts_a_tied_tensor_once() {
        let a = tied(&[1.0, 0.0], &[0.0, 1.0]);
        let b = tied(&[1.0, 1.0], &[0.0, 1.0]);
        let outline = Outline::new(&a, &crate::app::extras::Extras::default());
        let compared = compare(&a, Second::Model("b".into(), Box::new(b))).unwrap();
        let c = Comparison::new(compared, &outline);
        let rel = |path: &str, param: bool| match c.mark(outline.find(path, param).unwrap()) {
            Some(Mark::Rel(r)) => r,
            other => panic!("{path}: {other:?}"),
        };
        // The weight moved by ‖(0, 1)‖ = 1 against ‖(1, 0)‖ = 1; the bias did not move.
        assert_eq!(rel("enc.weight", true), 1.0);
        assert_eq!(rel("dec.bias", true), 0.0);
        assert_eq!(rel("enc", false), 1.0);
        let half = 0.5f64.sqrt();
        assert!((rel("dec", false) - half).abs() < 1e-15);
        assert!(
            (rel("", false) - half).abs() < 1e-15,
            "the root holds the weight once: 1/√2, not √2/√3"
        );
        assert_eq!(c.changed().iter().filter(|&&x| x).count(), 2);
    }
}
