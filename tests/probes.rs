//! The probes against transformers' eager fp32 forward (tests/fixtures/probes/make.py) on the
//! family fixtures (every decoder family: Llama, Mistral, Qwen2 and 3, Gemma 1-3, Phi-3, Mixtral,
//! Qwen2-MoE, Qwen3-MoE; GPT-2; BERT for attention) and a tiny Llama and Qwen2-MoE with a planted
//! massive channel and super weight: the logit lens, attention weights with their entropy and sink,
//! massive activations, zero-and-rerun, each layer's down-projection peaks and super weights.

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::stdout_json;
use paramscope::checkpoint::{self, LoadOptions};
use paramscope::families::probe::{Probe, Want, Weights, lens, massive, zero};
use paramscope::families::{Batch, Plan};
use serde_json::Value;

const DECODERS: [&str; 14] = [
    "gpt2",
    "llama",
    "mistral",
    "qwen2",
    "planted",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3",
    "phi3",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "planted_moe",
];

/// The decoders made on the shared decoder after the first probes, each with its down-projection
/// peaks in the fixture.
const NEWER: [&str; 9] = [
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3",
    "phi3",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "planted_moe",
];

fn folder(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    if name.starts_with("planted") {
        root.join("probes").join(name)
    } else {
        root.join("families").join(name)
    }
}

