//! The app comparing two checkpoints (issue 10, "the app"): the base Llama of
//! `tests/fixtures/compare/` against its fine-tune, every figure checked against the numpy figures
//! of `diff.json`; the changed-only filter; the Δ pane; and the screen at 80x24 without colour.

mod app_support;

use std::collections::BTreeSet;

use app_support::{Harness, find, render, send, text, with_theme};
use paramscope::app::action::Action::*;
use paramscope::app::compare::{Mark, Side};
use paramscope::app::format::num;
use paramscope::app::theme::ColorLevel;
use paramscope::app::update::compare_with;
use paramscope::checkpoint::{self, LoadOptions};
use serde_json::Value;

const DIR: &str = "tests/fixtures/compare";

fn fixture() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/diff.json")).unwrap()).unwrap()
}

/// The app on base.safetensors, `select` selected, compared with finetune.safetensors.
fn compared(select: &str, level: ColorLevel) -> Harness {
    let base = format!("{DIR}/base.safetensors");
    let model = checkpoint::open(&base, &LoadOptions::default())
        .unwrap()
        .model;
    let mut h = with_theme(model, &base, Some(select), level);
    h.work();
    let fx = compare_with(&mut h.app, format!("{DIR}/finetune.safetensors"));
    h.take(fx);
    assert_eq!(h.jobs(), ["compare"], "B opens on the worker");
    h.work();
    assert!(h.busy.is_none());
    h
}

/// The fixture's name of an A key: the fine-tune dropped the `model.` prefix.
fn fixture_name(key: &str) -> &str {
    key.strip_prefix("model.").unwrap_or(key)
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-4 * want.abs().max(1e-12)
}

#[test]
fn rows_carry_numpys_rel_l2_and_modules_their_aggregate() {
    let h = compared("model.layers.0.mlp.down_proj.weight", ColorLevel::TrueColor);
    let want = fixture();
    let c = h.compare.loaded.as_ref().unwrap();
    assert_eq!(c.renames.len(), 1, "the model. prefix is matched away");
    let outline = &h.doc.outline;
    let mut checked = 0;
    for (i, node) in outline.nodes.iter().enumerate() {
        if node.param().is_none() {
            continue;
        }
        let entry = &want["tensors"][fixture_name(&node.path)];
        let status = entry["status"].as_str().unwrap();
        match c.mark(i).unwrap() {
            Mark::Rel(rel) => {
                let numpy = entry["rel_l2"].as_f64().unwrap();
                assert!(close(rel, numpy), "{}: {rel} vs numpy {numpy}", node.path);
                checked += 1;
            }
            Mark::Word(s) => assert_eq!(s.name(), status, "{}", node.path),
        }
    }
    assert_eq!(checked, 8 + 10, "same and changed; the others are words");
    // A module: sqrt(Σ‖ΔW‖²) / sqrt(Σ‖W‖²) over its tensors, from numpy's rel_l2 and A's norms.
    let module = outline.find("model.layers.0.mlp", false).unwrap();
    let (mut dd, mut aa) = (0.0, 0.0);
    let params = outline.nodes[module + 1..outline.nodes[module].end]
        .iter()
        .filter(|n| n.param().is_some());
    for node in params {
        let values = app_support::values(&h, &node.path);
        let norm2: f64 = values.iter().map(|v| f64::from(*v).powi(2)).sum();
        let rel = want["tensors"][fixture_name(&node.path)]["rel_l2"]
            .as_f64()
            .unwrap();
        dd += rel * rel * norm2;
        aa += norm2;
    }
    let Some(Mark::Rel(aggregate)) = c.mark(module) else {
        panic!("a module has an aggregate")
    };
    assert!(close(aggregate, (dd / aa).sqrt()), "{aggregate}");
    // On screen: the selected row ends with its number, as the tree shows it.
    let screen = text(&render(&h, 80, 24));
    let tree_row = |label: &str| {
        let line = screen.lines().find(|l| l.contains(label)).unwrap();
        line.chars().take(33).collect::<String>()
    };
    assert!(tree_row("(down_p").ends_with(" 5.0e-2│"), "{screen}");
    assert!(tree_row("(mlp)").contains(&format!(" {aggregate:.1e}│")));
    let head = screen
        .lines()
        .position(|l| l.contains("(lm_head)"))
        .unwrap();
    let weight = screen.lines().nth(head + 1).unwrap();
    assert!(
        weight.contains("weight") && weight.contains("dtype│"),
        "{weight}"
    );
}

