//! `update(&mut App, Action)` and `receive(&mut App, Reply)`: the only places the state changes.
//! Neither touches the terminal or the disk; slow work is queued in `app.outbox` for the worker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ratatui::layout::Rect;

use super::action::Action;
use super::outline::{NodeKind, Outline};
use super::state::{
    App, Busy, Focus, ForwardPanel, Grid, InitDialog, InitField, InitRecord, Input, Message, Mode,
    Question, SCHEMES, View,
};
use super::ui::layout::{self, Areas};
use super::ui::theme::Theme;
use super::worker::{self, Job, Reply};
use crate::model::init::{InitPlan, InitScheme};
use crate::model::{Model, ParamId};

/// Tensors up to this many bytes are summarized at once; bigger ones go to the worker.
pub const INLINE_BYTES: usize = 1 << 20;
/// Modules with at most this many nodes open fully at start; bigger ones show their first level.
const OPEN_ALL_NODES: usize = 300;
/// How many parameters a module summary lists.
pub const SUMMARY_ROWS: usize = 200;

/// How the app starts, beyond the model.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `MODEL` as typed (`demo:mlp`, a path).
    pub source: String,
    /// The models the picker offers.
    pub choices: Vec<String>,
    /// A parameter or module to select first.
    pub select: Option<String>,
    /// An `.npy` input for the forward pass, with its name.
    pub input: Option<(String, ArrayD<f32>)>,
    /// The seed of the random batch.
    pub seed: u64,
    /// The colours.
    pub theme: Theme,
    /// The terminal size.
    pub size: (u16, u16),
}

impl App {
    /// The app on `model`, with the tree open and a first parameter selected.
    pub fn new(model: Model, options: Options) -> Result<App, String> {
        let input = match options.input {
            Some((name, array)) => Input::File { name, array },
            None => Input::Random {
                batch: 2,
                seed: options.seed,
            },
        };
        let mut app = App {
            model: Model {
                root: crate::model::Module::new("", crate::model::ModuleKind::Sequential),
                store: crate::model::ParamStore::default(),
                metadata: std::collections::BTreeMap::new(),
            },
            source: String::new(),
            source_path: None,
            choices: options.choices,
            outline: Outline::default(),
            opened: Vec::new(),
            visible: Vec::new(),
            selected: 0,
            tree_offset: 0,
            filter: String::new(),
            focus: Focus::Tree,
            view: View::Values,
            grid: Grid::default(),
            mode: Mode::Browse,
            forward: ForwardPanel {
                open: false,
                input,
                result: None,
                running: None,
                generation: 0,
                scroll: 0,
            },
            summaries: HashMap::new(),
            pending: None,
            busy: None,
            undo: Vec::new(),
            saved_at: None,
            default_out: String::new(),
            message: None,
            theme: options.theme,
            size: options.size,
            outbox: Vec::new(),
            quit: false,
            dirty: true,
        };
        load(&mut app, model, options.source);
        if let Some(name) = options.select {
            let node = find_node(&app, &name)?;
            reveal(&mut app, node);
            select(&mut app, node);
        }
        Ok(app)
    }
}

/// Installs a model: a fresh tree, caches and history.
fn load(app: &mut App, model: Model, source: String) {
    app.outline = Outline::new(&model);
    app.model = model;
    app.source_path = (!source.starts_with("demo:")).then(|| PathBuf::from(&source));
    app.default_out = default_output(&source);
    app.source = source;
    let all = app.outline.nodes.len() <= OPEN_ALL_NODES;
    app.opened = app
        .outline
        .nodes
        .iter()
        .map(|n| matches!(n.kind, NodeKind::Module { .. }) && (all || n.depth == 0))
        .collect();
    app.filter.clear();
    app.summaries.clear();
    app.pending = None;
    app.undo.clear();
    app.saved_at = None;
    app.forward.result = None;
    app.forward.scroll = 0;
    app.tree_offset = 0;
    // The first tensor may sit at the same node as the old selection: start its grid afresh.
    app.grid = Grid::default();
    refresh_rows(app);
    let first_param = app
        .visible
        .iter()
        .copied()
        .find(|&i| app.outline.nodes[i].param().is_some())
        .unwrap_or(0);
    select(app, first_param);
    if app.forward.open {
        run_forward(app);
    }
}

