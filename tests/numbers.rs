//! Every number right (issue 20): quantiles as `torch.quantile` gives them, whole-model diff
//! figures over parameters only (torch), zero and identical tensors, `diff` and `check` on every
//! ggml type against gguf-py's dequantization, degenerate shapes, and the spectral caps.

mod cli_support;

use cli_support::{paramscope, stdout_json};
use paramscope::checkpoint::{self, LoadOptions};
use paramscope::compare::diff::{self, Status};
use paramscope::compare::{health, spectral};
use paramscope::model::demos;
use paramscope::tensor::histogram::Histogram;
use paramscope::tensor::{Bytes, DType, Tensor};
use paramscope::tensor::{quantile, summary};
use serde_json::Value;

fn path(relative: &str) -> String {
    format!("{}/tests/fixtures/{relative}", env!("CARGO_MANIFEST_DIR"))
}

fn json(relative: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path(relative)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// paramscope's quantiles of `tensor` at the fixture's percents, exact ones asserted.
fn quantiles_of(tensor: &Tensor, percents: &[f64]) -> Vec<f64> {
    let unused = Histogram::new(0.0, 0.0, 1);
    let q = quantile::quantiles(tensor, &unused, percents)
        .unwrap()
        .expect("finite values");
    assert!(q.exact(), "a small tensor's quantiles are exact");
    q.values
}

fn assert_torch(got: &[f64], want: &[f64], what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "{what}: paramscope {got:?}, torch.quantile {want:?}"
        );
    }
}

#[test]
fn small_tensors_quantiles_are_torchs() {
    let want = json("quantiles/quantiles.json");
    let percents = floats(&want["percents"]);
    // The case: demo:mlp's 0.weight, median -0.0625 (the 2520-bin histogram said -0.0804).
    let mlp = demos::build("mlp", 0).unwrap();
    for (name, id) in mlp.state_dict() {
        let got = quantiles_of(mlp.store.get(id), &percents);
        assert_torch(&got, &floats(&want["demos"][&name]), &name);
    }
    assert!(
        (quantiles_of(
            mlp.store.get(mlp.find_param("0.weight").unwrap().1),
            &[50.0]
        )[0] - -0.062_481_850_385_665_894)
            .abs()
            < 1e-12
    );
    // Other dtypes, ties, a 0-d tensor, one value, and NaN/±Inf left out (torch.nanquantile of
    // the finite values).
    let model = checkpoint::load(
        &path("quantiles/quantiles.safetensors"),
        &LoadOptions::default(),
    )
    .unwrap();
    let tensors = want["tensors"].as_object().unwrap();
    for (name, id) in model.state_dict() {
        let got = quantiles_of(model.store.get(id), &percents);
        assert_torch(&got, &floats(&tensors[&name]), &name);
    }
    assert_eq!(model.state_dict().len(), tensors.len());
}

#[test]
fn above_the_exact_limit_the_histogram_answers_with_its_bound() {
    // A tensor of EXACT_LIMIT + 1 values would take 64 MiB here; the rule is what is tested:
    // the histogram's figure comes with one bin's width as its bound.
    let mut h = Histogram::new(-1.0, 1.0, 2520);
    for i in 0..=2000 {
        h.add(f64::from(i) / 1000.0 - 1.0);
    }
    let q = quantile::from_histogram(&h, &[50.0]).unwrap();
    assert!((q.bound - 2.0 / 2520.0).abs() < 1e-15);
    assert!(q.values[0].abs() <= q.bound);
}

fn load(relative: &str) -> paramscope::model::Model {
    checkpoint::load(&path(relative), &LoadOptions::default()).unwrap()
}

