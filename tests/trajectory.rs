//! `paramscope trajectory` against numpy's figures of a seeded training run
//! (tests/fixtures/trajectory/make.py: six epochs of the chapter's MLP saved as checkpoint-50 ..
//! checkpoint-300, one of them a PyTorch file, a weight scaled 5x after epoch 4 and a NaN
//! injected after epoch 5).

use serde_json::Value;

mod cli_support;
mod fixture_support;

fn close(got: &Value, want: &Value, what: &str) {
    match (got, want) {
        (Value::Null, Value::Null) => {}
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1e-12),
                "{what}: {g} vs numpy {w}"
            );
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{what}");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                close(g, w, &format!("{what}[{i}]"));
            }
        }
        _ => panic!("{what}: {got} vs numpy {want}"),
    }
}

#[test]
fn a_run_folder_matches_numpy() {
    let run = fixture_support::path("trajectory", "run");
    let got = cli_support::stdout_json(&["trajectory", run.to_str().unwrap(), "--json"]);
    let want = fixture_support::expected("trajectory");
    // The folder's checkpoints, sorted by number (50 before 100), named by their paths.
    let names: Vec<String> = got["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let path = std::path::Path::new(c.as_str().unwrap());
            path.file_name().unwrap().to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(Value::from(names), want["checkpoints"]);
    let tensors = got["tensors"].as_array().unwrap();
    let expected = want["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), expected.len());
    for w in expected {
        let name = w["name"].as_str().unwrap();
        let g = tensors
            .iter()
            .find(|g| g["name"] == w["name"])
            .unwrap_or_else(|| panic!("{name} is missing"));
        for key in ["norm", "drift", "step_change", "cosine_to_last"] {
            close(&g[key], &w[key], &format!("{name} {key}"));
        }
        assert_eq!(g["nonfinite"], w["nonfinite"], "{name}");
    }
    let mut flags = got["flags"].as_array().unwrap().clone();
    let mut expected_flags = want["flags"].as_array().unwrap().clone();
    let key = |v: &Value| v.to_string();
    flags.sort_by_key(key);
    expected_flags.sort_by_key(key);
    assert_eq!(flags, expected_flags);
}

#[test]
fn the_table_names_the_flags_and_one_checkpoint_is_refused() {
    let run = fixture_support::path("trajectory", "run");
    let out = cli_support::paramscope(&["trajectory", run.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0.weight at [3]: step change over 10x"),
        "{text}"
    );
    assert!(
        text.contains("2.bias at [4]: first holds NaN/Inf"),
        "{text}"
    );
    let one = run.join("checkpoint-50");
    let out = cli_support::paramscope(&["trajectory", one.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("two checkpoints or more"));
}
