//! What looks broken inside one model: the findings of `paramscope check`.
//!
//! Each defect rule is chosen so that a clean model, freshly initialized or well trained, has
//! none; `outlier_columns` is information, not a defect (see [`Finding::is_defect`]):
//! - `nan`, `inf`: any non-finite value of any decodable tensor.
//! - `dead_rows`, `dead_columns`: all-zero rows or columns of a 2-D floating-point weight (an
//!   all-zero tensor, such as a zero-initialized adapter, is one `dead_rows` finding, not also
//!   every column). Token embeddings are left to `tiny_norm_rows`, whose rows are tokens.
//!   Integer tensors (position ids, masks) are not weights and are skipped.
//! - `duplicate`: a floating-point tensor byte-identical to another that is not tied to it.
//!   Tensors with fewer than three distinct values are skipped: LayerNorm ones, zero biases and
//!   0/1 masks repeat in every layer of a healthy model.
//! - `outlier_columns`: columns of a 2-D weight (PyTorch's `[out, in]`) whose max |w| is at least
//!   20x the median column's; embeddings (token, position, token type), whose columns are not
//!   inputs, are skipped.
//! - `tiny_norm_rows`: token-embedding rows with norm under a tenth of the median (zero rows
//!   included: a padding row that was never trained shows up here).
//! - `untied_head`: `lm_head.weight` byte-identical to the token embedding but stored apart.

use std::collections::{HashMap, HashSet};

use super::scan::{Scan, scan};
use crate::model::{Model, ParamId};
use crate::tensor::{DType, Tensor, decode};

/// One finding about one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// NaN values: how many, and the index of the first (one coordinate per dimension).
    Nan {
        /// The tensor's name.
        tensor: String,
        /// NaN values.
        count: usize,
        /// Coordinates of the first in C order.
        first: Vec<usize>,
    },
    /// ±Inf values.
    Inf {
        /// The tensor's name.
        tensor: String,
        /// Infinite values.
        count: usize,
        /// Coordinates of the first in C order.
        first: Vec<usize>,
    },
    /// Output units whose weight row is all zero.
    DeadRows {
        /// The tensor's name.
        tensor: String,
        /// Their indices.
        rows: Vec<usize>,
    },
    /// Input features whose weight column is all zero.
    DeadColumns {
        /// The tensor's name.
        tensor: String,
        /// Their indices.
        columns: Vec<usize>,
    },
    /// Byte-identical to another tensor it is not tied to.
    Duplicate {
        /// The later tensor in state_dict order.
        tensor: String,
        /// The earlier one.
        of: String,
    },
    /// Columns whose max |w| is at least [`OUTLIER_RATIO`] times the median column's.
    OutlierColumns {
        /// The tensor's name.
        tensor: String,
        /// Their indices.
        columns: Vec<usize>,
        /// The median column's max |w|.
        median: f64,
    },
    /// Token-embedding rows with a norm under [`TINY_NORM`] of the median row's.
    TinyNormRows {
        /// The tensor's name.
        tensor: String,
        /// Their indices.
        rows: Vec<usize>,
        /// The median row norm.
        median: f64,
    },
    /// `lm_head.weight` equal to the embedding, stored twice.
    UntiedHead {
        /// The head's name.
        tensor: String,
        /// The embedding's name.
        of: String,
    },
}

