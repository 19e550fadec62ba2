//! What changed between two models: tensors matched by name, each given a status and, where the
//! two can be compared, the figures of one paired pass over both.

use std::collections::{BTreeMap, HashMap};

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

/// The figures of two tensors of one shape (NaN where undefined, e.g. `rel_l2` when A is zero).
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// max |B − A|; NaN when some difference is NaN.
    pub max_abs_diff: f64,
    /// ‖B − A‖ / ‖A‖.
    pub rel_l2: f64,
    /// A·B / (‖A‖ ‖B‖).
    pub cosine: f64,
    /// The share of elements that are bit-identical (of equal value when the dtypes differ).
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

/// Compares every tensor of `a` with the one of the same name (after `renames`) in `b`, in
/// A's state_dict order, then the names only B has. A tensor tied under several names is
/// compared once.
pub fn diff(a: &Model, b: &Model, renames: &[Rename]) -> Result<Vec<Entry>, DiffError> {
    let names_a = names(a, renames, "A")?;
    let names_b = names(b, renames, "B")?;
    let mut done: HashMap<(ParamId, ParamId), Entry> = HashMap::new();
    let mut out = Vec::new();
    for (key, _) in a.state_dict() {
        let name = renamed(&key, renames);
        let id_a = names_a[&name];
        let entry = match names_b.get(&name) {
            None => one_side(&name, a.store.get(id_a), Status::OnlyA),
            Some(&id_b) => {
                let entry = done
                    .entry((id_a, id_b))
                    .or_insert_with(|| compare(&name, a.store.get(id_a), b.store.get(id_b)));
                Entry {
                    name: name.clone(),
                    ..entry.clone()
                }
            }
        };
        out.push(entry);
    }
    for (key, id_b) in b.state_dict() {
        let name = renamed(&key, renames);
        if !names_a.contains_key(&name) {
            out.push(one_side(&name, b.store.get(id_b), Status::OnlyB));
        }
    }
    Ok(out)
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
    }
}

/// The comparison of two tensors found under one name.
#[must_use]
pub fn compare(name: &str, a: &Tensor, b: &Tensor) -> Entry {
    let comparable = a.shape() == b.shape();
    let decodable = decode::is_decodable(a.dtype()) && decode::is_decodable(b.dtype());
    let figures = (comparable && decodable).then(|| figures(a, b));
    let status = if !comparable {
        Status::Shape
    } else if a.dtype() != b.dtype() {
        Status::Dtype
    } else if figures.as_ref().map_or_else(
        || a.bytes() == b.bytes(),
        // The pass already counted the bit-identical elements: no second look at the bytes.
        |f| f.identical_fraction == 1.0,
    ) {
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
        rel_l2: (total.dd / total.aa).sqrt(),
        cosine: total.ab / (total.aa.sqrt() * total.bb.sqrt()),
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
