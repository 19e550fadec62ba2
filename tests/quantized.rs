//! Quantized safetensors seen as their logical weights: shape, dtype, scheme and parts in
//! `tree --json`, the stored codes one flag away, and every dequantized value bit-exact with the
//! scheme's reference (fixtures made by tests/fixtures/quantized/make.py).

mod cli_support;

use std::path::Path;

use cli_support::{paramscope, stdout_json, succeeded};
use safetensors::SafeTensors;
use serde_json::Value;

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/quantized/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Every `"parts"` name under a `tree --json` value.
fn collect_parts(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(parts) = map.get("quantization").and_then(|q| q["parts"].as_array()) {
                // FP8's codes are stored under the weight's own name.
                let own = map.get("name").and_then(|n| n.as_str());
                out.extend(
                    (parts.iter().filter_map(|p| p.as_str()))
                        .filter(|p| Some(*p) != own)
                        .map(str::to_owned),
                );
            }
            map.values().for_each(|v| collect_parts(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_parts(v, out)),
        _ => {}
    }
}

/// `export SOURCE --dequantize`, each weight of NAME.expected.safetensors compared byte for byte;
/// and `show --json` of each, whose statistics are computed a chunk at a time from the codes,
/// giving the same statistics and first values, to the bit, as of the reference's stored values.
fn dequantized_matches(source: &str, name: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let source = fixture(source);
    let refused = paramscope(&["export", &source, "-o", out.to_str().unwrap()]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "export without --dequantize"
    );
    succeeded(&[
        "export",
        &source,
        "--dequantize",
        "-o",
        out.to_str().unwrap(),
    ]);
    let (ours, oracle) = (
        std::fs::read(&out).unwrap(),
        std::fs::read(fixture(&format!("{name}.expected.safetensors"))).unwrap(),
    );
    let (ours, oracle) = (
        SafeTensors::deserialize(&ours).unwrap(),
        SafeTensors::deserialize(&oracle).unwrap(),
    );
    // The packed parts are not written beside the weights they made.
    let tree = stdout_json(&["tree", "--json", &source]);
    let mut parts = Vec::new();
    collect_parts(&tree, &mut parts);
    assert!(
        !parts.is_empty(),
        "{source}: a quantized model lists its parts"
    );
    let names = ours.names();
    for part in &parts {
        assert!(
            !names.contains(&part.as_str()),
            "{part} was written beside its dequantized weight"
        );
    }
    let mut compared = 0;
    for (key, want) in oracle.tensors() {
        let got = ours.tensor(&key).unwrap();
        assert_eq!(
            (got.dtype(), got.shape()),
            (want.dtype(), want.shape()),
            "{key}"
        );
        assert!(
            got.data() == want.data(),
            "{key}: dequantized values differ from the reference"
        );
        let expected = fixture(&format!("{name}.expected.safetensors"));
        let show = |file: &str| stdout_json(&["show", "--json", "--limit", "100", file, &key]);
        let (shown, reference) = (show(&source), show(&expected));
        assert_eq!(
            (&shown["stats"], &shown["values"], &shown["dtype"]),
            (
                &reference["stats"],
                &reference["values"],
                &reference["dtype"]
            ),
            "{key}: show"
        );
        compared += 1;
    }
    compared
}

#[test]
fn fp8_weights_dequantize_bit_exact_with_torch() {
    assert_eq!(dequantized_matches("fp8.safetensors", "fp8"), 3);
}

