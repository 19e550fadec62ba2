//! `update()` driven by actions alone, without a terminal: every action, and the worker's replies.

mod app_support;

use app_support::{demo, find, render, send, text, with_model, work};
use paramscope::app::action::Action::{self, *};
use paramscope::app::state::{App, Focus, Input, Message, Mode, Question, View};
use paramscope::app::update::update;
use paramscope::model::{Model, Module, ModuleKind, ParamStore};
use paramscope::tensor::Tensor;

fn selected_path(app: &App) -> &str {
    &app.outline.nodes[app.selected].path
}

fn values(app: &App, name: &str) -> Vec<f32> {
    let (_, id) = app.model.find_param(name).unwrap();
    app.model.store.get(id).to_f32_vec().unwrap()
}

/// Every action leaves a screen that renders, at the size the app was told.
fn send_and_draw(app: &mut App, actions: &[Action]) {
    send(app, actions);
    let buf = render(app, app.size.0, app.size.1);
    assert_eq!(text(&buf).lines().count(), usize::from(app.size.1));
}

#[test]
fn the_first_parameter_is_selected_and_summarized_at_start() {
    let app = demo("mlp");
    assert_eq!(selected_path(&app), "0.weight");
    assert_eq!(
        app.summaries.len(),
        1,
        "a small tensor is summarized at once"
    );
    assert!(app.outbox.is_empty());
    assert!(app.dirty);
}

#[test]
fn moving_through_the_tree() {
    let mut app = demo("rgnet");
    send_and_draw(&mut app, &[Down]);
    assert_eq!(selected_path(&app), "0.block0.0.bias");
    send_and_draw(&mut app, &[Up, Up]);
    assert_eq!(selected_path(&app), "0.block0.0");
    send_and_draw(&mut app, &[Home]);
    assert_eq!(selected_path(&app), "");
    send_and_draw(&mut app, &[End]);
    assert_eq!(selected_path(&app), "1.bias");
    send_and_draw(&mut app, &[PageUp]);
    let after_page_up = app.visible.iter().position(|&n| n == app.selected).unwrap();
    assert_eq!(
        after_page_up,
        app.visible.len() - 1 - 20,
        "a page is the pane's 20 rows"
    );
    send_and_draw(&mut app, &[PageDown]);
    assert_eq!(selected_path(&app), "1.bias");
}

#[test]
fn left_collapses_then_goes_to_the_parent_and_right_expands() {
    let mut app = demo("rgnet");
    send(&mut app, &[Left]);
    assert_eq!(
        selected_path(&app),
        "0.block0.0",
        "a parameter's Left goes to its module"
    );
    let rows = app.visible.len();
    send(&mut app, &[Left]);
    assert_eq!(
        app.visible.len(),
        rows - 2,
        "the Linear's two parameters are hidden"
    );
    send(&mut app, &[Left]);
    assert_eq!(selected_path(&app), "0.block0");
    send(&mut app, &[Right]);
    assert_eq!(
        selected_path(&app),
        "0.block0.0",
        "an open module's Right enters it"
    );
    send(&mut app, &[Right]);
    assert_eq!(app.visible.len(), rows, "Right opens a closed module");
    send(&mut app, &[Toggle]);
    assert_eq!(app.visible.len(), rows - 2, "Enter toggles");
    send(&mut app, &[Toggle]);
    assert_eq!(app.visible.len(), rows);
}

#[test]
fn the_filter_keeps_matches_and_their_ancestors() {
    let mut app = demo("rgnet");
    send(&mut app, &[StartFilter]);
    assert_eq!(app.mode, Mode::Filter);
    for ch in "block2.2.biass".chars() {
        send(&mut app, &[Type(ch)]);
    }
    assert_eq!(app.visible.len(), 0, "nothing matches the typo");
    send(&mut app, &[Backspace]);
    assert_eq!(selected_path(&app), "0.block2.2.bias");
    assert_eq!(app.visible.len(), 5);
    send(&mut app, &[Up]);
    assert_eq!(selected_path(&app), "0.block2.2");
    send(&mut app, &[Submit]);
    assert_eq!(
        (app.mode.clone(), app.filter.as_str()),
        (Mode::Browse, "block2.2.bias")
    );
    send(&mut app, &[Cancel]);
    assert!(app.filter.is_empty(), "Esc in the panes clears the filter");
    send(&mut app, &[StartFilter, Type('x'), Cancel]);
    assert!(app.filter.is_empty() && app.mode == Mode::Browse);
}

#[test]
fn tab_moves_the_focus_and_arrows_then_move_the_values_cursor() {
    let mut app = demo("mlp");
    send(&mut app, &[FocusNext]);
    assert_eq!(app.focus, Focus::Tensor);
    send(&mut app, &[Down, Down, Right, Right, Right, Right, Right]);
    assert_eq!(
        (app.grid.row, app.grid.col),
        (2, 3),
        "clamped to the 4 columns"
    );
    send(&mut app, &[End]);
    assert_eq!(app.grid.row, 7);
    send(&mut app, &[Home, PageDown]);
    assert_eq!(app.grid.row, 7, "a page covers the 8 rows");
    send(&mut app, &[PageUp, Left]);
    assert_eq!((app.grid.row, app.grid.col), (0, 2));
    send(&mut app, &[FocusNext]);
    assert_eq!(app.focus, Focus::Tree);
}

