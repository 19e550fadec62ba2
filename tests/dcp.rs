//! PyTorch Distributed Checkpoint folders against what torch consolidates from them
//! (tests/fixtures/dcp/make.py wrote them with `dcp.save`, on one process and on two and four gloo
//! ranks holding DTensor shards, and `dcp_to_torch_save`'s result as NAME.expected.safetensors), and
//! every damaged folder the issue names: one line, exit 1, naming the file and the tensor.

use std::path::{Path, PathBuf};

use paramscope::checkpoint::{self, LoadOptions};
use paramscope::io::safetensors;

mod cli_support;

fn folder(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dcp")
        .join(name)
}

/// `(name, dtype, shape, bytes)` of every tensor, sorted by name.
fn tensors_of(
    tensors: &[(String, paramscope::tensor::Tensor)],
) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let mut out: Vec<_> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.dtype().to_string(),
                t.shape().to_vec(),
                // A sharded tensor's chunks are read (and put together) when first asked for.
                t.try_bytes()
                    .unwrap_or_else(|e| panic!("{n}: {e}"))
                    .to_vec(),
            )
        })
        .collect();
    out.sort();
    out
}

fn expected_tensors(name: &str) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let expected = safetensors::open(&folder(&format!("{name}.expected.safetensors"))).unwrap();
    tensors_of(&expected.tensors)
}

fn expected_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(folder(&format!("{name}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_folder_opens_as_torch_consolidates_it() {
    for name in ["single", "two_ranks", "four_ranks"] {
        let opened = paramscope::io::dcp::open(&folder(name)).unwrap_or_else(|e| panic!("{e}"));
        let got = tensors_of(&opened.tensors);
        let want = expected_tensors(name);
        assert_eq!(
            got.iter().map(|t| &t.0).collect::<Vec<_>>(),
            want.iter().map(|t| &t.0).collect::<Vec<_>>(),
            "{name}"
        );
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{name}: {}", g.0);
        }
        // The sharded folders really are sharded, as the metadata torch wrote says, and each
        // tensor's shards are the chunks torch wrote: offsets and sizes, in its order.
        let chunks = &expected_json(name)["chunks"];
        if name != "single" {
            assert!(chunks["layers.1.weight"].as_array().unwrap().len() >= 2);
        }
        for (n, t) in &opened.tensors {
            let shards: Vec<serde_json::Value> = t
                .shards()
                .iter()
                .map(|s| serde_json::json!([s.offsets.as_slice(), s.sizes.as_slice()]))
                .collect();
            assert_eq!(serde_json::Value::from(shards), chunks[n], "{name}: {n}");
            assert!(t.shards().iter().all(|s| s.file.ends_with(".distcp")));
        }
    }
}

#[test]
fn non_tensor_entries_are_values() {
    let value = |name: &str, key: &str| {
        let opened = paramscope::io::dcp::open(&folder(name)).unwrap();
        opened
            .extras
            .values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_string())
    };
    let single = expected_json("single");
    assert_eq!(
        value("single", "step").as_deref(),
        single["values"]["step"].as_str()
    );
    assert_eq!(value("single", "note").as_deref(), Some("\"seven steps\""));
    let two = expected_json("two_ranks");
    assert_eq!(
        value("two_ranks", "step").as_deref(),
        two["values"]["step"].as_str()
    );
}

