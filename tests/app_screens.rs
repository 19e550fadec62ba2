//! Whole screens at 80x24 as named insta snapshots, style assertions where colour carries meaning
//! (snapshots drop it), every screen at odd sizes down to 0x0 without a panic, and the README's
//! screenshot rendered from a screen to SVG.

mod app_support;

use app_support::{Harness, demo, find, render, send, text, type_text, with_model};
use paramscope::app::action::Action::{self, *};
use paramscope::app::state::App;
use paramscope::app::theme::{ColorLevel, Theme};
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

fn screen(app: &App) -> String {
    text(&render(app, 80, 24))
}

fn shared_at(name: &str) -> Harness {
    with_model(
        paramscope::model::demos::build("shared", 0).unwrap(),
        "demo:shared",
        Some(name),
    )
}

#[test]
fn demo_tree() {
    insta::assert_snapshot!("demo_tree", screen(&demo("mlp")));
}

#[test]
fn tensor_views() {
    let mut app = with_model(
        paramscope::model::demos::build("rgnet", 0).unwrap(),
        "demo:rgnet",
        Some("0.block0.2.weight"),
    );
    insta::assert_snapshot!("tensor_values", screen(&app));
    send(&mut app, &[CycleView]);
    insta::assert_snapshot!("tensor_histogram", screen(&app));
    send(&mut app, &[CycleView]);
    insta::assert_snapshot!("tensor_heatmap", screen(&app));
}

#[test]
fn module_summary() {
    let mut app = demo("rgnet");
    send(&mut app, &[Up, Up]);
    insta::assert_snapshot!("module_summary", screen(&app));
}

#[test]
fn help() {
    let mut app = demo("mlp");
    send(&mut app, &[ToggleHelp]);
    insta::assert_snapshot!("help", screen(&app));
}

#[test]
fn init_dialog() {
    let mut app = demo("rgnet");
    send(&mut app, &[Up, Up, OpenInit]);
    type_text(&mut app, "xav");
    send(&mut app, &[Down]);
    insta::assert_snapshot!("init_dialog", screen(&app));
}

#[test]
fn forward_panel() {
    let mut app = demo("mlp");
    send(&mut app, &[Forward]);
    insta::assert_snapshot!("forward_panel", screen(&app));
}

#[test]
fn after_a_reinit_the_pane_shows_before_and_after() {
    let mut app = shared_at("2.weight");
    // normal(0, 1) on the shared layer, through path 2.
    send(
        &mut app,
        &[OpenInit, Right, Right, Right, Right, Right, Submit],
    );
    insta::assert_snapshot!("reinit_before_after", screen(&app));
}

/// A checkpoint named as a BERT is (`encoder.layer.N....`) holding values near 1e-5, in `dir`,
/// opened at `select` in the app.
fn small_bert(dir: &std::path::Path, select: &str) -> Harness {
    use paramscope::tensor::Tensor;
    let names = [
        "embeddings.word_embeddings.weight",
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.0.output.LayerNorm.weight",
        "encoder.layer.1.attention.self.query.weight",
        "encoder.layer.1.output.LayerNorm.weight",
    ];
    let owned: Vec<(String, Tensor)> = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let values: Vec<f32> = (0..2048u16)
                .map(|i| (f32::from(i) - 1000.0 + f32::from(k as u8)) * 2.5e-8)
                .collect();
            ((*name).to_owned(), Tensor::from_f32(vec![64, 32], &values))
        })
        .collect();
    let tensors: Vec<(String, &Tensor)> = owned.iter().map(|(n, t)| (n.clone(), t)).collect();
    let file = dir.join("small.safetensors");
    paramscope::io::safetensors::save(&file, &tensors, &std::collections::BTreeMap::new()).unwrap();
    let spec = paramscope::app::job::OpenSpec {
        model: file.display().to_string(),
        arch: None,
        seed: 0,
    };
    let opened = paramscope::app::work::open::open(&spec).unwrap();
    with_model(opened.model, "small.safetensors", Some(select))
}

#[test]
fn small_numbers_keep_their_exponent_at_80_columns() {
    let dir = tempfile::tempdir().unwrap();
    let app = small_bert(dir.path(), "encoder.layer.1.attention.self.query.weight");
    insta::assert_snapshot!("small_numbers", screen(&app));
}

#[test]
fn module_tables_keep_the_names_that_differ_at_80_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = small_bert(dir.path(), "encoder.layer.1.attention.self.query.weight");
    send(&mut app, &[Home]);
    insta::assert_snapshot!("long_names", screen(&app));
}

