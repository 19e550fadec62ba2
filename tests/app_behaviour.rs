//! The app's behaviour asked for by issue 12, through `update()` and the rendered 80x24 screen:
//! histogram, heatmap cursor and glyphs, architecture beside a checkpoint, the error popup, the
//! re-init dialog, the picker, text fields, the header, the module table, focus and hints, globs,
//! the kept forward plan, and how statistics speak of NaN and empty tensors.

mod app_support;

use app_support::{
    Harness, demo, render, selected_path, send, text, type_text, with_model, with_theme,
};
use paramscope::app::action::Action::*;
use paramscope::app::field::Edit;
use paramscope::app::job::OpenSpec;
use paramscope::app::state::{Focus, Message, Mode, View};
use paramscope::app::theme::ColorLevel;
use paramscope::model::{Model, Module, ModuleKind, ParamStore};
use paramscope::tensor::Tensor;

fn screen(app: &Harness) -> String {
    text(&render(app, 80, 24))
}

/// A model of one module holding `tensors`.
fn tensors(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Model {
    let mut store = ParamStore::default();
    let mut root = Module::new("", ModuleKind::Unknown);
    for (name, shape, values) in tensors {
        let id = store.insert(Tensor::from_f32(shape.clone(), values));
        root.params.push(((*name).into(), id));
    }
    Model {
        root: root.into(),
        store,
        metadata: std::collections::BTreeMap::default(),
    }
}

#[test]
fn the_histogram_draws_flat_data_flat_and_toggles_log_counts() {
    let values: Vec<f32> = (0..10_080).map(|i| i as f32).collect();
    let mut app = with_model(tensors(&[("flat", vec![10_080], values)]), "t", None);
    app.work();
    send(&mut app, &[CycleView]);
    assert_eq!(app.tensor.view, View::Histogram);
    let shown = screen(&app);
    let bars: Vec<&str> = shown
        .lines()
        .filter(|l| l.contains('█') && l.contains("││"))
        .collect();
    assert!(!bars.is_empty(), "{shown}");
    // Every bar of evenly spread values reaches the top: the top row is as full as the bottom.
    let count = |line: &str| line.matches('█').count();
    assert_eq!(count(bars[0]), count(bars[bars.len() - 1]), "{shown}");
    assert!(
        shown.contains("1% 101"),
        "quantiles in the stats block:\n{shown}"
    );
    send(&mut app, &[ToggleLog]);
    assert!(app.tensor.log_counts);
    assert!(screen(&app).contains("log · "), "{}", screen(&app));
}

#[test]
fn the_heatmap_has_a_cursor_with_its_value_and_a_vector_is_a_strip() {
    let mut app = with_theme(
        tensors(&[
            ("m", vec![2, 3], vec![-0.5, 0.0, 0.5, 1.0, -1.0, 0.25]),
            ("v", vec![4], vec![-1.0, -0.5, 0.5, 1.0]),
        ]),
        "t",
        Some("m"),
        ColorLevel::None,
    );
    send(
        &mut app,
        &[CycleView, CycleView, FocusNext, Right, Right, Down],
    );
    assert_eq!(app.tensor.view, View::Heatmap);
    let shown = screen(&app);
    assert!(shown.contains("[1, 2] = 0.2500"), "{shown}");
    // Without colour the sign is in the glyph: -1 and +1 differ.
    assert!(shown.contains('■') && shown.contains('█'), "{shown}");
    send(&mut app, &[FocusNext, Down, FocusNext, Right, Right]);
    assert_eq!(selected_path(&app), "v");
    let shown = screen(&app);
    assert!(shown.contains("[2] = 0.5000"), "{shown}");
    // A strip: one row of cells, the readout right under it.
    let strip = shown.lines().position(|l| l.contains('■')).unwrap();
    assert!(
        shown.lines().nth(strip + 1).unwrap().contains("[2] ="),
        "{shown}"
    );
}

#[test]
fn an_architecture_beside_a_checkpoint_is_used_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let model = paramscope::model::demos::build("rgnet", 0).unwrap();
    let (tensors, mut metadata) = paramscope::checkpoint::save::contents(&model);
    metadata.remove(paramscope::model::arch::METADATA_KEY);
    let file = dir.path().join("net.safetensors");
    paramscope::io::safetensors::save(&file, &tensors, &metadata).unwrap();
    let spec = |arch: Option<std::path::PathBuf>| OpenSpec {
        model: file.display().to_string(),
        arch,
        seed: 0,
    };
    // Without it, the forward error says what is missing.
    let opened = paramscope::app::work::open::open(&spec(None)).unwrap();
    assert!(opened.notices.is_empty());
    let mut app = with_model(opened.model, "net", None);
    send(&mut app, &[Forward]);
    let shown = screen(&app);
    assert!(
        shown.contains("only chains of Linear") && shown.contains("run without an"),
        "{shown}"
    );
    assert!(shown.contains("give --arch FILE"), "{shown}");
    // --arch, then the same text beside the file.
    let arch = dir.path().join("rgnet.txt");
    std::fs::write(&arch, paramscope::model::arch::print(&model.root)).unwrap();
    let given = paramscope::app::work::open::open(&spec(Some(arch.clone()))).unwrap();
    let mut app = with_model(given.model, "net", None);
    send(&mut app, &[Forward]);
    assert!(matches!(app.forward.result, Some(Ok(_))));
    std::fs::rename(&arch, dir.path().join("net.arch.txt")).unwrap();
    let beside = paramscope::app::work::open::open(&spec(None)).unwrap();
    assert_eq!(beside.notices.len(), 1);
    assert!(
        beside.notices[0].starts_with("architecture from"),
        "{:?}",
        beside.notices
    );
}

