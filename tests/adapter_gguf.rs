//! llama.cpp's GGUF LoRA adapters opened against their base as PEFT folders are: the adapter
//! `convert_lora_to_gguf.py` made from a PEFT adapter (tests/fixtures/adapters/make.py) merges bit
//! for bit as PEFT merges the original, gives the same update figures, and the same coverage
//! findings; what llama.cpp refuses is refused in one line.

mod adapter_support;
mod cli_support;
mod fixture_support;

use cli_support::{paramscope, stdout_json};
use serde_json::Value;

const FOLDER: &str = "adapters";
/// The PEFT adapter the GGUF adapters were converted from.
const PEFT: &str = "llama_gguf_lora";
/// The converted adapter (F32, the converter's default).
const GGUF: &str = "llama_gguf_lora.gguf";

fn fixture(name: &str) -> String {
    fixture_support::path(FOLDER, name).display().to_string()
}

/// The Hugging Face base the PEFT adapter was trained on, and its GGUF.
fn bases() -> [String; 2] {
    ["llama_original", "llama_f32.gguf"].map(|name| {
        fixture_support::path("gguf_run", name)
            .display()
            .to_string()
    })
}

fn oracle() -> String {
    fixture(&format!("{PEFT}.merged.safetensors"))
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn an_f32_gguf_adapter_merges_bit_exact_with_peft() {
    let [hf_base, gguf_base] = bases();
    // The PEFT folder too: its Embedding adapter is merged transposed, as PEFT merges it.
    for (adapter, base) in [(GGUF, &hf_base), (GGUF, &gguf_base), (PEFT, &hf_base)] {
        let pairs = adapter_support::merged(&fixture(adapter), base, &oracle());
        assert_eq!(pairs.len(), 21, "{adapter} {base}");
        for (name, _, ours, peft) in pairs {
            assert!(
                ours == peft,
                "{adapter} {base}: {name} differs from PEFT's merge"
            );
        }
    }
}

/// F16 factors are rounded twice (A and B, 2^-11 relative each): the merge stays within 2^-10 of
/// the update's largest entry of PEFT's f32 merge.
#[test]
fn an_f16_gguf_adapter_merges_within_its_rounding() {
    let [base, _] = bases();
    let base_file = std::fs::read(format!("{base}/model.safetensors")).unwrap();
    let base_tensors = safetensors::SafeTensors::deserialize(&base_file).unwrap();
    let mut changed = 0;
    for (name, _, ours, peft) in
        adapter_support::merged(&fixture("llama_gguf_lora.f16.gguf"), &base, &oracle())
    {
        let weight = floats(base_tensors.tensor(&name).unwrap().data());
        let (ours, peft) = (floats(&ours), floats(&peft));
        let largest = peft
            .iter()
            .zip(&weight)
            .map(|(p, w)| (p - w).abs())
            .fold(0f32, f32::max);
        let worst = ours
            .iter()
            .zip(&peft)
            .map(|(o, p)| (o - p).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= largest / 1024.0,
            "{name}: {worst} vs |dW| {largest}"
        );
        changed += usize::from(largest > 0.0);
    }
    assert_eq!(changed, 11);
}

fn adapted(tree: &Value) -> Vec<(String, Value)> {
    tree["params"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p.get("adapter")?.clone())))
        .collect()
}

