//! `update()` driven by actions alone, without a terminal: moving around, views, the forward
//! panel, sizes, and what the worker sends back. Edits (re-init, write, open) are in
//! `app_update_edits.rs`, the behaviour of issue 12 in `app_behaviour.rs`.

mod app_support;

use app_support::{demo, find, render, selected_path, send, send_and_draw, text, with_model};
use paramscope::app::action::Action::*;
use paramscope::app::field::Edit::DeleteBack;
use paramscope::app::job::Input;
use paramscope::app::state::{App, Focus, Message, Mode, View};
use paramscope::model::{Model, Module, ModuleKind, ParamStore};
use paramscope::tensor::Tensor;

#[test]
fn the_first_parameter_is_selected_and_summarized_at_start() {
    let app = demo("mlp");
    assert_eq!(selected_path(&app), "0.weight");
    assert_eq!(
        app.cache.summaries.len(),
        1,
        "a small tensor is summarized at once"
    );
    assert!(app.queued.is_empty());
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
    let after_page_up = app
        .tree
        .visible()
        .iter()
        .position(|&n| n == app.tree.selected())
        .unwrap();
    assert_eq!(
        after_page_up,
        app.tree.visible().len() - 1 - 20,
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
    let rows = app.tree.visible().len();
    send(&mut app, &[Left]);
    assert_eq!(
        app.tree.visible().len(),
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
    assert_eq!(
        app.tree.visible().len(),
        rows,
        "Right opens a closed module"
    );
    send(&mut app, &[Toggle]);
    assert_eq!(app.tree.visible().len(), rows - 2, "Enter toggles");
    send(&mut app, &[Toggle]);
    assert_eq!(app.tree.visible().len(), rows);
}

#[test]
fn the_filter_keeps_matches_and_their_ancestors() {
    let mut app = demo("rgnet");
    send(&mut app, &[StartFilter]);
    assert!(matches!(app.mode, Mode::Filter(_)));
    for ch in "block2.2.biass".chars() {
        send(&mut app, &[Type(ch)]);
    }
    assert_eq!(app.tree.visible().len(), 0, "nothing matches the typo");
    send(&mut app, &[Edit(DeleteBack)]);
    assert_eq!(selected_path(&app), "0.block2.2.bias");
    assert_eq!(app.tree.visible().len(), 5);
    send(&mut app, &[Up]);
    assert_eq!(selected_path(&app), "0.block2.2");
    send(&mut app, &[Submit]);
    assert_eq!(
        (app.mode.clone(), app.tree.filter()),
        (Mode::Browse, "block2.2.bias")
    );
    send(&mut app, &[Cancel]);
    assert!(
        app.tree.filter().is_empty(),
        "Esc in the panes clears the filter"
    );
    send(&mut app, &[StartFilter, Type('x'), Cancel]);
    assert!(app.tree.filter().is_empty() && app.mode == Mode::Browse);
}

#[test]
fn tab_moves_the_focus_and_arrows_then_move_the_values_cursor() {
    let mut app = demo("mlp");
    send(&mut app, &[FocusNext]);
    assert_eq!(app.focus, Focus::Tensor);
    send(&mut app, &[Down, Down, Right, Right, Right, Right, Right]);
    assert_eq!(
        (app.tensor.grid.rows.cursor, app.tensor.grid.cols.cursor),
        (2, 3),
        "clamped to the 4 columns"
    );
    send(&mut app, &[End]);
    assert_eq!(app.tensor.grid.rows.cursor, 7);
    send(&mut app, &[Home, PageDown]);
    assert_eq!(app.tensor.grid.rows.cursor, 7, "a page covers the 8 rows");
    send(&mut app, &[PageUp, Left]);
    assert_eq!(
        (app.tensor.grid.rows.cursor, app.tensor.grid.cols.cursor),
        (0, 2)
    );
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
        root: root.into(),
        store,
        metadata: std::collections::BTreeMap::default(),
    };
    let mut app = with_model(model, "big", Some("big"));
    assert_eq!(app.queued.len(), 1, "1.2 MB goes to the worker");
    app.work();
    assert!(app.cache.pending.is_none() && app.cache.summaries.len() == 1);
    send(&mut app, &[FocusNext, End]);
    assert_eq!(app.tensor.grid.rows.cursor, 999);
    assert!(app.tensor.grid.rows.offset > 900);
    for _ in 0..299 {
        app.hold(Right);
    }
    assert_eq!(app.tensor.grid.cols.cursor, 299);
    assert!(app.tensor.grid.cols.offset > 290);
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
        root: root.into(),
        store,
        metadata: std::collections::BTreeMap::default(),
    };
    let mut app = with_model(model, "conv", Some("conv"));
    send(&mut app, &[NextSlice, NextSlice]);
    assert_eq!(app.tensor.grid.slice, 2);
    let buf = render(&app, 80, 24);
    assert!(find(&buf, "[0, 2, 0, 0]").is_some(), "{}", text(&buf));
    assert!(find(&buf, "40").is_some(), "slice 2 starts at 2·4·5");
    send(&mut app, &[PrevSlice, PrevSlice, PrevSlice]);
    assert_eq!(app.tensor.grid.slice, 0);
    for _ in 0..9 {
        app.hold(NextSlice);
    }
    assert_eq!(app.tensor.grid.slice, 5);
}