#[test]
fn a_long_error_opens_a_popup_that_scrolls_and_closes() {
    let mut app = demo("mlp");
    let deep = format!(
        "/nonexistent/{}/model.safetensors",
        "very-long-folder-name/".repeat(6)
    );
    send(&mut app, &[OpenWrite, Edit(Edit::DeleteToStart)]);
    type_text(&mut app, &deep);
    send(&mut app, &[Submit]);
    let Mode::Popup(popup) = app.mode.clone() else {
        panic!("{:?}", app.mode)
    };
    assert!(popup.text.contains("very-long-folder-name"));
    let shown = screen(&app);
    assert!(shown.contains(" error "), "{shown}");
    send(&mut app, &[Down, Up, Cancel]);
    assert_eq!(app.mode, Mode::Browse);
    assert!(matches!(app.message, Some(Message::Error(_))));
}

#[test]
fn the_init_dialog_picks_by_typing_keeps_biases_default_and_remembers() {
    let mut app = demo("rgnet");
    send(&mut app, &[Up, Up, OpenInit]);
    type_text(&mut app, "kaim");
    let Mode::Init(d) = app.mode.clone() else {
        panic!()
    };
    assert_eq!(d.candidates(), ["kaiming_uniform", "kaiming_normal"]);
    assert_eq!(d.scheme, "kaiming_uniform");
    // mode and nonlinearity cycle; then apply: fan-based on weights, biases nn.Linear's default.
    send(&mut app, &[Right, Down, Down, Right, Submit]);
    assert_eq!(app.mode, Mode::Browse, "{:?}", app.message);
    let Some(Message::Info(done)) = app.message.clone() else {
        panic!("{:?}", app.message)
    };
    assert!(
        done.starts_with("kaiming_normal on 0.block0 (biases: default) · 4 tensor(s)"),
        "{done}"
    );
    send(&mut app, &[OpenInit]);
    let Mode::Init(d) = app.mode.clone() else {
        panic!()
    };
    assert_eq!(d.scheme, "kaiming_normal", "the last choice is remembered");
    assert_eq!(d.args[1].1.text(), "fan_out");
}

#[test]
fn the_picker_opens_a_typed_path_and_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("written.safetensors");
    paramscope::checkpoint::save::save_model(
        &paramscope::model::demos::build("mlp", 0).unwrap(),
        &file,
    )
    .unwrap();
    let mut app = demo("rgnet");
    send(&mut app, &[OpenModels]);
    type_text(&mut app, &format!("{}/wri", dir.path().display()));
    send(&mut app, &[Complete]);
    let Mode::Open(picker) = app.mode.clone() else {
        panic!()
    };
    assert_eq!(picker.field.value(), file.display().to_string());
    send(&mut app, &[Submit]);
    assert_eq!(app.doc.source, file.display().to_string());
    assert_eq!(app.doc.total_params(), 49);
}

#[test]
fn text_fields_take_ctrl_w_ctrl_u_home_and_end() {
    let mut app = demo("mlp");
    send(&mut app, &[OpenWrite]);
    send(&mut app, &[Edit(Edit::DeleteWord)]);
    let Mode::Write(field) = app.mode.clone() else {
        panic!()
    };
    assert_eq!(field.value(), "", "the whole name was one word");
    type_text(&mut app, "out/x");
    send(
        &mut app,
        &[
            Edit(Edit::Start),
            Type('.'),
            Type('/'),
            Edit(Edit::End),
            Type('y'),
        ],
    );
    let Mode::Write(field) = app.mode.clone() else {
        panic!()
    };
    assert_eq!(field.value(), "./out/xy");
    send(&mut app, &[Edit(Edit::DeleteToStart)]);
    let Mode::Write(field) = app.mode.clone() else {
        panic!()
    };
    assert_eq!(field.value(), "");
}

#[test]
fn the_header_keeps_the_counts_and_the_marker_with_a_long_path() {
    let source = format!("/data/{}/model.safetensors", "checkpoints/".repeat(8));
    let mut app = with_model(
        paramscope::model::demos::build("mlp", 0).unwrap(),
        &source,
        None,
    );
    send(&mut app, &[OpenInit, Right, Submit]);
    let title = screen(&app).lines().next().unwrap().to_owned();
    assert!(title.contains('…'), "{title}");
    assert!(title.contains("49 params · 4 tensors"), "{title}");
    assert!(title.contains("● unsaved"), "{title}");
    assert!(title.contains("model.safetensors"), "{title}");
}