#[test]
fn packed_integer_weights_dequantize_bit_exact_with_their_references() {
    // 4-bit v1 zeros with act-order g_idx; 8-bit v2 zeros in consecutive groups; AWQ's GEMM order;
    // compressed-tensors' pack-quantized (its own dequantize is the oracle).
    for name in [
        "gptq",
        "gptq_v2",
        "awq",
        "compressed_int4",
        "compressed_int8",
        "mxfp4",
        // Widths that do not divide 32, codes (and the odd ones' zero points) straddling words.
        "compressed_int2",
        "compressed_int3",
        "compressed_int5",
        "compressed_int6",
        "compressed_int7",
    ] {
        assert_eq!(dequantized_matches(name, name), 1, "{name}");
    }
    for (name, scheme, parts) in [
        ("compressed_int3", "compressed_int3", 3),
        ("compressed_int6", "compressed_int6", 2),
    ] {
        let tree = stdout_json(&["tree", &fixture(name), "--json"]);
        let weight = tree["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "model.layers.0.mlp.gate_proj.weight")
            .unwrap()
            .clone();
        assert_eq!(weight["shape"], serde_json::json!([24, 48]), "{name}");
        assert_eq!(weight["quantization"]["scheme"], scheme);
        assert_eq!(
            weight["quantization"]["parts"].as_array().unwrap().len(),
            parts,
            "{name}: the packed codes and the scales, and the zero points when asymmetric"
        );
    }
    let tree = stdout_json(&["tree", &fixture("gptq"), "--json"]);
    let weight = tree["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "model.layers.0.mlp.up_proj.weight")
        .unwrap()
        .clone();
    assert_eq!(weight["shape"], serde_json::json!([48, 64]));
    assert_eq!(weight["dtype"], "F16");
    assert_eq!(weight["quantization"]["scheme"], "gptq");
    assert_eq!(weight["quantization"]["parts"].as_array().unwrap().len(), 4);
    // MXFP4 experts as transformers returns them: (experts, G * 32, rows), BF16.
    let tree = stdout_json(&["tree", &fixture("mxfp4"), "--json"]);
    let experts = tree["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "model.layers.0.mlp.experts.gate_up_proj")
        .unwrap()
        .clone();
    assert_eq!(experts["shape"], serde_json::json!([2, 96, 12]));
    assert_eq!(experts["dtype"], "BF16");
    assert_eq!(experts["quantization"]["scheme"], "mxfp4");
}

#[test]
fn tree_json_lists_the_logical_weight_with_scheme_and_parts() {
    let tree = stdout_json(&["tree", &fixture("fp8.safetensors"), "--json"]);
    let params = tree["params"].as_array().unwrap();
    let param = |name: &str| params.iter().find(|p| p["name"] == name).unwrap().clone();
    let down = param("model.layers.0.mlp.down_proj.weight");
    assert_eq!(down["shape"], serde_json::json!([136, 260]));
    assert_eq!(down["dtype"], "F32");
    assert_eq!(down["quantization"]["scheme"], "fp8_block");
    assert_eq!(
        down["quantization"]["parts"],
        serde_json::json!([
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.0.mlp.down_proj.weight_scale_inv"
        ])
    );
    for name in ["q_proj", "k_proj"] {
        let p = param(&format!("model.layers.0.self_attn.{name}.weight"));
        assert_eq!(p["quantization"]["scheme"], "fp8", "{name}");
    }
    assert_eq!(
        param("model.layers.0.input_layernorm.weight").get("quantization"),
        None
    );
}

#[test]
fn show_gives_dequantized_values_and_raw_gives_the_codes() {
    let name = "model.layers.0.mlp.down_proj.weight";
    let show = |raw: bool| {
        let mut args = vec!["show", "--json", "--limit", "8"];
        let source = fixture("fp8.safetensors");
        args.push(&source);
        args.push(name);
        if raw {
            args.push("--raw");
        }
        stdout_json(&args.iter().map(|s| &**s).collect::<Vec<_>>())
    };
    let (values, codes) = (show(false), show(true));
    assert_eq!(values["dtype"], "F32");
    assert_eq!(codes["dtype"], "F8_E4M3");
    // The outlier at [5, 7] made its block's scale large; no code is past FP8's range.
    let max = |v: &Value| v["stats"]["max"].as_f64().unwrap();
    assert!((max(&values) - 10.0).abs() < 0.3, "{values}");
    assert!(max(&codes) <= 448.0);
}

#[test]
fn check_names_the_outlier_block_and_the_infinite_exponent() {
    let findings = |source: &str| -> Vec<(String, String, u64)> {
        let check = stdout_json(&["check", &fixture(source), "--json"]);
        check["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"].as_str().unwrap().ends_with("_scales"))
            .map(|f| {
                (
                    f["kind"].as_str().unwrap().to_owned(),
                    f["tensor"].as_str().unwrap().to_owned(),
                    f["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // The 10.0 planted at [5, 7] made its block's scale over 20x the others' median..
    let fp8 = findings("fp8.safetensors");
    assert!(
        fp8.contains(&(
            "outlier_scales".into(),
            "model.layers.0.mlp.down_proj.weight".into(),
            1
        )),
        "{fp8:?}"
    );
    let mx = findings("mxfp4");
    assert!(
        mx.contains(&(
            "nonfinite_scales".into(),
            "model.layers.0.mlp.experts.gate_up_proj".into(),
            1
        )),
        "{mx:?}"
    );
}

#[test]
fn bitsandbytes_weights_dequantize_bit_exact_with_the_library() {
    // NF4 double-quantized (a tail block, 277 absmax over two nested blocks), FP4 of an odd width,
    // NF4 in a bf16 quant_storage; LLM.int8 rows with their SCB.
    assert_eq!(dequantized_matches("bnb", "bnb"), 4);
    assert_eq!(dequantized_matches("bnb_int8", "bnb_int8"), 2);
    let tree = stdout_json(&["tree", &fixture("bnb"), "--json"]);
    let param = |name: &str| {
        tree["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    for (module, scheme, dtype, shape) in [
        ("mlp.down_proj", "bnb_nf4", "BF16", [24, 44]),
        ("self_attn.q_proj", "bnb_fp4", "F16", [20, 33]),
        ("self_attn.k_proj", "bnb_nf4", "F32", [16, 32]),
    ] {
        let p = param(&format!("model.layers.0.{module}.weight"));
        assert_eq!(p["quantization"]["scheme"], scheme, "{module}");
        assert_eq!(p["dtype"], dtype, "{module}");
        assert_eq!(p["shape"], serde_json::json!(shape), "{module}");
    }
    let nested = param("model.layers.0.mlp.down_proj.weight");
    let parts: Vec<&str> = nested["quantization"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        parts,
        [
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.0.mlp.down_proj.weight.absmax",
            "model.layers.0.mlp.down_proj.weight.nested_absmax",
            "model.layers.0.mlp.down_proj.weight.nested_quant_map",
            "model.layers.0.mlp.down_proj.weight.quant_map",
            "model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__nf4",
        ]
    );
    let tree = stdout_json(&["tree", &fixture("bnb_int8"), "--json"]);
    let int8 = &tree["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "model.layers.0.mlp.down_proj.weight")
        .unwrap()["quantization"];
    assert_eq!(int8["scheme"], "bnb_int8");
    // `--raw` gives the stored int8 codes, the logical weight F32.
    let show = |raw: bool| {
        let source = fixture("bnb_int8");
        let mut args = vec!["show", "--json", "--limit", "4", &source];
        args.push("model.layers.0.mlp.down_proj.weight");
        if raw {
            args.push("--raw");
        }
        stdout_json(&args)
    };
    assert_eq!(show(false)["dtype"], "F32");
    assert_eq!(show(true)["dtype"], "I8");
    assert_eq!(show(true)["stats"]["max"].as_f64(), Some(127.0));
}

#[test]
fn asymmetric_compressed_tensors_dequantize_with_their_zero_points() {
    assert_eq!(dequantized_matches("compressed_asym", "compressed_asym"), 1);
}

#[test]
fn check_says_where_codes_crowd_the_extremes_and_skips_the_parts() {
    let check = stdout_json(&["check", &fixture("fp8_clamped.safetensors"), "--json"]);
    let saturated = check["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "saturated_codes")
        .expect("a saturated_codes finding")
        .clone();
    assert_eq!(
        saturated["tensor"],
        "model.layers.0.self_attn.v_proj.weight"
    );
    assert_eq!(
        (saturated["count"].as_u64(), saturated["scales"].as_u64()),
        (Some(1), Some(1))
    );
    let share = saturated["extreme_code_share"].as_f64().unwrap();
    assert!(share > 0.25 && share < 1.0, "{share}");
    // The unclamped fixtures have none; bitsandbytes' code tables, the same in every layer by
    // design, are not reported as duplicate weights.
    for source in ["fp8.safetensors", "bnb"] {
        let check = stdout_json(&["check", &fixture(source), "--json"]);
        let kinds: Vec<&str> = check["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert!(
            !kinds.contains(&"saturated_codes") && !kinds.contains(&"duplicate"),
            "{source}: {kinds:?}"
        );
    }
}

/// Fixture folder `folder`'s model with `name` replaced by `data` of `dtype` and `shape`, in a
/// temporary folder (kept alive by the returned guard).
fn fixture_with(
    folder: &str,
    name: &str,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: &[u8],
) -> tempfile::TempDir {
    let bytes = std::fs::read(fixture(&format!("{folder}/model.safetensors"))).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut views = Vec::new();
    for (key, view) in file.tensors() {
        let view = if key == name {
            safetensors::tensor::TensorView::new(dtype, shape.clone(), data).unwrap()
        } else {
            view
        };
        views.push((key, view));
    }
    let dir = tempfile::tempdir().unwrap();
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    dir
}

/// `tree --json` of `dir`, which must succeed with a warning holding `said`: the dtype of
/// `name` as the tree lists it, and whether it is a quantized weight.
fn tree_warned(dir: &Path, name: &str, said: &str) -> (String, bool) {
    let out = paramscope(&["tree", dir.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}: {stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("left as stored") && l.contains(said)),
        "{said}: {stderr}"
    );
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    let param = tree["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
        .clone();
    (
        param["dtype"].as_str().unwrap().to_owned(),
        param.get("quantization").is_some(),
    )
}

#[test]
fn a_lying_weight_shape_is_one_warning() {
    let shape: Vec<u8> = [24i64, 1 << 62]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    let dir = fixture_with(
        "compressed_int4",
        "model.layers.0.mlp.gate_proj.weight_shape",
        safetensors::Dtype::I64,
        vec![2],
        &shape,
    );
    let packed = "model.layers.0.mlp.gate_proj.weight_packed";
    assert_eq!(
        tree_warned(dir.path(), packed, "does not fit"),
        ("I32".to_owned(), false)
    );
}

#[test]
fn a_lying_bitsandbytes_state_is_one_warning_and_the_parts_stay_as_stored() {
    let state = "model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__nf4";
    let absmax = "model.layers.0.mlp.down_proj.weight.absmax";
    let json = |text: &str| text.as_bytes().to_vec();
    let cases: Vec<(&str, Vec<usize>, Vec<u8>, &str)> = vec![
        // A shape whose product overflows, one that does not fit the packed bytes, a block size
        // of zero, JSON that is not JSON, and an absmax of the wrong length.
        (
            state,
            vec![],
            json(
                r#"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [18446744073709551615, 4], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.1}"#,
            ),
            "does not fit",
        ),
        (
            state,
            vec![],
            json(
                r#"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4000, 4000], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.1}"#,
            ),
            "does not fit",
        ),
        (
            state,
            vec![],
            json(
                r#"{"quant_type": "nf4", "blocksize": 0, "dtype": "bfloat16", "shape": [24, 44], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.1}"#,
            ),
            "blocksize 0",
        ),
        (state, vec![], json("{not json"), "bitsandbytes__nf4"),
        (absmax, vec![3], vec![0, 1, 2], "absmax"),
    ];
    for (name, shape, data, said) in cases {
        let shape = if shape.is_empty() {
            vec![data.len()]
        } else {
            shape
        };
        let dir = fixture_with("bnb", name, safetensors::Dtype::U8, shape, &data);
        let codes = "model.layers.0.mlp.down_proj.weight";
        assert_eq!(
            tree_warned(dir.path(), codes, said),
            ("U8".to_owned(), false),
            "{said}"
        );
    }
}