#[test]
fn the_whole_model_figure_is_over_parameters_only() {
    // BERT with its int64 position_ids buffer: torch's figure over model.parameters().
    let want = json("compare/bert_pair.json");
    let (a, b) = (
        load("compare/bert_a.safetensors"),
        load("compare/bert_b.safetensors"),
    );
    let entries = diff::diff(&a, &b, &[]).unwrap();
    let ids = entries
        .iter()
        .find(|e| e.name == "embeddings.position_ids")
        .unwrap();
    assert!(!ids.parameter && ids.norms().is_none(), "a buffer");
    let (dd, aa) = entries
        .iter()
        .filter_map(diff::Entry::norms)
        .fold((0.0, 0.0), |(x, y), (d, a)| (x + d, y + a));
    let got = (dd / aa).sqrt();
    let torch = want["rel_l2_parameters"].as_f64().unwrap();
    assert!(
        (got - torch).abs() <= 1e-6 * torch,
        "paramscope {got}, torch {torch} (every tensor counted would give {})",
        want["rel_l2_every_tensor"]
    );
}

#[test]
fn identical_and_zero_tensors_have_exact_figures() {
    // Values whose sums round: cosine must still be exactly 1 and rel_l2 exactly 0.
    let values: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
    let t = Tensor::from_f32(vec![10, 100], &values);
    let e = diff::compare("w", &t, &t.clone());
    let f = e.figures.unwrap();
    assert_eq!(
        (e.status, f.cosine, f.rel_l2, f.max_abs_diff),
        (Status::Same, 1.0, 0.0, 0.0)
    );
    let zeros = Tensor::from_f32(vec![4], &[0.0; 4]);
    let ones = Tensor::from_f32(vec![4], &[1.0; 4]);
    let both_zero = diff::figures(&zeros, &zeros);
    assert_eq!((both_zero.cosine, both_zero.rel_l2), (1.0, 0.0));
    let from_zero = diff::figures(&zeros, &ones);
    assert_eq!(from_zero.cosine, 0.0);
    assert_eq!(from_zero.rel_l2, f64::INFINITY);
    let to_zero = diff::figures(&ones, &zeros);
    assert_eq!((to_zero.cosine, to_zero.rel_l2), (0.0, 1.0));
    // Through the CLI: an identical file reports cosine 1 and rel_l2 0, not 0.9999999999999998.
    let base = path("compare/base.safetensors");
    let got = stdout_json(&["diff", &base, &base, "--json"]);
    for t in got["tensors"].as_array().unwrap() {
        assert_eq!(t["status"], "same");
        assert_eq!(t["cosine"].as_f64(), Some(1.0), "{t}");
        assert_eq!(t["rel_l2"].as_f64(), Some(0.0), "{t}");
    }
}

#[test]
fn diff_of_every_ggml_type_equals_gguf_pys_figures() {
    let want = json("gguf/diff.json");
    let (a, b) = (path("gguf/all_types.gguf"), path("gguf/changed.gguf"));
    let got = stdout_json(&["diff", &a, &b, "--json"]);
    let tensors = got["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), want.as_object().unwrap().len());
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let w = &want[name];
        assert_eq!(t["status"], w["status"], "{name}");
        for figure in ["max_abs_diff", "rel_l2", "identical_fraction"] {
            let (g, x) = (t[figure].as_f64().unwrap(), w[figure].as_f64().unwrap());
            assert!(
                (g - x).abs() <= 1e-9 * x.abs().max(1e-300),
                "{name} {figure}: paramscope {g}, gguf-py {x}"
            );
        }
    }
    let out = paramscope(&["diff", &a, &b, "--exit-code"]);
    assert_eq!(out.status.code(), Some(3), "the files differ");
    let same = stdout_json(&["diff", &a, &a, "--json"]);
    assert_eq!(same["summary"]["changed"], 0);
    for t in same["tensors"].as_array().unwrap() {
        assert_eq!(
            (t["status"].as_str(), t["cosine"].as_f64()),
            (Some("same"), Some(1.0)),
            "{t}"
        );
    }
    // check reads every type too.
    let model = checkpoint::load(&b, &LoadOptions::default()).unwrap();
    let _ = health::check(&model);
    assert!(paramscope(&["check", &b, "--json"]).status.success());
}