/// `x.safetensors` -> `x.reinit.safetensors` beside it; a demo -> `NAME.reinit.safetensors` here.
fn default_output(source: &str) -> String {
    if let Some(name) = source.strip_prefix("demo:") {
        return format!("{name}.reinit.safetensors");
    }
    let path = Path::new(source);
    let stem = path
        .file_stem()
        .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}.reinit.safetensors"))
        .display()
        .to_string()
}

/// The node of a parameter or module name (state_dict key or the chapter's indexing).
fn find_node(app: &App, name: &str) -> Result<usize, String> {
    if let Ok((key, _)) = app.model.find_param(name) {
        return app.outline.find(&key, true).ok_or(key);
    }
    match app.model.find_module(name) {
        Ok((path, _)) => app.outline.find(&path, false).ok_or(path),
        Err(_) => Err(app
            .model
            .find_param(name)
            .err()
            .map_or_else(|| name.to_owned(), |e| e.to_string())),
    }
}

/// Carries out one user action.
pub fn update(app: &mut App, action: Action) {
    app.dirty = true;
    match action {
        Action::ForceQuit => app.quit = true,
        Action::Resize(w, h) => {
            app.size = (w, h);
            scroll_tree(app);
            scroll_grid(app);
            clamp_forward_scroll(app);
            if let Mode::Help(offset) = app.mode {
                app.mode = Mode::Help(offset.min(help_page(app).1));
            }
        }
        _ => match app.mode.clone() {
            Mode::Browse => browse(app, action),
            Mode::Filter => filter(app, action),
            Mode::Init(dialog) => init_dialog(app, dialog, action),
            Mode::Write(path) => write_prompt(app, path, action),
            Mode::Ask(question) => ask(app, &question, action),
            Mode::Models(index) => models(app, index, action),
            Mode::Help(offset) => help(app, offset, action),
        },
    }
}

fn browse(app: &mut App, action: Action) {
    let on_tensor = app.focus == Focus::Tensor;
    match action {
        Action::Quit if app.busy.is_some() => refuse_quit(app),
        Action::Quit if app.unsaved() => app.mode = Mode::Ask(Question::QuitUnsaved),
        Action::Quit => app.quit = true,
        Action::ToggleHelp => app.mode = Mode::Help(0),
        Action::FocusNext => {
            app.focus = match app.focus {
                Focus::Tree => Focus::Tensor,
                Focus::Tensor => Focus::Tree,
            };
        }
        Action::Up
        | Action::Down
        | Action::PageUp
        | Action::PageDown
        | Action::Home
        | Action::End
            if on_tensor && app.forward.open =>
        {
            scroll_forward(app, action);
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
            move_cursor(app, action);
        }
        Action::Up
        | Action::Down
        | Action::PageUp
        | Action::PageDown
        | Action::Home
        | Action::End => {
            let row = selected_row(app);
            let page = tree_page(app);
            let delta = step(action, page, row, app.visible.len());
            move_tree(app, delta);
        }
        Action::Left => collapse_or_parent(app),
        Action::Right => expand_or_enter(app),
        Action::Toggle if app.outline.nodes[app.selected].has_children(app.selected) => {
            app.opened[app.selected] ^= true;
            refresh_rows(app);
        }
        Action::StartFilter => app.mode = Mode::Filter,
        Action::NextAlias => next_alias(app),
        Action::CycleView => app.view = app.view.next(),
        Action::PrevSlice | Action::NextSlice => {
            if let Some((slices, _, _)) = selected_dims(app) {
                // A zero-length leading dimension has no slice at all: stay at 0.
                app.grid.slice = if action == Action::NextSlice {
                    (app.grid.slice + 1).min(slices.saturating_sub(1))
                } else {
                    app.grid.slice.saturating_sub(1)
                };
            }
        }
        Action::Forward => {
            app.forward.open = !app.forward.open;
            if app.forward.open {
                app.focus = Focus::Tensor;
                run_forward(app);
            }
        }
        Action::BatchUp | Action::BatchDown | Action::SeedUp | Action::SeedDown => {
            change_input(app, action);
        }
        Action::OpenInit => open_init(app),
        Action::Undo => undo(app),
        Action::OpenWrite | Action::OpenModels if refused_while_busy(app) => {}
        Action::OpenWrite => app.mode = Mode::Write(app.default_out.clone()),
        Action::OpenModels => {
            let at = app.choices.iter().position(|c| *c == app.source);
            app.mode = Mode::Models(at.unwrap_or(0));
        }
        Action::Cancel => {
            if app.forward.open {
                app.forward.open = false;
            } else if !app.filter.is_empty() {
                app.filter.clear();
                refresh_rows(app);
            } else {
                app.message = None;
            }
        }
        Action::ScrollUp(x, y) | Action::ScrollDown(x, y) => {
            let up = matches!(action, Action::ScrollUp(..));
            focus_at(app, x, y);
            browse(app, if up { Action::Up } else { Action::Down });
        }
        Action::Click(x, y) => click(app, x, y),
        _ => {}
    }
}

