//! The terminal app: one state ([`state::App`]), one [`update`](update::update), a render that
//! only reads (`impl Widget for &App` in [`ui`]), and a worker thread for slow work ([`work`]),
//! which the state, update and render never import: they meet it only in the messages of [`job`].
//!
//! Keys, resizes, worker replies and signals arrive on one channel; each becomes an action or a
//! reply applied to the state; the screen is drawn only when something changed, at most once a
//! frame, and ratatui's diff sends only the cells that differ. The terminal is restored on every
//! way out: a key, a panic, SIGTERM, SIGHUP.

pub mod action;
pub mod compare;
pub mod error;
pub mod extras;
pub mod field;
pub mod format;
pub mod init_dialog;
pub mod job;
pub mod keymap;
pub mod layout;
pub mod outline;
pub mod picker;
pub mod probe_view;
pub mod quantized;
pub mod scroll;
pub mod state;
pub mod summary;
pub mod terminal;
pub mod theme;
pub mod trajectory;
pub mod tree_view;
pub mod ui;
pub mod update;
pub mod work;

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, MouseButton, MouseEventKind};

use action::Action;
use error::AppError;
use job::{OpenSpec, Reply};
use state::App;
use terminal::Term;
use theme::Theme;
use update::{Effects, Options, receive, update};

use crate::io::npy;

/// The shortest time between two draws: input that comes faster is gathered into one frame.
const FRAME: Duration = Duration::from_millis(16);

/// What the command line gives the app.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// The model to open; the chapter's first demo when absent.
    pub model: Option<String>,
    /// The architecture of a checkpoint, as the text print(model) shows.
    pub arch: Option<PathBuf>,
    /// A parameter or module to select first.
    pub select: Option<String>,
    /// An `.npy` input for the forward pass.
    pub input: Option<PathBuf>,
    /// The seed for building a demo and for the random batch.
    pub seed: u64,
    /// A second model to compare with, opened on the worker.
    pub compare: Option<String>,
    /// The base of a LoRA adapter `model`.
    pub base: Option<String>,
    /// A run's checkpoints to follow (or one folder of them); the last opens unless `model` is
    /// given.
    pub trajectory: Vec<String>,
}

/// Everything the event loop hears, on one channel.
enum Event {
    Terminal(TermEvent),
    Reply(Reply),
    /// SIGTERM, SIGHUP or SIGINT: leave as `q` would, restoring the terminal.
    Signal,
    /// Ctrl-Z or SIGTSTP: give the terminal back and stop until continued.
    Suspend,
    /// SIGCONT: take the terminal again (after a stop the app did not see coming) and repaint.
    Resume,
}

/// Opens the app, runs it until the user quits, and restores the terminal.
pub fn run(args: Args) -> Result<(), AppError> {
    let run =
        (!args.trajectory.is_empty()).then(|| crate::checkpoint::locate::run(&args.trajectory));
    let last = match run.as_deref() {
        Some([one]) => return Err(AppError::OneCheckpoint(one.clone())),
        Some(run) => run.last().cloned(),
        None => None,
    };
    let mut spec = OpenSpec {
        model: (args.model.or(last)).unwrap_or_else(|| "demo:mlp".to_owned()),
        arch: args.arch,
        seed: args.seed,
    };
    // A folder of several checkpoints opens its first, with the picker offering them all.
    let (opened, several) = match work::open::open_with_base(&spec, args.base.as_deref()) {
        Ok(opened) => (opened, None),
        Err(e) => {
            let choices = picker::several(&e).ok_or(e)?;
            spec.model.clone_from(&choices[0]);
            (
                work::open::open_with_base(&spec, args.base.as_deref())?,
                Some(choices),
            )
        }
    };
    let input = match &args.input {
        Some(path) => Some((
            path.display().to_string(),
            npy::read(path).map_err(AppError::Input)?,
        )),
        None => None,
    };
    let (mut app, mut effects) = App::new(
        opened.model,
        Options {
            source: spec.model,
            select: args.select,
            input,
            seed: args.seed,
            theme: Theme::detect(),
            size: crossterm::terminal::size().unwrap_or((80, 24)),
            notices: opened.notices,
            runs: opened.runs,
            extras: opened.extras,
        },
    )?;
    if let Some(choices) = several {
        app.mode = state::Mode::Open(picker::Picker::new(choices, &app.doc.source));
    }
    if let Some(spec) = args.compare {
        effects.absorb(update::compare_with(&mut app, spec));
    }
    if let Some(checkpoints) = run {
        effects.absorb(update::follow_run(&mut app, checkpoints));
    }
    let mut terminal = terminal::enter()?;
    let result = event_loop(&mut app, effects, &mut terminal);
    drop(terminal);
    terminal::restore();
    // The process ends next, and the memory goes with it: freeing a million modules one by one
    // would only keep the user waiting for the prompt.
    std::mem::forget(app);
    result
}

