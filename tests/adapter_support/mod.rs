//! What the adapter tests share: an adapter merged by `export --merge`, set beside PEFT's merge.

use safetensors::SafeTensors;

use crate::cli_support::succeeded;

/// One tensor of a merged model: `(name, dtype, ours, PEFT's)`, raw bytes.
pub type Merged = (String, safetensors::Dtype, Vec<u8>, Vec<u8>);

/// `export ADAPTER --base BASE --merge` into a temp dir, then each tensor of `oracle` (PEFT's merged
/// model) beside the written one, by name, shapes and dtypes checked equal.
pub fn merged(adapter: &str, base: &str, oracle: &str) -> Vec<Merged> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.safetensors");
    succeeded(&[
        "export",
        adapter,
        "--base",
        base,
        "--merge",
        "-o",
        out.to_str().unwrap(),
    ]);
    let ours = std::fs::read(&out).unwrap();
    let oracle = std::fs::read(oracle).unwrap();
    let (ours, oracle) = (
        SafeTensors::deserialize(&ours).unwrap(),
        SafeTensors::deserialize(&oracle).unwrap(),
    );
    let mut pairs: Vec<_> = oracle
        .tensors()
        .into_iter()
        .map(|(name, expected)| {
            let got = ours
                .tensor(&name)
                .unwrap_or_else(|_| panic!("{adapter}: {name} missing from the export"));
            assert_eq!(got.shape(), expected.shape(), "{adapter}: {name}");
            assert_eq!(got.dtype(), expected.dtype(), "{adapter}: {name}");
            (
                name,
                got.dtype(),
                got.data().to_vec(),
                expected.data().to_vec(),
            )
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}