impl Finding {
    /// The kind, as JSON names it.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Nan { .. } => "nan",
            Finding::Inf { .. } => "inf",
            Finding::DeadRows { .. } => "dead_rows",
            Finding::DeadColumns { .. } => "dead_columns",
            Finding::Duplicate { .. } => "duplicate",
            Finding::OutlierColumns { .. } => "outlier_columns",
            Finding::TinyNormRows { .. } => "tiny_norm_rows",
            Finding::UntiedHead { .. } => "untied_head",
        }
    }

    /// Whether the finding is a defect. `outlier_columns` is not: trained transformers have real
    /// outlier features, a few hidden dimensions that layer after layer writes large weights into
    /// (all-MiniLM-L6-v2's dimension 99 is fed by five FFN columns of its first four layers,
    /// and its position 0 embedding holds 1.87 there), so it is reported as information.
    #[must_use]
    pub fn is_defect(&self) -> bool {
        !matches!(self, Finding::OutlierColumns { .. })
    }

    /// The tensor the finding is about.
    #[must_use]
    pub fn tensor(&self) -> &str {
        match self {
            Finding::Nan { tensor, .. }
            | Finding::Inf { tensor, .. }
            | Finding::DeadRows { tensor, .. }
            | Finding::DeadColumns { tensor, .. }
            | Finding::Duplicate { tensor, .. }
            | Finding::OutlierColumns { tensor, .. }
            | Finding::TinyNormRows { tensor, .. }
            | Finding::UntiedHead { tensor, .. } => tensor,
        }
    }
}

/// A column is an outlier at this multiple of the median column's max |w| (LLM.int8's pattern).
pub const OUTLIER_RATIO: f64 = 20.0;

/// An embedding row is tiny under this fraction of the median row norm.
pub const TINY_NORM: f64 = 0.1;

/// Every finding about `model`, tensor by tensor in state_dict order (each tensor once, under its
/// first name).
#[must_use]
pub fn check(model: &Model) -> Vec<Finding> {
    // A quantized weight is checked by its dequantized values; its stored parts (codes, scales,
    // bitsandbytes' code tables, identical in every layer by design) are not weights of their own.
    let parts: HashSet<String> = model
        .named_parameters()
        .into_iter()
        .filter_map(|(name, id)| Some((name, model.store.get(id).quantization()?)))
        .flat_map(|(name, q)| {
            q.parts()
                .iter()
                .map(|(part, _)| part.clone())
                .filter(move |part| *part != name)
                .collect::<Vec<_>>()
        })
        .collect();
    let tensors: Vec<(String, ParamId)> = model
        .named_parameters()
        .into_iter()
        .filter(|(name, _)| !parts.contains(name))
        .collect();
    let embedding = tensors
        .iter()
        .find(|(name, id)| is_token_embedding(name) && model.store.get(*id).shape().len() == 2);
    let head = tensors.iter().find(|(name, id)| {
        is_head(name) && embedding.is_some_and(|(_, e)| e != id && same_bytes(model, *e, *id))
    });
    let mut findings = Vec::new();
    for (name, id) in &tensors {
        let tensor = model.store.get(*id);
        if decode::is_decodable(tensor.dtype()) {
            findings.extend(of_values(name, tensor));
        }
        if let (Some((head_name, head_id)), Some((embedding_name, _))) = (head, embedding)
            && head_id == id
        {
            findings.push(Finding::UntiedHead {
                tensor: head_name.clone(),
                of: embedding_name.clone(),
            });
        }
    }
    let skip = head.map(|(_, id)| *id);
    let duplicates = duplicates(model, &tensors, skip);
    // Each duplicate goes right after its tensor's other findings, keeping state_dict order.
    let order: HashMap<&str, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    findings.extend(duplicates);
    findings.sort_by_key(|f| order.get(f.tensor()).copied().unwrap_or(usize::MAX));
    findings
}

/// The findings one pass over a tensor's values gives.
fn of_values(name: &str, tensor: &Tensor) -> Vec<Finding> {
    let shape = tensor.shape();
    let two_d = shape.len() == 2 && is_real_float(tensor.dtype());
    let rows = shape
        .first()
        .copied()
        .filter(|_| shape.len() >= 2)
        .unwrap_or(1);
    let rows = if tensor.numel() == 0 { 0 } else { rows };
    let scan = scan(tensor, rows, two_d);
    let mut out = Vec::new();
    let coordinates = |flat: usize| unravel(flat, shape);
    if let (count @ 1.., Some(first)) = scan.nan {
        out.push(Finding::Nan {
            tensor: name.to_owned(),
            count,
            first: coordinates(first),
        });
    }
    if let (count @ 1.., Some(first)) = scan.inf {
        out.push(Finding::Inf {
            tensor: name.to_owned(),
            count,
            first: coordinates(first),
        });
    }
    if two_d {
        out.extend(of_matrix(
            name,
            &scan,
            is_token_embedding(name),
            is_embedding(name),
        ));
    }
    out
}

