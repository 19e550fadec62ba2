//! `update(&mut App, Action) -> Effects` and `receive(&mut App, Reply) -> Effects`: the only
//! places the state changes. Neither touches the terminal; slow work comes back as jobs in the
//! [`Effects`] for the loop to hand to the worker, so a test reads what a key caused.
//!
//! By mode: [`browse`] (the panes), [`dialogs`] (filter, re-init, write, questions, picker, help,
//! popup), [`receive`] (the worker's replies); [`summaries`] asks for the statistics a screen shows.

mod browse;
mod compare;
mod dialogs;
mod grid;
mod parts;
mod probe;
mod receive;
mod summaries;
mod text;
mod training;
mod zero;

use ndarray::ArrayD;

use super::action::Action;
use super::error::AppError;
use super::extras::Extras;
use super::job::{Input, Job, OpenSpec, Opened, Runs};
use super::layout;
use super::outline::Outline;
use super::probe_view::ProbeCursor;
use super::scroll::Step;
use super::state::{
    App, Cache, Doc, Focus, ForwardPanel, Grid, Message, Mode, Popup, SAMPLE_TEXT, Screen,
    TensorPane, View,
};
use super::theme::Theme;
use super::tree_view::TreeView;
use crate::model::Model;

pub use compare::compare_with;
pub use receive::receive;
pub use summaries::INLINE_BYTES;
pub use training::follow_run;

/// What an update asks of the world beyond the state.
#[derive(Default)]
#[must_use]
pub struct Effects {
    /// Jobs for the worker, in order.
    pub jobs: Vec<Job>,
    /// Whether the app should end.
    pub quit: bool,
}

impl Effects {
    /// Adds `other`'s jobs and quit to these.
    pub fn absorb(&mut self, other: Effects) {
        self.jobs.extend(other.jobs);
        self.quit |= other.quit;
    }
}

/// How the app starts, beyond the model.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `MODEL` as typed (`demo:mlp`, a path).
    pub source: String,
    /// A parameter or module to select first.
    pub select: Option<String>,
    /// An `.npy` input for the forward pass, with its name.
    pub input: Option<(String, ArrayD<f32>)>,
    /// The seed of the random batch, and of demos opened later.
    pub seed: u64,
    /// The colours.
    pub theme: Theme,
    /// The terminal size.
    pub size: (u16, u16),
    /// Said in the status bar at start (an architecture found beside the file…).
    pub notices: Vec<String>,
    /// How `f` runs the model (a family checkpoint on a text).
    pub runs: Runs,
    /// The checkpoint's metadata and plain values.
    pub extras: Extras,
}

impl App {
    /// The app on `model`, with the tree open and a first parameter selected; the effects are
    /// the statistics of a big first tensor.
    pub fn new(model: Model, options: Options) -> Result<(App, Effects), AppError> {
        let input = match options.input {
            Some((name, array)) => Input::File { name, array },
            None => Input::Random {
                batch: 2,
                seed: options.seed,
            },
        };
        let mut app = App {
            doc: Doc {
                model: Model {
                    root: crate::model::Module::new("", crate::model::ModuleKind::Sequential)
                        .into(),
                    store: crate::model::ParamStore::default(),
                    metadata: std::collections::BTreeMap::new(),
                },
                source: String::new(),
                source_path: None,
                outline: Outline::default(),
                undo: Vec::new(),
                saved_at: None,
                load: 0,
                runs: Runs::Chain,
                from_gguf: false,
                optimizer: None,
            },
            tree: TreeView::default(),
            tensor: TensorPane {
                view: View::Values,
                grid: Grid::default(),
                log_counts: false,
                heat_absmax: false,
                module: super::scroll::Scroll::default(),
            },
            forward: ForwardPanel {
                open: false,
                input,
                text: SAMPLE_TEXT.to_owned(),
                result: None,
                running: None,
                generation: 0,
                scroll: super::scroll::Scroll::default(),
                probe: ProbeCursor::default(),
                before: None,
            },
            cache: Cache::default(),
            mode: Mode::Browse,
            focus: Focus::Tree,
            busy: None,
            message: None,
            screen: Screen {
                theme: options.theme,
                size: options.size,
            },
            last_init: None,
            seed: options.seed,
            compare: super::compare::Compare::default(),
            parts: super::quantized::Parts::default(),
            trajectory: None,
        };
        let mut fx = Effects::default();
        load(
            &mut app,
            Opened {
                model,
                notices: options.notices,
                runs: options.runs,
                extras: options.extras,
            },
            options.source,
            &mut fx,
        );
        if let Some(name) = options.select {
            let node = find_node(&app, &name)?;
            let page = layout::tree_page(&app);
            app.tree.reveal(&app.doc.outline, node, page);
            after_select(&mut app, &mut fx);
        }
        Ok((app, fx))
    }
}

/// Installs a model: a fresh tree, caches and history.
fn load(app: &mut App, opened: Opened, source: String, fx: &mut Effects) {
    let Opened {
        model,
        notices,
        runs,
        extras,
    } = opened;
    app.doc.runs = runs;
    app.doc.outline = Outline::new(&model, &extras);
    app.doc.from_gguf = !extras.gguf.is_empty();
    app.doc.optimizer =
        crate::checkpoint::training::holds_optimizer(&extras.values).then(|| extras.values.into());
    app.doc.model = model;
    app.doc.source_path = (!source.starts_with("demo:")).then(|| source.clone().into());
    app.doc.source = source;
    app.doc.undo.clear();
    app.doc.saved_at = None;
    app.doc.load += 1;
    app.cache = Cache::default();
    // Its keys are tensor ids, which the new model numbers afresh.
    app.parts.detail = None;
    app.forward.result = None;
    app.forward.scroll = super::scroll::Scroll::default();
    app.tensor.grid = Grid::default();
    app.tensor.module = super::scroll::Scroll::default();
    app.tree = TreeView::new(&app.doc.outline, layout::tree_page(app));
    compare::reload(app, fx);
    if let Some(t) = &mut app.trajectory {
        t.lay_over(&app.doc.model);
    }
    if !notices.is_empty() {
        say(app, Message::Info(notices.join("; ")));
    }
    after_select(app, fx);
    if app.forward.open {
        run_forward(app, fx);
    }
}