#[test]
fn the_heatmap_scale_is_robust_and_says_what_it_clips() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = small_bert(dir.path(), "encoder.layer.1.attention.self.query.weight");
    send(&mut app, &[CycleView, CycleView]);
    let shown = screen(&app);
    // 2048 evenly spread values: the 99th percentile of |x| is below the largest, about 1% beyond.
    assert!(
        shown.contains("-2.58e-5 █████████ 2.58e-5 p99, 1.0% clipped"),
        "{shown}"
    );
    send(&mut app, &[ToggleHeatScale]);
    let shown = screen(&app);
    assert!(
        shown.contains("-2.62e-5 █████████ 2.62e-5 absmax"),
        "{shown}"
    );
}

/// The text of screen row `y`.
fn row(buf: &Buffer, y: u16) -> String {
    text(buf)
        .lines()
        .nth(usize::from(y))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_tree_is_readable_at_80_columns_and_shows_the_full_repr_when_wide() {
    let mut app = demo("rgnet");
    let buf = render(&app, 80, 24);
    // The compact label, and the subtree's parameter count against the pane's right border.
    let (_, y) = find(&buf, "(0): Linear(4→8)").expect("a compact Linear label");
    assert!(
        row(&buf, y).contains("(0): Linear(4→8)     40│"),
        "{}",
        text(&buf)
    );
    let (_, y) = find(&buf, "▾ Sequential").unwrap();
    assert!(row(&buf, y).contains("309│"), "{}", row(&buf, y));
    assert!(find(&buf, "(block0): Sequential   76│").is_some());
    // The module pane: the compact repr when the whole one does not fit, and an aligned table.
    send(&mut app, &[Up]);
    let buf = render(&app, 80, 24);
    assert!(find(&buf, "│(0): Linear(4→8) ").is_some(), "{}", text(&buf));
    assert!(
        find(&buf, "numel    mean    std│").is_some(),
        "{}",
        text(&buf)
    );
    assert!(
        find(&buf, "[8, 4]    32 -0.0243 0.2794│").is_some(),
        "{}",
        text(&buf)
    );
    assert!(find(&buf, "· all F32").is_some(), "one dtype, said once");
    // Wider, the module pane has PyTorch's whole repr.
    let buf = render(&app, 140, 30);
    assert!(
        find(
            &buf,
            "│(0): Linear(in_features=4, out_features=8, bias=True)"
        )
        .is_some(),
        "{}",
        text(&buf)
    );
    // Wide enough, the tree itself shows PyTorch's repr.
    let buf = render(&app, 200, 40);
    assert!(
        find(
            &buf,
            "(0): Linear(in_features=4, out_features=8, bias=True)"
        )
        .is_some(),
        "{}",
        text(&buf)
    );
}

#[test]
fn shared_highlight() {
    let app = shared_at("2.weight");
    let buf = render(&app, 80, 24);
    insta::assert_snapshot!("shared_highlight", text(&buf));
    let (x, y) = find(&buf, "⇄ alias").expect("the other path is marked");
    let cell = &buf[(x, y)];
    assert_eq!(
        cell.fg,
        Color::Rgb(255, 120, 220),
        "the alias has its own colour"
    );
    assert!(
        cell.modifier
            .contains(Modifier::UNDERLINED | Modifier::BOLD)
    );
    let (_, selected_row) = find(&buf, "weight [8, 8] F32 ⇄  ").unwrap();
    assert!(
        buf[(3, selected_row)].modifier.contains(Modifier::REVERSED),
        "the selection is reversed, which needs no colour"
    );
    assert!(find(&buf, "⇄ shared with 4.weight").is_some());
}

#[test]
fn without_colour_nothing_is_coloured_and_markers_remain() {
    let mut app = shared_at("2.weight");
    app.screen.theme = Theme {
        level: ColorLevel::None,
    };
    for view in 0..3 {
        let buf = render(&app, 80, 24);
        for cell in buf.content() {
            assert_eq!(
                (cell.fg, cell.bg),
                (Color::Reset, Color::Reset),
                "view {view}"
            );
        }
        assert!(find(&buf, "⇄ alias").is_some());
        app.hold(CycleView);
    }
}

#[test]
fn colours_degrade_to_256_and_16() {
    for (level, expect) in [
        (ColorLevel::Ansi256, Color::Indexed(212)),
        (ColorLevel::Ansi16, Color::Magenta),
    ] {
        let mut app = shared_at("2.weight");
        app.screen.theme = Theme { level };
        let buf = render(&app, 80, 24);
        let (x, y) = find(&buf, "⇄ alias").unwrap();
        assert_eq!(buf[(x, y)].fg, expect);
        for cell in buf.content() {
            assert!(!matches!(cell.fg, Color::Rgb(..)) && !matches!(cell.bg, Color::Rgb(..)));
        }
    }
}

/// Every screen the app has, reached by these actions from `demo:shared`.
fn every_screen() -> Vec<(&'static str, Vec<Action>)> {
    vec![
        ("values", vec![]),
        ("histogram", vec![CycleView]),
        ("heatmap", vec![CycleView, CycleView]),
        ("module", vec![Home]),
        ("filter", vec![StartFilter, Type('b')]),
        ("forward", vec![Forward]),
        ("init", vec![OpenInit, Right, Right, Right]),
        ("write", vec![OpenWrite]),
        ("models", vec![OpenModels]),
        ("help", vec![ToggleHelp, PageDown]),
        ("ask", vec![OpenInit, Submit, Quit]),
        ("values focused", vec![FocusNext, End, Right]),
    ]
}

#[test]
fn every_screen_renders_at_odd_sizes_and_tiny_ones() {
    let sizes = [
        (0, 0),
        (1, 1),
        (2, 1),
        (1, 3),
        (3, 7),
        (7, 3),
        (17, 5),
        (24, 6),
        (59, 13),
        (60, 9),
        (61, 4),
        (80, 24),
        (133, 41),
        (300, 100),
    ];
    for (name, actions) in every_screen() {
        let mut app = shared_at("2.weight");
        send(&mut app, &actions);
        for &(w, h) in &sizes {
            // As the terminal would: a resize, then a draw.
            app.hold(Resize(w, h));
            app.work();
            let buf = render(&app, w, h);
            assert_eq!(
                buf.area.area(),
                u32::from(w) * u32::from(h),
                "{name} {w}x{h}"
            );
        }
    }
}

#[test]
fn widgets_in_odd_areas_stay_inside_them() {
    // A screen drawn into a buffer bigger than the area leaves the rest untouched.
    let mut app = shared_at("2.weight");
    send(&mut app, &[Forward]);
    let area = ratatui::layout::Rect::new(3, 2, 41, 13);
    let mut buf = Buffer::empty(ratatui::layout::Rect::new(0, 0, 50, 20));
    ratatui::widgets::Widget::render(&*app, area, &mut buf);
    for y in 0..20 {
        for x in 0..50 {
            if !area.contains(ratatui::layout::Position { x, y }) {
                assert_eq!(buf[(x, y)].symbol(), " ", "{x},{y}");
            }
        }
    }
}

/// The README's screenshot: a screen rendered to SVG by `svg`; `UPDATE_SCREENSHOT=1` rewrites it.
#[test]
fn readme_screenshot_is_current() {
    let mut app = shared_at("2.weight");
    send(&mut app, &[CycleView, CycleView]);
    let svg = svg(&render(&app, 80, 24));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/app.svg");
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/assets")).unwrap();
        std::fs::write(path, &svg).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == svg,
        "assets/app.svg is out of date: run UPDATE_SCREENSHOT=1 cargo test --test app_screens"
    );
}

