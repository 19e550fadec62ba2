//! What changed between two models: tensors matched by name, each given a status and, where the
//! two can be compared, the figures of one paired pass over both. Two remote tensors known to hold
//! the same bytes (the same range of files whose content hashes match, as two revisions sharing an
//! LFS file do) are the same without their values: [`to_read`] leaves them out of what to fetch.

use std::collections::{BTreeMap, HashMap, HashSet};

use thiserror::Error;

use super::pass::{self, Paired};
use crate::model::{Model, ParamId};
use crate::tensor::{DType, Tensor, decode};

/// How a name fares between A and B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Same shape, dtype and bytes.
    Same,
    /// Same shape and dtype, different bytes.
    Changed,
    /// Only A has the name.
    OnlyA,
    /// Only B has the name.
    OnlyB,
    /// Both have it, with different shapes.
    Shape,
    /// Both have it, with one shape but different dtypes.
    Dtype,
}

impl Status {
    /// The name JSON and the table use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Status::Same => "same",
            Status::Changed => "changed",
            Status::OnlyA => "only_a",
            Status::OnlyB => "only_b",
            Status::Shape => "shape",
            Status::Dtype => "dtype",
        }
    }
}

/// A row whose values moved a lot: row `row` of the tensor seen as `[shape[0], rest]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowChange {
    /// The index along the first dimension.
    pub row: usize,
    /// ‖B_row − A_row‖.
    pub l2: f64,
    /// ‖B_row − A_row‖ / ‖A_row‖.
    pub rel_l2: f64,
}

/// The figures of two tensors of one shape (NaN where a NaN value makes them undefined).
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// max |B − A|; NaN when some difference is NaN.
    pub max_abs_diff: f64,
    /// ‖B − A‖ / ‖A‖: exactly 0 when nothing moved (A and B zero included), +∞ when A is zero
    /// and B is not.
    pub rel_l2: f64,
    /// A·B / (‖A‖ ‖B‖), clamped to [−1, 1]; exactly 1 when A and B are equal (two zero tensors
    /// included: nothing moved), 0 when only one of them is zero (no direction to share).
    pub cosine: f64,
    /// The share of elements that are bit-identical (of equal value when the dtypes differ, or
    /// for a quantized type, whose elements have no bytes of their own).
    pub identical_fraction: f64,
    /// The rows with the largest ‖ΔB_row‖, largest first (tensors of two or more dimensions).
    pub top_rows: Vec<RowChange>,
    /// Σ a², so that figures of several tensors add up (the app's module aggregates).
    pub sum_sq_a: f64,
    /// Σ (b − a)².
    pub sum_sq_diff: f64,
}

/// How many changed rows a tensor reports.
pub const TOP_ROWS: usize = 5;

/// One name's comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The name after `--map` renames.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Shape in A and in B (`None` on the side that lacks the name).
    pub shape: (Option<Vec<usize>>, Option<Vec<usize>>),
    /// Dtype in A and in B.
    pub dtype: (Option<DType>, Option<DType>),
    /// The figures, when both sides hold decodable values of one shape.
    pub figures: Option<Figures>,
    /// Whether A's tensor is a parameter: floating point and not a module's buffer. Only
    /// parameters count in a module's or the whole model's figure (an int64 `position_ids`
    /// would swamp ‖A‖).
    pub parameter: bool,
    /// Whether the status is `same` because both sides are the same range of files whose content
    /// hashes match, told without fetching their values (so without figures).
    pub by_hash: bool,
}

impl Entry {
    /// `(Σ (b − a)², Σ a²)` when this entry counts in an aggregate (a parameter with figures):
    /// a module's `rel_l2` is √(Σ ‖ΔW‖² / Σ ‖W‖²) over its parameters.
    #[must_use]
    pub fn norms(&self) -> Option<(f64, f64)> {
        self.figures
            .as_ref()
            .filter(|_| self.parameter)
            .map(|f| (f.sum_sq_diff, f.sum_sq_a))
    }
}

/// A `--map FROM=TO` rename: a name starting with `from` starts with `to` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The prefix replaced.
    pub from: String,
    /// What replaces it.
    pub to: String,
}

/// Why two models cannot be diffed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DiffError {
    /// `--map` without `=`.
    #[error("--map {0:?} is not FROM=TO (for example --map model.=)")]
    BadRename(String),
    /// Two names of one model become one name.
    #[error("--map makes {first:?} and {second:?} of model {side} the same name {name:?}")]
    Collision {
        /// "A" or "B".
        side: &'static str,
        /// The first original name.
        first: String,
        /// The second original name.
        second: String,
        /// The name both become.
        name: String,
    },
}

impl std::str::FromStr for Rename {
    type Err = DiffError;