#[test]
fn a_folder_is_a_model_whose_parameters_count_once() {
    let loaded = checkpoint::open(
        folder("four_ranks").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    // 5x3 + 3 + 7x4 + 5x7, each counted once however many ranks held a piece.
    assert_eq!(loaded.model.total_params(), 15 + 3 + 28 + 35);
}

#[test]
fn export_writes_the_consolidated_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let source = folder("two_ranks");
    cli_support::succeeded(&[
        "export",
        source.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let written = safetensors::open(&out).unwrap();
    assert_eq!(tensors_of(&written.tensors), expected_tensors("two_ranks"));
}

/// A copy of single/ in a temporary folder, with `metadata` (a file of hostile/) as its `.metadata`.
fn damaged(metadata: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(folder("single")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    if let Some(name) = metadata {
        std::fs::copy(
            folder("hostile").join(format!("{name}.metadata")),
            dir.path().join(".metadata"),
        )
        .unwrap();
    }
    dir
}

/// `paramscope tree DIR` fails with one line naming `file` (and `tensor`, when given).
fn refused(dir: &Path, file: &str, tensor: Option<&str>, why: &str) {
    let run = cli_support::paramscope(&["tree", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(file), "{file}: {stderr}");
    if let Some(tensor) = tensor {
        assert!(stderr.contains(tensor), "{tensor}: {stderr}");
    }
    assert!(stderr.contains(why), "{why}: {stderr}");
}

#[test]
fn every_damaged_folder_is_one_line_naming_file_and_tensor() {
    let w = Some("layers.1.weight");
    let cases = [
        ("overlap", ".metadata", w, "overlap"),
        ("incomplete", ".metadata", w, "cover 35 of its 42 elements"),
        ("past_end", "__0_0.distcp", w, "past the end of the file"),
        ("transform", "__0_0.distcp", w, "zstd/1"),
        ("missing_file", "__9_0.distcp", w, "__9_0.distcp"),
        (
            "escaping",
            ".metadata",
            w,
            "not a file name inside the folder",
        ),
        ("truncated", ".metadata", None, "damaged .metadata"),
    ];
    for (name, file, tensor, why) in cases {
        let dir = damaged(Some(name));
        refused(dir.path(), file, tensor, why);
    }
}

#[test]
fn a_truncated_or_missing_shard_file_is_named() {
    let dir = damaged(None);
    let shard = dir.path().join("__0_0.distcp");
    let len = std::fs::metadata(&shard).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    refused(dir.path(), "__0_0.distcp", None, "past the end of the file");
    std::fs::remove_file(&shard).unwrap();
    refused(dir.path(), "__0_0.distcp", None, "tensor ");
}

#[test]
fn a_damaged_chunk_is_said_when_its_tensor_is_read() {
    // Opening reads only `.metadata`: a chunk whose archive is overwritten in place still lists.
    let dir = damaged(None);
    let expected = expected_json("single");
    let chunk = &expected["chunks"]["layers.1.weight"];
    assert_eq!(chunk.as_array().unwrap().len(), 1);
    let shard = dir.path().join("__0_0.distcp");
    let opened = paramscope::io::dcp::open(dir.path()).unwrap();
    let (_, weight) = opened
        .tensors
        .iter()
        .find(|(n, _)| n == "layers.1.weight")
        .unwrap();
    let at = weight.shards()[0].bytes.clone();
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[at.start as usize..at.end as usize].fill(0x5a);
    std::fs::write(&shard, bytes).unwrap();
    cli_support::succeeded(&["tree", dir.path().to_str().unwrap()]);
    for args in [
        vec!["show", dir.path().to_str().unwrap(), "layers.1.weight"],
        vec!["check", dir.path().to_str().unwrap()],
    ] {
        let run = cli_support::paramscope(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        for want in [
            "__0_0.distcp",
            "layers.1.weight",
            "neither a torch.save archive",
        ] {
            assert!(stderr.contains(want), "{want}: {stderr}");
        }
    }
    // The other tensors read as before.
    cli_support::succeeded(&["show", dir.path().to_str().unwrap(), "embed.weight"]);
}

#[test]
fn a_trajectory_over_sharded_checkpoints_keeps_none_of_their_tensors_put_together() {
    // Each tensor is put together for its pass and dropped after it, so memory holds one tensor
    // of each checkpoint at a time, not every tensor of every checkpoint.
    let models: Vec<_> = ["two_ranks", "four_ranks"]
        .iter()
        .map(|name| {
            checkpoint::open(folder(name).to_str().unwrap(), &LoadOptions::default())
                .unwrap()
                .model
        })
        .collect();
    let run = paramscope::compare::trajectory::follow(&models, &checkpoint::fetch, &mut |_, _| {})
        .unwrap();
    assert!(!run.series.is_empty());
    for series in &run.series {
        assert!(
            series.norm.iter().all(|n| n.is_finite() && *n > 0.0),
            "{}: {:?}",
            series.name,
            series.norm
        );
    }
    for model in &models {
        for (name, id) in model.state_dict() {
            let tensor = model.store.get(id);
            if !tensor.shards().is_empty() {
                assert!(tensor.is_pending(), "{name} was kept put together");
            }
        }
    }
}
