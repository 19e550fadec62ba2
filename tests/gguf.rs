//! GGUF files against gguf-py: every ggml type's dequantized values bit for bit, the metadata
//! with its types, shapes in PyTorch order, and hostile headers refused in one line.

use std::collections::BTreeSet;
use std::path::PathBuf;

use paramscope::io::gguf::value::PREVIEW;
use paramscope::io::gguf::{self, GgufError, Value, ValueType, read_header};
use paramscope::tensor::DType;
use paramscope::tensor::decode::{Scalar, decode_f64, decode_scalars};
use paramscope::tensor::ggml::{self, Quant};
use safetensors::{Dtype, SafeTensors};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name)
}

/// gguf-py's values for a tensor of `expected.safetensors`, as f64 (every dtype there is exact
/// in f64, the I64 test values included: they are checked as integers below).
fn reference(view: &safetensors::tensor::TensorView<'_>) -> Vec<f64> {
    let d = view.data();
    match view.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::I8 => d.iter().map(|&b| f64::from(b as i8)).collect(),
        Dtype::I16 => d
            .chunks_exact(2)
            .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::I32 => d
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        other => panic!("no reference dtype {other:?}"),
    }
}

#[test]
fn every_type_dequantizes_as_gguf_py_does() {
    let file = gguf::open(&fixture("all_types.gguf"), PREVIEW).unwrap();
    let expected_bytes = std::fs::read(fixture("expected.safetensors")).unwrap();
    let expected = SafeTensors::deserialize(&expected_bytes).unwrap();
    let mut seen = BTreeSet::new();
    for (name, view) in expected.tensors() {
        let (_, tensor) = file.tensors.iter().find(|(n, _)| *n == name).unwrap();
        assert_eq!(
            tensor.shape(),
            view.shape(),
            "{name}: shape in PyTorch (numpy) order"
        );
        if view.dtype() == Dtype::I64 {
            let want: Vec<i128> = view
                .data()
                .chunks_exact(8)
                .map(|c| i128::from(i64::from_le_bytes(c.try_into().unwrap())))
                .collect();
            let got = decode_scalars(tensor.dtype(), tensor.bytes(), 0, tensor.numel()).unwrap();
            assert_eq!(
                got,
                want.into_iter().map(Scalar::Int).collect::<Vec<_>>(),
                "{name}"
            );
            continue;
        }
        let want = reference(&view);
        let mut got = Vec::new();
        decode_f64(tensor.dtype(), tensor.bytes(), 0, tensor.numel(), &mut got).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{name}[{i}]: {g} != gguf-py's {w}"
            );
        }
        // Whole-tensor f32 (export --dequantize) and a window inside a block agree too.
        let f32s = tensor.to_f32_vec().unwrap();
        assert!(
            f32s.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == (*b as f32).to_bits()),
            "{name}"
        );
        decode_f64(tensor.dtype(), tensor.bytes(), 5, 40, &mut got).unwrap();
        assert_eq!(
            got,
            want[5..want.len().min(45)],
            "{name}: a window across a block boundary"
        );
        if let DType::Ggml(q) = tensor.dtype() {
            seen.insert(q.name());
        }
    }
    let all: BTreeSet<_> = ggml::ALL.iter().map(|q| q.name()).collect();
    assert_eq!(seen, all, "every quantized type has a fixture");
}

#[test]
fn metadata_keeps_its_types_and_order() {
    let file = gguf::open(&fixture("all_types.gguf"), PREVIEW).unwrap();
    assert_eq!(file.version, 3);
    let get = |key: &str| &file.metadata.iter().find(|(k, _)| k == key).unwrap().1;
    assert_eq!(file.metadata[0].0, "general.architecture", "file order");
    assert_eq!(get("general.architecture"), &Value::String("llama".into()));
    assert_eq!(
        get("llama.context_length"),
        &Value::Uint(ValueType::U32, 4096)
    );
    assert_eq!(get("test.u8"), &Value::Uint(ValueType::U8, 200));
    assert_eq!(get("test.i8"), &Value::Int(ValueType::I8, -100));
    assert_eq!(get("test.u16"), &Value::Uint(ValueType::U16, 60000));
    assert_eq!(get("test.i16"), &Value::Int(ValueType::I16, -30000));
    assert_eq!(get("test.i32"), &Value::Int(ValueType::I32, -7));
    assert_eq!(get("test.f32"), &Value::Float(ValueType::F32, 0.5));
    assert_eq!(get("test.bool"), &Value::Bool(true));
    assert_eq!(get("test.u64"), &Value::Uint(ValueType::U64, 1 << 40));
    assert_eq!(get("test.i64"), &Value::Int(ValueType::I64, -(1 << 40)));
    assert_eq!(get("test.f64"), &Value::Float(ValueType::F64, 0.1));
    let tokens = get("tokenizer.ggml.tokens");
    assert_eq!(tokens.to_string(), "[100 strings]");
    let Value::Array(a) = tokens else { panic!() };
    assert_eq!((a.len, a.head.len()), (100, PREVIEW));
    assert_eq!(a.head[1], Value::String("tok1".into()));
    assert_eq!(get("tokenizer.ggml.scores").to_string(), "[100 floats]");
    assert_eq!(get("test.nested").to_string(), "[2 arrays]");
    let all = gguf::open(&fixture("all_types.gguf"), 1000).unwrap();
    let Some((_, Value::Array(a))) = all
        .metadata
        .iter()
        .find(|(k, _)| k == "tokenizer.ggml.tokens")
    else {
        panic!("no token array")
    };
    assert_eq!(
        a.head.len(),
        100,
        "asked for more than there are: all of them"
    );
    assert_eq!(a.head[99], Value::String("tok99".into()));
}