#[test]
fn the_module_table_scrolls_to_its_last_row() {
    let layers = (0..40)
        .map(|i| format!("  ({i}): Linear(in_features=2, out_features=2, bias=True)"))
        .collect::<Vec<_>>()
        .join("\n");
    let root = paramscope::model::arch::parse(&format!("Sequential(\n{layers}\n)\n")).unwrap();
    let mut app = with_model(
        paramscope::model::arch::instantiate(&root, 0).unwrap(),
        "arch",
        None,
    );
    send(&mut app, &[Home]);
    assert!(!screen(&app).contains("39.bias"));
    send(&mut app, &[FocusNext, End]);
    assert_eq!(app.tensor.module.cursor, 79);
    let shown = screen(&app);
    assert!(shown.contains("39.bias"), "{shown}");
    assert!(shown.contains("numel"), "the heading stays:\n{shown}");
}

#[test]
fn focus_stays_after_f_and_hints_follow_the_context() {
    let mut app = with_model(
        paramscope::model::demos::build("shared", 0).unwrap(),
        "demo:shared",
        Some("2.weight"),
    );
    let hints = |app: &Harness| screen(app).lines().last().unwrap().to_owned();
    assert!(hints(&app).contains("a alias"), "{}", hints(&app));
    assert!(!hints(&app).contains("u undo"));
    send(&mut app, &[Forward]);
    assert_eq!(app.focus, Focus::Tree, "f leaves the focus where it was");
    send(&mut app, &[Forward, Home]);
    assert!(!hints(&app).contains("a alias"), "not on a module");
    assert!(hints(&app).contains("o open"), "{}", hints(&app));
    send(&mut app, &[OpenInit, Right, Submit, Cancel]);
    assert!(hints(&app).contains("u undo"), "{}", hints(&app));
}

#[test]
fn a_filter_takes_globs_and_fetches_the_statistics_of_what_it_selects() {
    let mut app = demo("rgnet");
    send(&mut app, &[StartFilter]);
    type_text(&mut app, "block2.*.bias");
    assert_eq!(selected_path(&app), "0.block2.0.bias");
    let (_, id) = app.doc.model.find_param("0.block2.0.bias").unwrap();
    assert!(
        app.summary(id).is_some(),
        "the selected tensor's statistics are there"
    );
    send(&mut app, &[Submit, Cancel]);
    assert_eq!(
        selected_path(&app),
        "0.block2.0.bias",
        "clearing keeps the selection"
    );
}

#[test]
fn the_worker_keeps_the_forward_plan_until_a_reinit() {
    let mut app = demo("mlp");
    send(&mut app, &[Forward, SeedUp, BatchUp]);
    assert_eq!(app.worker.plans_built, 1, "three passes, one plan");
    send(&mut app, &[OpenInit, Right, Submit]);
    assert_eq!(app.worker.plans_built, 2, "a re-init makes a new one");
    send(&mut app, &[SeedUp]);
    assert_eq!(app.worker.plans_built, 2);
}

#[test]
fn statistics_say_over_finite_values_and_empty_tensors_say_so() {
    let mut app = with_model(
        tensors(&[
            ("nan", vec![3], vec![1.0, f32::NAN, 3.0]),
            ("none", vec![0], vec![]),
        ]),
        "t",
        Some("nan"),
    );
    assert!(
        screen(&app).contains("(over finite values)"),
        "{}",
        screen(&app)
    );
    send(&mut app, &[Down]);
    let shown = screen(&app);
    assert!(shown.contains("(empty)"), "{shown}");
    assert!(!shown.contains("min nan"), "{shown}");
}

/// Issue 19: the undo message printed a re-init's label (module paths from the file) raw. The
/// state now holds every message raw and the status bar escapes what it draws, whoever wrote it.
#[test]
fn the_status_bar_escapes_an_undone_labels_module_path() {
    let mut h = demo("mlp");
    h.doc.undo.push(paramscope::app::state::InitRecord {
        label: "zeros on evil\u{1b}]0;owned\u{7}.\u{202e}gpj".into(),
        changes: Vec::new(),
    });
    send(&mut h, &[Undo]);
    let shown = screen(&h);
    assert!(
        !shown.contains(['\u{1b}', '\u{7}', '\u{202e}']),
        "a raw control reached the screen"
    );
    assert!(
        shown.contains("undid zeros on evil\\x1b]0;owned\\x07.\\u{202e}gpj"),
        "{shown}"
    );
    h.message = Some(Message::Error("no module \u{1b}[2J".into()));
    assert!(screen(&h).contains("✗ no module \\x1b[2J"));
}
