//! The decoder families added to Llama's (Qwen3, Gemma 1-3, Phi-3, Mixtral, Qwen2-MoE, Qwen3-MoE)
//! against transformers' eager fp32 forward, and greedy generation against its
//! `generate(do_sample=False)` for those and GPT-2 and Llama (tests/fixtures/families/
//! make_decoders.py): token ids, the embedding, each layer's output and the last hidden state
//! within 1e-4 of the largest value, the last position's logits likewise, identical top-5,
//! the MoE routers' choices, the tree's state_dict order, and identical greedy ids.

mod cli_support;
mod family_support;

use std::collections::HashMap;

use cli_support::{stdout_json, succeeded};
use family_support::{TEXTS, expected, folder, load, relative_error, tokens};
use paramscope::families::tokenize::TextTokenizer;
use paramscope::families::{self, Batch, Plan, Stop, predict};

const FAMILIES: [&str; 8] = [
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3",
    "phi3",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
];

#[test]
fn every_new_family_matches_transformers() {
    for name in FAMILIES {
        let want = expected(name);
        let (model, family, config) = load(name);
        let batch = Batch::new(&tokens(name, &want), 0).unwrap();
        let plan = Plan::new(family, &model, &config).unwrap();
        let pass = plan.run(&batch).unwrap();
        let mut compared = 0;
        for a in &pass.activations {
            let Some((shape, theirs)) = want.get(&format!("layer.{}", a.path)) else {
                continue;
            };
            assert_eq!(a.output.shape(), shape.as_slice(), "{name}: {}", a.path);
            let err = relative_error(a.output.as_slice().unwrap(), theirs);
            assert!(err <= 1e-4, "{name}: {} off by {err}", a.path);
            compared += 1;
        }
        let boundaries = want.keys().filter(|k| k.starts_with("layer.")).count();
        assert_eq!(compared, boundaries, "{name}: every boundary recorded");
        let vocab = pass.output.shape()[2];
        let (_, last_logits) = &want["last_logits"];
        let (_, top5) = &want["top5"];
        for (b, &n) in batch.lens.iter().enumerate() {
            let start = (b * batch.len + n - 1) * vocab;
            let logits = &pass.output.as_slice().unwrap()[start..start + vocab];
            let err = relative_error(logits, &last_logits[b * vocab..(b + 1) * vocab]);
            assert!(err <= 1e-4, "{name}: logits of sequence {b} off by {err}");
            let ours: Vec<f32> = predict::top_k(logits, 5)
                .iter()
                .map(|c| c.id as f32)
                .collect();
            assert_eq!(ours, top5[b * 5..(b + 1) * 5], "{name}: top-5 of {b}");
        }
        let layers = config.num_hidden_layers.unwrap();
        let routed: Vec<usize> = (0..layers)
            .filter(|i| want.contains_key(&format!("experts.{i}")))
            .collect();
        if routed.is_empty() {
            assert!(pass.experts.is_empty(), "{name}: no experts");
        }
        for i in 0..layers {
            match want.get(&format!("experts.{i}")) {
                Some((shape, ids)) => {
                    let ours: Vec<f32> = pass.experts[i]
                        .iter()
                        .flatten()
                        .map(|&e| e as f32)
                        .collect();
                    assert_eq!(pass.experts[i].len(), shape[0], "{name}: layer {i} tokens");
                    assert_eq!(&ours, ids, "{name}: layer {i}'s experts");
                }
                None if !routed.is_empty() => {
                    assert!(pass.experts[i].is_empty(), "{name}: dense layer {i}");
                }
                None => {}
            }
        }
    }
}

#[test]
fn the_tree_follows_the_saved_state_dict_order() {
    for name in FAMILIES {
        let (model, family, config) = load(name);
        let applied = families::apply(family, &config, &model).unwrap();
        assert!(
            applied.extra.is_empty(),
            "{name}: unknown {:?}",
            applied.extra
        );
        let text = std::fs::read_to_string(folder(name).join("state_dict.json")).unwrap();
        let file: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
        let theirs: Vec<String> = serde_json::from_str::<Vec<String>>(&text)
            .unwrap()
            .into_iter()
            .filter(|k| file.contains(k))
            .collect();
        let ours: Vec<String> = applied
            .model
            .state_dict()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(ours, theirs, "{name}: state_dict order");
    }
    let (model, family, config) = load("gemma3");
    let root = families::apply(family, &config, &model).unwrap().model.root;
    assert_eq!(root.class_name(), "Gemma3ForCausalLM");
    let base = &root.children[0];
    assert_eq!(base.class_name(), "Gemma3TextModel");
    assert_eq!(
        base.children[0].repr(),
        "Gemma3TextScaledWordEmbedding(320, 32, padding_idx=0)"
    );
    let (model, family, config) = load("qwen2_moe");
    let root = families::apply(family, &config, &model).unwrap().model.root;
    let mlp = &root.children[0].children[1].children[0].children[1];
    assert_eq!(mlp.class_name(), "Qwen2MoeSparseMoeBlock");
    let names: Vec<&str> = mlp.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["gate", "experts", "shared_expert", "shared_expert_gate"]
    );
    assert_eq!(mlp.children[1].class_name(), "Qwen2MoeExperts");
}