#[test]
fn the_filter_keeps_only_the_changed_tensors() {
    let mut h = compared("model.embed_tokens.weight", ColorLevel::TrueColor);
    send(&mut h, &[StartFilter, ToggleChanged]);
    assert!(h.tree.changed_only());
    let want = fixture();
    let changed: BTreeSet<String> = want["tensors"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, e)| !matches!(e["status"].as_str(), Some("same" | "only_b")))
        .map(|(name, _)| name.clone())
        .collect();
    let shown: BTreeSet<String> = h
        .tree
        .visible()
        .iter()
        .map(|&i| &h.doc.outline.nodes[i])
        .filter(|n| n.param().is_some())
        .map(|n| fixture_name(&n.path).to_owned())
        .collect();
    assert_eq!(shown, changed);
    assert_eq!(shown.len(), 13, "10 changed, 2 mismatched, 1 only in A");
    // A name filter narrows it further; Esc drops both.
    app_support::type_text(&mut h, "layers.1");
    let narrowed = h
        .tree
        .visible()
        .iter()
        .filter(|&&i| h.doc.outline.nodes[i].param().is_some())
        .count();
    assert!(narrowed > 0 && narrowed < 13, "{narrowed}");
    send(&mut h, &[Submit, Cancel]);
    assert!(!h.tree.changed_only());
    assert!(h.tree.filter().is_empty());
}

#[test]
fn the_delta_pane_shows_cosine_and_max_abs_diff_and_delta_values() {
    let name = "layers.1.mlp.down_proj.weight";
    let mut h = compared(&format!("model.{name}"), ColorLevel::TrueColor);
    let want = &fixture()["tensors"][name];
    let (cos, max) = (
        want["cosine"].as_f64().unwrap(),
        want["max_abs_diff"].as_f64().unwrap(),
    );
    let screen = text(&render(&h, 80, 24));
    assert!(screen.contains(&format!("cos {cos:.6}")), "{screen}");
    assert!(screen.contains(&format!("max|Δ| {}", num(max))), "{screen}");
    send(&mut h, &[CycleSide]);
    assert_eq!(h.compare.loaded.as_ref().unwrap().side, Side::B);
    send(&mut h, &[CycleSide]);
    let c = h.compare.loaded.as_ref().unwrap();
    assert_eq!(c.side, Side::Delta);
    let (_, detail) = c.detail.as_ref().unwrap();
    let (delta, summary) = detail.as_ref().unwrap().delta.as_ref().unwrap();
    let stats = &summary.as_ref().unwrap().stats;
    let largest = stats.max.abs().max(stats.min.abs());
    assert!(
        close(largest, max),
        "Δ's largest magnitude {largest} vs {max}"
    );
    // Row 3 moved by +0.5 everywhere (make.py), so Δ's values there are 0.5.
    let cols = delta.shape()[1];
    let row3 = &delta.to_f32_vec().unwrap()[3 * cols..4 * cols];
    assert!(row3.iter().all(|v| (v - 0.5).abs() < 1e-6), "{row3:?}");
    let screen = render(&h, 80, 24);
    assert!(find(&screen, "Δ = B − A").is_some());
    assert!(
        text(&screen).contains("  0.5000"),
        "the values grid draws Δ"
    );
}

#[test]
fn the_compared_screen_at_80x24_without_colour() {
    let mut h = compared("model.layers.0.mlp.down_proj.weight", ColorLevel::None);
    send(&mut h, &[CycleSide, CycleSide]);
    insta::assert_snapshot!("compared_delta", text(&render(&h, 80, 24)));
}

#[test]
fn c_picks_the_second_model_and_d_asks_for_its_side() {
    let base = format!("{DIR}/base.safetensors");
    let model = checkpoint::open(&base, &LoadOptions::default())
        .unwrap()
        .model;
    let mut h = app_support::with_model(model, &base, Some("model.layers.0.mlp.up_proj.weight"));
    h.work();
    send(&mut h, &[CycleSide]);
    assert!(h.compare.loaded.is_none(), "d says how to compare first");
    send(&mut h, &[OpenCompare]);
    assert!(matches!(&h.mode, paramscope::app::state::Mode::Open(p) if p.compare));
    app_support::type_text(&mut h, &format!("{DIR}/finetune.safetensors"));
    h.hold(Submit);
    assert_eq!(h.jobs(), ["compare"]);
    h.work();
    let summary = h.compare.loaded.as_ref().unwrap().summary;
    assert_eq!(summary, [8, 10, 1, 1, 2], "diff.json's summary");
    h.hold(CycleSide);
    assert_eq!(h.jobs(), ["detail"], "B and Δ are computed on the worker");
    h.work();
    let screen = text(&render(&h, 80, 24));
    assert!(screen.contains("values · B"), "{screen}");
    // A re-init of A diffs again against the B kept, keeping the side.
    let (generation, node) = (h.compare.generation, h.tree.selected());
    let before = h.compare.loaded.as_ref().unwrap().mark(node);
    send(&mut h, &[OpenInit, Submit]);
    assert_eq!(h.compare.generation, generation + 1);
    let c = h.compare.loaded.as_ref().unwrap();
    assert_eq!(c.side, Side::B);
    assert!(c.source.ends_with("finetune.safetensors"));
    assert_ne!(c.mark(node), before, "the figures follow the new A");
}
