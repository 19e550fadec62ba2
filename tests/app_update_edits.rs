//! `update()` driven by actions alone: what changes the model or the disk (re-init, undo, write,
//! open) and how each waits for the work in progress.

mod app_support;

use app_support::{demo, find, render, selected_path, send, text, type_text, values, with_model};
use paramscope::app::action::Action::*;
use paramscope::app::field::Edit::{DeleteBack, DeleteToStart};
use paramscope::app::init_dialog::Biases;
use paramscope::app::state::{App, Message, Mode, Question};
use paramscope::model::{Model, Module, ModuleKind, ParamStore};
use paramscope::tensor::Tensor;

#[test]
fn reinit_through_one_path_changes_every_alias_and_undo_restores() {
    let mut app = with_model(
        paramscope::model::demos::build("shared", 0).unwrap(),
        "demo:shared",
        Some("2.weight"),
    );
    let before = values(&app, "4.weight");
    send(&mut app, &[Forward]);
    let output_before = app
        .forward
        .result
        .as_ref()
        .unwrap()
        .as_ref()
        .unwrap()
        .clone()
        .output;
    send(&mut app, &[OpenInit]);
    let Mode::Init(dialog) = &app.mode else {
        panic!("the dialog opens")
    };
    assert_eq!(dialog.path, "2");
    assert!(
        dialog.weights && dialog.biases == Biases::Keep,
        "a weight selects weights"
    );
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
            "zeros on 2.weight · 1 tensor(s) · u undoes".into()
        ))
    );
    assert!(app.mode == Mode::Browse && app.busy.is_none());
    assert!(values(&app, "4.weight").iter().all(|&v| v == 0.0));
    assert!(app.doc.unsaved());
    let output_after = app
        .forward
        .result
        .as_ref()
        .unwrap()
        .as_ref()
        .unwrap()
        .clone()
        .output;
    assert_ne!(output_before, output_after, "the forward pass ran again");
    send(&mut app, &[Forward]);
    let buf = render(&app, 80, 24);
    assert!(find(&buf, "before → after").is_some(), "{}", text(&buf));
    send(&mut app, &[Undo]);
    assert_eq!(values(&app, "4.weight"), before);
    assert_eq!(
        app.forward
            .result
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap()
            .clone()
            .output,
        output_before
    );
    send(&mut app, &[Undo]);
    assert_eq!(app.message, Some(Message::Info("nothing to undo".into())));
}

