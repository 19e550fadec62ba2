//! paramscope against numbers PyTorch produced (tests/fixtures/make_fixtures.py made every fixture).

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use paramscope::checkpoint::save;
use paramscope::checkpoint::{self, LoadOptions};
use paramscope::io::{npy, safetensors};
use paramscope::model::forward::ForwardPlan;
use paramscope::model::init::{InitPlan, InitScheme, Role};
use paramscope::model::rng::TorchGenerator;
use paramscope::model::{Model, arch, demos};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("not a number: {other}"),
    }
}

/// Every state_dict entry of `model` as (name, shape, values).
fn state_of(model: &Model) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    model
        .state_dict()
        .into_iter()
        .map(|(name, id)| {
            let t = model.store.get(id);
            (name, t.shape().to_vec(), t.to_f32_vec().unwrap())
        })
        .collect()
}

fn assert_state_matches(model: &Model, expected: &Value, tolerance: f32, context: &str) {
    let ours = state_of(model);
    let theirs = expected["state_dict"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{context}: state_dict length");
    for ((name, shape, values), entry) in ours.iter().zip(theirs) {
        assert_eq!(
            name,
            entry["name"].as_str().unwrap(),
            "{context}: state_dict order"
        );
        let want_shape: Vec<usize> = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, &want_shape, "{context}: {name} shape");
        let want = floats(&entry["values"]);
        for (i, (a, b)) in values.iter().zip(&want).enumerate() {
            let ok = if tolerance == 0.0 {
                a.to_bits() == b.to_bits() || a == b
            } else {
                (a - b).abs() <= tolerance * (1.0 + b.abs())
            };
            assert!(ok, "{context}: {name}[{i}] = {a}, PyTorch has {b}");
        }
    }
}

#[test]
fn demos_have_pytorchs_names_order_values_and_print() {
    let fixtures = json("demos.json");
    for (key, expected) in fixtures.as_object().unwrap() {
        let (name, seed) = key.split_once('@').unwrap();
        let model = demos::build(name, seed.parse().unwrap()).unwrap();
        // Default init draws uniforms only, which paramscope reproduces bit for bit.
        assert_state_matches(&model, expected, 0.0, key);
        let named: Vec<String> = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let want: Vec<&str> = expected["named_parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(named, want, "{key}: named_parameters");
        assert_eq!(
            model.total_params() as u64,
            expected["num_params"].as_u64().unwrap(),
            "{key}"
        );
        assert_eq!(
            arch::print(&model.root),
            expected["print"].as_str().unwrap(),
            "{key}: print(model)"
        );
    }
}

#[test]
fn forward_on_a_seeded_batch_matches_pytorch() {
    let fixtures = json("demos.json");
    for (key, expected) in fixtures.as_object().unwrap() {
        let (name, seed) = key.split_once('@').unwrap();
        let seed: u64 = seed.parse().unwrap();
        let model = demos::build(name, seed).unwrap();
        let mut x = vec![0f32; 8];
        TorchGenerator::new(seed).fill_uniform(&mut x, 0.0, 1.0);
        assert_eq!(x, floats(&expected["input"]), "{key}: torch.rand(2, 4)");
        let x = ArrayD::from_shape_vec(IxDyn(&[2, 4]), x).unwrap();
        let out = ForwardPlan::new(&model).unwrap().run(&x).unwrap();
        let y: Vec<f32> = out.last().unwrap().output.iter().copied().collect();
        for (a, b) in y.iter().zip(floats(&expected["output"])) {
            assert!((a - b).abs() < 1e-6, "{key}: output {a} vs PyTorch {b}");
        }
    }
}

#[test]
fn every_init_scheme_gives_pytorchs_values() {
    for case in json("init.json").as_array().unwrap() {
        let weight = case["weight"].as_str().unwrap();
        let context = format!(
            "{} at {:?}: --weight {weight} --bias {}",
            case["demo"], case["at"], case["bias"]
        );
        let mut model = demos::build(case["demo"].as_str().unwrap(), 0).unwrap();
        let plan = InitPlan {
            weight: Some(weight.parse().unwrap()),
            bias: case["bias"].as_str().map(|b| b.parse().unwrap()),
            seed: case["seed"].as_u64().unwrap(),
        };
        plan.apply(&mut model, case["at"].as_str().unwrap())
            .unwrap();
        // Every scheme is bit-exact but those that go through LAPACK's QR (orthogonal) or accept
        // uniforms by comparing with torch's vectorized log (trunc_normal on a range holding less
        // than 30% of the mass), which rounds differently in the last bits.
        let inexact = |scheme: &Option<InitScheme>| match scheme {
            Some(InitScheme::Orthogonal { .. }) => true,
            Some(InitScheme::TruncNormal { mean, std, a, b }) => {
                let cdf = |x: f64| 0.5 * (1.0 + paramscope::math::erf(x / 2f64.sqrt()));
                cdf((b - mean) / std) - cdf((a - mean) / std) <= 0.3
            }
            _ => false,
        };
        let exact = !inexact(&plan.weight) && !inexact(&plan.bias);
        assert_state_matches(&model, case, if exact { 0.0 } else { 2e-6 }, &context);
    }
}

#[test]
fn normal_schemes_draw_pytorchs_values_bit_for_bit() {
    // Sizes below 16 take torch's scalar f64 path, the others its 16-lane f32 path (with a ragged
    // tail redrawn); a run of draws from one seed carries the scalar path's cached sample along.
    let cases = json("init_normal.json");
    let mut sizes = std::collections::BTreeSet::new();
    for case in cases.as_array().unwrap() {
        let scheme: InitScheme = case["scheme"].as_str().unwrap().parse().unwrap();
        let mut rng = TorchGenerator::new(case["seed"].as_u64().unwrap());
        let shapes = case["shapes"].as_array().unwrap();
        for (shape, want) in shapes.iter().zip(case["values"].as_array().unwrap()) {
            let shape: Vec<usize> = shape
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let ours = scheme.sample(&shape, Role::Weight, &mut rng).unwrap();
            let want = floats(want);
            assert_eq!(ours.len(), want.len(), "{scheme:?} {shape:?}");
            for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{} on {shape:?} (seed {}): [{i}] = {a}, PyTorch has {b}",
                    case["scheme"],
                    case["seed"]
                );
            }
            sizes.insert(want.len());
        }
    }
    // Both of torch's paths, and the 16-lane one's edges, were exercised.
    for size in [1, 15, 16, 32, 21, 85, 64 * 33] {
        assert!(sizes.contains(&size), "no case of {size} elements");
    }
}