/// The signed move of a paging action: `page` rows for PgUp/PgDn, to either end for Home/End.
fn step(action: Action, page: usize, at: usize, len: usize) -> isize {
    let page = page.max(1) as isize;
    match action {
        Action::Up | Action::Left => -1,
        Action::Down | Action::Right => 1,
        Action::PageUp => -page,
        Action::PageDown => page,
        Action::Home => -(at as isize),
        Action::End => len as isize - 1 - at as isize,
        _ => 0,
    }
}

/// The forward panel's layer rows on screen (at least 1), and the largest scroll that still
/// fills them: the table ends at the panel's bottom, not above it.
fn forward_page(app: &App) -> (usize, usize) {
    let Some(Ok(result)) = &app.forward.result else {
        return (1, 0);
    };
    // The panel is where the tensor pane is when it has the focus (narrow screens show one pane).
    let screen = Rect::new(0, 0, app.size.0, app.size.1);
    let Some(right) = layout::areas(screen, Focus::Tensor).right else {
        return (1, 0);
    };
    let width = result.output.shape().last().copied().unwrap_or(1).max(1);
    let above =
        layout::forward_rows_above(app.forward.running.is_some(), result.output.len() / width);
    let page = usize::from(layout::inner(right).height)
        .saturating_sub(above)
        .max(1);
    (page, result.layers.len().saturating_sub(page))
}

/// Moves the forward panel's layer table, no further than its last page.
fn scroll_forward(app: &mut App, action: Action) {
    let (page, max) = forward_page(app);
    let delta = step(action, page, app.forward.scroll, max + 1);
    app.forward.scroll = app.forward.scroll.saturating_add_signed(delta).min(max);
}

/// Keeps the forward panel's scroll within [`forward_page`]'s range after the page changed.
fn clamp_forward_scroll(app: &mut App) {
    app.forward.scroll = app.forward.scroll.min(forward_page(app).1);
}

/// The help screen's lines on screen (at least 1), and the largest offset that still fills them.
fn help_page(app: &App) -> (usize, usize) {
    let screen = Rect::new(0, 0, app.size.0, app.size.1);
    let page = usize::from(layout::inner(layout::help_box(screen)).height).max(1);
    (page, super::keymap::help_line_count().saturating_sub(page))
}

fn screen_areas(app: &App) -> Areas {
    layout::areas(Rect::new(0, 0, app.size.0, app.size.1), app.focus)
}

fn tree_page(app: &App) -> usize {
    screen_areas(app)
        .tree
        .map_or(1, |r| usize::from(layout::inner(r).height).max(1))
}

fn selected_row(app: &App) -> usize {
    app.visible
        .iter()
        .position(|&n| n == app.selected)
        .unwrap_or(0)
}

fn move_tree(app: &mut App, delta: isize) {
    if app.visible.is_empty() {
        return;
    }
    let row = selected_row(app)
        .saturating_add_signed(delta)
        .min(app.visible.len() - 1);
    select(app, app.visible[row]);
}

