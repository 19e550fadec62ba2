//! The forward panel on family checkpoints (tests/fixtures/families): `f` asks for a text, the
//! worker runs the family with progress per block, and the panel's per-block rows and next tokens
//! agree with `paramscope forward --json` and with transformers' own figures; a re-init or an undo
//! runs the text again on a rebuilt plan.

mod app_support;
mod cli_support;

use std::path::{Path, PathBuf};

use app_support::{Harness, open_file_with, render, send, text, type_text};
use cli_support::stdout_json;
use paramscope::app::action::Action::*;
use paramscope::app::field::Edit;
use paramscope::app::job::Runs;
use paramscope::app::job::{ForwardResult, Job, Reply};
use paramscope::app::state::Mode;
use paramscope::app::state::SAMPLE_TEXT;
use paramscope::app::theme::ColorLevel;
use paramscope::io::safetensors;

fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/families")
        .join(name)
}

/// The app on a folder, opened as `paramscope app FOLDER` opens it, at 80x24 without colour, with
/// the start's work done.
fn opened(path: &Path, select: Option<&str>) -> Harness {
    let mut h = open_file_with(path, select, ColorLevel::None);
    h.work();
    h
}

fn result(h: &Harness) -> &ForwardResult {
    match &h.forward.result {
        Some(Ok(result)) => result,
        Some(Err(e)) => panic!("the run failed: {e}"),
        None => panic!("no run"),
    }
}

/// A layer as `forward --json` gives it: path, mean, std, absmax.
type CliLayer = (String, f64, f64, f64);

/// `forward --json` on the sample text: each layer's (path, mean, std, absmax), and the top ids.
fn cli(name: &str) -> (Vec<CliLayer>, Vec<u64>) {
    let folder = folder(name);
    let v = stdout_json(&[
        "forward",
        "--json",
        "--text",
        SAMPLE_TEXT,
        folder.to_str().unwrap(),
    ]);
    let layers = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let f = |k: &str| l[k].as_f64().unwrap();
            (
                l["path"].as_str().unwrap().to_owned(),
                f("mean"),
                f("std"),
                f("absmax"),
            )
        })
        .collect();
    let top = v["top_k"]
        .as_array()
        .map(|list| {
            list.iter()
                .take(5)
                .map(|c| c["id"].as_u64().unwrap())
                .collect()
        })
        .unwrap_or_default();
    (layers, top)
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-6 * scale.max(1e-12)
}

/// `f`, then Enter on the prefilled sample sentence.
fn run_sample(h: &mut Harness) {
    send(h, &[Forward]);
    let Mode::Text(field) = &h.mode else {
        panic!("f asks for the text")
    };
    assert_eq!(field.value(), SAMPLE_TEXT);
    assert!(h.queued.is_empty(), "nothing runs before Enter");
    send(h, &[Submit]);
    assert_eq!(h.mode, Mode::Browse);
}

