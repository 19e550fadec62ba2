//! Checkpoints written by the reference implementation (tests/fixtures/make_fixtures.py): every
//! dtype's values, shards, ties, and one malformed file per rule a reader must enforce.

use std::path::{Path, PathBuf};
use std::process::Command;

use paramscope::checkpoint::{self, LoadOptions};
use paramscope::io::{safetensors, sharded};
use paramscope::tensor::decode::{Scalar, decode_scalars};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(path: &Path) -> paramscope::model::Model {
    checkpoint::load(path.to_str().unwrap(), &LoadOptions::default()).unwrap()
}

/// Whether our exact value equals PyTorch's, written as text by the fixture script.
fn same(ours: &Scalar, theirs: &Value) -> bool {
    let float = |text: &str, ours: f64| {
        let want: f64 = match text {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            t => t.parse().unwrap(),
        };
        (ours.is_nan() && want.is_nan()) || ours.to_bits() == want.to_bits()
    };
    match (ours, theirs) {
        (Scalar::Bool(b), Value::String(t)) => t == if *b { "true" } else { "false" },
        (Scalar::Int(i), Value::String(t)) => i.to_string() == *t,
        (Scalar::Float(f), Value::String(t)) => float(t, *f),
        (Scalar::Complex(re, im), Value::Array(parts)) => {
            float(parts[0].as_str().unwrap(), f64::from(*re))
                && float(parts[1].as_str().unwrap(), f64::from(*im))
        }
        _ => false,
    }
}

#[test]
fn every_dtype_decodes_to_what_pytorch_loads() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("dtypes.json")).unwrap()).unwrap();
    let checkpoint = safetensors::open(&fixture("dtypes.safetensors")).unwrap();
    assert_eq!(
        checkpoint.tensors.len(),
        expected.as_object().unwrap().len()
    );
    for (name, tensor) in &checkpoint.tensors {
        let want = &expected[name];
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(tensor.shape(), shape, "{name}");
        let decoded = decode_scalars(tensor.dtype(), tensor.bytes(), 0, tensor.numel());
        match want["values"].as_array() {
            None => assert!(
                decoded.is_err(),
                "{name} ({}) should be marked undecodable",
                tensor.dtype()
            ),
            Some(values) => {
                let decoded = decoded.unwrap();
                assert_eq!(decoded.len(), values.len(), "{name}");
                for (i, (ours, theirs)) in decoded.iter().zip(values).enumerate() {
                    assert!(
                        same(ours, theirs),
                        "{name}[{i}] ({}): ours {ours:?}, PyTorch {theirs}",
                        tensor.dtype()
                    );
                }
            }
        }
    }
}

#[test]
fn an_undecodable_dtype_does_not_fail_the_file() {
    let model = load(&fixture("dtypes.safetensors"));
    let (_, id) = model.find_param("f4").unwrap();
    assert_eq!(model.store.get(id).shape(), [6]);
    let out = Command::new(env!("CARGO_BIN_EXE_paramscope"))
        .args([
            "show",
            fixture("dtypes.safetensors").to_str().unwrap(),
            "f4",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["dtype"], "F4");
    assert_eq!(shown["values"], Value::Null);
    assert_eq!(shown["stats"], Value::Null);
}

#[test]
fn stats_count_nan_and_inf_apart() {
    let model = load(&fixture("dtypes.safetensors"));
    let (_, id) = model.find_param("f32").unwrap();
    let t = model.store.get(id);
    let s = paramscope::tensor::stats::stats(t.dtype(), t.bytes(), t.numel()).unwrap();
    assert_eq!((s.nan, s.inf, s.zeros, s.finite), (1, 2, 2, 9));
    assert_eq!(s.max, f64::from(1e30f32));
}

#[test]
fn a_sharded_checkpoint_opens_through_its_index_or_its_folder() {
    let values: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("sharded.json")).unwrap()).unwrap();
    for spec in [
        fixture("sharded"),
        fixture("sharded/model.safetensors.index.json"),
    ] {
        let model = load(&spec);
        let names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "layers.0.weight",
                "layers.1.weight",
                "layers.2.weight",
                "layers.10.weight",
                "layers.11.weight",
                "block 0.bias",
                "embed_tokens.weight",
                "lm_head.weight"
            ],
            "the index's order (the tied head last), names with spaces kept"
        );
        for (name, want) in values.as_object().unwrap() {
            let (_, id) = model.find_param(name).unwrap();
            let got = model.store.get(id).to_f32_vec().unwrap();
            let want: Vec<f32> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(got, want, "{name}");
        }
        // config.json says tie_word_embeddings: the absent lm_head.weight is the embedding.
        let (_, head) = model.find_param("lm_head.weight").unwrap();
        assert_eq!(
            model.paths_of(head),
            ["embed_tokens.weight", "lm_head.weight"]
        );
        assert_eq!(model.total_params(), 7 * 6);
    }
}

/// A copy of the sharded fixture whose index is replaced by `index`.
fn sharded_copy(index: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("sharded")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    dir
}

fn original_index() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture("sharded/model.safetensors.index.json")).unwrap(),
    )
    .unwrap()
}