fn collapse_or_parent(app: &mut App) {
    let node = app.selected;
    if app.opened[node] && app.outline.nodes[node].has_children(node) && app.filter.is_empty() {
        app.opened[node] = false;
        refresh_rows(app);
    } else if let Some(parent) = app.outline.nodes[node].parent {
        select(app, parent);
    }
}

fn expand_or_enter(app: &mut App) {
    let node = app.selected;
    if !app.outline.nodes[node].has_children(node) {
        return;
    }
    if app.opened[node] || !app.filter.is_empty() {
        move_tree(app, 1);
    } else {
        app.opened[node] = true;
        refresh_rows(app);
    }
}

/// Recomputes the rows on screen after a fold or a filter, keeping the selection on screen.
fn refresh_rows(app: &mut App) {
    app.visible = app.outline.visible(&app.opened, &app.filter);
    if !app.visible.contains(&app.selected) {
        // The nearest shown ancestor, else the first row.
        let mut node = Some(app.selected);
        while let Some(n) = node {
            if app.visible.contains(&n) {
                break;
            }
            node = app.outline.nodes.get(n).and_then(|n| n.parent);
        }
        let target = node.or_else(|| app.visible.first().copied()).unwrap_or(0);
        select(app, target);
    }
    scroll_tree(app);
}

/// Opens every ancestor of `node` and drops a filter that hides it.
fn reveal(app: &mut App, node: usize) {
    let mut parent = app.outline.nodes[node].parent;
    while let Some(p) = parent {
        app.opened[p] = true;
        parent = app.outline.nodes[p].parent;
    }
    app.visible = app.outline.visible(&app.opened, &app.filter);
    if !app.visible.contains(&node) {
        app.filter.clear();
    }
    app.visible = app.outline.visible(&app.opened, &app.filter);
}

/// Selects a node: the grid starts at its top left, and its statistics are asked for.
fn select(app: &mut App, node: usize) {
    if node != app.selected {
        app.grid = Grid::default();
    }
    app.selected = node.min(app.outline.nodes.len().saturating_sub(1));
    scroll_tree(app);
    request_summaries(app);
}

fn scroll_tree(app: &mut App) {
    app.tree_offset = layout::follow(app.tree_offset, selected_row(app), tree_page(app));
}

/// Computes or queues the summaries the tensor pane will show: the selected tensor, its state
/// before the last re-init, or the parameters a module summary lists.
fn request_summaries(app: &mut App) {
    let node = &app.outline.nodes[app.selected];
    if let Some(id) = node.param() {
        let before = app.undo.last().and_then(|record| {
            record
                .changes
                .iter()
                .find(|(changed, ..)| *changed == id)
                .map(|(_, old_version, _, old)| (*old_version, old.clone()))
        });
        let current = (app.model.store.version(id), app.model.store.get(id).clone());
        // The big ones go to the worker in one job, so that its newest-job-wins keeps both.
        let big: Vec<_> = before
            .into_iter()
            .chain([current])
            .filter_map(|(version, tensor)| summarize(app, (id, version), tensor, true))
            .collect();
        let Some(&(last, _)) = big.last() else {
            return;
        };
        // Already on its way (the user came back while it runs): not again.
        if big.len() == 1 && app.pending.map(|(k, _)| k) == Some(last) {
            return;
        }
        app.pending = Some((last, 0.0));
        app.outbox.push(Job::Summarize { tensors: big });
    } else {
        let start = app.selected;
        let ids: Vec<ParamId> = app.outline.nodes[start..node.end]
            .iter()
            .filter_map(super::outline::Node::param)
            .take(SUMMARY_ROWS)
            .collect();
        // At most INLINE_BYTES are read on the key thread per request; the other small tensors go
        // to the worker in one job (big ones are summarized only when selected).
        let mut spent = 0;
        let mut rest = Vec::new();
        for id in ids {
            let key = (id, app.model.store.version(id));
            let tensor = app.model.store.get(id);
            let bytes = tensor.bytes().len();
            if app.summaries.contains_key(&key) || bytes > INLINE_BYTES {
                continue;
            }
            if spent + bytes <= INLINE_BYTES {
                spent += bytes;
                summarize(app, key, tensor.clone(), false);
            } else {
                rest.push((key, tensor.clone()));
            }
        }
        if !rest.is_empty() {
            app.outbox.push(Job::Summarize { tensors: rest });
        }
    }
}

