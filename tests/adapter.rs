//! LoRA adapters opened against their base: merges bit for bit with PEFT's `merge_and_unload`,
//! the update's figures against PEFT's own layers, and coverage findings on broken adapters
//! (fixtures made by tests/fixtures/adapters/make.py).

mod adapter_support;
mod cli_support;
mod fixture_support;

use std::path::Path;

use cli_support::{paramscope, stdout_json};
use serde_json::Value;

const FOLDER: &str = "adapters";

fn fixture(name: &str) -> String {
    fixture_support::path(FOLDER, name).display().to_string()
}

/// `export ADAPTER --base BASE --merge` beside PEFT's `ADAPTER.merged.safetensors`.
fn merged(adapter: &str, base: &str) -> Vec<adapter_support::Merged> {
    let oracle = fixture(&format!("{adapter}.merged.safetensors"));
    adapter_support::merged(&fixture(adapter), &fixture(base), &oracle)
}

#[test]
fn merges_are_bit_exact_with_peft_merge_and_unload() {
    for (adapter, base) in [
        ("llama_lora", "llama_base"),
        ("llama_rslora", "llama_base"),
        ("gpt2_lora", "gpt2_base"),
        ("bert_lora", "bert_base"),
        ("llama_bf16_lora", "llama_bf16_base"),
    ] {
        let pairs = merged(adapter, base);
        assert!(pairs.len() > 5, "{adapter}");
        for (name, _, ours, peft) in pairs {
            assert!(ours == peft, "{adapter}: {name} differs from PEFT's merge");
        }
    }
}

#[test]
fn dora_merges_within_four_ulp_of_peft() {
    let mut adapted = 0;
    for (name, dtype, ours, peft) in merged("llama_dora", "llama_base") {
        assert_eq!(dtype, safetensors::Dtype::F32);
        let floats = |b: &[u8]| -> Vec<i64> {
            b.chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap())))
                .collect()
        };
        let worst = floats(&ours)
            .iter()
            .zip(floats(&peft))
            .map(|(a, b)| (a - b).abs())
            .max()
            .unwrap();
        assert!(worst <= 4, "{name}: {worst} ulp from PEFT");
        adapted += usize::from(ours != peft || name.contains("q_proj"));
    }
    assert!(adapted >= 1);
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1e-12),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn tree_json_gives_each_adapted_weight_its_update_figures() {
    let expected = fixture_support::expected(FOLDER);
    for (adapter, base) in [
        ("llama_lora", "llama_base"),
        ("llama_rslora", "llama_base"),
        ("gpt2_lora", "gpt2_base"),
        ("bert_lora", "bert_base"),
    ] {
        let tree = stdout_json(&[
            "tree",
            &fixture(adapter),
            "--base",
            &fixture(base),
            "--json",
        ]);
        let want = expected[adapter].as_object().unwrap();
        let params = tree["params"].as_array().unwrap();
        let adapted: Vec<&Value> = params
            .iter()
            .filter(|p| p.get("adapter").is_some())
            .collect();
        assert_eq!(adapted.len(), want.len(), "{adapter}");
        for (weight, want) in want {
            let param = params
                .iter()
                .find(|p| p["name"] == weight.as_str())
                .unwrap();
            let got = &param["adapter"];
            assert_eq!(got["r"], want["r"], "{adapter} {weight}");
            close(
                got["scaling"].as_f64().unwrap(),
                want["scaling"].as_f64().unwrap(),
                weight,
            );
            for figure in ["delta_norm", "base_norm"] {
                close(
                    got[figure].as_f64().unwrap(),
                    want[figure].as_f64().unwrap(),
                    figure,
                );
            }
            let (got, want) = (
                got["singular_values"].as_array().unwrap(),
                want["singular_values"].as_array().unwrap(),
            );
            assert_eq!(got.len(), want.len(), "{adapter} {weight}");
            for (g, w) in got.iter().zip(want) {
                close(g.as_f64().unwrap(), w.as_f64().unwrap(), "singular value");
            }
        }
        let summary = &tree["adapter"];
        assert_eq!(summary["adapted"], summary["targets"], "{adapter}");
    }
}

fn check(adapter: &str) -> Value {
    stdout_json(&[
        "check",
        &fixture(adapter),
        "--base",
        &fixture("llama_base"),
        "--json",
    ])
}

