//! A quantized weight in the app (issue 25, "codes and scales one key away"): `p` shows its
//! dequantized values, its stored codes and its scales in turn, each with the views of a tensor;
//! the codes and scales shown are the ones the values are made of; the part stays chosen from
//! weight to weight; a stale part from the worker is dropped; and the screens at 80x24 without
//! colour.

mod app_support;

use std::path::Path;

use app_support::{Harness, open_file_with, render, send, text};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use paramscope::app::action::Action::{CyclePart, CycleView, Down, Up};
use paramscope::app::job::{Job, Part};
use paramscope::app::keymap::{action_for, hints};
use paramscope::app::state::Message;
use paramscope::app::theme::ColorLevel;
use paramscope::app::work::pick;
use paramscope::tensor::Tensor;

const DIR: &str = "tests/fixtures/quantized";
/// NF4's code 14, the one below 1.
const NF4_14: f32 = 0.722_956_84;

/// The app on fixture `name`, `select` selected, without colour, its first jobs done.
fn app(name: &str, select: &str) -> Harness {
    let path = format!("{DIR}/{name}");
    let mut h = open_file_with(Path::new(&path), Some(select), ColorLevel::None);
    h.work();
    h
}

fn screen(h: &Harness) -> String {
    text(&render(h, 80, 24))
}

/// The selected weight's values, or its codes or scales when those are shown, as f32.
fn shown(h: &Harness) -> (Vec<usize>, Vec<f32>) {
    let id = h.selected_param().unwrap();
    let tensor: &Tensor = match h.part_shown(id) {
        Some(Ok(part)) => &part.tensor,
        Some(Err(why)) => panic!("the part is not there: {why}"),
        None => h.doc.model.store.get(id),
    };
    (tensor.shape().to_vec(), tensor.to_f32_vec().unwrap())
}

/// Moves the tree selection (up, then down) to the parameter `path`, leaving the jobs queued.
fn select(h: &mut Harness, path: &str) {
    let at = |h: &Harness| h.selected_param().is_some() && h.selected_path() == path;
    for step in [Up, Down] {
        for _ in 0..60 {
            if at(h) {
                return;
            }
            h.hold(step);
        }
    }
    assert!(at(h), "{path} is not in the tree");
}

#[test]
fn p_shows_the_codes_then_the_scales_then_the_values_again() {
    let mut h = app("bnb", "model.layers.0.mlp.up_proj.weight");
    assert!(screen(&h).contains("values · bnb_nf4 dequantized"));
    let (shape, values) = shown(&h);
    assert_eq!(shape, [136, 130]);
    h.hold(CyclePart);
    assert_eq!(h.jobs(), ["part"], "the codes are unpacked on the worker");
    h.work();
    let (shape, codes) = shown(&h);
    assert_eq!(shape, [136, 130]);
    assert!(codes.iter().all(|c| (0.0..16.0).contains(c)), "4-bit codes");
    assert!(screen(&h).contains("bnb_nf4 codes"));
    send(&mut h, &[CyclePart]);
    let (shape, scales) = shown(&h);
    assert_eq!(
        shape,
        [277],
        "one absmax per 64 of 17,680 values, the last block short"
    );
    assert!(screen(&h).contains("absmax per 64 values (nested)"));
    // The values are the codes' NF4 values times their block's absmax, rounded to BF16: what is
    // shown is what the weight is made of.
    for (i, (&code, &value)) in codes.iter().zip(&values).enumerate() {
        let scale = scales[i / 64];
        match code as u8 {
            0 => assert_eq!(value, half::bf16::from_f32(-scale).to_f32(), "{i}"),
            7 => assert_eq!(value, 0.0, "{i}"),
            14 => assert_eq!(value, half::bf16::from_f32(NF4_14 * scale).to_f32(), "{i}"),
            15 => assert_eq!(value, half::bf16::from_f32(scale).to_f32(), "{i}"),
            _ => {}
        }
    }
    // The outlier planted at [1, 2] (flat 132, block 2) made its block's absmax the largest.
    let largest = scales.iter().copied().fold(f32::MIN, f32::max);
    assert_eq!(scales[2], largest);
    send(&mut h, &[CyclePart]);
    assert_eq!(h.parts.shown, Part::Values);
    assert!(h.queued.is_empty(), "the values need no work");
    assert_eq!(shown(&h).1, values);
}

