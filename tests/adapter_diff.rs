//! `diff` of two LoRA adapters: their updates compared module by module through low-rank
//! identities, checked against the updates formed here in f64 from the stored factors (fixtures
//! made by tests/fixtures/adapters/make.py).

mod cli_support;
mod fixture_support;

use std::collections::HashMap;

use cli_support::{paramscope, stdout_json};
use safetensors::SafeTensors;
use serde_json::Value;

fn fixture(name: &str) -> String {
    fixture_support::path("adapters", name)
        .display()
        .to_string()
}

fn diff(a: &str, b: &str, more: &[&str]) -> std::process::Output {
    let (a, b, base) = (fixture(a), fixture(b), fixture("llama_base"));
    let mut args = vec!["diff", &a, &b, "--base", &base];
    args.extend(more);
    paramscope(&args)
}

/// Each adapted module's `dW = scaling · B·A` formed in f64, `(out, in)`, with its scaling from
/// `tree --json` (checked against PEFT in tests/adapter.rs).
fn updates(adapter: &str) -> HashMap<String, Vec<f64>> {
    let tree = stdout_json(&[
        "tree",
        &fixture(adapter),
        "--base",
        &fixture("llama_base"),
        "--json",
    ]);
    let bytes = std::fs::read(format!("{}/adapter_model.safetensors", fixture(adapter))).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let floats = |key: &str| -> (Vec<usize>, Vec<f64>) {
        let t = file.tensor(key).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        let values = t
            .data()
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect();
        (t.shape().to_vec(), values)
    };
    let mut out = HashMap::new();
    for key in file.names() {
        let Some(module) = key.strip_suffix(".lora_A.weight") else {
            continue;
        };
        let module = module.strip_prefix("base_model.model.").unwrap().to_owned();
        let (a_shape, a) = floats(key);
        let (b_shape, b) = floats(&key.replace("lora_A", "lora_B"));
        let param = tree["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == format!("{module}.weight"))
            .unwrap();
        let scaling = param["adapter"]["scaling"].as_f64().unwrap();
        let (out_dim, r, inputs) = (b_shape[0], b_shape[1], a_shape[1]);
        let dw = (0..out_dim * inputs)
            .map(|at| {
                let (i, j) = (at / inputs, at % inputs);
                scaling
                    * (0..r)
                        .map(|k| b[i * r + k] * a[k * inputs + j])
                        .sum::<f64>()
            })
            .collect();
        out.insert(module, dw);
    }
    out
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1e-12),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn two_adapters_updates_are_compared_as_if_formed() {
    // rsLoRA with a rank_pattern (v_proj at r=2 against 4) and other alphas: every module changed.
    let run = diff("llama_lora", "llama_rslora", &["--json"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: Value = serde_json::from_slice(&run.stdout).unwrap();
    let (a, b) = (updates("llama_lora"), updates("llama_rslora"));
    let expected = fixture_support::expected("adapters");
    let listed = got["updates"].as_array().unwrap();
    assert_eq!(listed.len(), a.len());
    let norm = |d: &[f64]| d.iter().map(|v| v * v).sum::<f64>().sqrt();
    for u in listed {
        let module = u["module"].as_str().unwrap();
        let (da, db) = (&a[module], &b[module]);
        let diff: Vec<f64> = da.iter().zip(db).map(|(x, y)| x - y).collect();
        let inner: f64 = da.iter().zip(db).map(|(x, y)| x * y).sum();
        assert_eq!(u["status"], "changed", "{module}");
        assert_eq!(u["formed"], false, "{module}: through the factors");
        close(&u["norm_a"], norm(da), module);
        // And as PEFT's own layer gives it (make.py's figures).
        let peft = &expected["llama_lora"][format!("{module}.weight")]["delta_norm"];
        close(&u["norm_a"], peft.as_f64().unwrap(), module);
        close(&u["norm_b"], norm(db), module);
        close(&u["diff_norm"], norm(&diff), module);
        close(&u["rel_diff"], norm(&diff) / norm(da), module);
        close(&u["cosine"], inner / (norm(da) * norm(db)), module);
    }
    assert_eq!(got["summary"]["changed"].as_u64(), Some(a.len() as u64));
}

#[test]
fn an_adapter_against_itself_is_the_same_and_exit_code_tells_them_apart() {
    let same = diff("llama_lora", "llama_lora", &["--exit-code"]);
    assert_eq!(same.status.code(), Some(0));
    let text = String::from_utf8_lossy(&same.stdout);
    assert!(text.contains("0 updates changed, 4 same"), "{text}");
    let differ = diff("llama_lora", "llama_rslora", &["--exit-code"]);
    assert_eq!(differ.status.code(), Some(3));
}

#[test]
fn a_dora_module_is_formed_and_modules_one_side_lacks_are_listed() {
    let got = stdout_json(&[
        "diff",
        &fixture("llama_lora"),
        &fixture("llama_dora"),
        "--base",
        &fixture("llama_base"),
        "--json",
    ]);
    let status = |module: &str| {
        got["updates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["module"] == module)
            .unwrap()
            .clone()
    };
    let q = status("model.layers.0.self_attn.q_proj");
    assert_eq!(
        (&q["status"], &q["formed"]),
        (&"changed".into(), &true.into())
    );
    // Both updates less one base weight: their difference is that of PEFT's two merged weights
    // (ours bit-exact for LoRA, within 4 ulp for DoRA).
    let merged = |name: &str| {
        let bytes = std::fs::read(fixture(&format!("{name}.merged.safetensors"))).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let t = file
            .tensor("model.layers.0.self_attn.q_proj.weight")
            .unwrap();
        t.data()
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect::<Vec<f64>>()
    };
    let (ma, mb) = (merged("llama_lora"), merged("llama_dora"));
    let want = ma
        .iter()
        .zip(&mb)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let got = q["diff_norm"].as_f64().unwrap();
    assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    assert_eq!(status("model.layers.0.mlp.gate_proj")["status"], "only_a");
    assert_eq!(status("model.layers.0.mlp.down_proj")["status"], "only_b");
}