fn open_error(index: &Value) -> String {
    let dir = sharded_copy(index);
    match sharded::open(&dir.path().join("model.safetensors.index.json")) {
        Ok(_) => panic!("{index} opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn shard_indexes_are_checked_against_the_shards() {
    let mut escape = original_index();
    escape["weight_map"]["layers.0.weight"] = "../model-00001-of-00002.safetensors".into();
    assert!(open_error(&escape).contains("without '/' or '..'"));

    let mut wrong = original_index();
    wrong["weight_map"]["layers.0.weight"] = "model-00002-of-00002.safetensors".into();
    assert!(open_error(&wrong).contains("puts layers.0.weight in model-00002-of-00002.safetensors but it is in model-00001-of-00002.safetensors"));

    let mut ghost = original_index();
    ghost["weight_map"]["ghost.weight"] = "model-00001-of-00002.safetensors".into();
    assert!(
        open_error(&ghost).contains(
            "puts ghost.weight in model-00001-of-00002.safetensors, which does not hold it"
        )
    );

    let mut missing_file = original_index();
    missing_file["weight_map"]["layers.0.weight"] = "model-00003-of-00002.safetensors".into();
    assert!(open_error(&missing_file).contains("model-00003-of-00002.safetensors"));

    let mut unlisted = original_index();
    unlisted["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("layers.10.weight");
    let dir = sharded_copy(&unlisted);
    let opened = sharded::open(&dir.path().join("model.safetensors.index.json")).unwrap();
    assert_eq!(
        opened.checkpoint.tensors.len(),
        7,
        "an unlisted tensor is still shown"
    );
    assert!(opened.warnings[0].contains("layers.10.weight (in model-00001-of-00002.safetensors)"));
}

#[test]
fn a_name_in_two_shards_is_refused() {
    let dir = sharded_copy(&original_index());
    // A third shard holding a tensor the first already has.
    std::fs::copy(
        fixture("sharded/model-00001-of-00002.safetensors"),
        dir.path().join("dup.safetensors"),
    )
    .unwrap();
    let mut index = original_index();
    index["weight_map"]["layers.0.weight"] = "dup.safetensors".into();
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let err = sharded::open(&dir.path().join("model.safetensors.index.json"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("is in both"), "{err}");
}

#[test]
fn a_folder_with_several_checkpoints_and_no_index_asks_which() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.safetensors", "b.safetensors"] {
        std::fs::copy(fixture("zoo.safetensors"), dir.path().join(name)).unwrap();
    }
    let err = checkpoint::load(dir.path().to_str().unwrap(), &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("holds 2 checkpoints") && err.contains("a.safetensors, b.safetensors"),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("b.safetensors")).unwrap();
    assert!(checkpoint::load(dir.path().to_str().unwrap(), &LoadOptions::default()).is_ok());
}

#[test]
fn each_malformed_file_is_refused_with_its_reason() {
    let cases = [
        ("header_too_large", "over the 100 MB limit"),
        ("header_past_end", "points past the end of the file"),
        ("header_not_utf8", "not valid UTF-8"),
        ("header_not_json", "not valid JSON"),
        ("header_not_object", "not a JSON object"),
        ("metadata_not_strings", "__metadata__[step] is not a string"),
        ("unknown_dtype", "tensor a: unknown dtype \"F12\""),
        (
            "shape_size_mismatch",
            "tensor a: shape [2, 2] of F32 needs 16 bytes, data_offsets [0, 12] hold 12",
        ),
        (
            "offsets_hole",
            "tensor b: bytes 4..8 before it belong to no tensor",
        ),
        ("offsets_overlap", "tensor b: its bytes from 4 overlap"),
        (
            "offsets_reversed",
            "tensor a: data_offsets [4, 0] end before they begin",
        ),
        (
            "data_past_end",
            "tensor a: the data ends at byte 8 but the header needs 16",
        ),
        (
            "bytes_after_last_tensor",
            "8 bytes follow the last tensor's data",
        ),
        ("shape_overflow", "overflows when multiplied out"),
        ("duplicate_names", "names tensor a twice"),
        (
            "negative_dimension",
            "tensor a: the shape is not a list of whole numbers",
        ),
    ];
    let corpus: Vec<_> = std::fs::read_dir(fixture("malformed")).unwrap().collect();
    assert_eq!(
        corpus.len(),
        cases.len(),
        "one case per file in tests/fixtures/malformed"
    );
    for (name, reason) in cases {
        let path = fixture(&format!("malformed/{name}.safetensors"));
        let err = safetensors::open(&path)
            .err()
            .unwrap_or_else(|| panic!("{name} opened"))
            .to_string();
        assert!(err.contains(reason), "{name}: {err}");
        assert!(
            err.contains(&format!("{name}.safetensors")),
            "{name}: the file is named"
        );
    }
}

#[test]
fn a_fifo_or_a_device_as_model_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.safetensors");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for model in [fifo.to_str().unwrap(), "/dev/zero"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_paramscope"))
            .args(["tree", model])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{model}: still reading after 20 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "{model}: {stderr}");
        assert!(stderr.contains("not a regular file"), "{model}: {stderr}");
    }
}
