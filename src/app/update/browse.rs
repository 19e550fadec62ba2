//! Keys in the panes: the tree, the values grid and heatmap cursor, the module table, the forward
//! panel, and the keys that open dialogs.

use ratatui::layout::Position;

use super::grid::{move_cursor, selected_dims};
use super::{
    Effects, after_select, compare, parts, probe, refused_while_busy, run_forward, step_of,
    summaries, training,
};
use crate::app::action::Action;
use crate::app::field::Field;
use crate::app::init_dialog::InitDialog;
use crate::app::job::Input;
use crate::app::layout;
use crate::app::outline::NodeKind;
use crate::app::picker::{self, Picker};
use crate::app::state::{App, Focus, Message, Mode, Question};

pub(super) fn browse(app: &mut App, action: Action, fx: &mut Effects) {
    let on_tensor = app.focus == Focus::Tensor;
    match action {
        Action::Up
        | Action::Down
        | Action::Left
        | Action::Right
        | Action::PageUp
        | Action::PageDown
            if on_tensor && probe::grid_shown(app) =>
        {
            probe::key(app, action, fx);
        }
        Action::CycleProbe | Action::ProbeLayer(_) | Action::ProbeHead(_) => {
            probe::key(app, action, fx);
        }
        Action::JumpToSuperWeight => probe::jump(app, fx),
        Action::Quit if app.busy.is_some() => refuse_quit(app),
        Action::Quit if app.doc.unsaved() => app.mode = Mode::Ask(Question::QuitUnsaved),
        Action::Quit => fx.quit = true,
        Action::ToggleHelp => app.mode = Mode::Help(0),
        Action::FocusNext => {
            app.focus = match app.focus {
                Focus::Tree => Focus::Tensor,
                Focus::Tensor => Focus::Tree,
            };
        }
        Action::Up
        | Action::Down
        | Action::Left
        | Action::Right
        | Action::PageUp
        | Action::PageDown
        | Action::Home
        | Action::End
            if on_tensor =>
        {
            move_in_tensor_pane(app, action, fx);
        }
        Action::Up
        | Action::Down
        | Action::Left
        | Action::Right
        | Action::PageUp
        | Action::PageDown
        | Action::Home
        | Action::End
        | Action::Toggle => move_in_tree(app, action, fx),
        Action::StartFilter => app.mode = Mode::Filter(Field::new(app.tree.filter())),
        Action::NextAlias => next_alias(app),
        Action::CycleView => training::cycle_view(app, fx),
        Action::ToggleLog => app.tensor.log_counts ^= true,
        Action::ToggleHeatScale => app.tensor.heat_absmax ^= true,
        Action::EarlierCheckpoint | Action::LaterCheckpoint if app.trajectory.is_some() => {
            training::step_checkpoint(app, action == Action::LaterCheckpoint, fx);
        }
        Action::PrevSlice | Action::EarlierCheckpoint => step_slice(app, false),
        Action::NextSlice | Action::LaterCheckpoint => step_slice(app, true),
        Action::Forward => toggle_forward(app, fx),
        Action::EditText => edit_text(app),
        Action::BatchUp | Action::BatchDown | Action::SeedUp | Action::SeedDown => {
            change_input(app, action, fx);
        }
        Action::OpenInit => open_init(app),
        Action::ZeroCell => super::zero::zero_cell(app, fx),
        Action::Undo => undo(app, fx),
        Action::OpenWrite | Action::OpenModels | Action::OpenCompare if refused_while_busy(app) => {
        }
        Action::OpenWrite => app.mode = Mode::Write(Field::new(&app.doc.default_output())),
        Action::OpenModels => {
            app.mode = Mode::Open(Picker::new(picker::scan(), &app.doc.source));
        }
        Action::OpenCompare => compare::open_picker(app),
        Action::CycleSide => compare::cycle_side(app, fx),
        Action::CyclePart => parts::cycle(app, fx),
        Action::Cancel => {
            if app.forward.open {
                app.forward.open = false;
            } else if !app.tree.filter().is_empty() || app.tree.changed_only() {
                let page = layout::tree_page(app);
                app.tree.set_filter(&app.doc.outline, "", page);
                app.tree.set_only(&app.doc.outline, None, page);
            } else {
                app.message = None;
            }
        }
        Action::ScrollUp(x, y) | Action::ScrollDown(x, y) => {
            let up = matches!(action, Action::ScrollUp(..));
            focus_at(app, x, y);
            browse(app, if up { Action::Up } else { Action::Down }, fx);
        }
        Action::Click(x, y) => click(app, x, y, fx),
        _ => {}
    }
}