/// The row and column findings of a 2-D floating-point tensor; a token `embedding` has only
/// its row rule, and no embedding (`any_embedding`) the outlier rule.
fn of_matrix(name: &str, scan: &Scan, embedding: bool, any_embedding: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let indices = |flags: &mut dyn Iterator<Item = bool>| -> Vec<usize> {
        flags
            .enumerate()
            .filter(|(_, f)| *f)
            .map(|(i, _)| i)
            .collect()
    };
    if embedding {
        let norms: Vec<f64> = scan.row_squares.iter().map(|s| s.sqrt()).collect();
        let median = median(&norms);
        let rows = indices(&mut norms.iter().map(|n| *n < TINY_NORM * median));
        if !rows.is_empty() {
            out.push(Finding::TinyNormRows {
                tensor: name.to_owned(),
                rows,
                median,
            });
        }
        return out;
    }
    let dead_rows = indices(&mut scan.zero_rows.iter().copied());
    let all_dead = dead_rows.len() == scan.zero_rows.len();
    if !dead_rows.is_empty() {
        out.push(Finding::DeadRows {
            tensor: name.to_owned(),
            rows: dead_rows,
        });
    }
    if all_dead {
        return out;
    }
    let columns = indices(&mut scan.zero_columns.iter().copied());
    if !columns.is_empty() {
        out.push(Finding::DeadColumns {
            tensor: name.to_owned(),
            columns,
        });
    }
    let median = median(&scan.column_max);
    if median > 0.0 && !any_embedding {
        let columns = indices(&mut scan.column_max.iter().map(|m| *m >= OUTLIER_RATIO * median));
        if !columns.is_empty() {
            out.push(Finding::OutlierColumns {
                tensor: name.to_owned(),
                columns,
                median,
            });
        }
    }
    out
}

/// The median as numpy computes it (the mean of the two middle values of an even count).
fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        f64::midpoint(sorted[mid - 1], sorted[mid])
    }
}

/// C-order coordinates of flat index `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut out = vec![0; shape.len()];
    for (slot, &dim) in out.iter_mut().zip(shape).rev() {
        if dim > 0 {
            *slot = flat % dim;
            flat /= dim;
        }
    }
    out
}

/// Floating-point dtypes: the ones weights are stored in.
fn is_real_float(dtype: DType) -> bool {
    dtype.is_float()
        || matches!(
            dtype,
            DType::F8_E4M3 | DType::F8_E5M2 | DType::F8_E4M3FNUZ | DType::F8_E5M2FNUZ
        )
}

/// The token-embedding names Hugging Face models use (position embeddings are not tokens).
fn is_token_embedding(name: &str) -> bool {
    const NAMES: [&str; 6] = [
        "embed_tokens.weight",
        "wte.weight",
        "word_embeddings.weight",
        "tok_embeddings.weight",
        "embed_in.weight",
        "shared.weight",
    ];
    NAMES
        .iter()
        .any(|n| name == *n || name.ends_with(&format!(".{n}")))
}

/// Any embedding table (token, position, token type), whose columns are features, not inputs:
/// a name whose module part says `embed` (`embeddings.position_embeddings.weight`,
/// `embed_positions.weight`), or GPT-2's `wte`/`wpe`.
fn is_embedding(name: &str) -> bool {
    let module = name.rsplit_once('.').map_or(name, |(m, _)| m);
    let last = module.rsplit('.').next().unwrap_or(module);
    is_token_embedding(name) || last.contains("embed") || matches!(last, "wte" | "wpe")
}