#[test]
fn a_large_matrix_scrolls_by_moving_its_window() {
    let mut store = ParamStore::default();
    let values: Vec<f32> = (0..1000 * 300).map(|i| i as f32).collect();
    let id = store.insert(Tensor::from_f32(vec![1000, 300], &values));
    let mut root = Module::new("", ModuleKind::Unknown);
    root.params.push(("big".into(), id));
    let model = Model {
        root,
        store,
        metadata: std::collections::BTreeMap::default(),
    };
    let mut app = with_model(model, "big", Some("big"));
    assert_eq!(app.outbox.len(), 1, "1.2 MB goes to the worker");
    work(&mut app);
    assert!(app.pending.is_none() && app.summaries.len() == 1);
    send(&mut app, &[FocusNext, End]);
    assert_eq!(app.grid.row, 999);
    assert!(app.grid.row_offset > 900);
    for _ in 0..299 {
        update(&mut app, Right);
    }
    assert_eq!(app.grid.col, 299);
    assert!(app.grid.col_offset > 290);
    let buf = render(&app, 80, 24);
    assert!(find(&buf, "299999").is_some(), "{}", text(&buf));
}

#[test]
fn slices_of_an_nd_tensor() {
    let mut store = ParamStore::default();
    let values: Vec<f32> = (0..2 * 3 * 4 * 5).map(|i| i as f32).collect();
    let id = store.insert(Tensor::from_f32(vec![2, 3, 4, 5], &values));
    let mut root = Module::new("", ModuleKind::Unknown);
    root.params.push(("conv".into(), id));
    let model = Model {
        root,
        store,
        metadata: std::collections::BTreeMap::default(),
    };
    let mut app = with_model(model, "conv", Some("conv"));
    send(&mut app, &[NextSlice, NextSlice]);
    assert_eq!(app.grid.slice, 2);
    let buf = render(&app, 80, 24);
    assert!(find(&buf, "[0, 2, 0, 0]").is_some(), "{}", text(&buf));
    assert!(find(&buf, "40").is_some(), "slice 2 starts at 2·4·5");
    send(&mut app, &[PrevSlice, PrevSlice, PrevSlice]);
    assert_eq!(app.grid.slice, 0);
    for _ in 0..9 {
        update(&mut app, NextSlice);
    }
    assert_eq!(app.grid.slice, 5);
}

#[test]
fn views_cycle() {
    let mut app = demo("mlp");
    send(&mut app, &[CycleView]);
    assert_eq!(app.view, View::Histogram);
    send(&mut app, &[CycleView]);
    assert_eq!(app.view, View::Heatmap);
    send(&mut app, &[CycleView]);
    assert_eq!(app.view, View::Values);
}

#[test]
fn next_alias_walks_the_paths_of_a_tied_tensor() {
    let mut app = with_model(
        paramscope::model::demos::build("shared", 0).unwrap(),
        "demo:shared",
        Some("2.weight"),
    );
    send(&mut app, &[NextAlias]);
    assert_eq!(selected_path(&app), "4.weight");
    send(&mut app, &[NextAlias]);
    assert_eq!(selected_path(&app), "2.weight");
    send(&mut app, &[Home, NextAlias]);
    assert!(matches!(app.message, Some(Message::Info(_))));
    send(&mut app, &[Down, Down, NextAlias]);
    assert_eq!(
        selected_path(&app),
        "0.weight",
        "one path: nothing to jump to"
    );
}

#[test]
fn forward_runs_on_the_worker_and_its_input_changes() {
    let mut app = demo("mlp");
    update(&mut app, Forward);
    assert!(app.forward.open && app.forward.running.is_some());
    assert_eq!(app.outbox.len(), 1);
    work(&mut app);
    let result = app.forward.result.clone().unwrap().unwrap();
    assert_eq!(result.output.shape(), [2, 1]);
    assert_eq!(result.layers.len(), 3);
    assert!(
        result.layers[1].zeros > 0.0,
        "a ReLU zeroes some activations"
    );
    send(
        &mut app,
        &[BatchUp, BatchUp, BatchDown, SeedUp, SeedUp, SeedDown],
    );
    assert!(matches!(
        app.forward.input,
        Input::Random { batch: 3, seed: 1 }
    ));
    assert_eq!(
        app.forward.result.clone().unwrap().unwrap().output.shape(),
        [3, 1]
    );
    send(&mut app, &[Down, PageDown, Up, Home, End]);
    send(&mut app, &[Forward]);
    assert!(!app.forward.open);
    send(&mut app, &[Forward, Cancel]);
    assert!(!app.forward.open, "Esc hides the panel");
}

