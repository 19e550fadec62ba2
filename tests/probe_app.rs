//! The forward panel's probe views on the planted tiny Llama (tests/fixtures/probes), at 80x24
//! without colour: `p` shows the logit lens with its massive column, then the attention map whose
//! cursor reads transformers' weight (`>` recomputes the next layer), then the outliers, from
//! which `J` puts the values cursor on the planted super weight for `z` to zero.

mod app_support;

use std::path::{Path, PathBuf};

use app_support::{Harness, open_file_with, render, send, text};
use paramscope::app::action::Action::*;
use paramscope::app::keymap::hints;
use paramscope::app::state::{Focus, View};
use paramscope::app::theme::ColorLevel;
use paramscope::text::escape;
use serde_json::Value;

fn planted() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probes/planted")
}

fn expected() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probes/planted.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The planted model's panel after a run of the sample text (the fixture's text 0).
fn ran() -> Harness {
    let mut h = open_file_with(&planted(), None, ColorLevel::None);
    h.work();
    send(&mut h, &[Forward, Submit]);
    h.focus = Focus::Tensor;
    h
}

fn screen(h: &Harness) -> String {
    text(&render(&h.app, 80, 24))
}

#[test]
fn the_lens_grid_shows_each_layers_prediction_and_the_massive_column() {
    let mut h = ran();
    // The lens opens on the last layer at the last position: the model's own next token.
    send(&mut h, &[CycleProbe]);
    let s = screen(&h);
    assert!(s.contains("max|h|"), "{s}");
    // The planted channel: 400 at every boundary, flagged.
    assert!(s.contains("400.00!"), "{s}");
    let rows = 3;
    let n = expected()["tokens"][0].as_array().unwrap().len();
    assert!(
        s.contains(&format!(
            "layer {} model.layers.1 · position {}",
            rows - 1,
            n - 1
        )),
        "{s}"
    );
    let next = &h.forward.result.as_ref().unwrap().as_ref().unwrap().next[0];
    assert!(s.contains(&format!("→ '{}'", escape(&next.text))), "{s}");
    // Where that token first comes out on top, from transformers' lens (layer, text 0, position).
    let lens = expected()["lens"].as_array().unwrap().clone();
    let top = |l: &Value| l[0][n - 1][0]["id"].as_u64().unwrap();
    let first = lens
        .iter()
        .position(|l| top(l) == u64::from(next.id))
        .unwrap();
    let line = format!(
        "'{}' first on top at layer {first} of {}",
        escape(&next.text),
        rows - 1
    );
    assert!(s.contains(&line), "{line} not in\n{s}");
    send(&mut h, &[Up, Up, Up]);
    for _ in 0..n {
        send(&mut h, &[Left]);
    }
    let s = screen(&h);
    assert!(
        s.contains("layer 0 model.embed_tokens · position 0 'The'"),
        "{s}"
    );
}

#[test]
fn the_attention_cursor_reads_transformers_weight_and_pages_at_80x24() {
    let mut h = ran();
    send(&mut h, &[CycleProbe, CycleProbe]);
    // The cursor comes from the lens's last cell: back to the top left first.
    let n = expected()["tokens"][0].as_array().unwrap().len();
    for _ in 0..n {
        send(&mut h, &[Up, Left]);
    }
    send(&mut h, &[Down, Down, Down, Right]);
    let s = screen(&h);
    let want = &expected()["attention"][0]["weights"][0][3][1];
    let tokens: Vec<String> = h
        .forward
        .result
        .as_ref()
        .unwrap()
        .as_ref()
        .unwrap()
        .probes
        .as_ref()
        .unwrap()
        .tokens
        .clone();
    let line = format!(
        "query '{}' -> key '{}' {:.2}",
        tokens[3],
        tokens[1],
        want.as_f64().unwrap()
    );
    assert!(s.contains(&line), "{line} not in\n{s}");
    assert!(s.contains("layer 0/2 head 0/4"), "{s}");
    // The next layer is recomputed and its weights replace the first's.
    send(&mut h, &[ProbeLayer(1), ProbeHead(1)]);
    let s = screen(&h);
    assert!(s.contains("layer 1/2 head 1/4"), "{s}");
    let want = expected()["attention"][1]["weights"][1][3][1]
        .as_f64()
        .unwrap();
    assert!(s.contains(&format!("{want:.2}")), "{s}");
    // No line is wider than the screen, and the grid is not squeezed: keys take two columns each.
    assert!(s.lines().all(|l| l.chars().count() <= 80));
}