fn close(got: &Value, want: &Value, what: &str) {
    let (got, want) = (got.as_f64().unwrap(), want.as_f64().unwrap());
    assert!(
        (got - want).abs() <= 1e-6 * want.abs(),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn tree_json_gives_the_figures_of_the_peft_adapter() {
    let expected = fixture_support::expected(FOLDER);
    let want = expected[PEFT].as_object().unwrap();
    let [hf_base, gguf_base] = bases();
    let peft = stdout_json(&["tree", &fixture(PEFT), "--base", &hf_base, "--json"]);
    for (adapter, base) in [(GGUF, &hf_base), (GGUF, &gguf_base), (PEFT, &hf_base)] {
        let tree = stdout_json(&["tree", &fixture(adapter), "--base", base, "--json"]);
        let got = adapted(&tree);
        assert_eq!(got.len(), want.len(), "{base}");
        for (weight, figures) in &got {
            let want = &want[weight];
            assert_eq!(figures["r"], want["r"], "{weight}");
            for field in ["scaling", "delta_norm", "base_norm"] {
                close(&figures[field], &want[field], &format!("{weight} {field}"));
            }
            let (sv, want_sv) = (
                figures["singular_values"].as_array().unwrap(),
                want["singular_values"].as_array().unwrap(),
            );
            assert_eq!(sv.len(), want_sv.len(), "{weight}");
            for (g, w) in sv.iter().zip(want_sv) {
                close(g, w, &format!("{weight} singular value"));
            }
        }
        // The same fields as the PEFT folder's, the figures themselves within f32 rounding.
        let peft_figures = adapted(&peft);
        for ((name, ours), (peft_name, theirs)) in got.iter().zip(&peft_figures) {
            assert_eq!(name, peft_name);
            let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(ours), keys(theirs), "{name}");
        }
        let keys = |v: &Value| {
            let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            keys.retain(|k| k != "base");
            keys
        };
        assert_eq!(keys(&tree["adapter"]), keys(&peft["adapter"]));
        assert_eq!(tree["adapter"]["scaling"], 3.0);
    }
}

fn check(adapter: &str) -> Value {
    let [base, _] = bases();
    stdout_json(&["check", &fixture(adapter), "--base", &base, "--json"])
}

#[test]
fn a_sound_gguf_adapter_covers_every_module_it_names() {
    let check = check(GGUF);
    assert_eq!(check["findings"], Value::Array(vec![]));
    let adapter = &check["adapter"];
    assert_eq!(
        (adapter["targets"].as_u64(), adapter["adapted"].as_u64()),
        (Some(11), Some(11))
    );
    assert_eq!(
        (adapter["r"].as_u64(), adapter["alpha"].as_f64()),
        (Some(4), Some(12.0))
    );
}

#[test]
fn a_broken_gguf_adapter_says_why_each_module_does_nothing() {
    let check = check("gguf_broken.gguf");
    let mut found: Vec<(String, String)> = check["findings"]
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
        .collect();
    found.sort();
    let want: Vec<(String, String)> = [
        ("nonfinite", "model.layers.0.self_attn.o_proj"),
        ("shape_mismatch", "model.layers.1.mlp.down_proj"),
        (
            "unmatched_key",
            "model.layers.5.self_attn.q_proj.lora_A.weight",
        ),
        (
            "unmatched_key",
            "model.layers.5.self_attn.q_proj.lora_B.weight",
        ),
        ("untargeted_module", "model.layers.1.self_attn.v_proj"),
        ("zero_lora_b", "model.layers.0.self_attn.k_proj"),
    ]
    .into_iter()
    .map(|(k, s)| (k.to_owned(), s.to_owned()))
    .collect();
    assert_eq!(found, want);
    assert_eq!(check["adapter"]["adapted"], 9);
    assert_eq!(check["adapter"]["targets"], 11);
}

#[test]
fn diff_of_the_peft_adapter_and_its_conversion_is_zero() {
    let [base, _] = bases();
    let diff = stdout_json(&[
        "diff",
        &fixture(PEFT),
        &fixture(GGUF),
        "--base",
        &base,
        "--json",
    ]);
    assert_eq!(diff["summary"]["same"], 11, "{diff}");
    for update in diff["updates"].as_array().unwrap() {
        assert_eq!(update["diff_norm"], 0.0, "{update}");
    }
    // The F16 conversion differs by its rounding only.
    let diff = stdout_json(&[
        "diff",
        &fixture(GGUF),
        &fixture("llama_gguf_lora.f16.gguf"),
        "--base",
        &base,
        "--json",
    ]);
    for update in diff["updates"].as_array().unwrap() {
        let rel = update["rel_diff"].as_f64().unwrap();
        assert!(rel > 0.0 && rel < 1e-3, "{update}");
    }
}

#[test]
fn what_llama_cpp_refuses_is_one_line() {
    let [base, _] = bases();
    for (adapter, says) in [
        (
            "gguf_lone_a.gguf",
            "blk.0.attn_q.weight: lora_a without its lora_b",
        ),
        (
            "gguf_rank_mismatch.gguf",
            "blk.0.attn_q.weight: lora_a has rank 4 and lora_b rank 3",
        ),
        ("gguf_no_alpha.gguf", "no adapter.lora.alpha"),
        ("gguf_shape_lies.gguf", "runs past the end of the file"),
    ] {
        for command in ["tree", "check"] {
            let run = paramscope(&[command, &fixture(adapter), "--base", &base]);
            assert_eq!(run.status.code(), Some(1), "{adapter}");
            let err = String::from_utf8(run.stderr).unwrap();
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(says), "{err}");
        }
    }
}

#[test]
fn without_a_base_one_line_says_to_give_one() {
    let run = paramscope(&["tree", &fixture(GGUF)]);
    assert!(run.status.success());
    let err = String::from_utf8(run.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("llama.cpp LoRA adapter (GGUF): pass --base MODEL"),
        "{err}"
    );
}

#[test]
fn the_base_the_model_card_names_opens_without_base() {
    // The converter writes the PEFT model card's base after the Hub's address; here a path
    // relative to the repository root, where the tests run.
    let check = stdout_json(&["check", &fixture("gguf_named_base.gguf"), "--json"]);
    assert_eq!(
        check["adapter"]["base"],
        "tests/fixtures/gguf_run/llama_original"
    );
    assert_eq!(check["adapter"]["adapted"], 11);
}