#[test]
fn a_stale_forward_reply_is_dropped() {
    let mut app = demo("mlp");
    update(&mut app, Forward);
    let first = app.outbox.pop().unwrap();
    update(&mut app, SeedUp);
    let mut replies = Vec::new();
    paramscope::app::worker::execute(first, &mut |r| replies.push(r));
    for r in replies {
        paramscope::app::update::receive(&mut app, r);
    }
    assert!(app.forward.result.is_none(), "the first run is outdated");
    work(&mut app);
    assert!(app.forward.result.is_some());
}

#[test]
fn reinit_through_one_path_changes_every_alias_and_undo_restores() {
    let mut app = with_model(
        paramscope::model::demos::build("shared", 0).unwrap(),
        "demo:shared",
        Some("2.weight"),
    );
    let before = values(&app, "4.weight");
    send(&mut app, &[Forward]);
    let output_before = app.forward.result.clone().unwrap().unwrap().output;
    send(&mut app, &[OpenInit]);
    let Mode::Init(dialog) = &app.mode else {
        panic!("the dialog opens")
    };
    assert_eq!(dialog.path, "2");
    assert!(dialog.weights && !dialog.biases, "a weight selects weights");
    assert_eq!(dialog.target(), "2.weight", "only the weight is written");
    let buf = render(&app, 80, 24);
    assert!(
        find(&buf, "re-initialize 2.weight").is_some(),
        "{}",
        text(&buf)
    );
    assert!(find(&buf, "writes 2.weight").is_some(), "{}", text(&buf));
    assert!(find(&buf, "at 2").is_none());
    // Scheme → zeros.
    send(&mut app, &[Right, Submit]);
    assert_eq!(
        app.message,
        Some(Message::Info(
            "re-initialized 1 tensor(s): zeros on 2.weight; u undoes".into()
        ))
    );
    assert!(app.mode == Mode::Browse && app.busy.is_none());
    assert!(values(&app, "4.weight").iter().all(|&v| v == 0.0));
    assert!(app.unsaved());
    let output_after = app.forward.result.clone().unwrap().unwrap().output;
    assert_ne!(output_before, output_after, "the forward pass ran again");
    send(&mut app, &[Forward]);
    let buf = render(&app, 80, 24);
    assert!(find(&buf, "before → after").is_some(), "{}", text(&buf));
    send(&mut app, &[Undo]);
    assert_eq!(values(&app, "4.weight"), before);
    assert_eq!(
        app.forward.result.clone().unwrap().unwrap().output,
        output_before
    );
    send(&mut app, &[Undo]);
    assert_eq!(app.message, Some(Message::Info("nothing to undo".into())));
}