/// A summary now when the tensor is small; else, with `big_too` (only for the selected tensor),
/// the tensor back for the worker.
fn summarize(
    app: &mut App,
    key: super::state::SummaryKey,
    tensor: crate::tensor::Tensor,
    big_too: bool,
) -> Option<(super::state::SummaryKey, crate::tensor::Tensor)> {
    if app.summaries.contains_key(&key) {
        return None;
    }
    if tensor.bytes().len() <= INLINE_BYTES {
        let summary = worker::summarize(&tensor, &mut |_| {});
        app.summaries.insert(key, summary);
        None
    } else {
        big_too.then_some((key, tensor))
    }
}

/// `(slices, rows, columns)` of the selected tensor's grid.
fn selected_dims(app: &App) -> Option<(usize, usize, usize)> {
    let id = app.outline.nodes[app.selected].param()?;
    Some(layout::grid_dims(app.model.store.get(id).shape()))
}

/// The values grid's body rect for the current size.
fn grid_body(app: &App) -> Option<Rect> {
    let right = screen_areas(app).right?;
    Some(layout::tensor_split(layout::inner(right)).1)
}

fn move_cursor(app: &mut App, action: Action) {
    let Some((slices, rows, cols)) = selected_dims(app) else {
        return;
    };
    if slices == 0 || rows == 0 || cols == 0 {
        // An empty tensor has no cell to move to.
        return;
    }
    let (_, page_rows, page_cols) =
        grid_body(app).map_or((0, 1, 1), |b| layout::grid_page(b, rows));
    let g = &mut app.grid;
    match action {
        Action::Left | Action::Right => {
            let delta = step(action, page_cols, g.col, cols);
            g.col = g
                .col
                .saturating_add_signed(delta)
                .min(cols.saturating_sub(1));
        }
        _ => {
            let delta = step(action, page_rows, g.row, rows);
            g.row = g
                .row
                .saturating_add_signed(delta)
                .min(rows.saturating_sub(1));
        }
    }
    scroll_grid(app);
}

fn scroll_grid(app: &mut App) {
    let (Some((_, rows, _)), Some(body)) = (selected_dims(app), grid_body(app)) else {
        return;
    };
    let (_, page_rows, page_cols) = layout::grid_page(body, rows);
    let g = &mut app.grid;
    g.row_offset = layout::follow(g.row_offset, g.row, page_rows);
    g.col_offset = layout::follow(g.col_offset, g.col, page_cols);
}

fn next_alias(app: &mut App) {
    let Some(id) = app.outline.nodes[app.selected].param() else {
        app.message = Some(Message::Info(
            "select a parameter to find its aliases".into(),
        ));
        return;
    };
    let all = app.outline.aliases[&id].clone();
    if all.len() < 2 {
        app.message = Some(Message::Info("this tensor has one path only".into()));
        return;
    }
    let at = all.iter().position(|&n| n == app.selected).unwrap_or(0);
    let next = all[(at + 1) % all.len()];
    reveal(app, next);
    scroll_tree(app);
    let grid = app.grid;
    select(app, next);
    // Same tensor: the grid stays where it was.
    app.grid = grid;
}

fn focus_at(app: &mut App, x: u16, y: u16) {
    let areas = screen_areas(app);
    let point = ratatui::layout::Position { x, y };
    if areas.tree.is_some_and(|r| r.contains(point)) {
        app.focus = Focus::Tree;
    } else if areas.right.is_some_and(|r| r.contains(point)) {
        app.focus = Focus::Tensor;
    }
}

