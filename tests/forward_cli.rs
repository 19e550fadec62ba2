//! `paramscope forward --repeat N`: times N passes and changes nothing else.

mod cli_support;

use cli_support::paramscope;

/// `forward demo:rgnet --batch 2 --json` with `args` after.
fn forward(args: &[&str]) -> serde_json::Value {
    let all = [&["forward", "demo:rgnet", "--batch", "2", "--json"], args].concat();
    cli_support::stdout_json(&all)
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