#[test]
fn the_init_dialog_edits_schemes_arguments_targets_and_seed() {
    let mut app = demo("rgnet");
    send(&mut app, &[Home, OpenInit]);
    // default → zeros → ones → constant, whose one argument is val.
    send(&mut app, &[Right, Right, Right, Down]);
    send(&mut app, &[Backspace, Backspace, Backspace, Type('7')]);
    send(
        &mut app,
        &[
            Down,
            Type(' '),
            Down,
            Left,
            Down,
            Backspace,
            Type('4'),
            Type('x'),
        ],
    );
    let Mode::Init(d) = app.mode.clone() else {
        panic!("{:?}", app.mode)
    };
    assert_eq!(d.args, [("val", "7".to_owned())]);
    assert!(!d.weights && !d.biases);
    assert_eq!(d.seed, "4", "only digits go in the seed");
    send(&mut app, &[Submit]);
    let Mode::Init(d) = app.mode.clone() else {
        panic!("an empty plan is refused")
    };
    assert_eq!(d.error.as_deref(), Some("choose weights, biases, or both"));
    send(
        &mut app,
        &[Up, Up, Type(' '), Up, Backspace, Type('x'), Submit],
    );
    let Mode::Init(d) = app.mode.clone() else {
        panic!()
    };
    assert!(d.error.unwrap().contains("\"x\" is not a number"));
    send(&mut app, &[Backspace, Type('7'), Left, Right, Submit]);
    assert!(values(&app, "0.block3.2.weight").iter().all(|&v| v == 7.0));
    assert!(
        values(&app, "1.bias").iter().all(|&v| v != 7.0),
        "biases untouched"
    );
    send(&mut app, &[OpenInit, Cancel]);
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn write_asks_before_replacing_a_file_and_never_overwrites_the_source_silently() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("shared.safetensors");
    paramscope::io::model_file::save_model(
        &paramscope::model::demos::build("shared", 0).unwrap(),
        &source,
    )
    .unwrap();
    let spec = source.display().to_string();
    let model =
        paramscope::checkpoint::load(&spec, &paramscope::checkpoint::LoadOptions::default())
            .unwrap();
    let mut app = with_model(model, &spec, None);
    send(&mut app, &[OpenWrite]);
    let Mode::Write(default) = app.mode.clone() else {
        panic!()
    };
    assert_eq!(
        default,
        dir.path()
            .join("shared.reinit.safetensors")
            .display()
            .to_string()
    );
    send(&mut app, &[Type('x'), Backspace, Submit]);
    assert_eq!(app.message, Some(Message::Info(format!("wrote {default}"))));
    assert!(std::path::Path::new(&default).exists());
    // The same path again exists now: asked, and No leaves it.
    send(&mut app, &[OpenWrite, Submit]);
    assert!(matches!(app.mode, Mode::Ask(Question::Overwrite(_))));
    send(&mut app, &[No]);
    assert_eq!(app.mode, Mode::Browse);
    // The source itself: asked before anything is written.
    send(&mut app, &[OpenWrite]);
    for _ in 0..default.len() {
        update(&mut app, Backspace);
    }
    for ch in spec.chars() {
        update(&mut app, Type(ch));
    }
    send(&mut app, &[Submit]);
    assert_eq!(app.mode, Mode::Ask(Question::Overwrite(source.clone())));
    assert!(
        app.outbox.is_empty(),
        "nothing is written before the answer"
    );
    send(&mut app, &[Yes]);
    assert!(matches!(app.message, Some(Message::Info(ref m)) if m.starts_with("wrote")));
    send(&mut app, &[OpenWrite, Cancel]);
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn init_targets_are_named_as_what_is_written() {
    let mut app = demo("rgnet");
    let target = |app: &App| match &app.mode {
        Mode::Init(d) => d.target(),
        other => panic!("{other:?}"),
    };
    // On a bias: the bias only; toggling weights on makes it the whole layer.
    send(&mut app, &[Down, OpenInit]);
    assert_eq!(selected_path(&app), "0.block0.0.bias");
    assert_eq!(target(&app), "0.block0.0.bias");
    send(&mut app, &[Down, Type(' ')]);
    assert_eq!(target(&app), "0.block0.0");
    send(&mut app, &[Cancel, Up, Up, Up, OpenInit]);
    assert_eq!(selected_path(&app), "0.block0");
    assert_eq!(target(&app), "0.block0", "a block: every Linear under it");
    send(&mut app, &[Down, Down, Type(' ')]);
    assert_eq!(target(&app), "the weights under 0.block0");
    send(&mut app, &[Cancel, Home, OpenInit]);
    assert_eq!(target(&app), "the model");
}

#[test]
fn work_on_the_worker_shows_working_not_a_stuck_gauge() {
    let mut app = demo("mlp");
    update(&mut app, OpenInit);
    update(&mut app, Submit);
    assert!(app.busy.is_some() && !app.outbox.is_empty());
    let buf = render(&app, 80, 24);
    let status = text(&buf).lines().last().unwrap().to_owned();
    assert!(
        status.contains("re-initializing: default on 0.weight … working"),
        "{status}"
    );
    assert!(!status.contains('░') && !status.contains('%'), "{status}");
    work(&mut app);
    assert!(app.busy.is_none());
    let status = text(&render(&app, 80, 24))
        .lines()
        .last()
        .unwrap()
        .to_owned();
    assert!(!status.contains("working"), "{status}");
}

#[test]
fn the_unsaved_marker_follows_undo_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mlp.reinit.safetensors");
    let marker = |app: &App| find(&render(app, 80, 24), "● unsaved re-init").is_some();
    let mut app = demo("mlp");
    assert!(!app.unsaved() && !marker(&app));
    // Two re-inits, then undo both: back to the model as loaded, so nothing is unsaved.
    send(
        &mut app,
        &[OpenInit, Right, Submit, OpenInit, Right, Right, Submit],
    );
    assert!(app.unsaved() && marker(&app));
    send(&mut app, &[Undo]);
    assert!(app.unsaved(), "one re-init is still applied");
    send(&mut app, &[Undo]);
    assert!(
        !app.unsaved() && !marker(&app),
        "undone back to the loaded model"
    );
    send(&mut app, &[Quit]);
    assert!(app.quit, "nothing to lose, so no question");
    // Written after one re-init: saved; another re-init is not; undoing it is saved again.
    let mut app = demo("mlp");
    send(&mut app, &[OpenInit, Right, Submit, OpenWrite]);
    let Mode::Write(default) = app.mode.clone() else {
        panic!()
    };
    for _ in 0..default.len() {
        update(&mut app, Backspace);
    }
    for ch in out.display().to_string().chars() {
        update(&mut app, Type(ch));
    }
    send(&mut app, &[Submit]);
    assert!(!app.unsaved() && !marker(&app), "{:?}", app.message);
    send(&mut app, &[OpenInit, Right, Right, Submit]);
    assert!(app.unsaved());
    send(&mut app, &[Undo]);
    assert!(!app.unsaved(), "the state that was written");
    // Undo below the written state, then a different re-init: the written state is gone.
    send(&mut app, &[Undo, OpenInit, Right, Right, Submit]);
    assert!(
        app.unsaved(),
        "same depth as the write, but not what was written"
    );
    send(&mut app, &[Quit]);
    assert_eq!(app.mode, Mode::Ask(Question::QuitUnsaved));
}

