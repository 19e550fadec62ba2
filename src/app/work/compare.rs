//! The worker's side of a comparison: opening B, diffing A against it under the guessed renames,
//! and the B and Δ = B − A of one selected tensor. What comes back is laid over the tree by
//! `app::compare`.

use std::collections::HashMap;

use crate::app::error::AppError;
use crate::app::job::{Compared, Detail, NoDelta, Second, Summary};
use crate::app::summary::summarize;
use crate::compare::diff;
use crate::model::{Model, ParamId, budget};
use crate::tensor::decode::{self, Undecodable};
use crate::tensor::{Bytes, DType, Tensor, parallel};

/// Opens B if needed and diffs A against it, matching names after the guessed renames.
pub fn compare(a: &Model, second: Second) -> Result<Compared, AppError> {
    let (source, b) = match second {
        Second::Open(spec) => (spec.model.clone(), super::open::open(&spec)?.model),
        Second::Model(source, b) => (source, *b),
    };
    crate::checkpoint::fetch_all(a)?;
    crate::checkpoint::fetch_all(&b)?;
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

/// Elements decoded at a time for the Δ.
const CHUNK: usize = 4096;

/// B's summary and, for tensors of one shape, Δ = B − A (from f64 differences) and its summary.
/// The Δ is an f32 copy of the tensor, assembled from per-thread parts: a tensor whose two copies
/// would not fit in the memory available gets none, rather than an abort in the allocator.
#[must_use]
pub fn detail(a: &Tensor, b: Tensor) -> Detail {
    // Remote sides are fetched (once); one that fails reads as undecodable.
    let _ = (crate::checkpoint::fetch(a), crate::checkpoint::fetch(&b));
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{compare, detail};
    use crate::app::compare::{Comparison, Mark};
    use crate::app::extras::Extras;
    use crate::app::job::{NoDelta, Second};
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
            root: root.into(),
            store,
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn a_module_counts_a_tied_tensor_once() {
        let a = tied(&[1.0, 0.0], &[0.0, 1.0]);
        let b = tied(&[1.0, 1.0], &[0.0, 1.0]);
        let outline = Outline::new(&a, &Extras::default());
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
