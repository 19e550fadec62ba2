//! Optimizer state beside its parameter, against torch (tests/fixtures/optimizer/make.py: real
//! AdamW, Adam and SGD runs on the chapter's MLP and a tiny transformer layer, and the update torch's
//! own `step()` makes on a copy with zero gradients).

use serde_json::Value;

mod cli_support;
mod fixture_support;

fn show(file: &str, param: &str, extra: &[&str]) -> Value {
    let path = fixture_support::path("optimizer", file);
    let mut args = vec![
        "show",
        path.to_str().unwrap(),
        param,
        "--json",
        "--limit",
        "100000",
    ];
    args.extend_from_slice(extra);
    cli_support::stdout_json(&args)
}

#[test]
fn every_parameters_next_update_is_torchs() {
    let expected = fixture_support::expected("optimizer");
    assert_eq!(expected.len(), 5);
    for (file, want) in &expected {
        let figures = &want["optimizer"];
        for (param, w) in want["params"].as_object().unwrap() {
            let name = format!("model.{param}");
            let got = show(file, &name, &["--state", "update"]);
            let o = &got["optimizer"];
            assert_eq!(o["kind"], figures["kind"], "{file}");
            assert_eq!(o["lr"], figures["lr"], "{file}");
            if figures["kind"] != "SGD" {
                assert_eq!(o["betas"], figures["betas"], "{file}");
                assert_eq!(o["eps"], figures["eps"], "{file}");
                assert_eq!(o["step"], 5, "{file}");
            }
            let update: Vec<f64> = got["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let torch: Vec<f64> = w["update"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(update.len(), torch.len(), "{file} {param}");
            let scale = torch.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, (g, t)) in update.iter().zip(&torch).enumerate() {
                assert!(
                    (g - t).abs() <= 1e-6 * scale,
                    "{file} {param}[{i}]: {g} vs torch {t}"
                );
            }
            let ratio = o["update_ratio"].as_f64().unwrap();
            let torch_ratio = w["update_ratio"].as_f64().unwrap();
            assert!(
                (ratio - torch_ratio).abs() <= 1e-5 * torch_ratio,
                "{file} {param}: ratio {ratio} vs torch {torch_ratio}"
            );
        }
    }
}

#[test]
fn the_moments_are_shown_beside_the_parameter() {
    let got = show("mlp_adamw.pt", "model.0.weight", &[]);
    let state = &got["optimizer"]["state"];
    assert!(state["exp_avg"]["std"].as_f64().unwrap() > 0.0);
    assert!(state["exp_avg_sq"]["min"].as_f64().unwrap() >= 0.0);
    let moments = show("mlp_adamw.pt", "model.0.weight", &["--state", "exp_avg_sq"]);
    assert_eq!(moments["values"].as_array().unwrap().len(), 32);
    assert!(
        moments["values"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.as_f64().unwrap() >= 0.0)
    );
    let sgd = show("mlp_sgd.pt", "model.2.bias", &[]);
    assert!(sgd["optimizer"]["state"]["momentum_buffer"].is_object());
    // SGD keeps no second moment: asking for it is said, not guessed.
    let path = fixture_support::path("optimizer", "mlp_sgd.pt");
    let out = cli_support::paramscope(&[
        "show",
        path.to_str().unwrap(),
        "model.2.bias",
        "--state",
        "exp_avg_sq",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeps no exp_avg_sq"));
}

#[test]
fn check_names_a_nan_second_moment_and_an_outlier_step() {
    let path = fixture_support::path("optimizer", "mlp_adamw_broken.pt");
    let got = cli_support::stdout_json(&["check", path.to_str().unwrap(), "--json"]);
    let nan = got["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "nan" && f["tensor"] == "optimizer.state.0.exp_avg_sq");
    assert!(nan, "{got}");
    let outliers: Vec<&str> = got["update_ratio_outliers"]["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tensor"].as_str().unwrap())
        .collect();
    assert_eq!(outliers, ["model.0.weight", "model.2.bias"]);
    // The healthy run has none.
    let path = fixture_support::path("optimizer", "mlp_adamw.pt");
    let got = cli_support::stdout_json(&["check", path.to_str().unwrap(), "--json"]);
    assert_eq!(
        got["update_ratio_outliers"]["tensors"],
        serde_json::json!([])
    );
}
