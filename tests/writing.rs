//! What a written file holds: the reference serializer's very bytes, and the source's tie direction.

use std::collections::BTreeMap;

use paramscope::checkpoint::save;
use paramscope::checkpoint::{self, LoadOptions};
use paramscope::io::safetensors as st;
use paramscope::tensor::{Bytes, DType, Tensor};
use safetensors::tensor::TensorView;

/// A tensor of `dtype` and `shape` whose bytes count up from `seed`.
fn tensor(dtype: DType, shape: &[usize], seed: u8) -> Tensor {
    let len = dtype.byte_len(shape.iter().product()).unwrap();
    let bytes: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
    Tensor::new(shape.to_vec(), dtype, Bytes::Owned(bytes.into()))
}

#[test]
fn the_writer_lays_out_bytes_as_the_reference_serializer_does() {
    // Dtypes whose order differs by size and by the crate's enum (C64 vs F64, I64, F8_E8M0 vs the
    // fnuz formats), under names that sort against that order.
    let specs = [
        ("z.f64", DType::F64, vec![3]),
        ("a.c64", DType::C64, vec![2]),
        ("m.i64", DType::I64, vec![2, 2]),
        ("b.f32", DType::F32, vec![5]),
        ("c.bf16", DType::BF16, vec![3]),
        ("d.f16", DType::F16, vec![1, 3]),
        ("e.e8m0", DType::F8_E8M0, vec![4]),
        ("f.fnuz", DType::F8_E4M3FNUZ, vec![4]),
        ("g.u8", DType::U8, vec![7]),
        ("h.bool", DType::BOOL, vec![2]),
        ("y.f32", DType::F32, vec![2]),
    ];
    let tensors: Vec<(String, Tensor)> = specs
        .iter()
        .enumerate()
        .map(|(i, (name, dtype, shape))| ((*name).to_owned(), tensor(*dtype, shape, i as u8 * 17)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.safetensors");
    let refs: Vec<(String, &Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    st::save(&ours, &refs, &BTreeMap::new()).unwrap();

    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, t)| {
            let dtype = serde_json::from_value(t.dtype().name().into()).unwrap();
            let view = TensorView::new(dtype, t.shape().to_vec(), t.bytes()).unwrap();
            (name.clone(), view)
        })
        .collect();
    let theirs = safetensors::serialize(views, None).unwrap();
    assert_eq!(std::fs::read(&ours).unwrap(), theirs);
}

/// A file storing `stored` and aliasing `alias` to it in `__metadata__`, as save_model writes.
fn tied_file(dir: &std::path::Path, stored: &str, alias: &str) -> std::path::PathBuf {
    let path = dir.join("tied.safetensors");
    let embedding = Tensor::from_f32(vec![4, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let norm = Tensor::from_f32(vec![2], &[1.0, 1.0]);
    let metadata = BTreeMap::from([(alias.to_owned(), stored.to_owned())]);
    let tensors = vec![
        (stored.to_owned(), &embedding),
        ("model.norm.weight".to_owned(), &norm),
    ];
    st::save(&path, &tensors, &metadata).unwrap();
    path
}

#[test]
fn a_written_file_keeps_the_source_tie_direction() {
    for (stored, alias) in [
        ("model.embed_tokens.weight", "lm_head.weight"),
        ("lm_head.weight", "model.embed_tokens.weight"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let source = tied_file(dir.path(), stored, alias);
        let model = checkpoint::load(source.to_str().unwrap(), &LoadOptions::default()).unwrap();
        let out = dir.path().join("out.safetensors");
        save::save_model(&model, &out).unwrap();
        let written = st::open(&out).unwrap();
        let names: Vec<&str> = written.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&stored) && !names.contains(&alias),
            "{names:?}"
        );
        assert_eq!(
            written.metadata.get(alias).map(String::as_str),
            Some(stored)
        );
    }
}

#[test]
fn a_written_family_model_opens_again() {
    // A BERT folder opens with its family's module classes; writing it must not describe them as
    // architecture text, which the reader would refuse (`unknown container "BertModel"`).
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/families/bert");
    let model = checkpoint::load(folder, &LoadOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bert.safetensors");
    save::save_model(&model, &out).unwrap();
    let written = st::open(&out).unwrap();
    assert!(
        !written.metadata.contains_key("paramscope.arch"),
        "{:?}",
        written.metadata.keys().collect::<Vec<_>>()
    );
    let reopened = checkpoint::load(out.to_str().unwrap(), &LoadOptions::default()).unwrap();
    assert_eq!(reopened.state_dict().len(), model.state_dict().len());
}