fn click(app: &mut App, x: u16, y: u16) {
    focus_at(app, x, y);
    let Some(tree) = screen_areas(app).tree.map(layout::inner) else {
        return;
    };
    if !tree.contains(ratatui::layout::Position { x, y }) {
        return;
    }
    let row = app.tree_offset + usize::from(y - tree.y);
    if let Some(&node) = app.visible.get(row) {
        if node == app.selected {
            browse(app, Action::Toggle);
        } else {
            select(app, node);
        }
    }
}

fn filter(app: &mut App, action: Action) {
    match action {
        Action::Type(ch) => {
            app.filter.push(ch);
            refresh_rows(app);
            select_first_match(app);
        }
        Action::Backspace => {
            app.filter.pop();
            refresh_rows(app);
            select_first_match(app);
        }
        Action::Submit => app.mode = Mode::Browse,
        Action::Cancel => {
            app.filter.clear();
            app.mode = Mode::Browse;
            refresh_rows(app);
        }
        Action::Up | Action::Down => browse(app, action),
        _ => {}
    }
}

/// With a filter typed, the first row that matches it (not just an ancestor of a match).
fn select_first_match(app: &mut App) {
    let needle = app.filter.to_lowercase();
    let hit = app.visible.iter().copied().find(|&i| {
        let n = &app.outline.nodes[i];
        n.path.to_lowercase().contains(&needle) || n.label.to_lowercase().contains(&needle)
    });
    if let Some(node) = hit {
        select(app, node);
    }
}

fn change_input(app: &mut App, action: Action) {
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
    run_forward(app);
}

/// Queues a forward pass of the model as it is now; a newer run makes older replies stale.
fn run_forward(app: &mut App) {
    app.forward.generation += 1;
    app.forward.running = Some((0, 0));
    app.outbox.push(Job::Forward {
        model: app.model.clone(),
        input: app.forward.input.clone(),
        generation: app.forward.generation,
    });
}

/// Refuses an action that would start a re-init, a write or a load while one is on the worker:
/// `busy` has one slot, and a second job would race the first (a load dropping a re-init's result).
fn refused_while_busy(app: &mut App) -> bool {
    if app.busy.is_some() {
        app.message = Some(Message::Error("wait for the work in progress".into()));
        return true;
    }
    false
}

/// `q` while a job runs: quitting could cut a write short (or drop a re-init), so it waits.
fn refuse_quit(app: &mut App) {
    app.message = Some(Message::Error(
        "wait for the work in progress; ctrl-c quits at once".into(),
    ));
}

fn open_init(app: &mut App) {
    if refused_while_busy(app) {
        return;
    }
    let node = &app.outline.nodes[app.selected];
    let (module, weights, biases) = match node.kind {
        NodeKind::Module { .. } => (app.selected, true, true),
        NodeKind::Param { .. } => (
            node.parent.unwrap_or(0),
            node.label == "weight",
            node.label == "bias",
        ),
    };
    let m = &app.outline.nodes[module];
    // A layer: parameters right below it and nothing else.
    let layer = m.has_children(module)
        && app.outline.nodes[module + 1..m.end]
            .iter()
            .all(|n| n.param().is_some());
    let mut dialog = InitDialog {
        path: m.path.clone(),
        layer,
        scheme: 0,
        args: Vec::new(),
        weights,
        biases,
        seed: "0".into(),
        field: 0,
        error: None,
    };
    dialog.choose(0);
    app.mode = Mode::Init(dialog);
}