/// A tensor of `shape` holding no bytes (every shape here has a zero dimension) or `bytes`.
fn raw(shape: Vec<usize>, dtype: DType, bytes: Vec<u8>) -> Tensor {
    Tensor::new(shape, dtype, Bytes::Owned(bytes.into()))
}

#[test]
fn degenerate_shapes_compare_check_and_summarize() {
    let huge = 1usize << 62;
    let shapes = [vec![0], vec![huge, 0], vec![0, huge], vec![3, 0, 2]];
    for dtype in [DType::F32, DType::BF16, DType::I64, DType::BOOL] {
        for shape in &shapes {
            let t = raw(shape.clone(), dtype, Vec::new());
            let e = diff::compare("t", &t, &t);
            assert_eq!(e.status, Status::Same, "{dtype} {shape:?}");
            let f = e.figures.unwrap();
            assert_eq!((f.cosine, f.rel_l2, f.identical_fraction), (1.0, 0.0, 1.0));
            let s = summary::summarize(&t, 8, &[50.0], &mut |_| {}).unwrap();
            assert_eq!((s.stats.total(), s.quantiles), (0, None));
        }
        // 0-d: one value.
        let size = dtype.byte_len(1).unwrap();
        let (zero, one) = (vec![0u8; size], {
            let mut v = vec![0u8; size];
            v[size - 1] = 0x3f; // 1.875 in F32 / BF16, a big integer in I64, true in BOOL
            v
        });
        let (a, b) = (raw(vec![], dtype, zero), raw(vec![], dtype, one));
        assert_eq!(diff::compare("t", &a, &b).status, Status::Changed);
        assert_eq!(diff::compare("t", &a, &a).status, Status::Same);
        let s = summary::summarize(&b, 8, &[50.0], &mut |_| {}).unwrap();
        let one = s.stats.max;
        assert_eq!(s.quantiles.unwrap().values, [one], "{dtype}");
    }
    for shape in [vec![huge, 0], vec![0, huge], vec![0, 0]] {
        let t = raw(shape.clone(), DType::F32, Vec::new());
        let s = spectral::spectral(&t).unwrap();
        assert_eq!((s.spectral_norm, s.alpha, s.iterations), (0.0, None, 0));
    }
}

#[test]
fn spectral_figures_meet_their_caps_and_say_which() {
    // The issue's [1, 1e8] (6.4 GB in the SVD) meets the full-spectrum cap before anything is
    // allocated for it, and says so; a matrix within it does not.
    let cap = spectral::spectrum_cap(1, 100_000_000).unwrap();
    assert_eq!(
        cap,
        spectral::Cap::Spectrum {
            elements: 100_000_000
        }
    );
    assert!(
        cap.to_string().contains("full-spectrum cap of 33554432"),
        "{cap}"
    );
    assert_eq!(spectral::spectrum_cap(4096, 4096), None);
    assert!(
        spectral::spectrum_cap(usize::MAX, 2).is_some(),
        "no overflow"
    );
    // A wide matrix is given to the SVD tall: the same singular values.
    let wide = Tensor::from_f32(
        vec![2, 12],
        &(0..24).map(|i| (i * i % 7) as f32).collect::<Vec<_>>(),
    );
    let tall = Tensor::from_f32(
        vec![12, 2],
        &(0..24)
            .map(|k| {
                // Row j, column i of the transpose: element (i, j) of `wide`.
                let (i, j) = (k % 2, k / 2);
                let flat = i * 12 + j;
                (flat * flat % 7) as f32
            })
            .collect::<Vec<_>>(),
    );
    let (w, t) = (
        spectral::spectral(&wide).unwrap(),
        spectral::spectral(&tall).unwrap(),
    );
    assert!((w.spectral_norm - t.spectral_norm).abs() < 1e-4 * t.spectral_norm);
    assert!(w.caps.is_empty() && t.caps.is_empty());
}