    fn from_str(text: &str) -> Result<Self, DiffError> {
        let (from, to) = text
            .split_once('=')
            .ok_or_else(|| DiffError::BadRename(text.to_owned()))?;
        Ok(Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        })
    }
}

/// `name` after the first rename whose prefix it starts with.
#[must_use]
pub fn renamed(name: &str, renames: &[Rename]) -> String {
    renames
        .iter()
        .find_map(|r| {
            name.strip_prefix(r.from.as_str())
                .map(|rest| format!("{}{rest}", r.to))
        })
        .unwrap_or_else(|| name.to_owned())
}

/// Every state_dict key of `model` after the renames, with its tensor.
fn names(
    model: &Model,
    renames: &[Rename],
    side: &'static str,
) -> Result<BTreeMap<String, ParamId>, DiffError> {
    let mut out: BTreeMap<String, ParamId> = BTreeMap::new();
    let mut original: HashMap<String, String> = HashMap::new();
    for (key, id) in model.state_dict() {
        let name = renamed(&key, renames);
        if let Some(first) = original.get(&name) {
            return Err(DiffError::Collision {
                side,
                first: first.clone(),
                second: key,
                name,
            });
        }
        original.insert(name.clone(), key);
        out.insert(name, id);
    }
    Ok(out)
}

/// A name (after renames) with A's tensor and B's under it, where each has one.
type Pair = (String, Option<ParamId>, Option<ParamId>);

/// Every name of `a` (after `renames`) in A's state_dict order with its tensor and B's of that name,
/// then the names only B has.
fn pairs(a: &Model, b: &Model, renames: &[Rename]) -> Result<Vec<Pair>, DiffError> {
    let names_a = names(a, renames, "A")?;
    let names_b = names(b, renames, "B")?;
    let mut out: Vec<_> = a
        .state_dict()
        .into_iter()
        .map(|(key, _)| {
            let name = renamed(&key, renames);
            let (id_a, id_b) = (names_a[&name], names_b.get(&name).copied());
            (name, Some(id_a), id_b)
        })
        .collect();
    for (key, id_b) in b.state_dict() {
        let name = renamed(&key, renames);
        if !names_a.contains_key(&name) {
            out.push((name, None, Some(id_b)));
        }
    }
    Ok(out)
}

/// Compares every tensor of `a` with the one of the same name (after `renames`) in `b`, in
/// A's state_dict order, then the names only B has. A tensor tied under several names is
/// compared once.
pub fn diff(a: &Model, b: &Model, renames: &[Rename]) -> Result<Vec<Entry>, DiffError> {
    let buffers = buffers(a);
    let mut done: HashMap<(ParamId, ParamId), Entry> = HashMap::new();
    let mut out = Vec::new();
    for (name, id_a, id_b) in pairs(a, b, renames)? {
        let mut entry = match (id_a, id_b) {
            (Some(id_a), Some(id_b)) => {
                let entry = done
                    .entry((id_a, id_b))
                    .or_insert_with(|| compare(&name, a.store.get(id_a), b.store.get(id_b)));
                Entry {
                    name: name.clone(),
                    ..entry.clone()
                }
            }
            (Some(id_a), None) => one_side(&name, a.store.get(id_a), Status::OnlyA),
            (None, Some(id_b)) => one_side(&name, b.store.get(id_b), Status::OnlyB),
            (None, None) => continue,
        };
        if let Some(id_a) = id_a {
            entry.parameter &= !buffers.contains(&id_a);
        }
        out.push(entry);
    }
    Ok(out)
}

/// The tensors of A and of B whose values [`diff`] reads: those paired by name with a tensor of the
/// same shape, unless both are known to hold the same bytes without reading them.
pub fn to_read(
    a: &Model,
    b: &Model,
    renames: &[Rename],
) -> Result<(Vec<ParamId>, Vec<ParamId>), DiffError> {
    let mut read = (Vec::new(), Vec::new());
    for (_, id_a, id_b) in pairs(a, b, renames)? {
        if let (Some(id_a), Some(id_b)) = (id_a, id_b) {
            let (x, y) = (a.store.get(id_a), b.store.get(id_b));
            if x.shape() == y.shape() && !same_by_hash(x, y) {
                read.0.push(id_a);
                read.1.push(id_b);
            }
        }
    }
    Ok(read)
}

/// Whether two tensors not fetched yet are the same without reading them: one dtype, and the same
/// range of sources whose content is the same. Tensors whose values are at hand are compared by them,
/// so that their figures (‖A‖ for a module's aggregate) are there.
fn same_by_hash(a: &Tensor, b: &Tensor) -> bool {
    a.dtype() == b.dtype() && (a.is_pending() || b.is_pending()) && a.same_content(b)
}