/// transformers' greedy continuation of the first text, by fixture.
fn generated() -> HashMap<String, Vec<u32>> {
    let text = std::fs::read_to_string(folder("generated.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn greedy_generation_gives_transformers_ids() {
    let all = generated();
    assert_eq!(all.len(), FAMILIES.len() + 2);
    for (name, theirs) in &all {
        let (model, family, config) = load(name);
        let prompt = TextTokenizer::open(&folder(name))
            .unwrap()
            .encode(TEXTS[0])
            .unwrap();
        let plan = Plan::new(family, &model, &config).unwrap();
        let mut streamed = Vec::new();
        let ours = plan
            .generate(&prompt, 8, &config.eos_ids(), &mut |id| streamed.push(id))
            .unwrap();
        assert_eq!(&ours.ids, theirs, "{name}: greedy ids");
        assert_eq!(streamed, ours.ids, "{name}: streamed as they come");
        // The cache changes nothing: the prompt and continuation run whole give the same top-1.
        let mut whole = prompt.clone();
        whole.extend(&ours.ids[..ours.ids.len() - 1]);
        let pass = plan.run(&Batch::new(&[whole.clone()], 0).unwrap()).unwrap();
        let vocab = pass.output.shape()[2];
        let logits = pass.output.as_slice().unwrap();
        for (i, &id) in ours.ids.iter().enumerate() {
            let row = prompt.len() - 1 + i;
            let top = predict::top_k(&logits[row * vocab..(row + 1) * vocab], 1)[0].id;
            // Phi-3's longrope switches factors once the positions pass the original context;
            // transformers' cached steps keep earlier keys as they were rotated, as ours do.
            if name != "phi3" {
                assert_eq!(top, id, "{name}: uncached top-1 at {row}");
            }
        }
    }
}

#[test]
fn generation_stops_at_the_models_positions_with_a_clear_message() {
    // GPT-2's fixture has 32 positions and the prompt 23 tokens.
    let (model, family, config) = load("gpt2");
    let plan = Plan::new(family, &model, &config).unwrap();
    let prompt = TextTokenizer::open(&folder("gpt2"))
        .unwrap()
        .encode(TEXTS[0])
        .unwrap();
    let g = plan.generate(&prompt, 100, &[], &mut |_| {}).unwrap();
    assert_eq!(g.stop, Stop::Positions(32));
    assert_eq!(prompt.len() + g.ids.len(), 33);
    let err = plan.generate(&[1; 40], 1, &[], &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("32 positions"), "{err}");
    let (model, family, config) = load("bert");
    let plan = Plan::new(family, &model, &config).unwrap();
    assert!(plan.generate(&[1, 2], 1, &[], &mut |_| {}).is_err());
}

#[test]
fn forward_generate_prints_as_it_comes_and_writes_json() {
    let gemma3 = folder("gemma3");
    let json = stdout_json(&[
        "forward",
        gemma3.to_str().unwrap(),
        "--text",
        TEXTS[0],
        "--generate",
        "8",
        "--json",
    ]);
    let ids: Vec<u32> = json["generated"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, generated()["gemma3"]);
    assert!(json["generated"]["text"].is_string());
    let mixtral = folder("mixtral");
    let json = stdout_json(&[
        "forward",
        mixtral.to_str().unwrap(),
        "--text",
        TEXTS[0],
        "--json",
    ]);
    let want = expected("mixtral");
    let (_, first) = &want["experts.0"];
    let ours: Vec<f32> = json["experts"][0]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            t.as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_f64().unwrap() as f32)
        })
        .collect();
    assert_eq!(&ours, first);
    let out = succeeded(&[
        "forward",
        folder("gpt2").to_str().unwrap(),
        "--text",
        TEXTS[0],
        "--generate",
        "3",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("continuation"), "{text}");
}