#[test]
fn quitting_asks_when_reinits_are_unsaved() {
    let mut app = demo("mlp");
    send(&mut app, &[Quit]);
    assert!(app.quit);
    let mut app = demo("mlp");
    send(&mut app, &[OpenInit, Submit, Quit]);
    assert_eq!(app.mode, Mode::Ask(Question::QuitUnsaved));
    send(&mut app, &[No]);
    assert!(!app.quit);
    send(&mut app, &[Quit, Yes]);
    assert!(app.quit);
    let mut app = demo("mlp");
    send(&mut app, &[OpenInit, ForceQuit]);
    assert!(app.quit, "Ctrl-C quits from anywhere");
}

#[test]
fn another_model_opens_from_the_list() {
    let mut app = demo("mlp");
    send(&mut app, &[OpenModels]);
    assert_eq!(app.mode, Mode::Models(0));
    send(&mut app, &[Down, Down, Up, Down, Submit]);
    assert_eq!(app.source, "demo:shared");
    assert_eq!(app.model.total_params(), 121);
    assert_eq!(selected_path(&app), "0.weight");
    send(&mut app, &[OpenModels, Cancel]);
    assert_eq!(app.mode, Mode::Browse);
    send(&mut app, &[OpenInit, Submit, OpenModels, Submit]);
    assert!(
        matches!(app.message, Some(Message::Error(_))),
        "unsaved work is kept"
    );
    assert_eq!(app.source, "demo:shared");
}