/// The node of a parameter or module name (state_dict key or the chapter's indexing), or why not.
fn find_node(app: &App, name: &str) -> Result<usize, AppError> {
    let (model, outline) = (&app.doc.model, &app.doc.outline);
    if let Ok((key, _)) = model.find_param(name) {
        return outline.find(&key, true).ok_or(AppError::NotInTree(key));
    }
    match model.find_module(name) {
        Ok((path, _)) => outline.find(&path, false).ok_or(AppError::NotInTree(path)),
        Err(_) => Err(model
            .find_param(name)
            .err()
            .map_or_else(|| AppError::NotInTree(name.to_owned()), AppError::Select)),
    }
}

/// Carries out one user action.
pub fn update(app: &mut App, action: Action) -> Effects {
    let mut fx = Effects::default();
    match action {
        Action::ForceQuit => fx.quit = true,
        Action::Resize(w, h) => {
            app.screen.size = (w, h);
            let page = layout::tree_page(app);
            app.tree.follow(page);
            grid::follow_grid(app);
            browse::clamp_forward(app);
            if let Mode::Help(offset) = app.mode {
                app.mode = Mode::Help(offset.min(layout::help_page(app).1));
            }
        }
        _ => match app.mode.clone() {
            Mode::Browse => browse::browse(app, action, &mut fx),
            Mode::Filter(field) => dialogs::filter(app, field, action, &mut fx),
            Mode::Init(dialog) => dialogs::init(app, dialog, action, &mut fx),
            Mode::Write(field) => dialogs::write(app, field, action, &mut fx),
            Mode::Ask(question) => dialogs::ask(app, &question, action, &mut fx),
            Mode::Open(picker) => dialogs::picker(app, picker, action, &mut fx),
            Mode::Help(offset) => dialogs::help(app, offset, action),
            Mode::Popup(popup) => dialogs::popup(app, popup, action),
            Mode::Text(field) => text::text(app, field, action, &mut fx),
        },
    }
    fx
}

/// The signed move of a paging action.
fn step_of(action: Action) -> Option<Step> {
    Some(match action {
        Action::Up | Action::Left => Step::By(-1),
        Action::Down | Action::Right => Step::By(1),
        Action::PageUp => Step::Pages(-1),
        Action::PageDown => Step::Pages(1),
        Action::Home => Step::First,
        Action::End => Step::Last,
        _ => return None,
    })
}

/// After the selection changed: the grid starts at the top left, and statistics are asked for.
fn after_select(app: &mut App, fx: &mut Effects) {
    app.tensor.grid = Grid::default();
    app.tensor.module = super::scroll::Scroll::default();
    summaries::request(app, fx);
    compare::request_detail(app, fx);
    parts::request(app, fx);
    training::request_optimizer(app, fx);
    training::request_version(app, fx);
}

/// Queues a forward pass of the model as it is now; a newer run makes older replies stale.
fn run_forward(app: &mut App, fx: &mut Effects) {
    app.forward.generation += 1;
    app.forward.running = Some((0, 0));
    let (model, load, generation) = (app.doc.model.clone(), app.doc.load, app.forward.generation);
    fx.jobs.push(match &app.doc.runs {
        Runs::Chain => Job::Forward {
            model,
            load,
            input: app.forward.input.clone(),
            generation,
        },
        Runs::Family(checkpoint) => Job::Family {
            model,
            load,
            checkpoint: checkpoint.clone(),
            text: app.forward.text.clone(),
            attention_layer: app.forward.probe.layer,
            generation,
        },
        Runs::Refused(why) => {
            app.forward.running = None;
            app.forward.result = Some(Err(AppError::FamilyRefused(why.clone())));
            return;
        }
    });
}

/// Queues the load of another model.
fn open_model(app: &mut App, spec: String, fx: &mut Effects) {
    app.message = None;
    app.busy = Some(super::state::Busy {
        what: format!("opening {spec}"),
    });
    fx.jobs.push(Job::Load(OpenSpec {
        model: spec,
        arch: None,
        seed: app.seed,
    }));
}

/// Refuses an action that would start a re-init, a write or a load while one is on the worker:
/// `busy` has one slot, and a second job would race the first.
fn refused_while_busy(app: &mut App) -> bool {
    if app.busy.is_some() {
        app.message = Some(Message::Error("wait for the work in progress".into()));
        return true;
    }
    false
}

/// Says that something failed. The one place an error becomes text.
fn report(app: &mut App, error: &AppError) {
    // Names travel raw inside errors and messages; the screen escapes them where it draws them.
    say(app, Message::Error(error.to_string()));
}

/// Puts a message in the status bar, and whole in a popup when it does not fit there
/// and nothing else has the keyboard (a warning cut at 80 columns would hide what it warns of).
fn say(app: &mut App, message: Message) {
    let (text, error) = match &message {
        Message::Error(text) => (text, true),
        Message::Info(text) => (text, false),
    };
    if !layout::fits_status_bar(app, text) && app.mode == Mode::Browse {
        app.mode = Mode::Popup(Popup {
            error,
            text: text.clone(),
            offset: 0,
        });
    }
    app.message = Some(message);
}