#[test]
fn per_block_rows_and_next_tokens_match_the_cli_and_transformers() {
    for name in ["bert", "gpt2", "llama", "mistral", "qwen2"] {
        let mut h = opened(&folder(name), None);
        assert!(matches!(h.doc.runs, Runs::Family(_)), "{name}");
        run_sample(&mut h);
        let result = result(&h).clone();
        let (layers, top) = cli(name);
        // The blocks and what is around them, in order, each as the CLI computes it.
        let paths: Vec<&str> = result.layers.iter().map(|l| l.path.as_str()).collect();
        assert!(
            paths.iter().filter(|p| p.contains(".0")).count() == 1,
            "{name}: one row per block, not its insides: {paths:?}"
        );
        for row in &result.layers {
            let (_, mean, std, absmax) = layers
                .iter()
                .find(|l| l.0 == row.path)
                .unwrap_or_else(|| panic!("{name}: the CLI has {}", row.path));
            assert!(close(row.mean, *mean, *absmax), "{name} {}", row.path);
            assert!(close(row.std, *std, *absmax), "{name} {}", row.path);
            assert!(close(row.absmax, *absmax, *absmax), "{name} {}", row.path);
        }
        // transformers' outputs of the same modules for the fixture's first sequence (the sample
        // sentence, the longest of its batch, so unpadded).
        let want = safetensors::open(&folder(name).with_extension("expected.safetensors")).unwrap();
        for row in &result.layers {
            let (_, t) = want
                .tensors
                .iter()
                .find(|(n, _)| *n == format!("layer.{}", row.path))
                .unwrap_or_else(|| panic!("{name}: transformers recorded {}", row.path));
            assert_eq!(
                t.shape()[1],
                result.input_shape[1],
                "{name}: the same tokens"
            );
            let all = t.to_f32_vec().unwrap();
            let first: Vec<f64> = all[..all.len() / t.shape()[0]]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let n = first.len() as f64;
            let mean = first.iter().sum::<f64>() / n;
            let std = (first.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            let absmax = first.iter().fold(0f64, |m, v| m.max(v.abs()));
            let near = |a: f64, b: f64| (a - b).abs() <= 1e-4 * absmax;
            assert!(
                near(row.mean, mean) && near(row.std, std) && near(row.absmax, absmax),
                "{name} {}: ours {} {} {}, transformers {mean} {std} {absmax}",
                row.path,
                row.mean,
                row.std,
                row.absmax
            );
        }
        let ours: Vec<u64> = result.next.iter().map(|t| u64::from(t.id)).collect();
        assert_eq!(ours, top, "{name}: the CLI's top-5");
        if name == "bert" {
            assert!(ours.is_empty(), "an encoder predicts no token");
            continue;
        }
        // transformers' top-5 after the same text.
        let top5 = &want.tensors.iter().find(|(n, _)| n == "top5").unwrap().1;
        let ids: Vec<u64> = top5.to_f32_vec().unwrap()[..5]
            .iter()
            .map(|&v| v as u64)
            .collect();
        assert_eq!(ours, ids, "{name}: transformers' top-5");
        assert!(result.next.iter().all(|t| t.prob > 0.0 && t.prob < 1.0));
    }
}

#[test]
fn the_worker_tells_progress_per_block_and_keeps_its_plan() {
    let mut h = opened(&folder("llama"), None);
    send(&mut h, &[Forward]);
    h.hold(Submit);
    let job = h.queued.pop().expect("Enter queues the pass");
    assert!(matches!(&job, Job::Family { text, .. } if text == SAMPLE_TEXT));
    let mut replies = Vec::new();
    h.worker.execute(job, &mut |r| replies.push(r));
    let progress: Vec<(usize, usize)> = replies
        .iter()
        .filter_map(|r| match r {
            Reply::ForwardProgress(_, done, all) => Some((*done, *all)),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [(1, 2), (2, 2)], "one reply per block of the 2");
    assert!(matches!(replies.last(), Some(Reply::Forward(..))));
    // Mid-run, the panel says which block.
    let generation = h.forward.generation;
    let _ = paramscope::app::update::receive(&mut h.app, Reply::ForwardProgress(generation, 1, 2));
    let screen = text(&render(&h, 80, 24));
    assert!(screen.contains("block 1/2"), "{screen}");
    // A stale run's replies are dropped.
    let _ =
        paramscope::app::update::receive(&mut h.app, Reply::ForwardProgress(generation - 1, 2, 2));
    assert_eq!(h.forward.running, Some((1, 2)));
    for r in replies {
        let _ = paramscope::app::update::receive(&mut h.app, r);
    }
    assert_eq!(h.forward.running, None);
    send(&mut h, &[EditText, Submit]);
    assert_eq!(h.worker.plans_built, 1, "a second pass reuses the plan");
}

#[test]
fn a_reinit_runs_the_text_again_on_a_new_plan_and_an_undo_brings_the_figures_back() {
    let mut h = opened(
        &folder("llama"),
        Some("model.layers.1.mlp.down_proj.weight"),
    );
    run_sample(&mut h);
    let before = result(&h).clone();
    send(&mut h, &[OpenInit]);
    assert!(matches!(h.mode, Mode::Init(_)));
    // Large values, so the change is plain in the block's figures.
    type_text(&mut h, "const");
    send(
        &mut h,
        &[Down, Edit(Edit::DeleteToStart), Type('3'), Submit],
    );
    assert_eq!(h.mode, Mode::Browse, "{:?}", h.message);
    assert_eq!(h.doc.undo.len(), 1, "{:?}", h.message);
    let after = result(&h).clone();
    assert_eq!(h.worker.plans_built, 2, "the re-init rebuilt the plan");
    assert_eq!(after.layers.len(), before.layers.len());
    let (b, a) = (&before.layers, &after.layers);
    assert!(
        close(a[1].mean, b[1].mean, 1.0),
        "block 0 is upstream of the change"
    );
    assert!(!close(a[2].absmax, b[2].absmax, 1.0), "block 1 changed");
    assert_eq!(h.forward.text, SAMPLE_TEXT, "the same text");
    send(&mut h, &[Undo]);
    let undone = result(&h);
    assert_eq!(h.worker.plans_built, 3);
    for (x, y) in undone.layers.iter().zip(b) {
        assert!(close(x.absmax, y.absmax, y.absmax) && close(x.mean, y.mean, y.absmax));
    }
    let ids = |r: &ForwardResult| r.next.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(undone), ids(&before));
}

#[test]
fn the_text_edits_like_other_fields_and_esc_keeps_the_last_one() {
    let mut h = opened(&folder("gpt2"), None);
    send(&mut h, &[Forward, Edit(Edit::DeleteToStart)]);
    type_text(&mut h, "Hello world");
    send(&mut h, &[Edit(Edit::DeleteBack), Submit]);
    assert_eq!(h.forward.text, "Hello worl");
    let short = result(&h).input_shape.clone();
    assert!(short[1] < 12, "a shorter text: {short:?}");
    send(&mut h, &[EditText, Edit(Edit::DeleteToStart)]);
    send(&mut h, &[Submit]);
    assert!(matches!(h.mode, Mode::Text(_)), "an empty text is refused");
    send(&mut h, &[Cancel]);
    assert_eq!(
        (h.mode.clone(), h.forward.text.as_str()),
        (Mode::Browse, "Hello worl")
    );
    // The chain's batch keys say what the input is instead.
    send(&mut h, &[BatchUp]);
    assert!(h.queued.is_empty());
}

/// The text `f` offers is a default: a sentence typed replaces it (not appended to it, which a
/// new user typing at 80x24 without colour could not tell), and the box says so; a cursor key
/// keeps it to edit.
#[test]
fn typing_over_the_offered_text_replaces_it() {
    let mut h = opened(&folder("gpt2"), None);
    send(&mut h, &[Forward]);
    let screen = text(&render(&h, 80, 24));
    assert!(screen.contains("typing replaces it"), "{screen}");
    type_text(&mut h, "Hi");
    let Mode::Text(field) = &h.mode else {
        panic!("f asks for the text")
    };
    assert_eq!(field.value(), "Hi");
    assert!(!text(&render(&h, 80, 24)).contains("typing replaces it"));
    send(&mut h, &[Cancel, EditText, Edit(Edit::End)]);
    type_text(&mut h, "!");
    send(&mut h, &[Submit]);
    assert_eq!(h.forward.text, format!("{SAMPLE_TEXT}!"));
}

#[test]
fn an_encoder_shows_its_embedding_norm_and_no_next_tokens() {
    let mut h = opened(&folder("bert"), None);
    run_sample(&mut h);
    let result = result(&h);
    assert!(result.next.is_empty());
    let norm = result
        .embedding_norm
        .expect("a sentence-transformers folder");
    assert!(norm.is_finite() && norm > 0.0);
    let screen = text(&render(&h, 80, 24));
    assert!(screen.contains("embedding norm"), "{screen}");
}

#[test]
fn an_unknown_family_says_which_families_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        folder("gpt2").join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
    let mut h = opened(dir.path(), None);
    // The load says it once, in the notice that opens; `f` says it again in the panel.
    assert!(
        matches!(&h.mode, Mode::Popup(p) if p.text.contains("bert, gpt2, llama, mistral, qwen2")),
        "{:?}",
        h.mode
    );
    send(&mut h, &[Cancel, Forward]);
    assert_eq!(h.mode, Mode::Browse, "no text is asked for");
    let Some(Err(e)) = &h.forward.result else {
        panic!("the panel says why")
    };
    let e = e.to_string();
    assert!(
        e.contains("\"t5\"") && e.contains("bert, gpt2, llama, mistral, qwen2"),
        "{e}"
    );
    assert!(h.queued.is_empty(), "nothing runs");
    let screen = text(&render(&h, 80, 24));
    assert!(screen.contains("model_type \"t5\" is not a"), "{screen}");
    assert!(
        !screen.contains("torch.rand"),
        "no random input is offered: {screen}"
    );
}

