//! The families against transformers' eager fp32 forward (tests/fixtures/families/make.py): tiny
//! random BERT, GPT-2, Llama (llama3 RoPE scaling, grouped-query), Mistral (sliding window) and
//! Qwen2 (QKV bias, tied head) checkpoints, with every module boundary's output, the top-5 next
//! tokens, the tokenizer's ids, and sentence-transformers' pooled embedding.

mod cli_support;
mod family_support;

use cli_support::{paramscope, stdout_json};
use family_support::{TEXTS, Tensors, expected, folder, load, relative_error, tokens};
use paramscope::families::sentence::Pooling;
use paramscope::families::{self, Batch, Family, FamilyError, Plan, predict};
use paramscope::model::Model;

const FAMILIES: [&str; 5] = ["bert", "gpt2", "llama", "mistral", "qwen2"];

/// A family's fixture ready to run: transformers' figures, the model, its texts as a batch, and a
/// plan over the model.
struct Prepared {
    want: Tensors,
    model: Model,
    batch: Batch,
    plan: Plan,
}

fn prepared(name: &str) -> Prepared {
    let want = expected(name);
    let (model, family, config) = load(name);
    let sequences = tokens(name, &want);
    let batch = Batch::new(&sequences, 0).unwrap();
    let plan = Plan::new(family, &model, &config).unwrap();
    Prepared {
        want,
        model,
        batch,
        plan,
    }
}

#[test]
fn every_family_matches_transformers_layer_by_layer() {
    for name in FAMILIES {
        let Prepared {
            want,
            model,
            batch,
            plan,
        } = prepared(name);
        let mut blocks = Vec::new();
        let pass = plan
            .run_with_progress(&batch, &mut |done, total| blocks.push((done, total)))
            .unwrap();
        assert_eq!(blocks, [(1, 2), (2, 2)], "{name}: progress per block");
        let (shape, output) = &want["output"];
        assert_eq!(
            pass.output.shape(),
            shape.as_slice(),
            "{name}: output shape"
        );
        let err = relative_error(pass.output.as_slice().unwrap(), output);
        assert!(err <= 1e-4, "{name}: output off by {err}");
        let layers: Vec<&str> = want
            .keys()
            .filter_map(|k| k.strip_prefix("layer."))
            .collect();
        assert_eq!(
            pass.activations.len(),
            layers.len(),
            "{name}: one activation per boundary"
        );
        for a in &pass.activations {
            let (shape, theirs) = want
                .get(&format!("layer.{}", a.path))
                .unwrap_or_else(|| panic!("{name}: transformers has no module {}", a.path));
            assert_eq!(a.output.shape(), shape.as_slice(), "{name}: {}", a.path);
            let err = relative_error(a.output.as_slice().unwrap(), theirs);
            assert!(err <= 1e-4, "{name}: {} off by {err}", a.path);
        }
        if let Some((_, top5)) = want.get("top5") {
            let vocab = pass.output.shape()[2];
            for (b, &n) in batch.lens.iter().enumerate() {
                let start = (b * batch.len + n - 1) * vocab;
                let logits = &pass.output.as_slice().unwrap()[start..start + vocab];
                let ours: Vec<f32> = predict::top_k(logits, 5)
                    .iter()
                    .map(|c| c.id as f32)
                    .collect();
                assert_eq!(
                    ours,
                    top5[b * 5..(b + 1) * 5],
                    "{name}: top-5 of sequence {b}"
                );
            }
        }
        assert!(plan.is_current(&model));
    }
}

#[test]
fn a_rerun_into_an_earlier_pass_gives_the_same_values_as_a_fresh_run() {
    for name in FAMILIES {
        let Prepared { batch, plan, .. } = prepared(name);
        let fresh = plan.run(&batch).unwrap();
        // An earlier pass of another shape: its buffers are reused, its values must not leak.
        let other = plan.run(&Batch::new(&[vec![3, 4]], 0).unwrap()).unwrap();
        let again = plan.rerun(&batch, other).unwrap();
        assert_eq!(again.output, fresh.output, "{name}: output");
        assert_eq!(again.activations.len(), fresh.activations.len(), "{name}");
        for (a, b) in again.activations.iter().zip(&fresh.activations) {
            assert_eq!((&a.path, &a.repr), (&b.path, &b.repr), "{name}");
            assert_eq!(a.output, b.output, "{name}: {}", a.path);
        }
    }
}

#[test]
fn sentence_transformers_folder_pools_and_normalizes() {
    let want = expected("bert");
    let (model, family, config) = load("bert");
    let batch = Batch::new(&tokens("bert", &want), 0).unwrap();
    let pass = Plan::new(family, &model, &config)
        .unwrap()
        .run(&batch)
        .unwrap();
    let pooling = Pooling::detect(&folder("bert"))
        .unwrap()
        .expect("modules.json");
    let ours = pooling.embed(&pass.output, &batch.lens);
    let (_, theirs) = &want["embedding"];
    let err = relative_error(ours.as_slice().unwrap(), theirs);
    assert!(err <= 1e-4, "embedding off by {err}");
}