#[test]
fn z_zeroes_the_super_weight_under_the_cursor_reruns_and_u_undoes() {
    let path = planted();
    let mut h = open_file_with(
        &path,
        Some("model.layers.1.mlp.down_proj.weight"),
        ColorLevel::None,
    );
    h.work();
    let next = |h: &Harness| h.forward.result.as_ref().unwrap().as_ref().unwrap().next[0].id;
    h.focus = Focus::Tensor;
    // The planted super weight: row 11, column 20, in the values grid.
    for _ in 0..11 {
        send(&mut h, &[Down]);
    }
    for _ in 0..20 {
        send(&mut h, &[Right]);
    }
    // Run the text, then hide the panel to see the grid again: the result stays.
    send(&mut h, &[Forward, Submit]);
    let before = next(&h);
    send(&mut h, &[Forward]);
    send(&mut h, &[ZeroCell]);
    assert!(h.doc.unsaved(), "a zeroed weight is an unsaved edit");
    let after = next(&h);
    let zero = &expected()["zero"];
    assert_eq!(
        u64::from(before),
        zero["baseline"][0]["id"].as_u64().unwrap()
    );
    assert_eq!(u64::from(after), zero["edited"][0]["id"].as_u64().unwrap());
    send(&mut h, &[Forward, Submit]);
    let s = screen(&h);
    // The byte 0x06, as the next-token line shows it: as it reads, escaped at the edge.
    assert!(s.contains("zeroed: \"\\x06\" 0.5% -> \"*\""), "{s}");
    let weight = app_support::values(&h.app, "model.layers.1.mlp.down_proj.weight");
    assert_eq!(weight[11 * 64 + 20], 0.0);
    send(&mut h, &[Undo]);
    assert_eq!(next(&h), before);
}

#[test]
fn the_outliers_list_the_super_weight_and_j_puts_the_values_cursor_on_it() {
    let mut h = ran();
    let want = &expected()["super_weights"][0];
    let (row, col) = (
        want["row"].as_u64().unwrap() as usize,
        want["col"].as_u64().unwrap() as usize,
    );
    assert!(
        hints(&h.app).contains(&("J".to_owned(), "super weight")),
        "J is hinted once a run found a super weight"
    );
    send(&mut h, &[CycleProbe, CycleProbe, CycleProbe]);
    let s = screen(&h);
    assert!(
        s.contains("super weights (down_proj |out|>50) · J jumps"),
        "{s}"
    );
    let listed = format!("  {} [{row},{col}]", want["layer"].as_u64().unwrap());
    assert!(s.contains(&listed), "{listed} not in\n{s}");
    assert!(s.contains(want["path"].as_str().unwrap()), "{s}");
    assert!(s.lines().all(|l| l.chars().count() <= 80));
    let before = h.forward.result.as_ref().unwrap().as_ref().unwrap().next[0].id;
    send(&mut h, &[JumpToSuperWeight]);
    assert!(!h.forward.open, "the panel steps aside for the values grid");
    assert_eq!(h.app.selected_path(), want["path"].as_str().unwrap());
    assert_eq!(h.tensor.view, View::Values);
    let grid = h.tensor.grid;
    assert_eq!((grid.rows.cursor, grid.cols.cursor), (row, col));
    let s = screen(&h);
    assert!(s.contains(&format!("[{row}, {col}]")), "{s}");
    // The same cell in the heatmap, whose cursor is the grid's.
    send(&mut h, &[CycleView, CycleView]);
    assert_eq!(h.tensor.view, View::Heatmap);
    assert_eq!(h.tensor.grid, grid);
    // z zeroes it and the panel's run shows the next token torch gives with it zeroed.
    send(&mut h, &[ZeroCell]);
    let zero = &expected()["zero"];
    assert_eq!(
        zero["zero"][0],
        format!("{}[{row},{col}]", want["path"].as_str().unwrap())
    );
    let after = h.forward.result.as_ref().unwrap().as_ref().unwrap().next[0].id;
    assert_eq!(
        u64::from(before),
        zero["baseline"][0]["id"].as_u64().unwrap()
    );
    assert_eq!(u64::from(after), zero["edited"][0]["id"].as_u64().unwrap());
}
