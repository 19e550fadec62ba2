//! PyTorch files against what torch itself read from them (tests/fixtures/pytorch_files/make.py
//! made every fixture and expected.json): both layouts, nested training checkpoints, views, ties,
//! every dtype, big-endian data, hostile pickles and broken files.

use std::path::{Path, PathBuf};

use paramscope::io::pytorch::{self, Contents};
use serde_json::Value;

mod fixture_support;

fn fixture(name: &str) -> PathBuf {
    fixture_support::path("pytorch_files", name)
}

fn expected() -> serde_json::Map<String, Value> {
    fixture_support::expected("pytorch_files")
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

/// Runs paramscope in `dir` and returns (exit code, stdout, stderr).
fn paramscope_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paramscope"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn paramscope(args: &[&str]) -> (i32, String, String) {
    paramscope_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn path_of(name: &str) -> String {
    fixture(name).to_str().unwrap().to_owned()
}

#[test]
fn a_hostile_pickle_runs_nothing_and_is_named() {
    for name in ["hostile.pt", "hostile_legacy.pt"] {
        let dir = tempfile::tempdir().unwrap();
        let (code, stdout, stderr) = paramscope_in(dir.path(), &["tree", &path_of(name)]);
        assert!(
            !dir.path().join("paramscope_pwned_marker").exists(),
            "{name}: the payload ran"
        );
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(stdout.contains("weight"), "{name}: {stdout}");
        assert!(
            stdout.contains("payload = <posix.system>"),
            "{name}: {stdout}"
        );
        assert_eq!(
            stderr.trim(),
            format!(
                "warning: {}: the pickle names posix.system (outside torch's weights_only allow-list: torch.load(weights_only=False) would import it and could run it; paramscope did not)",
                path_of(name)
            ),
            "{name}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = paramscope_in(dir.path(), &["tree", &path_of("hostile_only.pt")]);
    assert!(!dir.path().join("paramscope_pwned_marker").exists());
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("name posix.system"), "{stderr}");
}

#[test]
fn bad_files_fail_in_one_line_naming_what_is_wrong() {
    for (name, words) in [
        ("bad_truncated.pt", "not a readable zip archive"),
        ("bad_truncated_legacy.pt", "runs past the end of the file"),
        ("bad_missing_storage.pt", "storage 0 is missing"),
        ("bad_past_storage.pt", "tensor w: shape [3, 2]"),
        ("bad_stride.pt", "strides [100, 1]"),
        ("bad_huge.pt", "reach past its storage"),
        (
            "bad_underflow.pt",
            "pickle offset 48 (opcode 0x52): stack underflow",
        ),
        ("bad_memo_miss.pt", "memo entry 5 was never stored"),
        ("bad_deep.pt", "nests deeper than"),
    ] {
        let (code, stdout, stderr) = paramscope(&["tree", &path_of(name)]);
        assert_eq!(code, 1, "{name}: {stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        assert!(stderr.contains(&path_of(name)), "{name}: {stderr}");
        assert!(stderr.contains(words), "{name}: {stderr}");
    }
}

#[test]
fn tree_lists_plain_values_in_text_and_json() {
    let (code, stdout, stderr) = paramscope(&["tree", &path_of("training.pt")]);
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "  epoch = 7",
        "  best_loss = 0.25",
        "  run = \"adam-small\"",
        "  note = None",
        "  optimizer.param_groups.0.eps = 1e-08",
        "  args = <argparse.Namespace>",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line}\n{stdout}");
    }
    let (code, stdout, _) = paramscope(&["tree", &path_of("training_legacy.pt"), "--json"]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["values"]["epoch"], 7);
    assert_eq!(json["values"]["optimizer.param_groups.0.lr"], 0.001);
    assert_eq!(json["values"]["finished"], false);
    assert_eq!(json["values"]["note"], Value::Null);
    let names: Vec<&str> = json["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"optimizer.state.0.exp_avg_sq"), "{names:?}");
}

#[test]
fn key_takes_the_sub_dict_as_the_model() {
    let (code, stdout, stderr) = paramscope(&["tree", &path_of("training.pt"), "--key", "model"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("  0.weight  "), "{stdout}");
    assert!(!stdout.contains("optimizer"), "{stdout}");
    assert!(stdout.contains("total: 23 parameters"), "{stdout}");

    let (code, _, stderr) = paramscope(&["tree", &path_of("training.pt"), "--key", "nope"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("model, optimizer"), "{stderr}");

    // forward runs on the sub-dict with its printed architecture.
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.txt");
    std::fs::write(
        &arch,
        "Sequential(\n  (0): Linear(in_features=4, out_features=3, bias=True)\n  (1): ReLU()\n  (2): Linear(in_features=3, out_features=2, bias=True)\n)\n",
    )
    .unwrap();
    let (code, stdout, stderr) = paramscope(&[
        "forward",
        &path_of("training.pt"),
        "--key",
        "model",
        "--arch",
        arch.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ReLU"), "{stdout}");
}

#[test]
fn export_converts_to_safetensors_keeping_nested_names_and_ties() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("training.safetensors");
    let (code, _, stderr) = paramscope(&[
        "export",
        &path_of("training_legacy.pt"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let saved = paramscope::io::safetensors::open(&out).unwrap();
    let want = &expected()["training_legacy.pt"]["tensors"];
    assert_eq!(saved.tensors.len(), want.as_object().unwrap().len());
    for (name, tensor) in &saved.tensors {
        assert_eq!(
            hex(tensor.bytes()),
            want[name]["hex"].as_str().unwrap(),
            "{name}"
        );
    }

    let out = dir.path().join("ties.safetensors");
    let (code, _, stderr) =
        paramscope(&["export", &path_of("ties.pt"), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let saved = paramscope::io::safetensors::open(&out).unwrap();
    assert_eq!(saved.tensors.len(), 2);
    assert_eq!(
        saved.metadata.get("head.weight").map(String::as_str),
        Some("embed.weight")
    );
}

#[test]
fn a_sharded_pytorch_checkpoint_opens_through_its_index_or_folder() {
    let want = &expected()["sharded"]["tensors"];
    for spec in [
        path_of("sharded/pytorch_model.bin.index.json"),
        path_of("sharded"),
    ] {
        let loaded =
            paramscope::checkpoint::open(&spec, &paramscope::checkpoint::LoadOptions::default())
                .unwrap_or_else(|e| panic!("{spec}: {e}"));
        let state = loaded.model.state_dict();
        assert_eq!(state.len(), 4, "{spec}");
        for (name, id) in state {
            let tensor = loaded.model.store.get(id);
            assert_eq!(
                hex(tensor.bytes()),
                want[&name]["hex"].as_str().unwrap(),
                "{name}"
            );
        }
    }
}

/// training.pt's pickle, as torch wrote it.
fn training_pickle() -> Vec<u8> {
    use std::io::Read as _;
    let file = std::fs::File::open(fixture("training.pt")).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let mut entry = zip.by_name("training/data.pkl").unwrap();
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).unwrap();
    bytes
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Whatever the bytes, the machine answers with values or an error, never a panic.
    #[test]
    fn mutated_pickles_never_panic(
        edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
        cut in proptest::prelude::any::<usize>(),
    ) {
        let mut bytes = training_pickle();
        for (at, byte) in edits {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        if let Ok(unpickled) = paramscope::io::pickle::unpickle(&bytes, 0) {
            proptest::prop_assert!(unpickled.end <= bytes.len());
            let _ = paramscope::io::pickle::flatten(&unpickled);
        }
    }

    /// A mutated legacy file opens or fails with an error; every tensor it gives lies in the file.
    #[test]
    fn mutated_legacy_files_never_panic(
        edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..4),
    ) {
        let mut bytes = std::fs::read(fixture("training_legacy.pt")).unwrap();
        for (at, byte) in edits {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        if let Ok(contents) = pytorch::open(file.path()) {
            for (_, tensor) in &contents.tensors {
                let want = tensor.dtype().byte_len(tensor.numel());
                proptest::prop_assert_eq!(Some(tensor.bytes().len()), want);
            }
        }
    }
}