#[test]
fn the_part_stays_chosen_from_weight_to_weight_and_a_plain_tensor_shows_its_values() {
    let mut h = app("fp8.safetensors", "model.layers.0.self_attn.q_proj.weight");
    send(&mut h, &[CyclePart, CyclePart]);
    assert_eq!(shown(&h).0, [48, 1], "a scale per output row");
    // On to k_proj: its one scale, asked for as soon as it is selected.
    select(&mut h, "model.layers.0.self_attn.k_proj.weight");
    assert!(h.jobs().contains(&"part"), "{:?}", h.jobs());
    h.work();
    assert_eq!(shown(&h).0, [1]);
    assert!(screen(&h).contains("1 for the tensor"));
    // The layernorm weight is stored as it is: its values, and p says why it does nothing.
    select(&mut h, "model.layers.0.input_layernorm.weight");
    h.work();
    let id = h.selected_param().unwrap();
    assert!(h.quantized(id).is_none());
    assert_eq!(h.part_shown(id).map(|_| ()), None);
    assert!(!screen(&h).contains("· fp8"), "no scheme in the title");
    h.hold(CyclePart);
    assert!(h.queued.is_empty());
    assert!(matches!(&h.message, Some(Message::Info(m)) if m.contains("stored as it is")));
    assert_eq!(
        h.parts.shown,
        Part::Scales,
        "still chosen for the next quantized weight"
    );
}

#[test]
fn a_part_that_comes_after_the_selection_moved_on_is_dropped() {
    let mut h = app("bnb", "model.layers.0.mlp.up_proj.weight");
    h.hold(CyclePart);
    // Up past down_proj's parts to down_proj itself before the worker answers.
    select(&mut h, "model.layers.0.mlp.down_proj.weight");
    let id = h.selected_param().unwrap();
    let wanted = h.part_key(id).unwrap();
    let parts: Vec<Job> = std::mem::take(&mut h.queued)
        .into_iter()
        .filter(|j| matches!(j, Job::Part { .. }))
        .collect();
    assert_eq!(parts.len(), 2, "up_proj's codes, then down_proj's");
    let mut first = parts;
    let last = first.pop().unwrap();
    let mut replies = Vec::new();
    h.worker
        .execute(first.pop().unwrap(), &mut |r| replies.push(r));
    for r in replies {
        let fx = paramscope::app::update::receive(&mut h.app, r);
        h.take(fx);
    }
    assert!(
        matches!(&h.parts.detail, Some((key, None)) if *key == wanted),
        "up_proj's codes are not shown for down_proj"
    );
    h.queued.clear();
    h.queued.push(last);
    h.work();
    assert_eq!(shown(&h).0, [24, 44]);
    // The worker keeps only the newest of the parts queued together.
    let key = |id| ((id, 0), Part::Codes);
    let weight = h.doc.model.store.get(id).clone();
    let jobs = vec![
        Job::Part {
            key: key(id),
            weight: weight.clone(),
        },
        Job::Part {
            key: key(id),
            weight,
        },
    ];
    assert_eq!(pick(jobs).len(), 1);
}

#[test]
fn p_is_a_key_of_the_panes_hinted_only_on_a_quantized_weight() {
    let mut h = app("fp8.safetensors", "model.layers.0.mlp.down_proj.weight");
    let p = KeyEvent::new(KeyCode::Char('p'), KeyModifiers::NONE);
    assert_eq!(action_for(&h, p), Some(CyclePart));
    let hinted = |h: &Harness| {
        hints(h)
            .iter()
            .any(|(key, word)| key == "p" && *word == "parts")
    };
    assert!(hinted(&h));
    select(&mut h, "model.layers.0.input_layernorm.weight");
    assert!(!hinted(&h));
}

