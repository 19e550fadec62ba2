//! PyTorch files against what torch itself read from them (tests/fixtures/pytorch_files/make.py
//! made every fixture and expected.json): both layouts, nested training checkpoints, views, ties,
//! every dtype, big-endian data, hostile pickles and broken files.

use std::path::{Path, PathBuf};

use paramscope::io::pytorch::{self, Contents};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch_files")
        .join(name)
}

fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn open(name: &str) -> Contents {
    pytorch::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// torch's dtype name as paramscope names it.
fn dtype_name(torch: &str) -> &'static str {
    match torch {
        "float32" => "F32",
        "float64" => "F64",
        "float16" => "F16",
        "bfloat16" => "BF16",
        "int8" => "I8",
        "int16" => "I16",
        "int32" => "I32",
        "int64" => "I64",
        "uint8" => "U8",
        "uint16" => "U16",
        "uint32" => "U32",
        "uint64" => "U64",
        "bool" => "BOOL",
        "complex64" => "C64",
        "float8_e4m3fn" => "F8_E4M3",
        "float8_e5m2" => "F8_E5M2",
        "float8_e4m3fnuz" => "F8_E4M3FNUZ",
        "float8_e5m2fnuz" => "F8_E5M2FNUZ",
        "float8_e8m0fnu" => "F8_E8M0",
        other => panic!("no dtype for {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Every tensor (name, dtype, shape, bytes) and tie matches torch's; with `values`, every plain
/// value too.
fn check_against_torch(name: &str, values: bool) {
    let all = expected();
    let want = &all[name];
    let got = open(name);
    let tensors = want["tensors"].as_object().unwrap();
    let names: Vec<&str> = got.tensors.iter().map(|(n, _)| n.as_str()).collect();
    let mut want_names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    want_names.sort_unstable();
    assert_eq!(sorted, want_names, "{name}: tensor names");
    for (tensor_name, tensor) in &got.tensors {
        let w = &tensors[tensor_name];
        let context = format!("{name}: {tensor_name}");
        assert_eq!(
            tensor.dtype().name(),
            dtype_name(w["dtype"].as_str().unwrap()),
            "{context}"
        );
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(tensor.shape(), shape.as_slice(), "{context}");
        assert_eq!(
            hex(tensor.bytes()),
            w["hex"].as_str().unwrap(),
            "{context}: bytes"
        );
    }
    let ties: Vec<(String, String)> = want["ties"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let mut got_ties = got.ties.clone();
    got_ties.sort();
    let mut ties = ties;
    ties.sort();
    assert_eq!(got_ties, ties, "{name}: ties");
    if values {
        let want_values = want["values"].as_object().unwrap();
        let got_values: serde_json::Map<String, Value> = got
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        assert_eq!(&got_values, want_values, "{name}: values");
    }
}

#[test]
fn state_dicts_match_torch_in_both_layouts() {
    check_against_torch("state_dict.pt", true);
    check_against_torch("state_dict_legacy.pt", true);
}

#[test]
fn training_checkpoints_flatten_to_dotted_names_with_their_values() {
    for name in ["training.pt", "training_legacy.pt"] {
        check_against_torch(name, true);
        let got = open(name);
        let value = |key: &str| {
            got.values
                .iter()
                .find(|(k, _)| k == key)
                .map_or_else(|| panic!("{name}: no {key}"), |(_, v)| v.to_string())
        };
        assert_eq!(value("epoch"), "7");
        assert_eq!(value("optimizer.param_groups.0.lr"), "0.001");
        assert_eq!(value("args"), "<argparse.Namespace>");
        assert!(
            got.tensors
                .iter()
                .any(|(n, _)| n == "optimizer.state.0.exp_avg"),
            "{name}"
        );
    }
}

#[test]
fn views_show_torchs_values() {
    check_against_torch("views.pt", true);
    check_against_torch("views_legacy.pt", true);
}

#[test]
fn two_names_on_one_view_are_one_tensor() {
    for name in ["ties.pt", "ties_legacy.pt"] {
        check_against_torch(name, true);
        assert_eq!(open(name).tensors.len(), 2, "{name}");
    }
}

#[test]
fn every_dtype_matches_torch() {
    check_against_torch("dtypes.pt", true);
    check_against_torch("dtypes_legacy.pt", true);
}

#[test]
fn big_endian_storages_are_decoded() {
    check_against_torch("big_endian.pt", true);
}

#[test]
fn whole_modules_and_torchscript_list_their_parameters() {
    check_against_torch("whole_module.pt", false);
    check_against_torch("scripted.pt", false);
    let scripted = open("scripted.pt");
    assert!(scripted.torchscript);
    assert!(scripted.warnings[0].contains("TorchScript"));
}
