//! `.npz` and `.npy` files against numpy: every dtype, big-endian and Fortran-ordered data,
//! stored and deflated archives, each value as numpy reads it; bad archives in one line.

use std::path::PathBuf;

use paramscope::io::{npy, npz};
use paramscope::tensor::Tensor;
use paramscope::tensor::decode::{Scalar, decode_scalars};
use serde_json::Value;

mod fixture_support;

fn fixture(name: &str) -> PathBuf {
    fixture_support::path("npz", name)
}

fn expected() -> serde_json::Map<String, Value> {
    fixture_support::expected("npz")
}

/// Asserts that `tensor` holds numpy's shape and values for `want`.
fn check(name: &str, tensor: &Tensor, want: &Value) {
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(tensor.shape(), shape, "{name}");
    let got = decode_scalars(tensor.dtype(), tensor.bytes(), 0, tensor.numel()).unwrap();
    let values = want["values"].as_array().unwrap();
    assert_eq!(got.len(), values.len(), "{name}");
    for (i, (g, w)) in got.iter().zip(values).enumerate() {
        let ok = match g {
            Scalar::Bool(b) => w.as_bool() == Some(*b),
            Scalar::Int(n) => w.as_i64().map(i128::from) == Some(*n),
            Scalar::Float(x) => w.as_f64() == Some(*x),
            Scalar::Complex(re, im) => {
                w[0].as_f64() == Some(f64::from(*re)) && w[1].as_f64() == Some(f64::from(*im))
            }
        };
        assert!(ok, "{name}[{i}]: {g:?} where numpy reads {w}");
    }
}

#[test]
fn stored_and_deflated_archives_read_as_numpy_reads_them() {
    let expected = expected();
    for archive in ["arrays.npz", "compressed.npz"] {
        let tensors = npz::open(&fixture(archive)).unwrap();
        let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "layer.0.weight",
                "layer.0.bias",
                "layer.1.weight",
                "mask",
                "big_f8",
                "big_i4",
                "counts",
                "cplx"
            ],
            "{archive}: archive order, .npy dropped"
        );
        for (name, tensor) in &tensors {
            check(&format!("{archive}:{name}"), tensor, &expected[name]);
        }
    }
}

#[test]
fn a_big_endian_fortran_npy_reads_in_c_order() {
    let tensors = npy::open(&fixture("fortran_be.npy")).unwrap();
    assert_eq!(tensors.len(), 1);
    assert_eq!(tensors[0].0, "fortran_be", "named by the file's stem");
    check("fortran_be", &tensors[0].1, &expected()["fortran_be"]);
}

#[test]
fn npz_is_recognised_by_its_members() {
    assert!(npz::is_npz(&fixture("arrays.npz")));
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.npz");
    std::fs::write(&fake, b"PK\x03\x04 not really").unwrap();
    assert!(!npz::is_npz(&fake));
}

#[test]
fn bad_archives_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("compressed.npz")).unwrap();
    let path = dir.path().join("cut.npz");
    // Cut the archive short at several places: the central directory, then members, go missing.
    for cut in [bytes.len() - 1, bytes.len() / 2, 30, 4] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = npz::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("cut.npz") && !err.contains('\n'),
            "{cut}: {err}"
        );
    }
    // A deflated member whose inflated size is a lie is refused before anything is inflated.
    let mut liar = bytes.clone();
    let central = liar.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    liar[central + 24..central + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &liar).unwrap();
    let err = npz::open(&path).err().unwrap().to_string();
    assert!(err.contains("layer.0.weight.npy"), "{err}");
}
