//! The terminal app: one state ([`state::App`]), one [`update`](update::update), a render that
//! only reads (`impl Widget for &App` in [`ui`]), and a [`worker`] thread for slow work.
//!
//! Keys, resizes, worker replies and signals arrive on one channel; each becomes an action or a
//! reply applied to the state; the screen is drawn only when something changed, at most once a
//! frame, and ratatui's diff sends only the cells that differ. The terminal is restored on every
//! way out: a key, a panic, SIGTERM, SIGHUP.

pub mod action;
pub mod keymap;
pub mod outline;
pub mod state;
pub mod terminal;
pub mod ui;
pub mod update;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, MouseButton, MouseEventKind};

use action::Action;
use state::App;
use ui::theme::Theme;
use update::{Options, receive, update};
use worker::Reply;

use crate::checkpoint::{self, LoadOptions};
use crate::io::npy;
use crate::model::demos::DEMOS;
use terminal::Term;

/// The shortest time between two draws: input that comes faster is gathered into one frame.
const FRAME: Duration = Duration::from_millis(16);

/// What the command line gives the app.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// The model to open; the chapter's first demo when absent.
    pub model: Option<String>,
    /// A parameter or module to select first.
    pub select: Option<String>,
    /// An `.npy` input for the forward pass.
    pub input: Option<PathBuf>,
    /// The seed for building a demo and for the random batch.
    pub seed: u64,
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
pub fn run(args: Args) -> Result<(), String> {
    let spec = args.model.unwrap_or_else(|| "demo:mlp".to_owned());
    let model = checkpoint::load(
        &spec,
        &LoadOptions {
            arch: None,
            seed: args.seed,
        },
    )
    .map_err(|e| crate::text::escape(&e.to_string()).into_owned())?;
    let input = match &args.input {
        Some(path) => Some((
            path.display().to_string(),
            npy::read(path).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let mut choices = model_choices(Path::new("demo-models"));
    if !choices.contains(&spec) {
        choices.push(spec.clone());
    }
    let app = App::new(
        model,
        Options {
            source: spec,
            choices,
            select: args.select,
            input,
            seed: args.seed,
            theme: Theme::detect(),
            size: crossterm::terminal::size().unwrap_or((80, 24)),
        },
    )?;
    let mut terminal = terminal::enter().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let result = event_loop(app, &mut terminal);
    drop(terminal);
    terminal::restore();
    result
}

/// The demos, then the `.safetensors` files of `folder` in name order.
fn model_choices(folder: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    DEMOS
        .iter()
        .map(|(name, _)| format!("demo:{name}"))
        .chain(files)
        .collect()
}

fn event_loop(mut app: App, terminal: &mut Term) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let worker = {
        let tx = tx.clone();
        worker::spawn(move |reply| {
            let _ = tx.send(Event::Reply(reply));
        })
    };
    terminal::listen_for_signals(tx.clone());
    terminal::spawn_input(tx).map_err(|e| e.to_string())?;
    let mut last_draw = Instant::now()
        .checked_sub(FRAME)
        .unwrap_or_else(Instant::now);
    loop {
        for job in app.outbox.drain(..) {
            if worker.send(job).is_err() {
                return Err("the worker thread stopped".into());
            }
        }
        if app.quit {
            return Ok(());
        }
        let event = if app.dirty {
            let wait = FRAME.saturating_sub(last_draw.elapsed());
            if wait.is_zero() {
                terminal
                    .draw(|frame| frame.render_widget(&app, frame.area()))
                    .map_err(|e| format!("cannot draw: {e}"))?;
                app.dirty = false;
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
        match event {
            Event::Terminal(event) => {
                if let Some(action) = action_of(&app, &event) {
                    update(&mut app, action);
                }
            }
            Event::Reply(reply) => receive(&mut app, reply),
            Event::Signal => app.quit = true,
            Event::Suspend | Event::Resume => {
                let taken = if matches!(event, Event::Suspend) {
                    terminal::suspend(terminal)
                } else {
                    terminal::resume(terminal)
                };
                taken.map_err(|e| format!("cannot take the terminal back: {e}"))?;
                // The terminal may have been resized meanwhile; the clear makes the draw full.
                if let Ok((w, h)) = crossterm::terminal::size() {
                    update(&mut app, Action::Resize(w, h));
                }
                app.dirty = true;
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