#[test]
fn the_init_dialog_edits_schemes_arguments_targets_and_seed() {
    let mut app = demo("rgnet");
    send(&mut app, &[Home, OpenInit]);
    // Typing picks the scheme: constant, whose one argument is val.
    type_text(&mut app, "const");
    send(&mut app, &[Down, Edit(DeleteToStart), Type('7')]);
    send(
        &mut app,
        &[
            Down,
            Type(' '),
            Down,
            Left,
            Down,
            Edit(DeleteBack),
            Type('4'),
            Type('x'),
        ],
    );
    let Mode::Init(d) = app.mode.clone() else {
        panic!("{:?}", app.mode)
    };
    assert_eq!(d.scheme, "constant");
    assert_eq!(d.args[0].1.text(), "7");
    assert!(!d.weights && d.biases == Biases::Keep);
    assert_eq!(d.seed.value(), "4", "only digits go in the seed");
    send(&mut app, &[Submit]);
    let Mode::Init(d) = app.mode.clone() else {
        panic!("an empty plan is refused")
    };
    assert_eq!(d.error.as_deref(), Some("choose weights, biases, or both"));
    send(
        &mut app,
        &[Up, Up, Type(' '), Up, Edit(DeleteBack), Type('x'), Submit],
    );
    let Mode::Init(d) = app.mode.clone() else {
        panic!()
    };
    assert!(d.error.unwrap().contains("\"x\" is not a number"));
    send(
        &mut app,
        &[Edit(DeleteBack), Type('7'), Left, Right, Submit],
    );
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
    paramscope::checkpoint::save::save_model(
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
    let Mode::Write(field) = app.mode.clone() else {
        panic!()
    };
    let default = field.value().to_owned();
    assert_eq!(
        default,
        dir.path()
            .join("shared.reinit.safetensors")
            .display()
            .to_string()
    );
    send(&mut app, &[Type('x'), Edit(DeleteBack), Submit]);
    assert_eq!(app.message, Some(Message::Info(format!("wrote {default}"))));
    assert!(std::path::Path::new(&default).exists());
    // The same path again exists now: asked, and No leaves it.
    send(&mut app, &[OpenWrite, Submit]);
    assert!(matches!(app.mode, Mode::Ask(Question::Overwrite(_))));
    send(&mut app, &[No]);
    assert_eq!(app.mode, Mode::Browse);
    // The source itself: asked before anything is written.
    send(&mut app, &[OpenWrite]);
    app.hold(Edit(DeleteToStart));
    for ch in spec.chars() {
        app.hold(Type(ch));
    }
    send(&mut app, &[Submit]);
    assert_eq!(app.mode, Mode::Ask(Question::Overwrite(source.clone())));
    assert!(
        app.queued.is_empty(),
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
    send(&mut app, &[Down, Down, Left]);
    assert_eq!(target(&app), "the weights under 0.block0");
    send(&mut app, &[Cancel, Home, OpenInit]);
    assert_eq!(target(&app), "the model");
}

#[test]
fn work_on_the_worker_shows_working_not_a_stuck_gauge() {
    let mut app = demo("mlp");
    app.hold(OpenInit);
    app.hold(Submit);
    assert!(app.busy.is_some() && !app.queued.is_empty());
    let buf = render(&app, 80, 24);
    let status = text(&buf).lines().last().unwrap().to_owned();
    assert!(
        status.contains("re-initializing: default on 0.weight … working"),
        "{status}"
    );
    assert!(!status.contains('░') && !status.contains('%'), "{status}");
    app.work();
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
    let marker = |app: &App| find(&render(app, 80, 24), "● unsaved").is_some();
    let mut app = demo("mlp");
    assert!(!app.doc.unsaved() && !marker(&app));
    // Two re-inits, then undo both: back to the model as loaded, so nothing is unsaved.
    send(
        &mut app,
        &[OpenInit, Right, Submit, OpenInit, Right, Right, Submit],
    );
    assert!(app.doc.unsaved() && marker(&app));
    send(&mut app, &[Undo]);
    assert!(app.doc.unsaved(), "one re-init is still applied");
    send(&mut app, &[Undo]);
    assert!(
        !app.doc.unsaved() && !marker(&app),
        "undone back to the loaded model"
    );
    send(&mut app, &[Quit]);
    assert!(app.quit, "nothing to lose, so no question");
    // Written after one re-init: saved; another re-init is not; undoing it is saved again.
    let mut app = demo("mlp");
    send(&mut app, &[OpenInit, Right, Submit, OpenWrite]);
    let Mode::Write(field) = app.mode.clone() else {
        panic!()
    };
    assert!(field.value().ends_with("mlp.reinit.safetensors"));
    app.hold(Edit(DeleteToStart));
    for ch in out.display().to_string().chars() {
        app.hold(Type(ch));
    }
    send(&mut app, &[Submit]);
    assert!(!app.doc.unsaved() && !marker(&app), "{:?}", app.message);
    send(&mut app, &[OpenInit, Right, Right, Submit]);
    assert!(app.doc.unsaved());
    send(&mut app, &[Undo]);
    assert!(!app.doc.unsaved(), "the state that was written");
    // Undo below the written state, then a different re-init: the written state is gone.
    send(&mut app, &[Undo, OpenInit, Right, Right, Submit]);
    assert!(
        app.doc.unsaved(),
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
    assert!(matches!(app.mode, Mode::Open(_)));
    send(&mut app, &[Down, Down, Up, Down, Submit]);
    assert_eq!(app.doc.source, "demo:shared");
    assert_eq!(app.doc.model.total_params(), 121);
    assert_eq!(selected_path(&app), "0.weight");
    send(&mut app, &[OpenModels, Cancel]);
    assert_eq!(app.mode, Mode::Browse);
    send(&mut app, &[OpenInit, Submit, OpenModels, Up, Submit]);
    assert_eq!(
        app.mode,
        Mode::Ask(Question::OpenUnsaved("demo:rgnet".into())),
        "unsaved work is asked about"
    );
    send(&mut app, &[No]);
    assert_eq!(app.doc.source, "demo:shared");
    send(&mut app, &[OpenModels, Up, Submit, Yes]);
    assert_eq!(app.doc.source, "demo:rgnet");
}

#[test]
fn reinit_of_a_module_without_linears_says_so_and_changes_nothing() {
    let mut app = demo("mlp");
    send(&mut app, &[Home]);
    while selected_path(&app) != "1" {
        send(&mut app, &[Down]);
    }
    send(&mut app, &[OpenInit, Submit]);
    assert!(!app.doc.unsaved(), "nothing was re-initialized");
    match &app.mode {
        Mode::Init(d) => assert!(
            d.error
                .as_deref()
                .unwrap()
                .contains("no Linear layer under"),
            "{d:?}"
        ),
        other => panic!("the dialog stays open with the error, got {other:?}"),
    }
}

fn wait_message(app: &App) -> bool {
    app.message == Some(Message::Error("wait for the work in progress".into()))
}

#[test]
fn opening_writing_and_undoing_wait_for_the_work_in_progress() {
    let mut app = demo("mlp");
    // The worker is not run between these: the re-init is still in flight.
    app.hold(OpenInit);
    app.hold(Submit);
    assert_eq!(app.jobs(), ["init"]);
    app.hold(OpenModels);
    app.hold(Down);
    app.hold(Submit);
    assert_eq!(app.jobs(), ["init"], "no load races the re-init");
    assert!(wait_message(&app), "{:?}", app.message);
    app.message = None;
    app.hold(OpenWrite);
    app.hold(Submit);
    assert_eq!(app.jobs(), ["init"], "no write while re-initializing");
    assert!(wait_message(&app), "{:?}", app.message);
    app.message = None;
    app.hold(Undo);
    app.hold(OpenInit);
    assert!(wait_message(&app) && app.mode == Mode::Browse);
    app.work();
    assert!(app.doc.unsaved(), "the re-init landed");
    assert_eq!(app.doc.source, "demo:mlp");
    // A load in flight likewise blocks a write and a re-init.
    send(&mut app, &[Undo]);
    app.hold(OpenModels);
    app.hold(Down);
    app.hold(Submit);
    assert_eq!(app.jobs(), ["load"]);
    app.hold(OpenWrite);
    app.hold(Submit);
    app.hold(OpenInit);
    app.hold(Submit);
    assert_eq!(app.jobs(), ["load"]);
    app.work();
    assert_ne!(app.doc.source, "demo:mlp");
    assert!(app.busy.is_none());
}

#[test]
fn q_waits_for_a_write_in_progress() {
    let mut app = demo("mlp");
    app.hold(OpenWrite);
    app.hold(Submit);
    assert_eq!(app.jobs(), ["save"]);
    app.hold(Quit);
    assert!(
        !app.quit,
        "q does not cut the write of the model as loaded short"
    );
    app.queued.clear();
    app.busy = None;
    app.message = None;
    send(&mut app, &[OpenInit, Submit]);
    assert!(app.doc.unsaved());
    // The write is queued, not run: it is in flight when q comes.
    app.hold(OpenWrite);
    app.hold(Submit);
    assert_eq!(app.jobs(), ["save"]);
    app.hold(Quit);
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
    app.queued.clear();
    app.hold(ForceQuit);
    assert!(app.quit, "ctrl-c still quits at once");
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
    linear.params = vec![("weight".into(), weight), ("bias".into(), bias)].into();
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
    small.params = vec![("weight".into(), small_weight)].into();
    linear.name = "1".into();
    let mut root = Module::new("", ModuleKind::Sequential);
    root.children.push(small);
    root.children.push(linear);
    Model {
        root: root.into(),
        store,
        metadata: std::collections::BTreeMap::default(),
    }
}

#[test]
fn the_before_statistics_of_a_big_tensor_survive_the_workers_batching() {
    use paramscope::app::update::receive;
    use paramscope::app::work as worker;
    let mut app = with_model(big_linear(), "big", Some("1"));
    assert!(app.queued.is_empty() && app.cache.pending.is_none());
    // Re-initialized from its module, the weight has neither its old nor its new summary yet.
    send(&mut app, &[OpenInit, Submit]);
    assert!(app.doc.unsaved(), "{:?}", app.message);
    app.hold(Down);
    assert_eq!(selected_path(&app), "1.weight");
    // The jobs arrive at the worker together, and it picks as it does from its channel.
    let batch = std::mem::take(&mut app.queued);
    for job in worker::pick(batch) {
        let mut replies = Vec::new();
        app.worker.execute(job, &mut |r| replies.push(r));
        for reply in replies {
            let fx = receive(&mut app, reply);
            app.take(fx);
        }
    }
    let (_, id) = app.doc.model.find_param("1.weight").unwrap();
    let now = app.doc.model.store.version(id);
    let before = app.doc.undo.last().unwrap().changes[0].1;
    assert!(
        app.cache.summaries.contains_key(&(id, now)),
        "the new statistics"
    );
    assert!(
        app.cache.summaries.contains_key(&(id, before)),
        "the old statistics"
    );
    assert!(app.cache.pending.is_none());
    let buf = render(&app, 80, 24);
    assert!(find(&buf, "before → after").is_some(), "{}", text(&buf));
}

#[test]
fn another_model_opens_with_the_values_cursor_at_the_top_left() {
    let mut app = demo("mlp");
    send(&mut app, &[FocusNext, Down, Down, Right, NextSlice]);
    assert_eq!(
        (app.tensor.grid.rows.cursor, app.tensor.grid.cols.cursor),
        (2, 1)
    );
    send(&mut app, &[OpenModels, Down, Down, Submit]);
    assert_eq!(app.doc.source, "demo:shared");
    assert_eq!(app.tensor.grid, paramscope::app::state::Grid::default());
    assert_eq!(
        (app.tensor.grid.rows.cursor, app.tensor.grid.cols.cursor),
        (0, 0)
    );
}

#[test]
fn write_refuses_a_link_planted_beside_the_model_and_keeps_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let mut app = demo("mlp");
    send(&mut app, &[OpenWrite, Edit(DeleteToStart)]);
    let link = dir.path().join("mlp.reinit.safetensors");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    type_text(&mut app, &link.display().to_string());
    send(&mut app, &[Submit]);
    assert!(
        matches!(app.mode, Mode::Write(_)),
        "asked for another name: {:?}",
        app.mode
    );
    assert_eq!(
        app.message,
        Some(Message::Error(format!(
            "{} is a link: give another name",
            link.display()
        )))
    );
    assert!(app.queued.is_empty(), "nothing is written");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn a_panic_on_the_worker_is_an_error_in_the_status_bar_and_q_still_quits() {
    let mut app = demo("mlp");
    app.hold(OpenWrite);
    app.hold(Submit);
    assert_eq!(app.jobs(), ["save"]);
    app.queued.clear();
    // The write's job panicked on the worker: its own reply never comes.
    let fx = paramscope::app::update::receive(
        &mut app.app,
        paramscope::app::job::Reply::Panicked("chunk size must be non-zero".into()),
    );
    app.take(fx);
    assert!(app.busy.is_none(), "nothing waits for it any more");
    assert_eq!(
        app.message,
        Some(Message::Error(
            "a bug stopped the job (please report it): chunk size must be non-zero".into()
        ))
    );
    // Too long for the status bar at 80 columns: said whole in a popup, which Esc closes.
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("chunk size must be non-zero"), "{screen}");
    send(&mut app, &[Cancel, Quit]);
    assert!(app.quit, "q quits");
}