fn init_dialog(app: &mut App, mut d: InitDialog, action: Action) {
    let count = d.fields().len();
    match (action, d.current()) {
        (Action::Cancel, _) => {
            app.mode = Mode::Browse;
            return;
        }
        (Action::Submit, _) if refused_while_busy(app) => {
            app.mode = Mode::Init(d);
            return;
        }
        (Action::Submit, _) => {
            match plan_of(&d) {
                Ok(plan) => {
                    let label = format!(
                        "{} on {}",
                        plan.weight
                            .as_ref()
                            .or(plan.bias.as_ref())
                            .map_or("", InitScheme::name),
                        d.target()
                    );
                    // The status bar shows the job now, and what is said about it while it runs.
                    app.message = None;
                    app.busy = Some(Busy {
                        what: format!("re-initializing: {label}"),
                    });
                    app.outbox.push(Job::Init {
                        label,
                        model: app.model.clone(),
                        path: d.path.clone(),
                        plan,
                    });
                    app.mode = Mode::Browse;
                }
                Err(e) => {
                    d.error = Some(e);
                    app.mode = Mode::Init(d);
                }
            }
            return;
        }
        (Action::Up, _) => d.field = (d.field + count - 1) % count,
        (Action::Down, _) => d.field = (d.field + 1) % count,
        (Action::Left, InitField::Scheme) => d.choose(d.scheme + SCHEMES.len() - 1),
        (Action::Right, InitField::Scheme) => d.choose(d.scheme + 1),
        (Action::Left | Action::Right | Action::Type(' '), InitField::Weights) => {
            d.weights ^= true;
        }
        (Action::Left | Action::Right | Action::Type(' '), InitField::Biases) => {
            d.biases ^= true;
        }
        (Action::Type(ch), InitField::Arg(i)) => d.args[i].1.push(ch),
        (Action::Type(ch), InitField::Seed) if ch.is_ascii_digit() => d.seed.push(ch),
        (Action::Backspace, InitField::Arg(i)) => {
            d.args[i].1.pop();
        }
        (Action::Backspace, InitField::Seed) => {
            d.seed.pop();
        }
        _ => {}
    }
    d.error = None;
    app.mode = Mode::Init(d);
}

/// The plan the dialog describes, or why it is not one.
fn plan_of(d: &InitDialog) -> Result<InitPlan, String> {
    let mut scheme = InitScheme::with_defaults(SCHEMES[d.scheme]).map_err(|e| e.to_string())?;
    for (key, value) in &d.args {
        scheme.set_argument(key, value).map_err(|e| e.to_string())?;
    }
    let seed = d
        .seed
        .parse()
        .map_err(|_| format!("seed {:?} is not a whole number", d.seed))?;
    if !d.weights && !d.biases {
        return Err("choose weights, biases, or both".into());
    }
    Ok(InitPlan {
        weight: d.weights.then(|| scheme.clone()),
        bias: d.biases.then_some(scheme),
        seed,
    })
}

fn undo(app: &mut App) {
    if refused_while_busy(app) {
        return;
    }
    let Some(record) = app.undo.pop() else {
        app.message = Some(Message::Info("nothing to undo".into()));
        return;
    };
    for (id, _, _, old) in record.changes {
        app.model.store.set(id, old);
    }
    app.message = Some(Message::Info(format!("undid {}", record.label)));
    after_change(app);
}

/// After tensors changed: new summaries, and the last forward pass again.
fn after_change(app: &mut App) {
    request_summaries(app);
    if app.forward.result.is_some() || app.forward.open {
        run_forward(app);
    }
}

fn write_prompt(app: &mut App, mut path: String, action: Action) {
    match action {
        Action::Type(ch) => path.push(ch),
        Action::Backspace => {
            path.pop();
        }
        Action::Cancel => {
            app.mode = Mode::Browse;
            return;
        }
        Action::Submit => {
            let target = PathBuf::from(path.trim());
            if path.trim().is_empty() {
                app.message = Some(Message::Error("type a path to write to".into()));
            } else if app.source_path.as_deref() == Some(target.as_path()) {
                app.mode = Mode::Ask(Question::Overwrite(target));
                return;
            } else {
                save(app, target, false);
                app.mode = Mode::Browse;
                return;
            }
        }
        _ => {}
    }
    app.mode = Mode::Write(path);
}

fn save(app: &mut App, path: PathBuf, overwrite: bool) {
    if refused_while_busy(app) {
        return;
    }
    // The status bar shows the job now, and what is said about it while it runs.
    app.message = None;
    app.busy = Some(Busy {
        what: format!("writing {}", path.display()),
    });
    app.outbox.push(Job::Save {
        model: app.model.clone(),
        path,
        overwrite,
    });
}