#[test]
fn a_torch_made_file_runs_forward_with_its_printed_architecture() {
    let options = LoadOptions {
        arch: Some(&fixture("zoo_arch.txt")),
        ..LoadOptions::default()
    };
    let model = checkpoint::load(fixture("zoo.safetensors").to_str().unwrap(), &options).unwrap();
    let x = npy::read(&fixture("zoo_input.npy")).unwrap();
    let want = npy::read(&fixture("zoo_output.npy")).unwrap();
    let out = ForwardPlan::new(&model).unwrap().run(&x).unwrap();
    let y = &out.last().unwrap().output;
    assert_eq!(y.shape(), want.shape());
    for (a, b) in y.iter().zip(want.iter()) {
        assert!((a - b).abs() < 1e-5, "output {a} vs PyTorch {b}");
    }
}

#[test]
fn save_model_ties_are_read_as_one_tensor() {
    let path = fixture("shared_save_model.safetensors");
    let model = checkpoint::from_checkpoint(safetensors::open(&path).unwrap(), false).unwrap();
    let (_, id) = model.find_param("4.weight").unwrap();
    assert_eq!(model.paths_of(id), ["2.weight", "4.weight"]);
    assert_eq!(model.total_params(), 121);
    // With the chapter's architecture, the file computes what PyTorch computed.
    let arch_text = arch::print(&demos::build("shared", 0).unwrap().root);
    let model = arch::bind(&arch::parse(&arch_text).unwrap(), &model).unwrap();
    let expected = json("shared_save_model.json");
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 4]), floats(&expected["input"])).unwrap();
    let out = ForwardPlan::new(&model).unwrap().run(&x).unwrap();
    for (a, b) in out
        .last()
        .unwrap()
        .output
        .iter()
        .zip(floats(&expected["output"]))
    {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn an_export_stores_what_save_model_stores() {
    let theirs = safetensors::open(&fixture("shared_save_model.safetensors")).unwrap();
    let model = demos::build("shared", 0).unwrap();
    let (tensors, metadata) = save::contents(&model);
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let mut their_names: Vec<&str> = theirs.tensors.iter().map(|(n, _)| n.as_str()).collect();
    their_names.sort_unstable();
    assert_eq!(names, their_names);
    for (name, tensor) in &theirs.tensors {
        let ours = tensors.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(ours.bytes(), tensor.bytes(), "{name}");
    }
    for (dropped, kept) in &theirs.metadata {
        assert_eq!(metadata.get(dropped), Some(kept), "tie {dropped} -> {kept}");
    }
}