fn expected(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/probes")
        .join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn tokens(want: &Value) -> Vec<Vec<u32>> {
    want["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

/// Runs `name`'s fixture texts with a probe asking for `want`.
fn probed(name: &str, want: Want) -> (Plan, Probe, Value) {
    let expected = expected(name);
    let path = folder(name);
    let loaded = checkpoint::open(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let (family, config) = loaded.family.unwrap();
    let plan = Plan::new(family, &loaded.model, &config).unwrap();
    let batch = Batch::new(&tokens(&expected), 0).unwrap();
    let mut probe = Probe::new(want);
    plan.run_probed(&batch, &mut probe).unwrap();
    (plan, probe, expected)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn the_lens_matches_transformers_hidden_states_through_norm_and_head() {
    for name in DECODERS {
        let want = Want {
            residuals: true,
            ..Want::default()
        };
        let (plan, probe, expected) = probed(name, want);
        // The last row comes from the pass's own logits, the others through the head.
        let pass = plan
            .run(&Batch::new(&tokens(&expected), 0).unwrap())
            .unwrap();
        let rows = lens::lens(&plan, &probe, pass.output.as_slice().unwrap(), 5).unwrap();
        let theirs = expected["lens"].as_array().unwrap();
        assert_eq!(rows.len(), theirs.len(), "{name}: one row per hidden state");
        for (row, layer) in rows.iter().zip(theirs) {
            let positions: Vec<&Value> = layer
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|text| text.as_array().unwrap())
                .collect();
            assert_eq!(row.positions.len(), positions.len(), "{name}: positions");
            for (p, (ours, top)) in row.positions.iter().zip(positions).enumerate() {
                for (c, t) in ours.iter().zip(top.as_array().unwrap()) {
                    assert_eq!(
                        u64::from(c.id),
                        t["id"].as_u64().unwrap(),
                        "{name}: layer {} position {p}",
                        row.layer
                    );
                    let err = (f64::from(c.prob) - f(&t["prob"])).abs();
                    assert!(err < 1e-5, "{name}: layer {} prob off by {err}", row.layer);
                }
            }
        }
    }
}

#[test]
fn the_last_lens_row_is_the_models_own_prediction() {
    // Gemma 2's lens goes through its own (1 + w) norm and final soft cap, as its logits do.
    for name in ["llama", "gemma2", "mixtral"] {
        let (plan, probe, expected) = probed(
            name,
            Want {
                residuals: true,
                ..Want::default()
            },
        );
        let batch = Batch::new(&tokens(&expected), 0).unwrap();
        let pass = plan.run(&batch).unwrap();
        let last = lens::lens_row(&plan, &probe, probe.residuals.len() - 1, 3).unwrap();
        let n = batch.lens[0];
        let row = pass.output.slice(ndarray::s![0, n - 1, ..]).to_vec();
        let own = paramscope::families::predict::top_k(&row, 3);
        assert_eq!(last.positions[n - 1], own, "{name}");
        // So the lens reads that row from the logits instead of a head product of its own.
        let rows = lens::lens(&plan, &probe, pass.output.as_slice().unwrap(), 3).unwrap();
        assert_eq!(rows.last(), Some(&last), "{name}");
        // Logits of another shape (none) are not taken for it: the head computes it.
        let rows = lens::lens(&plan, &probe, &[], 3).unwrap();
        assert_eq!(rows.last(), Some(&last), "{name}");
    }
}

#[test]
fn massive_activations_match_numpy_and_the_planted_channel_is_flagged() {
    for name in DECODERS {
        let want = Want {
            residuals: true,
            ..Want::default()
        };
        let (_, probe, expected) = probed(name, want);
        let ours = massive::massive(&probe);
        let theirs = expected["massive"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{name}");
        for (m, t) in ours.iter().zip(theirs) {
            for (p, tp) in m.top.iter().zip(t["top"].as_array().unwrap()) {
                assert_eq!(
                    (p.token as u64, p.channel as u64),
                    (
                        tp["token"].as_u64().unwrap(),
                        tp["channel"].as_u64().unwrap()
                    ),
                    "{name}: layer {}",
                    m.layer
                );
                let err = (f64::from(p.value) - f(&tp["value"])).abs() / f(&tp["value"]).max(1.0);
                assert!(err < 1e-5, "{name}: layer {} top off by {err}", m.layer);
            }
            let err = (m.median - f(&t["median"])).abs() / f(&t["median"]);
            assert!(err < 1e-4, "{name}: layer {} median off by {err}", m.layer);
            assert_eq!(m.flagged, t["flagged"].as_bool().unwrap(), "{name}");
        }
        if name == "planted" {
            assert!(ours.iter().all(|m| m.flagged));
            assert_eq!((ours[0].top[0].token, ours[0].top[0].channel), (0, 7));
        }
    }
}

#[test]
fn attention_weights_entropy_and_sink_match_output_attentions() {
    for name in std::iter::once("bert").chain(DECODERS) {
        let want = Want {
            attention: true,
            weights: Weights::All,
            ..Want::default()
        };
        let (_, probe, expected) = probed(name, want);
        let theirs = expected["attention"].as_array().unwrap();
        assert_eq!(probe.attention.len(), theirs.len(), "{name}: one per layer");
        for (layer, t) in probe.attention.iter().zip(theirs) {
            let heads = t["weights"].as_array().unwrap();
            assert_eq!(layer.heads.len(), heads.len(), "{name}");
            for (head, th) in layer.heads.iter().zip(heads) {
                let rows: Vec<Vec<f64>> = th
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_array().unwrap().iter().map(f).collect())
                    .collect();
                let ours = head.weights.as_ref().unwrap();
                let n = rows.len();
                for (q, row) in rows.iter().enumerate() {
                    for (k, &w) in row.iter().enumerate() {
                        let err = (f64::from(ours[q * n + k]) - w).abs();
                        assert!(err < 1e-5, "{name}: weight [{q}][{k}] off by {err}");
                    }
                    let entropy: f64 = -row
                        .iter()
                        .filter(|&&p| p > 0.0)
                        .map(|p| p * p.ln())
                        .sum::<f64>();
                    assert!(
                        (f64::from(head.entropy[q]) - entropy).abs() < 1e-5,
                        "{name}: entropy"
                    );
                    assert!(
                        (f64::from(head.sink[q]) - row[0]).abs() < 1e-5,
                        "{name}: sink"
                    );
                }
            }
        }
    }
}

#[test]
fn one_selected_layer_keeps_its_weights_and_no_other() {
    let want = Want {
        attention: true,
        weights: Weights::Layer(1),
        ..Want::default()
    };
    let (_, probe, _) = probed("gpt2", want);
    assert!(probe.attention[0].heads.iter().all(|h| h.weights.is_none()));
    assert!(probe.attention[1].heads.iter().all(|h| h.weights.is_some()));
}

#[test]
fn zeroing_matches_torch_with_the_same_elements_zeroed() {
    for name in [
        "gpt2",
        "llama",
        "planted",
        "qwen3",
        "gemma2",
        "mixtral",
        "qwen2_moe",
    ] {
        let expected = expected(name);
        let zero = &expected["zero"];
        let ids: Vec<String> = tokens(&expected)
            .iter()
            .map(|s| s.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
            .collect();
        let path = folder(name);
        let mut args = vec!["forward", path.to_str().unwrap(), "--json", "--top-k", "5"];
        for list in &ids {
            args.extend(["--tokens", list]);
        }
        for spec in zero["zero"].as_array().unwrap() {
            args.extend(["--zero", spec.as_str().unwrap()]);
        }
        let out = stdout_json(&args);
        let kl_err = (f(&out["kl"]) - f(&zero["kl"])).abs();
        assert!(kl_err < 1e-6, "{name}: kl off by {kl_err}");
        for (key, ours) in [
            ("baseline", &out["baseline"]["top_k"]),
            ("edited", &out["top_k"][0]),
        ] {
            for (c, t) in ours
                .as_array()
                .unwrap()
                .iter()
                .zip(zero[key].as_array().unwrap())
            {
                assert_eq!(c["id"], t["id"], "{name}: {key}");
                assert!(
                    (f(&c["prob"]) - f(&t["prob"])).abs() < 1e-6,
                    "{name}: {key}"
                );
            }
        }
    }
}

#[test]
fn super_weights_are_found_at_the_planted_coordinates() {
    for name in ["llama", "planted", "qwen3", "planted_moe"] {
        let expected = expected(name);
        let path = folder(name);
        let ids: Vec<String> = tokens(&expected)[0].iter().map(u32::to_string).collect();
        let ids = ids.join(",");
        let out = stdout_json(&[
            "check",
            path.to_str().unwrap(),
            "--json",
            "--super-weights",
            "--tokens",
            &ids,
        ]);
        let ours: Vec<&Value> = out["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "super_weight")
            .collect();
        let theirs = expected["super_weights"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{name}");
        if name.starts_with("planted") {
            assert_eq!(ours.len(), 1, "{name}: the planted weight");
        }
        for (o, t) in ours.iter().zip(theirs) {
            // `expert` only for a stacked experts' tensor (null = absent otherwise).
            for key in ["path", "layer", "row", "col", "expert"] {
                assert_eq!(o[key], t[key], "{name}: {key}");
            }
            assert!((f(&o["value"]) - f(&t["value"])).abs() < 1e-6);
            let err = (f(&o["output_magnitude"]) - f(&t["output_magnitude"])).abs();
            assert!(err < 1e-3, "{name}: output magnitude off by {err}");
        }
    }
}

#[test]
fn down_projection_peaks_match_transformers_for_dense_and_mixture_layers() {
    for name in NEWER {
        let want = Want {
            down_proj: true,
            ..Want::default()
        };
        let (_, probe, expected) = probed(name, want);
        let theirs = expected["down"].as_array().unwrap();
        assert_eq!(probe.down.len(), theirs.len(), "{name}: one per layer");
        for (ours, t) in probe.down.iter().zip(theirs) {
            let at = |v: &Value| {
                let v = v.as_array().unwrap();
                (
                    v[0].as_u64().unwrap() as usize,
                    v[1].as_u64().unwrap() as usize,
                )
            };
            let layer = ours.layer;
            assert_eq!(layer as u64, t["layer"].as_u64().unwrap(), "{name}");
            assert_eq!(ours.weight.name, t["weight"].as_str().unwrap(), "{name}");
            assert_eq!(
                ours.weight.expert.map(|e| e as u64),
                t["expert"].as_u64(),
                "{name}: layer {layer}"
            );
            assert_eq!(ours.output_at, at(&t["output_at"]), "{name}: layer {layer}");
            assert_eq!(ours.input_at, at(&t["input_at"]), "{name}: layer {layer}");
            for (value, key) in [(ours.output, "output"), (ours.input, "input")] {
                let err = (f64::from(value) - f(&t[key])).abs() / f(&t[key]).max(1.0);
                assert!(err < 1e-5, "{name}: layer {layer} {key} off by {err}");
            }
        }
    }
}

#[test]
fn bad_zero_specs_are_one_line_errors() {
    let path = folder("llama");
    for spec in [
        "model.norm.weight[1,2]",
        "nope[1,2]",
        "model.layers.0.mlp.down_proj.weight[99,0]",
        "x",
    ] {
        let out = cli_support::paramscope(&[
            "forward",
            path.to_str().unwrap(),
            "--tokens",
            "1,2,3",
            "--zero",
            spec,
        ]);
        assert!(!out.status.success(), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{spec}: {err}");
    }
}

#[test]
fn zeroing_a_quantized_gguf_row_silences_that_channel_and_keeps_the_rest() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_run/llama_q4_0.gguf");
    let loaded = checkpoint::open(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let (family, config) = loaded.family.unwrap();
    let batch = Batch::new(&[vec![1, 267, 286, 274, 268]], 0).unwrap();
    let mlp = |model: &paramscope::model::Model| {
        let pass = Plan::new(family, model, &config)
            .unwrap()
            .run(&batch)
            .unwrap();
        let out = pass.activations.into_iter();
        out.filter(|a| a.path == "model.layers.1.mlp")
            .map(|a| a.output)
            .next()
            .unwrap()
    };
    let name = "model.layers.1.mlp.down_proj.weight";
    let before = mlp(&loaded.model);
    let mut edited = loaded.model.clone();
    let spec: zero::ZeroSpec = format!("{name}[3,:]").parse().unwrap();
    spec.apply(&mut edited).unwrap();
    let after = mlp(&edited);
    assert!(
        before
            .slice(ndarray::s![.., .., 3])
            .iter()
            .any(|&v| v != 0.0)
    );
    assert!(
        after
            .slice(ndarray::s![.., .., 3])
            .iter()
            .all(|&v| v == 0.0)
    );
    // Every other weight keeps its dequantized value.
    let values = |m: &paramscope::model::Model| {
        m.store
            .get(m.find_param(name).unwrap().1)
            .to_f32_vec()
            .unwrap()
    };
    let (old, new) = (values(&loaded.model), values(&edited));
    let cols = old.len() / before.shape()[2];
    for (i, (o, n)) in old.iter().zip(&new).enumerate() {
        assert_eq!(*n, if i / cols == 3 { 0.0 } else { *o }, "element {i}");
    }
}