/// The output head that `tie_word_embeddings` ties to the embedding.
fn is_head(name: &str) -> bool {
    name == "lm_head.weight" || name.ends_with(".lm_head.weight")
}

fn same_bytes(model: &Model, a: ParamId, b: ParamId) -> bool {
    let (x, y) = (model.store.get(a), model.store.get(b));
    x.dtype() == y.dtype() && x.shape() == y.shape() && x.bytes() == y.bytes()
}

/// Whether a tensor has at least three distinct elements (compared as bytes); reads only as far
/// as it takes to find them, which is a few elements for any trained or random weight.
fn varied(tensor: &Tensor) -> bool {
    let size = (tensor.dtype().bits() / 8).max(1);
    let mut seen: Vec<&[u8]> = Vec::with_capacity(3);
    for e in tensor.bytes().chunks_exact(size) {
        if !seen.contains(&e) {
            seen.push(e);
            if seen.len() == 3 {
                return true;
            }
        }
    }
    false
}

/// Tensors byte-identical to an earlier one, among floating-point tensors with varied values;
/// `skip` is the untied head, reported as such.
fn duplicates(model: &Model, tensors: &[(String, ParamId)], skip: Option<ParamId>) -> Vec<Finding> {
    // Only tensors of one dtype and shape can be equal; within such a group, each tensor is
    // compared with one representative per class, and unequal bytes differ within a few elements.
    type Classes<'a> = Vec<(&'a str, &'a Tensor)>;
    let mut groups: HashMap<(DType, &[usize]), Classes> = HashMap::new();
    let mut out = Vec::new();
    for (name, id) in tensors {
        let tensor = model.store.get(*id);
        if Some(*id) == skip || !is_real_float(tensor.dtype()) || !varied(tensor) {
            continue;
        }
        let classes = groups.entry((tensor.dtype(), tensor.shape())).or_default();
        match classes.iter().find(|(_, t)| t.bytes() == tensor.bytes()) {
            Some((of, _)) => out.push(Finding::Duplicate {
                tensor: name.clone(),
                of: (*of).to_owned(),
            }),
            None => classes.push((name, tensor)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_coordinates_follow_numpy() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(unravel(7, &[2, 3, 2]), [1, 0, 1]);
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
    }

    #[test]
    fn outlier_features_are_information_and_embeddings_have_none() {
        // A weight whose column 3 writes one hidden dimension at 50x (all-MiniLM-L6-v2's pattern),
        // and a position embedding whose column 3 is as big (its position 0 row).
        let values: Vec<f32> = (0..64 * 8)
            .map(|i| {
                if i % 8 == 3 && i < 8 {
                    50.0
                } else {
                    ((i % 7) as f32 - 3.0) * 0.3 + 0.1
                }
            })
            .collect();
        let m = Tensor::from_f32(vec![64, 8], &values);
        let findings = of_values("encoder.layer.0.output.dense.weight", &m);
        assert!(
            matches!(&findings[..], [f @ Finding::OutlierColumns { columns, .. }] if columns == &[3] && !f.is_defect()),
            "{findings:?}"
        );
        for name in [
            "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight",
            "transformer.wpe.weight",
        ] {
            assert_eq!(of_values(name, &m), [], "{name}");
        }
        assert!(
            Finding::Nan {
                tensor: String::new(),
                count: 1,
                first: vec![]
            }
            .is_defect()
        );
    }

    #[test]
    fn constants_and_masks_are_not_varied() {
        let t = |v: &[f32]| Tensor::from_f32(vec![v.len()], v);
        assert!(!varied(&t(&[1.0; 8])));
        assert!(!varied(&t(&[0.0, 1.0, 1.0, 0.0])));
        assert!(varied(&t(&[0.0, 1.0, 2.0])));
    }
}