/// The tensors `model`'s modules declare as buffers (BatchNorm's running statistics, BERT's
/// `position_ids`).
fn buffers(model: &Model) -> HashSet<ParamId> {
    let mut out = HashSet::new();
    model.root.for_each_param(&mut |_, module, local, id| {
        if module.is_buffer(local) {
            out.insert(id);
        }
    });
    out
}

/// For two models saved under different prefixes (`model.layers.0…` against `layers.0…`), the
/// one rename that drops the commonest first name of either side, when it matches more names
/// than none does; else none. The app uses it, having no `--map`.
#[must_use]
pub fn guess_renames(a: &Model, b: &Model) -> Vec<Rename> {
    let keys = |m: &Model| -> Vec<String> { m.state_dict().into_iter().map(|(k, _)| k).collect() };
    let (keys_a, keys_b) = (keys(a), keys(b));
    let matched = |renames: &[Rename]| {
        let set: std::collections::HashSet<String> =
            keys_b.iter().map(|k| renamed(k, renames)).collect();
        keys_a
            .iter()
            .filter(|k| set.contains(&renamed(k, renames)))
            .count()
    };
    let commonest = |keys: &[String]| {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for k in keys {
            if let Some((head, _)) = k.split_once('.') {
                *counts.entry(head).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(x.0)))
            .map(|(head, _)| format!("{head}."))
    };
    let mut best = (matched(&[]), Vec::new());
    for from in [commonest(&keys_a), commonest(&keys_b)]
        .into_iter()
        .flatten()
    {
        let renames = vec![Rename {
            from,
            to: String::new(),
        }];
        let n = matched(&renames);
        if n > best.0 {
            best = (n, renames);
        }
    }
    best.1
}

fn is_quantized(dtype: DType) -> bool {
    matches!(dtype, DType::Ggml(_))
}

/// Whether values of `dtype` can be trained weights: any float or quantized type; integers and
/// booleans are ids, masks and counters.
fn holds_weights(dtype: DType) -> bool {
    !matches!(
        dtype,
        DType::BOOL
            | DType::U8
            | DType::I8
            | DType::I16
            | DType::U16
            | DType::I32
            | DType::U32
            | DType::I64
            | DType::U64
    )
}

fn one_side(name: &str, tensor: &Tensor, status: Status) -> Entry {
    let (shape, dtype) = (Some(tensor.shape().to_vec()), Some(tensor.dtype()));
    let (shape, dtype) = if status == Status::OnlyA {
        ((shape, None), (dtype, None))
    } else {
        ((None, shape), (None, dtype))
    };
    Entry {
        name: name.to_owned(),
        status,
        shape,
        dtype,
        figures: None,
        parameter: holds_weights(tensor.dtype()),
        by_hash: false,
    }
}

/// The comparison of two tensors found under one name.
#[must_use]
pub fn compare(name: &str, a: &Tensor, b: &Tensor) -> Entry {
    let comparable = a.shape() == b.shape();
    let by_hash = comparable && same_by_hash(a, b);
    let decodable = decode::is_decodable(a.dtype()) && decode::is_decodable(b.dtype());
    let figures = (comparable && decodable && !by_hash).then(|| figures(a, b));
    let status = if !comparable {
        Status::Shape
    } else if a.dtype() != b.dtype() {
        Status::Dtype
    } else if by_hash
        || figures.as_ref().map_or_else(
            || a.bytes() == b.bytes(),
            // The pass already counted the bit-identical elements: no second look at the bytes, but
            // for a quantized type, whose identity is of values, the blocks must agree too.
            |f| f.identical_fraction == 1.0 && (!is_quantized(a.dtype()) || a.bytes() == b.bytes()),
        )
    {
        Status::Same
    } else {
        Status::Changed
    };
    Entry {
        name: name.to_owned(),
        status,
        shape: (Some(a.shape().to_vec()), Some(b.shape().to_vec())),
        dtype: (Some(a.dtype()), Some(b.dtype())),
        figures,
        parameter: holds_weights(a.dtype()),
        by_hash,
    }
}

/// The figures of two decodable tensors of one shape, from one paired pass.
#[must_use]
pub fn figures(a: &Tensor, b: &Tensor) -> Figures {
    let row_len = match a.shape() {
        [rows, ..] if a.shape().len() >= 2 && *rows > 0 => a.numel() / rows,
        _ => 0,
    };
    let Paired {
        total,
        row_dd,
        row_aa,
    } = pass::paired(a, b, row_len);
    let numel = a.numel();
    let mut top_rows: Vec<RowChange> = row_dd
        .iter()
        .zip(&row_aa)
        .enumerate()
        .filter(|(_, (dd, _))| **dd > 0.0 || dd.is_nan())
        .map(|(row, (dd, aa))| RowChange {
            row,
            l2: dd.sqrt(),
            rel_l2: (dd / aa).sqrt(),
        })
        .collect();
    // Largest change first; NaN (a row holding NaN) ranks above every number.
    top_rows.sort_by(|x, y| y.l2.total_cmp(&x.l2).then(x.row.cmp(&y.row)));
    top_rows.truncate(TOP_ROWS);
    Figures {
        max_abs_diff: if total.nan > 0 {
            f64::NAN
        } else {
            total.max_abs
        },
        rel_l2: rel_l2(total.dd, total.aa),
        cosine: cosine(&total),
        identical_fraction: if numel == 0 {
            1.0
        } else {
            total.identical as f64 / numel as f64
        },
        top_rows,
        sum_sq_a: total.aa,
        sum_sq_diff: total.dd,
    }
}