fn kinds(check: &Value) -> Vec<(String, String)> {
    check["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let subject = f.get("path").or_else(|| f.get("key")).unwrap();
            (
                f["kind"].as_str().unwrap().to_owned(),
                subject.as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_sound_adapter_covers_every_target() {
    let check = check("llama_lora");
    assert_eq!(check["findings"], Value::Array(vec![]));
    let adapter = &check["adapter"];
    assert_eq!(
        (adapter["targets"].as_u64(), adapter["adapted"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(
        (adapter["r"].as_u64(), adapter["scaling"].as_f64()),
        (Some(4), Some(2.0))
    );
    let text = paramscope(&[
        "check",
        &fixture("llama_lora"),
        "--base",
        &fixture("llama_base"),
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("4 of 4 target modules adapted"), "{text}");
}

#[test]
fn a_broken_adapter_says_why_each_module_does_nothing() {
    let check = check("llama_broken");
    let mut found = kinds(&check);
    found.sort();
    let layer = "model.layers.0.";
    let mut want: Vec<(String, String)> = [
        ("nonfinite", format!("{layer}self_attn.o_proj")),
        ("shape_mismatch", format!("{layer}self_attn.q_proj")),
        (
            "unmatched_key",
            format!("base_model.model.{layer}self_attn.qq_proj.lora_A.weight"),
        ),
        (
            "unmatched_key",
            format!("base_model.model.{layer}self_attn.qq_proj.lora_B.weight"),
        ),
        ("untargeted_module", format!("{layer}mlp.gate_proj")),
        ("zero_lora_b", format!("{layer}self_attn.v_proj")),
    ]
    .into_iter()
    .map(|(k, s)| (k.to_owned(), s))
    .collect();
    want.sort();
    assert_eq!(found, want);
    let adapter = &check["adapter"];
    assert_eq!(
        (adapter["targets"].as_u64(), adapter["adapted"].as_u64()),
        (Some(4), Some(2))
    );
    // The merge refuses an adapter PEFT could not load.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let run = paramscope(&[
        "export",
        &fixture("llama_broken"),
        "--base",
        &fixture("llama_base"),
        "--merge",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(!out.exists());
}

#[test]
fn a_doubled_prefix_is_named_with_the_prefix_that_fixes_it() {
    let check = check("llama_doubled");
    let findings = check["findings"].as_array().unwrap();
    let unmatched: Vec<&Value> = findings
        .iter()
        .filter(|f| f["kind"] == "unmatched_key")
        .collect();
    assert_eq!(unmatched.len(), 8, "{findings:?}");
    for f in unmatched {
        assert_eq!(
            f["suggestion"]["from"],
            "base_model.model.base_model.model."
        );
        assert_eq!(f["suggestion"]["to"], "base_model.model.");
        let module = f["suggestion"]["module"].as_str().unwrap();
        assert!(f["key"].as_str().unwrap().contains(module), "{f}");
    }
    assert_eq!(check["adapter"]["adapted"], 0);
    assert_eq!(check["adapter"]["targets"], 4);
}

#[test]
fn a_zero_lora_b_is_an_identity() {
    let check = check("llama_zero");
    assert_eq!(
        kinds(&check),
        [(
            "zero_lora_b".to_owned(),
            "model.layers.0.self_attn.q_proj".to_owned()
        )]
    );
}

#[test]
fn the_config_names_the_base_when_no_base_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture_support::path(FOLDER, "llama_lora");
    for file in ["adapter_model.safetensors", "adapter_config.json"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    let config = dir.path().join("adapter_config.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["base_model_name_or_path"] = Value::String(fixture("llama_base"));
    std::fs::write(&config, json.to_string()).unwrap();
    let check = stdout_json(&["check", dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(check["adapter"]["adapted"], 4);
}

#[test]
fn base_and_merge_are_refused_where_they_do_not_apply() {
    let one_line = |args: &[&str], says: &str| {
        let run = paramscope(args);
        assert_eq!(run.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8(run.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
    };
    let base = fixture("llama_base");
    one_line(
        &["tree", &base, "--base", &base],
        "--base applies to a LoRA adapter",
    );
    let out = Path::new(&std::env::temp_dir()).join("paramscope-adapter-never-written.safetensors");
    let out = out.to_str().unwrap();
    one_line(
        &["export", &fixture("llama_lora"), "--base", &base, "-o", out],
        "pass --merge",
    );
    one_line(&["export", &base, "--merge", "-o", out], "--merge applies");
}