/// A buffer as SVG: one rect per background run, one text per cell, in the buffer's colours.
fn svg(buf: &Buffer) -> String {
    use std::fmt::Write as _;
    const CW: f64 = 9.0;
    const CH: f64 = 18.0;
    let area = buf.area;
    let (w, h) = (f64::from(area.width) * CW, f64::from(area.height) * CH);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"DejaVu Sans Mono, Menlo, monospace\" font-size=\"15\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#16161c\"/>\n"
    );
    for y in 0..area.height {
        for x in 0..area.width {
            let cell = &buf[(x, y)];
            let (mut fg, mut bg) = (rgb(cell.fg, "#d8d8e0"), rgb(cell.bg, "#16161c"));
            if cell.modifier.contains(Modifier::REVERSED) {
                std::mem::swap(&mut fg, &mut bg);
            }
            let (px, py) = (f64::from(x) * CW, f64::from(y) * CH);
            if bg != "#16161c" {
                let _ = writeln!(
                    out,
                    "<rect x=\"{px}\" y=\"{py}\" width=\"{CW}\" height=\"{CH}\" fill=\"{bg}\"/>"
                );
            }
            let symbol = cell.symbol();
            if symbol == "▀" {
                let _ = writeln!(
                    out,
                    "<rect x=\"{px}\" y=\"{py}\" width=\"{CW}\" height=\"{}\" fill=\"{fg}\"/>",
                    CH / 2.0
                );
            } else if symbol.trim() != "" {
                let escaped = symbol
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                let weight = if cell.modifier.contains(Modifier::BOLD) {
                    " font-weight=\"bold\""
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "<text x=\"{px}\" y=\"{}\" fill=\"{fg}\"{weight}>{escaped}</text>",
                    py + CH * 0.75
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// A colour as `#rrggbb`, with `default` for the terminal's own.
fn rgb(color: Color, default: &str) -> String {
    match color {
        Color::Rgb(r, g, b) => format!("#{r:02x}{g:02x}{b:02x}"),
        _ => default.to_owned(),
    }
}