#[test]
fn forward_panel_on_gpt2() {
    // Relative (tests run in the crate's folder), so the title is the same on every machine.
    let mut h = opened(Path::new("tests/fixtures/families/gpt2"), None);
    run_sample(&mut h);
    insta::assert_snapshot!("family_forward_gpt2", text(&render(&h, 80, 24)));
    send(&mut h, &[Forward, Forward]);
    insta::assert_snapshot!("family_forward_text", text(&render(&h, 80, 24)));
}

#[test]
fn a_folder_without_a_tokenizer_says_so_in_the_panel() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["model.safetensors", "config.json"] {
        std::fs::copy(folder("gpt2").join(file), dir.path().join(file)).unwrap();
    }
    let mut h = opened(dir.path(), None);
    send(&mut h, &[Forward, Submit]);
    let Some(Err(e)) = &h.forward.result else {
        panic!("the panel says why")
    };
    assert!(
        e.to_string()
            .contains("no tokenizer.json beside the checkpoint"),
        "{e}"
    );
    assert_eq!(h.forward.running, None);
}

#[test]
fn a_mixture_shows_what_it_says_next_and_its_experts() {
    let mut h = opened(&folder("mixtral"), None);
    run_sample(&mut h);
    let said = result(&h)
        .said
        .as_ref()
        .expect("a causal LM continues the text");
    // transformers' first 8 greedy ids (make_decoders.py), decoded as the panel decodes them.
    let json = std::fs::read_to_string(folder("generated.json")).unwrap();
    let all: std::collections::HashMap<String, Vec<u32>> = serde_json::from_str(&json).unwrap();
    let tokenizer =
        paramscope::families::tokenize::TextTokenizer::open(&folder("mixtral")).unwrap();
    let first = tokenizer.decode(&all["mixtral"]).unwrap();
    assert!(
        said.continuation.starts_with(&first),
        "{:?}",
        said.continuation
    );
    assert_eq!(said.experts.len(), 2, "both layers route");
    assert!(said.experts.iter().all(|e| e.len() == 2), "top 2 each");
    let screen = text(&render(&h, 80, 24));
    assert!(screen.contains("then "), "{screen}");
    assert!(screen.contains("experts 0:["), "{screen}");
}