/// ‖Δ‖ / ‖A‖ from the squares: 0 when nothing moved, whatever A is (a zero tensor left zero).
fn rel_l2(dd: f64, aa: f64) -> f64 {
    if dd == 0.0 { 0.0 } else { (dd / aa).sqrt() }
}

/// The cosine of A and B from the pass's sums, defined everywhere but on NaN: 1 when nothing moved
/// (every difference zero, two zero tensors included), 0 when exactly one side is zero, and
/// otherwise A·B / √(‖A‖²‖B‖²) clamped to [−1, 1] (rounding may step just past it).
fn cosine(s: &pass::Sums) -> f64 {
    if s.nan > 0 {
        f64::NAN
    } else if s.dd == 0.0 {
        1.0
    } else if s.aa == 0.0 || s.bb == 0.0 {
        0.0
    } else {
        (s.ab / (s.aa.sqrt() * s.bb.sqrt())).clamp(-1.0, 1.0)
    }
}

/// How many names ended in each status: `(same, changed, only_a, only_b, mismatched)`, where
/// mismatched counts the `shape` and `dtype` statuses.
#[must_use]
pub fn summary(entries: &[Entry]) -> [usize; 5] {
    let mut counts = [0; 5];
    for e in entries {
        let slot = match e.status {
            Status::Same => 0,
            Status::Changed => 1,
            Status::OnlyA => 2,
            Status::OnlyB => 3,
            Status::Shape | Status::Dtype => 4,
        };
        counts[slot] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Module, ModuleKind, ParamStore};

    fn model(tensors: &[(&str, Tensor)]) -> Model {
        let mut store = ParamStore::default();
        let mut root = Module::new("", ModuleKind::Unknown);
        for (name, t) in tensors {
            let id = store.insert(t.clone());
            root.params.push(((*name).into(), id));
        }
        Model {
            root: root.into(),
            store,
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn statuses_and_renames() {
        let t = |v: &[f32]| Tensor::from_f32(vec![v.len()], v);
        let a = model(&[
            ("model.w", t(&[1.0, 2.0])),
            ("model.same", t(&[3.0])),
            ("model.gone", t(&[1.0])),
            ("model.shape", t(&[1.0])),
        ]);
        let b = model(&[
            ("w", t(&[1.0, 4.0])),
            ("same", t(&[3.0])),
            ("new", t(&[1.0])),
            ("shape", t(&[1.0, 1.0])),
        ]);
        let renames = ["model.=".parse::<Rename>().unwrap()];
        let entries = diff(&a, &b, &renames).unwrap();
        let got: Vec<(&str, Status)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.status))
            .collect();
        assert_eq!(
            got,
            [
                ("w", Status::Changed),
                ("same", Status::Same),
                ("gone", Status::OnlyA),
                ("shape", Status::Shape),
                ("new", Status::OnlyB),
            ]
        );
        let f = entries[0].figures.as_ref().unwrap();
        assert_eq!((f.max_abs_diff, f.identical_fraction), (2.0, 0.5));
        assert!((f.rel_l2 - 2.0 / 5f64.sqrt()).abs() < 1e-15);
        assert_eq!(summary(&entries), [1, 1, 1, 1, 1]);
    }

    #[test]
    fn a_rename_that_merges_two_names_is_refused() {
        let t = Tensor::from_f32(vec![1], &[1.0]);
        let a = model(&[("model.w", t.clone()), ("w", t)]);
        let renames = ["model.=".parse::<Rename>().unwrap()];
        assert!(matches!(
            diff(&a, &a, &renames),
            Err(DiffError::Collision { .. })
        ));
        assert!("nothing".parse::<Rename>().is_err());
    }

    #[test]
    fn rows_that_changed_most_come_first() {
        let a = Tensor::from_f32(vec![3, 2], &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let b = Tensor::from_f32(vec![3, 2], &[1.0, 1.0, 4.0, 1.0, 1.0, 2.0]);
        let f = figures(&a, &b);
        let rows: Vec<(usize, f64)> = f.top_rows.iter().map(|r| (r.row, r.l2)).collect();
        assert_eq!(rows, [(1, 3.0), (2, 1.0)]);
    }
}