/// The fixture's header bytes, and where its data section starts.
fn fixture_bytes() -> (Vec<u8>, usize) {
    let bytes = std::fs::read(fixture("all_types.gguf")).unwrap();
    let start = read_header(&bytes, PREVIEW).unwrap().data_start;
    (bytes, start)
}

#[test]
fn every_truncation_of_the_header_is_an_error() {
    let (bytes, start) = fixture_bytes();
    for cut in 0..start {
        assert!(read_header(&bytes[..cut], PREVIEW).is_err(), "cut at {cut}");
    }
    // Cut inside the data: the tensor whose bytes are missing is named.
    let err = read_header(&bytes[..bytes.len() - 1], PREVIEW)
        .unwrap_err()
        .to_string();
    assert!(err.contains("runs past the end of the file"), "{err}");
}

#[test]
fn absurd_counts_and_offsets_are_refused_before_allocating() {
    let (bytes, _) = fixture_bytes();
    let mut huge_tensors = bytes.clone();
    huge_tensors[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        read_header(&huge_tensors, PREVIEW),
        Err(GgufError::TooLong {
            what: "tensor count",
            ..
        })
    ));
    let mut huge_kvs = bytes.clone();
    huge_kvs[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        read_header(&huge_kvs, PREVIEW),
        Err(GgufError::TooLong { .. })
    ));
    // The first key's length (right after the counts).
    let mut long_key = bytes.clone();
    long_key[24..32].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(read_header(&long_key, PREVIEW).is_err());
    let mut version = bytes.clone();
    version[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(read_header(&version, PREVIEW), Err(GgufError::BigEndian));
    version[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(read_header(&version, PREVIEW), Err(GgufError::Version(1)));
    assert_eq!(read_header(b"GGML", PREVIEW), Err(GgufError::Magic));
}

/// A minimal GGUF v3 file with one tensor info, built by hand.
fn one_tensor(dims: &[u64], type_id: u32, offset: u64, data: usize) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend(1u64.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.extend(1u64.to_le_bytes());
    f.push(b'w');
    f.extend((dims.len() as u32).to_le_bytes());
    for d in dims {
        f.extend(d.to_le_bytes());
    }
    f.extend(type_id.to_le_bytes());
    f.extend(offset.to_le_bytes());
    f.resize(f.len().next_multiple_of(32) + data, 0);
    f
}

#[test]
fn tensor_infos_are_checked() {
    let ok = read_header(&one_tensor(&[32, 2], 8, 0, 68), PREVIEW).unwrap();
    assert_eq!(ok.tensors[0].shape, [2, 32], "ggml's ne reversed");
    assert_eq!(ok.tensors[0].dtype, DType::Ggml(Quant::Q8_0));
    let err = |f: Vec<u8>| read_header(&f, PREVIEW).unwrap_err().to_string();
    assert!(err(one_tensor(&[32, 2], 8, 0, 67)).contains("runs past the end"));
    assert!(err(one_tensor(&[32, 2], 8, 1 << 62, 68)).contains("starts past the end"));
    assert!(err(one_tensor(&[32, 2], 8, 16, 68)).contains("alignment"));
    assert!(err(one_tensor(&[33, 2], 8, 0, 68)).contains("not whole Q8_0 blocks"));
    assert!(err(one_tensor(&[1 << 40, 1 << 40], 0, 0, 0)).contains("overflows"));
    assert!(err(one_tensor(&[1, 1, 1, 1, 1], 0, 0, 4)).contains("dimensions"));
    assert!(err(one_tensor(&[4], 99, 0, 4)).contains("ggml type 99"));
}

#[test]
fn a_bad_file_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    let (bytes, _) = fixture_bytes();
    std::fs::write(&path, &bytes[..100]).unwrap();
    let err = gguf::open(&path, PREVIEW).err().unwrap().to_string();
    assert!(
        err.contains("bad.gguf") && err.contains("at byte 8") && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn streaming_stats_of_a_large_quantized_tensor_match_the_whole_copy() {
    // 64 rows of 256 Q4_K blocks: over the threshold at which the stats pass splits over threads.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let blocks = 64 * 1024;
    let mut bytes = Vec::with_capacity(blocks * 144);
    for _ in 0..blocks {
        let scale = half::f16::from_f32(0.01 + (next() % 100) as f32 / 1000.0);
        bytes.extend(scale.to_le_bytes());
        bytes.extend(half::f16::from_f32(0.02).to_le_bytes());
        bytes.extend((0..140).map(|_| next() as u8));
    }
    let tensor = paramscope::tensor::Tensor::new(
        vec![64, 1024 * 256],
        DType::Ggml(Quant::Q4_K),
        paramscope::tensor::Bytes::Owned(bytes.into()),
    );
    let stats = tensor.stats().unwrap();
    let values = tensor.to_f32_vec().unwrap();
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    assert_eq!(stats.finite, values.len());
    assert_eq!(
        stats.min,
        f64::from(values.iter().copied().fold(f32::INFINITY, f32::min))
    );
    assert_eq!(
        stats.max,
        f64::from(values.iter().copied().fold(f32::NEG_INFINITY, f32::max))
    );
    assert!((stats.mean - mean).abs() < 1e-9 && (stats.std - var.sqrt()).abs() < 1e-9);
}

fn paramscope(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paramscope"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

#[test]
fn tree_show_and_export_of_a_gguf() {
    let path = fixture("all_types.gguf");
    let path = path.to_str().unwrap();
    let (ok, tree, _) = paramscope(&["tree", path]);
    assert!(ok);
    let metadata_at = tree.find("llama.context_length: u32 = 4096").unwrap();
    assert!(
        metadata_at < tree.find("parameters").unwrap(),
        "metadata before the tensors"
    );
    assert!(tree.contains("tokenizer.ggml.tokens: arr = [100 strings]"));
    let row = tree
        .lines()
        .find(|l| l.trim_start().starts_with("blk.0.q4_k.weight"))
        .unwrap();
    assert!(row.ends_with(" [2, 512] Q4_K (4.5 bpw)"), "{row}");
    let (ok, json, _) = paramscope(&["tree", "--json", path]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json["metadata"]["test.i16"],
        serde_json::json!({"type": "i16", "value": -30000})
    );
    assert_eq!(
        json["metadata"]["tokenizer.ggml.tokens"]["value"]["len"],
        100
    );
    let (ok, show, _) = paramscope(&["show", path, "blk.0.q6_k.weight"]);
    assert!(ok && show.contains("Q6_K (6.5625 bpw)"), "{show}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let out = out.to_str().unwrap();
    let (ok, _, err) = paramscope(&["export", path, "-o", out]);
    assert!(
        !ok && err.contains("22 tensors are ggml-quantized") && err.contains("--dequantize"),
        "{err}"
    );
    assert!(!std::path::Path::new(out).exists(), "nothing written");
    let (ok, _, err) = paramscope(&["export", path, "-o", out, "--dequantize"]);
    assert!(ok, "{err}");
    // The exported F32 values are gguf-py's dequantized values.
    let written = std::fs::read(out).unwrap();
    let written = SafeTensors::deserialize(&written).unwrap();
    let expected_bytes = std::fs::read(fixture("expected.safetensors")).unwrap();
    let expected = SafeTensors::deserialize(&expected_bytes).unwrap();
    for q in ggml::ALL {
        let name = format!("blk.0.{}.weight", q.name().to_lowercase());
        let (w, e) = (
            written.tensor(&name).unwrap(),
            expected.tensor(&name).unwrap(),
        );
        assert_eq!(
            (w.dtype(), w.shape(), w.data()),
            (Dtype::F32, e.shape(), e.data()),
            "{name}"
        );
    }
}

#[test]
fn version_2_reads_like_3_and_deep_arrays_are_refused() {
    let (mut bytes, _) = fixture_bytes();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(read_header(&bytes, PREVIEW).unwrap().tensors.len(), 30);
    // One metadata pair: an array of arrays nested ten deep (arrays of one array each).
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.extend(1u64.to_le_bytes());
    f.extend(1u64.to_le_bytes());
    f.push(b'k');
    f.extend(9u32.to_le_bytes());
    for _ in 0..10 {
        f.extend(9u32.to_le_bytes());
        f.extend(1u64.to_le_bytes());
    }
    f.resize(f.len() + 64, 0);
    assert!(matches!(
        read_header(&f, PREVIEW),
        Err(GgufError::TooDeep { .. })
    ));
}