fn ask(app: &mut App, question: &Question, action: Action) {
    app.mode = Mode::Browse;
    match (question, action) {
        (Question::Overwrite(path), Action::Yes) => save(app, path.clone(), true),
        (Question::QuitUnsaved, Action::Yes) if app.busy.is_some() => refuse_quit(app),
        (Question::QuitUnsaved, Action::Yes) => app.quit = true,
        (_, Action::No | Action::Cancel) => {}
        _ => app.mode = Mode::Ask(question.clone()),
    }
}

fn models(app: &mut App, index: usize, action: Action) {
    let count = app.choices.len().max(1);
    match action {
        Action::Up => app.mode = Mode::Models((index + count - 1) % count),
        Action::Down => app.mode = Mode::Models((index + 1) % count),
        Action::Cancel => app.mode = Mode::Browse,
        Action::Submit => {
            app.mode = Mode::Browse;
            if refused_while_busy(app) {
                return;
            }
            if app.unsaved() {
                app.message = Some(Message::Error(
                    "re-inits are not written: write them (w) or undo them (u) first".into(),
                ));
            } else if let Some(spec) = app.choices.get(index).cloned() {
                // The status bar shows the job now, and what is said about it while it runs.
                app.message = None;
                app.busy = Some(Busy {
                    what: format!("opening {spec}"),
                });
                app.outbox.push(Job::Load { spec });
            }
        }
        _ => {}
    }
}

fn help(app: &mut App, offset: usize, action: Action) {
    app.mode = match action {
        Action::Cancel | Action::ToggleHelp => Mode::Browse,
        other => {
            let (page, max) = help_page(app);
            let delta = step(other, page, offset, max + 1);
            Mode::Help(offset.saturating_add_signed(delta).min(max))
        }
    };
}

/// Takes in a message from the worker.
pub fn receive(app: &mut App, reply: Reply) {
    app.dirty = true;
    match reply {
        Reply::SummaryProgress(key, done) => {
            if let Some((pending, progress)) = &mut app.pending
                && *pending == key
            {
                *progress = done;
            }
        }
        Reply::Summary(key, summary) => {
            if app.pending.is_some_and(|(k, _)| k == key) {
                app.pending = None;
            }
            app.summaries.insert(key, summary);
        }
        Reply::ForwardProgress(generation, done, all) => {
            if generation == app.forward.generation {
                app.forward.running = Some((done, all));
            }
        }
        Reply::Forward(generation, result) => {
            if generation == app.forward.generation {
                app.forward.running = None;
                app.forward.result = Some(result);
                // A model with fewer layers, or the progress line gone: the page changed.
                clamp_forward_scroll(app);
            }
        }
        Reply::Init(label, result) => {
            app.busy = None;
            match result {
                Ok(written) => {
                    let changes = written
                        .into_iter()
                        .map(|(id, tensor)| {
                            let before = app.model.store.version(id);
                            let old = app.model.store.get(id).clone();
                            app.model.store.set(id, tensor);
                            (id, before, app.model.store.version(id), old)
                        })
                        .collect::<Vec<_>>();
                    app.message = Some(Message::Info(format!(
                        "re-initialized {} tensor(s): {label}; u undoes",
                        changes.len()
                    )));
                    // A written state deeper on the stack than this one is gone for good.
                    if app.saved_at.is_some_and(|at| at > app.undo.len()) {
                        app.saved_at = None;
                    }
                    app.undo.push(InitRecord { label, changes });
                    after_change(app);
                }
                Err(e) => app.message = Some(Message::Error(e)),
            }
        }
        Reply::SaveExists(path) => {
            app.busy = None;
            app.mode = Mode::Ask(Question::Overwrite(path));
        }
        Reply::Saved(result) => {
            app.busy = None;
            app.message = Some(match result {
                Ok(path) => {
                    app.saved_at = Some(app.undo.len());
                    Message::Info(format!("wrote {}", path.display()))
                }
                Err(e) => Message::Error(e),
            });
        }
        Reply::Loaded(spec, result) => {
            app.busy = None;
            match result {
                Ok(model) => {
                    app.message = Some(Message::Info(format!("opened {spec}")));
                    load(app, *model, spec);
                }
                Err(e) => app.message = Some(Message::Error(e)),
            }
        }
    }
}