/// `f`: shows or hides the forward panel; a family checkpoint asks for its text first (the last
/// one offered), a chain runs at once.
fn toggle_forward(app: &mut App, fx: &mut Effects) {
    app.forward.open = !app.forward.open;
    if app.forward.open {
        // The focus stays where the user put it, unless the panel would not be on screen.
        if layout::screen_areas(app).right.is_none() {
            app.focus = Focus::Tensor;
        }
        if app.doc.runs.family().is_some() {
            open_text(app);
        } else {
            run_forward(app, fx);
        }
    }
}

/// Opens the text field on the panel's text, offered as a default: typing replaces it (a new user
/// types a sentence and gets that sentence), a cursor key keeps it to edit.
fn open_text(app: &mut App) {
    app.mode = Mode::Text(Field::with_default(&app.forward.text));
}

/// `e`: edits the text a family checkpoint runs on.
fn edit_text(app: &mut App) {
    if app.doc.runs.family().is_some() {
        open_text(app);
    } else {
        app.message = Some(Message::Info(
            "the model runs on a random batch or --input, not on text".into(),
        ));
    }
}

/// Movement keys with the focus on the tree: rows, folding, entering.
fn move_in_tree(app: &mut App, action: Action, fx: &mut Effects) {
    let selected = app.tree.selected();
    let page = layout::tree_page(app);
    let outline = &app.doc.outline;
    match action {
        Action::Left => {
            app.tree.collapse_or_parent(outline, page);
        }
        Action::Right => {
            app.tree.expand_or_enter(outline, page);
        }
        Action::Toggle => {
            app.tree.toggle(outline, page);
        }
        other => {
            if let Some(step) = step_of(other) {
                app.tree.step(step, page);
            }
        }
    }
    if app.tree.selected() != selected {
        after_select(app, fx);
    }
}

/// `q` while a job runs: quitting could cut a write short (or drop a re-init), so it waits.
pub(super) fn refuse_quit(app: &mut App) {
    app.message = Some(Message::Error(
        "wait for the work in progress; ctrl-c quits at once".into(),
    ));
}

/// Movement keys with the focus on the right: the forward panel's table, the module table, or
/// the tensor's cursor.
fn move_in_tensor_pane(app: &mut App, action: Action, fx: &mut Effects) {
    let Some(step) = step_of(action) else {
        return;
    };
    if app.forward.open {
        if !matches!(action, Action::Left | Action::Right) {
            let len = forward_len(app);
            let page = layout::forward_page(app);
            app.forward.scroll.scroll(step, len, page);
        }
        return;
    }
    match app.doc.outline.nodes[app.tree.selected()].kind {
        NodeKind::Module { .. } => {
            if !matches!(action, Action::Left | Action::Right) {
                let len = app.module_row_count();
                let page = layout::module_page(app);
                if app.tensor.module.step(step, len, page) {
                    summaries::request_more(app, fx);
                }
            }
        }
        NodeKind::Param { .. } => move_cursor(app, action, step),
        NodeKind::Info { .. } => {}
    }
}

fn forward_len(app: &App) -> usize {
    match &app.forward.result {
        Some(Ok(result)) => result.layers.len(),
        _ => 0,
    }
}

/// Keeps the forward panel's window within its table after the page or the table changed.
pub(super) fn clamp_forward(app: &mut App) {
    let (len, page) = (forward_len(app), layout::forward_page(app));
    app.forward.scroll.clamp_window(len, page);
}

fn next_alias(app: &mut App) {
    let Some(id) = app.selected_param() else {
        app.message = Some(Message::Info(
            "select a parameter to find its aliases".into(),
        ));
        return;
    };
    let all = app.doc.outline.aliases[&id].clone();
    if all.len() < 2 {
        app.message = Some(Message::Info("this tensor has one path only".into()));
        return;
    }
    let at = all
        .iter()
        .position(|&n| n == app.tree.selected())
        .unwrap_or(0);
    let next = all[(at + 1) % all.len()];
    let page = layout::tree_page(app);
    // Same tensor: the grid stays where it was, and its statistics are those already shown.
    app.tree.reveal(&app.doc.outline, next, page);
}

