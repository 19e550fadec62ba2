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
pub mod ui;
pub mod update;
pub mod worker;

use std::io::{self, Stdout};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event as TermEvent, MouseButton, MouseEventKind,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use action::Action;
use state::App;
use ui::theme::Theme;
use update::{Options, receive, update};
use worker::Reply;

use crate::checkpoint::{self, LoadOptions};
use crate::io::npy;
use crate::model::demos::DEMOS;
use crate::text::escape;

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
        Some(path) => Some((path.display().to_string(), npy::read(path)?)),
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
    let mut terminal = enter().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let result = event_loop(app, &mut terminal);
    drop(terminal);
    restore();
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

type Term = Terminal<CrosstermBackend<Stdout>>;

/// Raw mode, the alternate screen and the mouse; a panic hook that undoes them first.
fn enter() -> io::Result<Term> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    set_up(
        enable_raw_mode,
        || {
            execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
            Terminal::new(CrosstermBackend::new(io::stdout()))
        },
        restore,
    )
}

/// Runs `first`, then `rest`; when `rest` fails, `undo` takes `first` (and whatever part of
/// `rest` was done) back before the error is returned: a failed set-up leaves no raw mode behind.
fn set_up<T>(
    first: impl FnOnce() -> io::Result<()>,
    rest: impl FnOnce() -> io::Result<T>,
    undo: impl FnOnce(),
) -> io::Result<T> {
    first()?;
    let done = rest();
    if done.is_err() {
        undo();
    }
    done
}

/// Undoes [`enter`], each step on its own so that one failure (a vanished terminal after SIGHUP)
/// does not skip the others; failures are reported, never panicked on.
fn restore() {
    let steps: [(&str, io::Result<()>); 3] = [
        ("mouse", execute!(io::stdout(), DisableMouseCapture)),
        ("raw mode", disable_raw_mode()),
        (
            "screen",
            execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show),
        ),
    ];
    for (what, result) in steps {
        if let Err(e) = result
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            eprintln!("paramscope: could not restore the terminal's {what}: {e}");
        }
    }
}

fn event_loop(mut app: App, terminal: &mut Term) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let worker = {
        let tx = tx.clone();
        worker::spawn(move |reply| {
            let _ = tx.send(Event::Reply(reply));
        })
    };
    listen_for_signals(tx.clone());
    thread::Builder::new()
        .name("paramscope-input".into())
        .spawn(move || {
            // Ends when the terminal goes away or the loop has stopped listening.
            while let Ok(event) = crossterm::event::read() {
                if tx.send(Event::Terminal(event)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| e.to_string())?;
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

/// Turns SIGTERM, SIGHUP (a dropped SSH connection) and SIGINT into a clean exit.
fn listen_for_signals(tx: mpsc::Sender<Event>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT]) {
        Ok(mut signals) => {
            let spawned = thread::Builder::new()
                .name("paramscope-signals".into())
                .spawn(move || {
                    if signals.forever().next().is_some() {
                        let _ = tx.send(Event::Signal);
                    }
                });
            if let Err(e) = spawned {
                eprintln!("paramscope: signals will not restore the terminal: {e}");
            }
        }
        Err(e) => eprintln!(
            "paramscope: signals will not restore the terminal: {}",
            escape(&e.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io;

    use super::set_up;

    #[test]
    fn a_failed_set_up_undoes_its_first_step() {
        let log = RefCell::new(Vec::new());
        let result: io::Result<()> = set_up(
            || {
                log.borrow_mut().push("raw on");
                Ok(())
            },
            || Err(io::Error::other("no alternate screen")),
            || log.borrow_mut().push("restored"),
        );
        assert!(result.is_err());
        assert_eq!(*log.borrow(), ["raw on", "restored"]);
    }

    #[test]
    fn a_set_up_is_undone_only_when_it_fails() {
        let log = RefCell::new(Vec::new());
        let failed_first: io::Result<()> = set_up(
            || Err(io::Error::other("not a terminal")),
            || Ok(()),
            || log.borrow_mut().push("restored"),
        );
        assert!(
            failed_first.is_err(),
            "nothing was changed, nothing to undo"
        );
        let done = set_up(|| Ok(()), || Ok(7), || log.borrow_mut().push("restored"));
        assert_eq!(done.unwrap(), 7);
        assert!(log.borrow().is_empty());
    }
}