#[test]
fn the_codes_of_a_bnb_weight_as_a_heatmap() {
    let mut h = app("bnb", "model.layers.0.mlp.down_proj.weight");
    send(&mut h, &[CycleView, CycleView, CyclePart]);
    insta::assert_snapshot!("quantized_codes_heatmap", screen(&h));
}

#[test]
fn the_block_scales_of_an_fp8_weight_as_values() {
    let mut h = app("fp8.safetensors", "model.layers.0.mlp.down_proj.weight");
    send(&mut h, &[CyclePart, CyclePart]);
    let (shape, scales) = shown(&h);
    assert_eq!(shape, [2, 3], "one scale per 128x128 block of [136, 260]");
    // The 10.0 planted at [5, 7] is in block (0, 0): 10 / 448.
    assert_eq!(scales[0], 10.0f32 / 448.0);
    insta::assert_snapshot!("quantized_block_scales", screen(&h));
}

#[test]
fn the_scales_of_a_gptq_weight_as_a_heatmap() {
    let mut h = app("gptq", "model.layers.0.mlp.up_proj.weight");
    send(&mut h, &[CycleView, CycleView, CyclePart, CyclePart]);
    assert_eq!(shown(&h).0, [48, 4], "(out, groups)");
    insta::assert_snapshot!("quantized_gptq_scales", screen(&h));
}

#[test]
fn p_shows_the_zero_points_after_the_scales_and_they_make_the_values() {
    for (name, path) in [
        ("gptq_v2", "model.layers.0.mlp.up_proj.weight"),
        ("compressed_asym", "model.layers.0.mlp.gate_proj.weight"),
    ] {
        let mut h = app(name, path);
        let (shape, values) = shown(&h);
        let dtype = h.doc.model.store.get(h.selected_param().unwrap()).dtype();
        send(&mut h, &[CyclePart]);
        let codes = shown(&h).1;
        send(&mut h, &[CyclePart]);
        let (scale_shape, scales) = shown(&h);
        send(&mut h, &[CyclePart]);
        assert_eq!(h.parts.shown, Part::Zeros, "{name}");
        let (zero_shape, zeros) = shown(&h);
        assert_eq!(zero_shape, scale_shape, "{name}: a zero point per scale");
        assert!(screen(&h).contains("zero points"), "{name}");
        // Consecutive groups of inputs: value = scale · (code − zero), rounded to the dtype.
        let (inputs, groups) = (shape[1], scale_shape[1]);
        for (k, (&value, &code)) in values.iter().zip(&codes).enumerate() {
            let g = (k / inputs) * groups + (k % inputs) / (inputs / groups);
            let product = scales[g] * (code - zeros[g]);
            let want = match dtype.name() {
                "F16" => half::f16::from_f32(product).to_f32(),
                _ => half::bf16::from_f32(product).to_f32(),
            };
            assert_eq!(value.to_bits(), want.to_bits(), "{name} value {k}");
        }
        send(&mut h, &[CyclePart]);
        assert_eq!(h.parts.shown, Part::Values, "{name}: back to the values");
    }
}

#[test]
fn a_weight_without_zero_points_skips_them_and_shows_its_values_when_they_are_chosen() {
    let mut h = app("fp8.safetensors", "model.layers.0.self_attn.q_proj.weight");
    send(&mut h, &[CyclePart, CyclePart, CyclePart]);
    assert_eq!(h.parts.shown, Part::Values, "FP8 has no zero points");
    h.parts.shown = Part::Zeros;
    let id = h.selected_param().unwrap();
    assert_eq!(h.part_shown(id).map(|_| ()), None, "its values instead");
}