fn focus_at(app: &mut App, x: u16, y: u16) {
    let areas = layout::screen_areas(app);
    let point = Position { x, y };
    if areas.tree.is_some_and(|r| r.contains(point)) {
        app.focus = Focus::Tree;
    } else if areas.right.is_some_and(|r| r.contains(point)) {
        app.focus = Focus::Tensor;
    }
}

fn click(app: &mut App, x: u16, y: u16, fx: &mut Effects) {
    focus_at(app, x, y);
    let Some(tree) = layout::screen_areas(app)
        .tree
        .map(|r| r.inner(layout::BORDER))
    else {
        return;
    };
    if !tree.contains(Position { x, y }) {
        return;
    }
    let row = app.tree.offset() + usize::from(y - tree.y);
    if let Some(&node) = app.tree.visible().get(row) {
        if node == app.tree.selected() {
            browse(app, Action::Toggle, fx);
        } else {
            let page = layout::tree_page(app);
            app.tree.select(node, page);
            after_select(app, fx);
        }
    }
}

fn change_input(app: &mut App, action: Action, fx: &mut Effects) {
    if app.doc.runs.family().is_some() {
        app.message = Some(Message::Info("the input is the text: e edits it".into()));
        return;
    }
    let Input::Random { batch, seed } = &mut app.forward.input else {
        app.message = Some(Message::Info("the input comes from --input".into()));
        return;
    };
    match action {
        Action::BatchUp => *batch = (*batch + 1).min(1_000_000),
        Action::BatchDown => *batch = batch.saturating_sub(1).max(1),
        Action::SeedUp => *seed = seed.wrapping_add(1),
        _ => *seed = seed.wrapping_sub(1),
    }
    run_forward(app, fx);
}

/// Opens the re-init dialog on the selection, starting from the last dialog's choices.
fn open_init(app: &mut App) {
    if refused_while_busy(app) {
        return;
    }
    let outline = &app.doc.outline;
    let selected = app.tree.selected();
    let node = &outline.nodes[selected];
    let (module, weights, biases) = match node.kind {
        NodeKind::Module { .. } => (selected, true, true),
        NodeKind::Param { .. } => (
            node.parent.unwrap_or(0),
            node.label == "weight",
            node.label == "bias",
        ),
        NodeKind::Info { .. } => {
            app.message = Some(Message::Info(
                "metadata and plain values are not tensors: select a module or a tensor to re-initialize"
                    .to_owned(),
            ));
            return;
        }
    };
    let m = &outline.nodes[module];
    // A layer: parameters right below it and nothing else.
    let layer = m.has_children(module)
        && outline.nodes[module + 1..m.end]
            .iter()
            .all(|n| n.param().is_some());
    let dialog = InitDialog::new(m.path.clone(), layer, weights, biases);
    app.mode = Mode::Init(match &app.last_init {
        Some(last) => dialog.remembering(last),
        None => dialog,
    });
}

fn undo(app: &mut App, fx: &mut Effects) {
    if refused_while_busy(app) {
        return;
    }
    let Some(record) = app.doc.undo.pop() else {
        app.message = Some(Message::Info("nothing to undo".into()));
        return;
    };
    for (id, _, _, old) in record.changes {
        app.doc.model.store.set(id, old);
    }
    app.forward.before = None;
    app.message = Some(Message::Info(format!("undid {}", record.label)));
    after_change(app, fx);
}

/// After tensors changed: new summaries, and the last forward pass again.
pub(super) fn after_change(app: &mut App, fx: &mut Effects) {
    summaries::request(app, fx);
    compare::rediff(app, fx);
    parts::request(app, fx);
    if app.forward.result.is_some() || app.forward.open {
        run_forward(app, fx);
    }
}

/// The previous or next slice of an N-D tensor (its leading index).
fn step_slice(app: &mut App, next: bool) {
    if let Some((slices, _, _)) = selected_dims(app) {
        let grid = &mut app.tensor.grid;
        // A zero-length leading dimension has no slice at all: stay at 0.
        grid.slice = if next {
            (grid.slice + 1).min(slices.saturating_sub(1))
        } else {
            grid.slice.saturating_sub(1)
        };
    }
}
