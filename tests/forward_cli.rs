//! `paramscope forward`: PyTorch's outputs, the `.npy` it writes, its default batch, and
//! `--repeat N`, which times N passes and changes nothing else.

mod cli_support;

use cli_support::{fixture, paramscope, stdout_json};
use serde_json::Value;

/// `forward demo:rgnet --batch 2 --json` with `args` after.
fn forward(args: &[&str]) -> serde_json::Value {
    let all = [&["forward", "demo:rgnet", "--batch", "2", "--json"], args].concat();
    stdout_json(&all)
}

#[test]
fn repeat_adds_the_median_time_and_nothing_else() {
    let plain = forward(&[]);
    let mut timed = forward(&["--repeat", "50"]);
    assert!(plain.get("time_us").is_none());
    let t = timed["time_us"].as_f64().unwrap();
    assert!(t > 0.0 && t < 1e6, "time_us {t}");
    timed.as_object_mut().unwrap().remove("time_us");
    assert_eq!(plain, timed);
}

#[test]
fn repeat_shows_in_text_and_rejects_zero() {
    let out = paramscope(&["forward", "demo:mlp", "--batch", "3", "--repeat", "5"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("time per pass:") && text.contains("(median of 5)"),
        "{text}"
    );
    let zero = paramscope(&["forward", "demo:mlp", "--batch", "3", "--repeat", "0"]);
    assert_eq!(zero.status.code(), Some(2));
}

/// The kernel's thread pool under `PARAMSCOPE_THREADS=1` (no pool) and `=2` (one worker): the same
/// outputs, bit for bit, since a split only changes which thread computes which columns.
#[test]
fn one_thread_and_two_give_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("wide.txt");
    std::fs::write(
        &arch,
        "Sequential(
  (0): Linear(in_features=256, out_features=512, bias=True)
  (1): ReLU()
  (2): Linear(in_features=512, out_features=384, bias=True)
)
",
    )
    .unwrap();
    let run = |threads: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_paramscope"))
            .args(["forward", arch.to_str().unwrap(), "--batch", "64", "--json"])
            .args(["--repeat", "3"])
            .env("PARAMSCOPE_THREADS", threads)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_object_mut().unwrap().remove("time_us");
        v
    };
    assert_eq!(run("1"), run("2"));
}

#[test]
fn forward_matches_pytorch_and_writes_npy() {
    let demos: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("demos.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("y.npy");
    let out = stdout_json(&[
        "forward",
        "demo:rgnet",
        "--batch",
        "2",
        "--seed",
        "7",
        "--json",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out["input_shape"], serde_json::json!([2, 4]));
    assert_eq!(out["output_shape"], serde_json::json!([2, 1]));
    let want = &demos["rgnet@7"]["output"];
    for (a, b) in out["output"]
        .as_array()
        .unwrap()
        .iter()
        .zip(want.as_array().unwrap())
    {
        assert!((a[0].as_f64().unwrap() - b[0].as_f64().unwrap()).abs() < 1e-6);
    }
    assert_eq!(out["layers"].as_array().unwrap().len(), 17);
    let saved = paramscope::io::npy::read(&out_path).unwrap();
    assert_eq!(saved.shape(), [2, 1]);
    assert!((f64::from(saved[[0, 0]]) - out["output"][0][0].as_f64().unwrap()).abs() < 1e-7);

    let zoo = stdout_json(&[
        "forward",
        &fixture("zoo.safetensors"),
        "--arch",
        &fixture("zoo_arch.txt"),
        "--input",
        &fixture("zoo_input.npy"),
        "--json",
    ]);
    assert_eq!(zoo["output_shape"], serde_json::json!([5, 3]));
}

#[test]
fn forward_runs_a_batch_of_two_by_default_as_the_app_does() {
    let default = stdout_json(&["forward", "demo:mlp", "--json"]);
    let two = stdout_json(&["forward", "demo:mlp", "--batch", "2", "--json"]);
    assert_eq!(default["output"], two["output"]);
    assert_eq!(default["input_shape"], serde_json::json!([2, 4]));
}