#[test]
fn help_opens_scrolls_and_closes() {
    let mut app = demo("mlp");
    send(&mut app, &[ToggleHelp]);
    assert_eq!(app.mode, Mode::Help(0));
    send(&mut app, &[Down, PageDown, Up, PageUp, Down]);
    assert_eq!(app.mode, Mode::Help(1));
    send_and_draw(&mut app, &[Cancel]);
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn resize_and_the_mouse() {
    let mut app = demo("rgnet");
    send_and_draw(&mut app, &[Resize(50, 10)]);
    assert_eq!(app.size, (50, 10));
    send_and_draw(&mut app, &[End]);
    assert!(
        app.tree_offset > 0,
        "the 6-row pane scrolls to the last row"
    );
    send_and_draw(
        &mut app,
        &[
            Resize(120, 40),
            ScrollUp(5, 5),
            ScrollDown(5, 5),
            ScrollUp(5, 5),
        ],
    );
    assert_eq!(selected_path(&app), "1.weight");
    // Row 3 of the screen is the tree's third row.
    send(&mut app, &[Home, Click(5, 3)]);
    assert_eq!(selected_path(&app), "0");
    send(&mut app, &[Click(5, 3)]);
    assert!(!app.opened[app.selected], "a second click folds");
    send(&mut app, &[Click(100, 10)]);
    assert_eq!(app.focus, Focus::Tensor);
    send(&mut app, &[Cancel]);
    assert!(app.message.is_none());
}

#[test]
fn reinit_of_a_module_without_linears_says_so_and_changes_nothing() {
    let mut app = demo("mlp");
    send(&mut app, &[Home]);
    while selected_path(&app) != "1" {
        send(&mut app, &[Down]);
    }
    send(&mut app, &[OpenInit, Submit]);
    assert!(!app.unsaved(), "nothing was re-initialized");
    match &app.message {
        Some(Message::Error(text)) => assert!(text.contains("no Linear layer under"), "{text}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A model of tensors without elements (a zero-length dimension, leading or not) and a 0-D scalar.
fn degenerate_model() -> Model {
    let mut store = ParamStore::default();
    let mut root = Module::new("", ModuleKind::Unknown);
    let tensors = [
        ("lead0", vec![0, 3, 4], vec![]),
        ("zero", vec![0], vec![]),
        ("cols0", vec![3, 0], vec![]),
        ("both0", vec![0, 0], vec![]),
        ("mid0", vec![2, 0, 4], vec![]),
        ("scalar", vec![], vec![1.5]),
    ];
    for (name, shape, values) in tensors {
        let id = store.insert(Tensor::from_f32(shape, &values));
        root.params.push((name.into(), id));
    }
    Model {
        root,
        store,
        metadata: std::collections::BTreeMap::default(),
    }
}

#[test]
fn tensors_without_elements_render_and_take_every_key() {
    for name in ["lead0", "zero", "cols0", "both0", "mid0", "scalar"] {
        let mut app = with_model(degenerate_model(), "degenerate", Some(name));
        for view in 0..3 {
            send_and_draw(&mut app, &[FocusNext]);
            let keys = [
                NextSlice, NextSlice, PrevSlice, NextSlice, Down, Right, End, PageDown, Up, Left,
                Home, PageUp, End,
            ];
            for key in keys {
                send_and_draw(&mut app, &[key]);
            }
            let screen = text(&render(&app, 80, 24));
            if name == "scalar" {
                assert_eq!(app.grid.slice, 0);
            } else {
                if view != 1 {
                    assert!(screen.contains("(empty)"), "{name}, view {view}:\n{screen}");
                }
                // The tab row of the tensor pane, right of the tree's 33 columns.
                let tabs = screen.lines().find(|l| l.contains(" heatmap ")).unwrap();
                let tabs: String = tabs.chars().skip(33).collect();
                assert!(
                    !tabs.contains('['),
                    "no cursor index without elements: {tabs}"
                );
            }
            send_and_draw(&mut app, &[FocusNext, Up, Down, CycleView]);
            assert_eq!(selected_path(&app), name);
        }
    }
}

#[test]
fn decoding_past_the_end_gives_what_is_there_instead_of_panicking() {
    use paramscope::tensor::DType;
    use paramscope::tensor::decode::{decode_f64, decode_scalars};
    let bytes = paramscope::tensor::decode::encode_f32(&[1.0, 2.0, 3.0]);
    let mut out = Vec::new();
    decode_f64(DType::F32, &bytes, 2, 5, &mut out).unwrap();
    assert_eq!(out, [3.0]);
    decode_f64(DType::F32, &bytes, 7, 2, &mut out).unwrap();
    assert!(out.is_empty());
    decode_f64(DType::F32, &bytes, usize::MAX, usize::MAX, &mut out).unwrap();
    assert!(out.is_empty());
    assert!(decode_scalars(DType::F32, &[], 3, 4).unwrap().is_empty());
    assert_eq!(decode_scalars(DType::F32, &bytes, 1, 9).unwrap().len(), 2);
}

fn jobs(app: &App) -> Vec<&'static str> {
    use paramscope::app::worker::Job;
    app.outbox
        .iter()
        .map(|j| match j {
            Job::Summarize { .. } => "summarize",
            Job::Forward { .. } => "forward",
            Job::Init { .. } => "init",
            Job::Save { .. } => "save",
            Job::Load { .. } => "load",
        })
        .collect()
}

fn wait_message(app: &App) -> bool {
    app.message == Some(Message::Error("wait for the work in progress".into()))
}

#[test]
fn opening_writing_and_undoing_wait_for_the_work_in_progress() {
    let mut app = demo("mlp");
    // The worker is not run between these: the re-init is still in flight.
    update(&mut app, OpenInit);
    update(&mut app, Submit);
    assert_eq!(jobs(&app), ["init"]);
    update(&mut app, OpenModels);
    update(&mut app, Down);
    update(&mut app, Submit);
    assert_eq!(jobs(&app), ["init"], "no load races the re-init");
    assert!(wait_message(&app), "{:?}", app.message);
    app.message = None;
    update(&mut app, OpenWrite);
    update(&mut app, Submit);
    assert_eq!(jobs(&app), ["init"], "no write while re-initializing");
    assert!(wait_message(&app), "{:?}", app.message);
    app.message = None;
    update(&mut app, Undo);
    update(&mut app, OpenInit);
    assert!(wait_message(&app) && app.mode == Mode::Browse);
    work(&mut app);
    assert!(app.unsaved(), "the re-init landed");
    assert_eq!(app.source, "demo:mlp");
    // A load in flight likewise blocks a write and a re-init.
    send(&mut app, &[Undo]);
    update(&mut app, OpenModels);
    update(&mut app, Down);
    update(&mut app, Submit);
    assert_eq!(jobs(&app), ["load"]);
    update(&mut app, OpenWrite);
    update(&mut app, Submit);
    update(&mut app, OpenInit);
    update(&mut app, Submit);
    assert_eq!(jobs(&app), ["load"]);
    work(&mut app);
    assert_ne!(app.source, "demo:mlp");
    assert!(app.busy.is_none());
}

#[test]
fn q_waits_for_a_write_in_progress() {
    let mut app = demo("mlp");
    update(&mut app, OpenWrite);
    update(&mut app, Submit);
    assert_eq!(jobs(&app), ["save"]);
    update(&mut app, Quit);
    assert!(
        !app.quit,
        "q does not cut the write of the model as loaded short"
    );
    app.outbox.clear();
    app.busy = None;
    app.message = None;
    send(&mut app, &[OpenInit, Submit]);
    assert!(app.unsaved());
    // The write is queued, not run: it is in flight when q comes.
    update(&mut app, OpenWrite);
    update(&mut app, Submit);
    assert_eq!(jobs(&app), ["save"]);
    update(&mut app, Quit);
    assert!(!app.quit, "q does not cut the write short");
    assert_eq!(app.mode, Mode::Browse, "nor asks about unsaved re-inits");
    let status = text(&render(&app, 80, 24))
        .lines()
        .last()
        .unwrap()
        .to_owned();
    assert!(
        status.contains("writing") && status.contains("wait for the work in progress"),
        "{status}"
    );
    // Nothing is written by this test.
    app.outbox.clear();
    update(&mut app, ForceQuit);
    assert!(app.quit, "ctrl-c still quits at once");
}

#[test]
fn end_in_the_forward_panel_stops_at_the_last_page_so_up_moves_at_once() {
    let mut app = demo("rgnet");
    send(&mut app, &[Forward]);
    let layers: Vec<String> = match &app.forward.result {
        Some(Ok(result)) => result.layers.iter().map(|l| l.path.clone()).collect(),
        _ => panic!("the forward pass runs"),
    };
    // At 80x24 the panel's inside has 20 rows: input, output shape, 2 output rows, the heading,
    // then 15 layers.
    assert!(layers.len() > 15, "{}", layers.len());
    let max = layers.len() - 15;
    // The panel's last inside row, from its first column (the tree takes 33, the border 1).
    let last_row = |app: &App| {
        let buf = render(app, 80, 24);
        let line = text(&buf).lines().nth(21).unwrap().to_owned();
        line.chars().skip(34).collect::<String>()
    };
    send(&mut app, &[End]);
    assert_eq!(app.forward.scroll, max);
    let row = last_row(&app);
    assert!(
        row.starts_with(&format!("{} ", layers[layers.len() - 1])),
        "{row}"
    );
    send(&mut app, &[Up]);
    assert_eq!(app.forward.scroll, max - 1, "one Up shows one row earlier");
    let row = last_row(&app);
    assert!(
        row.starts_with(&format!("{} ", layers[layers.len() - 2])),
        "{row}"
    );
    for action in [Down, Down, Down, PageDown, PageDown, End, Down] {
        send(&mut app, &[action]);
        assert!(
            app.forward.scroll <= max,
            "{action:?}: {}",
            app.forward.scroll
        );
    }
    // A taller screen shows more layers: the scroll shrinks to fill it.
    send(&mut app, &[Resize(80, 30)]);
    assert_eq!(app.forward.scroll, layers.len().saturating_sub(21));
    send(&mut app, &[Resize(80, 24), Home]);
    assert_eq!(app.forward.scroll, 0);
}

#[test]
fn end_in_help_stops_at_the_last_page_so_up_moves_at_once() {
    let mut app = demo("mlp");
    send(&mut app, &[ToggleHelp]);
    let screen = |app: &App| text(&render(app, 80, 24));
    send(&mut app, &[End]);
    let Mode::Help(max) = app.mode else {
        panic!("help is open")
    };
    assert!(max > 0 && max < 200, "{max}");
    let at_end = screen(&app);
    send(&mut app, &[Up]);
    assert_eq!(app.mode, Mode::Help(max - 1));
    assert_ne!(screen(&app), at_end, "one Up scrolls the help at once");
    for action in [Down, Down, Down, PageDown, PageDown, End, Down] {
        send(&mut app, &[action]);
        assert_eq!(app.mode, Mode::Help(max), "{action:?}");
    }
    send(&mut app, &[Resize(80, 30)]);
    assert_eq!(app.mode, Mode::Help(max - 6), "a taller screen shows more");
}

/// A small Linear, then one whose weight is too big to summarize at once (1.2 MB).
fn big_linear() -> Model {
    use paramscope::model::layers::Layer;
    let mut store = ParamStore::default();
    let weight = store.insert(Tensor::from_f32(vec![1000, 300], &vec![0.5; 300_000]));
    let bias = store.insert(Tensor::from_f32(vec![1000], &[0.0; 1000]));
    let mut linear = Module::new(
        "0",
        ModuleKind::Layer(Layer::Linear {
            in_features: 300,
            out_features: 1000,
            bias: true,
        }),
    );
    linear.params = vec![("weight".into(), weight), ("bias".into(), bias)];
    // A small layer first, so that the big weight is not selected (and summarized) at start.
    let small_weight = store.insert(Tensor::from_f32(vec![300, 2], &[0.25; 600]));
    let mut small = Module::new(
        "0",
        ModuleKind::Layer(Layer::Linear {
            in_features: 2,
            out_features: 300,
            bias: false,
        }),
    );
    small.params = vec![("weight".into(), small_weight)];
    linear.name = "1".into();
    let mut root = Module::new("", ModuleKind::Sequential);
    root.children.push(small);
    root.children.push(linear);
    Model {
        root,
        store,
        metadata: std::collections::BTreeMap::default(),
    }
}

#[test]
fn the_before_statistics_of_a_big_tensor_survive_the_workers_batching() {
    use paramscope::app::update::receive;
    use paramscope::app::worker;
    let mut app = with_model(big_linear(), "big", Some("1"));
    assert!(app.outbox.is_empty() && app.pending.is_none());
    // Re-initialized from its module, the weight has neither its old nor its new summary yet.
    send(&mut app, &[OpenInit, Submit]);
    assert!(app.unsaved(), "{:?}", app.message);
    update(&mut app, Down);
    assert_eq!(selected_path(&app), "1.weight");
    // The jobs arrive at the worker together, and it picks as it does from its channel.
    let batch = std::mem::take(&mut app.outbox);
    for job in worker::pick(batch) {
        let mut replies = Vec::new();
        worker::execute(job, &mut |r| replies.push(r));
        for reply in replies {
            receive(&mut app, reply);
        }
    }
    let (_, id) = app.model.find_param("1.weight").unwrap();
    let now = app.model.store.version(id);
    let before = app.undo.last().unwrap().changes[0].1;
    assert!(app.summaries.contains_key(&(id, now)), "the new statistics");
    assert!(
        app.summaries.contains_key(&(id, before)),
        "the old statistics"
    );
    assert!(app.pending.is_none());
    let buf = render(&app, 80, 24);
    assert!(find(&buf, "before → after").is_some(), "{}", text(&buf));
}

#[test]
fn another_model_opens_with_the_values_cursor_at_the_top_left() {
    let mut app = demo("mlp");
    send(&mut app, &[FocusNext, Down, Down, Right, NextSlice]);
    assert_eq!((app.grid.row, app.grid.col), (2, 1));
    send(&mut app, &[OpenModels, Down, Down, Submit]);
    assert_eq!(app.source, "demo:shared");
    assert_eq!(app.grid, paramscope::app::state::Grid::default());
    assert_eq!((app.grid.row, app.grid.col), (0, 0));
}

#[test]
fn a_very_wide_terminal_renders() {
    let mut app = demo("rgnet");
    for width in [3120, 3121, 4000, u16::MAX] {
        send_and_draw(&mut app, &[Resize(width, 30)]);
        for action in [
            FocusNext, CycleView, CycleView, Forward, Forward, ToggleHelp,
        ] {
            send_and_draw(&mut app, &[action]);
        }
        send_and_draw(&mut app, &[Cancel]);
    }
}

#[test]
fn of_forward_passes_queued_together_only_the_newest_runs() {
    use paramscope::app::update::receive;
    use paramscope::app::worker::{self, Job};
    let mut app = demo("mlp");
    send(&mut app, &[Forward]);
    // Five runs queued before the worker looks.
    for action in [BatchUp, BatchUp, BatchUp, BatchUp, SeedUp] {
        update(&mut app, action);
    }
    assert_eq!(jobs(&app), ["forward"; 5]);
    let picked = worker::pick(std::mem::take(&mut app.outbox));
    let generations: Vec<u64> = picked
        .iter()
        .filter_map(|j| match j {
            Job::Forward { generation, .. } => Some(*generation),
            _ => None,
        })
        .collect();
    assert_eq!(generations, [app.forward.generation]);
    for job in picked {
        let mut replies = Vec::new();
        worker::execute(job, &mut |r| replies.push(r));
        for reply in replies {
            receive(&mut app, reply);
        }
    }
    assert!(app.forward.running.is_none());
    let result = app.forward.result.clone().unwrap().unwrap();
    assert_eq!(result.input_shape[0], 6, "the newest batch ran");
    let last = result.layers.last().unwrap().path.clone();
    let buf = render(&app, 80, 24);
    assert!(find(&buf, "… 6 rows in all").is_some(), "{}", text(&buf));
    assert!(
        text(&buf).lines().any(|l| l.contains(&format!("│{last} "))),
        "{}",
        text(&buf)
    );
}

#[test]
fn a_module_summary_reads_at_most_a_budget_on_the_key_thread() {
    // Eight 256 KiB weights (2 MiB in all) under the root: 1 MiB is summarized at once, the rest
    // goes to the worker in one job, so the key loop never reads a module's worth of tensors.
    let layers = (0..8)
        .map(|i| format!("  ({i}): Linear(in_features=256, out_features=256, bias=True)"))
        .collect::<Vec<_>>()
        .join("\n");
    let root = paramscope::model::arch::parse(&format!("Sequential(\n{layers}\n)\n")).unwrap();
    let mut app = with_model(
        paramscope::model::arch::instantiate(&root, 0).unwrap(),
        "arch",
        None,
    );
    work(&mut app);
    app.summaries.clear();
    update(&mut app, Home);
    assert_eq!(selected_path(&app), "");
    let inline_bytes: usize = app
        .summaries
        .keys()
        .map(|(id, _)| app.model.store.get(*id).bytes().len())
        .sum();
    assert!(
        inline_bytes <= paramscope::app::update::INLINE_BYTES,
        "{inline_bytes} bytes read inline"
    );
    assert!(
        app.summaries.len() < 16,
        "not everything was summarized inline"
    );
    assert!(matches!(
        app.outbox.as_slice(),
        [paramscope::app::worker::Job::Summarize { .. }]
    ));
    work(&mut app);
    assert_eq!(app.summaries.len(), 16, "the worker summarized the rest");
}
