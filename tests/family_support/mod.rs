//! The family fixtures as the family tests read them (tests/fixtures/families, made by
//! make.py and make_decoders.py): the folder, what transformers computed, the loaded model, the
//! tokenized texts checked against transformers' ids, and the error measure every comparison uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use paramscope::checkpoint::{self, LoadOptions};
use paramscope::families::tokenize::TextTokenizer;
use paramscope::families::{self, Family};
use paramscope::io::safetensors;
use paramscope::model::Model;

/// The texts every fixture's generator ran, as one padded batch.
pub const TEXTS: [&str; 2] = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world",
];

/// Tensors by name: (shape, f32 values).
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// `tests/fixtures/families/NAME`.
pub fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/families")
        .join(name)
}

/// What transformers computed: every tensor of NAME.expected.safetensors.
pub fn expected(name: &str) -> Tensors {
    // Beside the folder, not in it: a folder holding two .safetensors files is ambiguous.
    let file = safetensors::open(&folder(name).with_extension("expected.safetensors")).unwrap();
    file.tensors
        .into_iter()
        .map(|(n, t)| {
            let values = t.to_f32_vec().unwrap();
            (n, (t.shape().to_vec(), values))
        })
        .collect()
}

/// The fixture opened as a user opens it, with no warnings, and the family its config names.
pub fn load(name: &str) -> (Model, Family, families::Config) {
    let loaded = checkpoint::open(folder(name).to_str().unwrap(), &LoadOptions::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
    let (family, config) = loaded.family.expect("config.json names the family");
    (loaded.model, family, config)
}

/// Max absolute error relative to the reference's largest magnitude (NaN is the worst).
pub fn relative_error(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let err = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        // NaN is the worst error, not one that max() skips.
        .fold(
            0f32,
            |m, e| if e.is_nan() { f32::INFINITY } else { m.max(e) },
        );
    err / scale
}

/// The ids our tokenizer gives each of [`TEXTS`], checked against transformers' (unpadded).
pub fn tokens(name: &str, want: &Tensors) -> Vec<Vec<u32>> {
    let tokenizer = TextTokenizer::open(&folder(name)).unwrap();
    let (shape, ids) = &want["input_ids"];
    let (_, mask) = &want["attention_mask"];
    TEXTS
        .iter()
        .enumerate()
        .map(|(b, text)| {
            let ours = tokenizer.encode(text).unwrap();
            let row = b * shape[1]..(b + 1) * shape[1];
            let theirs: Vec<u32> = ids[row.clone()]
                .iter()
                .zip(&mask[row])
                .filter(|(_, m)| **m == 1.0)
                .map(|(id, _)| *id as u32)
                .collect();
            assert_eq!(ours, theirs, "{name}: token ids of {text:?}");
            ours
        })
        .collect()
}