fn event_loop(app: &mut App, first: Effects, terminal: &mut Term) -> Result<(), AppError> {
    let (tx, rx) = mpsc::channel();
    let worker = {
        let tx = tx.clone();
        work::spawn(move |reply| {
            let _ = tx.send(Event::Reply(reply));
        })
    };
    terminal::listen_for_signals(tx.clone());
    terminal::spawn_input(tx)?;
    let mut last_draw = Instant::now()
        .checked_sub(FRAME)
        .unwrap_or_else(Instant::now);
    let mut effects = first;
    // Every event may change what shows; the screen is drawn at most once a frame after one.
    let mut dirty = true;
    loop {
        for job in effects.jobs.drain(..) {
            worker.send(job).map_err(|_| AppError::WorkerGone)?;
        }
        if effects.quit {
            return Ok(());
        }
        let event = if dirty {
            let wait = FRAME.saturating_sub(last_draw.elapsed());
            if wait.is_zero() {
                terminal.draw(|frame| frame.render_widget(&*app, frame.area()))?;
                dirty = false;
                last_draw = Instant::now();
                continue;
            }
            match rx.recv_timeout(wait) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        } else {
            match rx.recv() {
                Ok(event) => event,
                Err(_) => return Ok(()),
            }
        };
        dirty = true;
        match event {
            Event::Terminal(TermEvent::Paste(text)) => {
                // A paste types its characters; line breaks in it are not Enter.
                for ch in text.chars().filter(|c| !c.is_control()) {
                    effects.absorb(update(app, Action::Type(ch)));
                }
            }
            Event::Terminal(event) => {
                if let Some(action) = action_of(app, &event) {
                    effects.absorb(update(app, action));
                }
            }
            Event::Reply(reply) => effects.absorb(receive(app, reply)),
            Event::Signal => effects.quit = true,
            Event::Suspend | Event::Resume => {
                if matches!(event, Event::Suspend) {
                    terminal::suspend(terminal)?;
                } else {
                    terminal::resume(terminal)?;
                }
                if let Ok((w, h)) = crossterm::terminal::size() {
                    effects.absorb(update(app, Action::Resize(w, h)));
                }
            }
        }
    }
}

/// The action a terminal event means, if any.
fn action_of(app: &App, event: &TermEvent) -> Option<Action> {
    match event {
        TermEvent::Key(key) => keymap::action_for(app, *key),
        TermEvent::Resize(w, h) => Some(Action::Resize(*w, *h)),
        TermEvent::Mouse(mouse) => match mouse.kind {
            MouseEventKind::ScrollUp => Some(Action::ScrollUp(mouse.column, mouse.row)),
            MouseEventKind::ScrollDown => Some(Action::ScrollDown(mouse.column, mouse.row)),
            MouseEventKind::Down(MouseButton::Left) => Some(Action::Click(mouse.column, mouse.row)),
            _ => None,
        },
        _ => None,
    }
}