#[test]
fn views_cycle() {
    let mut app = demo("mlp");
    send(&mut app, &[CycleView]);
    assert_eq!(app.tensor.view, View::Histogram);
    send(&mut app, &[CycleView]);
    assert_eq!(app.tensor.view, View::Heatmap);
    send(&mut app, &[CycleView]);
    assert_eq!(app.tensor.view, View::Values);
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
    app.hold(Forward);
    assert!(app.forward.open && app.forward.running.is_some());
    assert_eq!(app.queued.len(), 1);
    app.work();
    let result = app
        .forward
        .result
        .as_ref()
        .unwrap()
        .as_ref()
        .unwrap()
        .clone();
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
        app.forward
            .result
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap()
            .clone()
            .output
            .shape(),
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
    app.hold(Forward);
    let first = app.queued.pop().unwrap();
    app.hold(SeedUp);
    let mut replies = Vec::new();
    app.worker.execute(first, &mut |r| replies.push(r));
    for r in replies {
        let _ = paramscope::app::update::receive(&mut app, r);
    }
    assert!(app.forward.result.is_none(), "the first run is outdated");
    app.work();
    assert!(app.forward.result.is_some());
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
    assert_eq!(app.screen.size, (50, 10));
    send_and_draw(&mut app, &[End]);
    assert!(
        app.tree.offset() > 0,
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
    assert!(
        !app.tree.is_open(app.tree.selected()),
        "a second click folds"
    );
    send(&mut app, &[Click(100, 10)]);
    assert_eq!(app.focus, Focus::Tensor);
    send(&mut app, &[Cancel]);
    assert!(app.message.is_none());
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
        root: root.into(),
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
                assert_eq!(app.tensor.grid.slice, 0);
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
    send(&mut app, &[FocusNext]);
    // The panel's last inside row, from its first column (the tree takes 33, the border 1).
    let last_row = |app: &App| {
        let buf = render(app, 80, 24);
        let line = text(&buf).lines().nth(21).unwrap().to_owned();
        line.chars().skip(34).collect::<String>()
    };
    send(&mut app, &[End]);
    assert_eq!(app.forward.scroll.offset, max);
    let row = last_row(&app);
    assert!(
        row.starts_with(&format!("{} ", layers[layers.len() - 1])),
        "{row}"
    );
    send(&mut app, &[Up]);
    assert_eq!(
        app.forward.scroll.offset,
        max - 1,
        "one Up shows one row earlier"
    );
    let row = last_row(&app);
    assert!(
        row.starts_with(&format!("{} ", layers[layers.len() - 2])),
        "{row}"
    );
    for action in [Down, Down, Down, PageDown, PageDown, End, Down] {
        send(&mut app, &[action]);
        assert!(
            app.forward.scroll.offset <= max,
            "{action:?}: {}",
            app.forward.scroll.offset
        );
    }
    // A taller screen shows more layers: the scroll shrinks to fill it.
    send(&mut app, &[Resize(80, 30)]);
    assert_eq!(app.forward.scroll.offset, layers.len().saturating_sub(21));
    send(&mut app, &[Resize(80, 24), Home]);
    assert_eq!(app.forward.scroll.offset, 0);
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
    use paramscope::app::job::Job;
    use paramscope::app::update::receive;
    use paramscope::app::work as worker;
    let mut app = demo("mlp");
    send(&mut app, &[Forward]);
    // Five runs queued before the worker looks.
    for action in [BatchUp, BatchUp, BatchUp, BatchUp, SeedUp] {
        app.hold(action);
    }
    assert_eq!(app.jobs(), ["forward"; 5]);
    let picked = worker::pick(std::mem::take(&mut app.queued));
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
        app.worker.execute(job, &mut |r| replies.push(r));
        for reply in replies {
            let fx = receive(&mut app, reply);
            app.take(fx);
        }
    }
    assert!(app.forward.running.is_none());
    let result = app
        .forward
        .result
        .as_ref()
        .unwrap()
        .as_ref()
        .unwrap()
        .clone();
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
    app.work();
    app.cache.summaries.clear();
    app.hold(Home);
    assert_eq!(selected_path(&app), "");
    let inline_bytes: usize = app
        .cache
        .summaries
        .keys()
        .map(|(id, _)| app.doc.model.store.get(*id).bytes().len())
        .sum();
    assert!(
        inline_bytes <= paramscope::app::update::INLINE_BYTES,
        "{inline_bytes} bytes read inline"
    );
    assert!(
        app.cache.summaries.len() < 16,
        "not everything was summarized inline"
    );
    assert!(matches!(
        app.queued.as_slice(),
        [paramscope::app::job::Job::Summarize { .. }]
    ));
    app.work();
    assert_eq!(
        app.cache.summaries.len(),
        16,
        "the worker summarized the rest"
    );
}