#[test]
fn the_tree_follows_pytorch_state_dict_order_and_classes() {
    for name in FAMILIES {
        let (model, family, config) = load(name);
        let file_names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
        let applied = families::apply(family, &config, &model).unwrap();
        assert!(
            applied.extra.is_empty(),
            "{name}: unknown tensors {:?}",
            applied.extra
        );
        let text = std::fs::read_to_string(folder(name).join("state_dict.json")).unwrap();
        let theirs: Vec<String> = serde_json::from_str(&text).unwrap();
        // transformers' model may have modules the file lacks (BERT's pooler here).
        let theirs: Vec<String> = theirs
            .into_iter()
            .filter(|k| file_names.contains(k))
            .collect();
        let ours: Vec<String> = applied
            .model
            .state_dict()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(ours, theirs, "{name}: state_dict order");
    }
    let (model, family, config) = load("llama");
    let root = families::apply(family, &config, &model).unwrap().model.root;
    assert_eq!(root.class_name(), "LlamaForCausalLM");
    let layer = &root.children[0].children[1].children[0];
    assert_eq!(layer.class_name(), "LlamaDecoderLayer");
    assert_eq!(layer.children[3].repr(), "LlamaRMSNorm((32,), eps=1e-06)");
    let (model, family, config) = load("bert");
    let applied = families::apply(family, &config, &model).unwrap().model;
    let embeddings = &applied.root.children[0];
    assert_eq!(embeddings.class_name(), "BertEmbeddings");
    assert_eq!(
        embeddings.children[0].repr(),
        "Embedding(30522, 8, padding_idx=0)"
    );
    assert_eq!(applied.count_buffers(&applied.root), 0);
}

#[test]
fn a_setting_only_a_run_needs_refuses_the_run_but_keeps_the_tree() {
    let (model, family, mut config) = load("llama");
    config.hidden_act = Some("gelu_10".into());
    let root = families::apply(family, &config, &model).unwrap().model.root;
    assert_eq!(root.class_name(), "LlamaForCausalLM");
    let err = Plan::new(family, &model, &config).unwrap_err().to_string();
    assert!(
        err.contains("hidden_act \"gelu_10\" is not supported"),
        "{err}"
    );
    config.hidden_act = None;
    config.rope_scaling = serde_json::from_str(r#"{"rope_type": "yarn", "factor": 4}"#).unwrap();
    config.rope_parameters = None;
    assert!(families::apply(family, &config, &model).is_ok());
    let err = Plan::new(family, &model, &config).unwrap_err().to_string();
    assert!(err.contains("\"yarn\" is not supported"), "{err}");
}

#[test]
fn unknown_model_types_name_the_supported_families() {
    let config: families::Config = serde_json::from_str(r#"{"model_type": "t5"}"#).unwrap();
    let err = Family::detect(&config).unwrap_err();
    assert!(matches!(err, FamilyError::Unsupported { .. }));
    let text = err.to_string();
    for family in FAMILIES {
        assert!(text.contains(family), "{text}");
    }
}

#[test]
fn bad_ids_and_empty_sequences_are_errors_not_panics() {
    let (model, family, config) = load("gpt2");
    let plan = Plan::new(family, &model, &config).unwrap();
    let err = plan
        .run(&Batch::new(&[vec![1, 100_000]], 0).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("100000"), "{err}");
    assert!(Batch::new(&[vec![]], 0).is_err());
    let too_long = Batch::new(&[vec![1; 33]], 0).unwrap();
    assert!(plan.run(&too_long).is_err());
}

#[test]
fn forward_json_has_tokens_layers_top_k_and_embedding() {
    let gpt2 = folder("gpt2");
    let json = stdout_json(&[
        "forward",
        gpt2.to_str().unwrap(),
        "--text",
        TEXTS[0],
        "--json",
        "--top-k",
        "5",
    ]);
    let want = expected("gpt2");
    let (_, top5) = &want["top5"];
    let ids: Vec<f32> = json["top_k"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_f64().unwrap() as f32)
        .collect();
    assert_eq!(ids, top5[..5]);
    assert!(json["top_k"][0]["token"].is_string());
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 9);
    for key in [
        "path",
        "repr",
        "shape",
        "mean",
        "std",
        "absmax",
        "zero_fraction",
    ] {
        assert!(!layers[0][key].is_null(), "{key}");
    }
    assert_eq!(json["output_shape"], serde_json::json!([1, 23, 320]));

    let bert = folder("bert");
    let json = stdout_json(&[
        "forward",
        bert.to_str().unwrap(),
        "--text",
        TEXTS[0],
        "--text",
        TEXTS[1],
        "--json",
    ]);
    let (_, theirs) = &want_embedding();
    let ours: Vec<f32> = json["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    assert!(relative_error(&ours, theirs) <= 1e-4);
    assert!(json.get("top_k").is_none());

    let out = paramscope(&["forward", gpt2.to_str().unwrap(), "--tokens", "1,2,x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a token id"));
}

fn want_embedding() -> (Vec<usize>, Vec<f32>) {
    expected("bert").remove("embedding").unwrap()
}
