//! The terminal around the app: raw mode, the alternate screen and the mouse, set up and restored
//! on every way out (a key, a panic, every signal that ends the process, SIGBUS, an allocation
//! failure's abort), given back to the shell on
//! Ctrl-Z or SIGTSTP and taken again on SIGCONT; and the threads that turn key presses and signals
//! into events.

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::thread;

use crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind,
    KeyModifiers,
};
use crossterm::execute;
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use libc::{
    SIGALRM, SIGCONT, SIGHUP, SIGINT, SIGIO, SIGPROF, SIGPWR, SIGQUIT, SIGTERM, SIGTSTP, SIGUSR1,
    SIGUSR2, SIGVTALRM, SIGXCPU, c_int,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use super::Event;
use crate::io::fault;
use crate::text::escape;

/// The app's terminal.
pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// The signal that ended the app, 0 for none.
static QUIT_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The signal (SIGTERM, SIGHUP, SIGINT, SIGQUIT...) that made the app quit, if one did: the process should
/// then exit with 128 + its number, as a shell reports a killed program.
#[must_use]
pub fn quit_signal() -> Option<i32> {
    match QUIT_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Raw mode, the alternate screen and the mouse; a panic hook that undoes them first.
pub fn enter() -> io::Result<Term> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The worker's panics are caught and said in the status bar: the screen stays up.
        if thread::current().name() == Some(super::work::THREAD_NAME) {
            return;
        }
        restore();
        previous(info);
    }));
    fault::save_terminal();
    let terminal = set_up(
        enable_raw_mode,
        || {
            // Bracketed paste: pasted text arrives whole, so a newline in it does not press Enter.
            execute!(
                io::stdout(),
                EnterAlternateScreen,
                EnableMouseCapture,
                crossterm::event::EnableBracketedPaste
            )?;
            Terminal::new(CrosstermBackend::new(io::stdout()))
        },
        restore,
    )?;
    fault::set_terminal_active(true);
    Ok(terminal)
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
pub fn restore() {
    fault::set_terminal_active(false);
    let steps: [(&str, io::Result<()>); 4] = [
        ("mouse", execute!(io::stdout(), DisableMouseCapture)),
        (
            "paste mode",
            execute!(io::stdout(), crossterm::event::DisableBracketedPaste),
        ),
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

/// Ctrl-Z or SIGTSTP: gives the terminal back as it was, stops the process as the shell expects,
/// and when continued (`fg`, SIGCONT) takes the terminal again and clears it so the next draw
/// repaints every cell.
pub fn suspend(terminal: &mut Term) -> io::Result<()> {
    restore();
    // Stops here until SIGCONT (the default action of SIGTSTP, which signal-hook caught).
    signal_hook::low_level::emulate_default_handler(SIGTSTP)?;
    resume(terminal)
}

/// Takes the terminal again after the process was stopped (raw mode, alternate screen, mouse),
/// and clears it so that the next draw repaints everything.
///
/// Not `Terminal::clear`, which asks the terminal for the cursor position: the input thread is
/// the one reading replies, so the question would time out. The screen is cleared here, and
/// swapping buffers twice blanks ratatui's copy of it, so the next draw sends every cell.
pub fn resume(terminal: &mut Term) -> io::Result<()> {
    enable_raw_mode()?;
    execute!(
        io::stdout(),
        EnterAlternateScreen,
        EnableMouseCapture,
        crossterm::event::EnableBracketedPaste,
        Clear(ClearType::All),
        crossterm::cursor::Hide
    )?;
    fault::set_terminal_active(true);
    terminal.swap_buffers();
    terminal.swap_buffers();
    Ok(())
}

/// Reads terminal events on a thread of their own; Ctrl-Z becomes [`Event::Suspend`] (in raw mode
/// the terminal sends it as a key, not as SIGTSTP).
pub(super) fn spawn_input(tx: mpsc::Sender<Event>) -> io::Result<()> {
    thread::Builder::new()
        .name("paramscope-input".into())
        .spawn(move || {
            // Ends when the terminal goes away or the loop has stopped listening.
            while let Ok(event) = crossterm::event::read() {
                let event = if is_ctrl_z(&event) {
                    Event::Suspend
                } else {
                    Event::Terminal(event)
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        })
        .map(drop)
}

fn is_ctrl_z(event: &TermEvent) -> bool {
    matches!(
        event,
        TermEvent::Key(KeyEvent {
            code: KeyCode::Char('z'),
            modifiers: KeyModifiers::CONTROL,
            kind: KeyEventKind::Press,
            ..
        })
    )
}

/// The signals whose default action ends the process and that can be caught: each one ends the
/// app cleanly, the terminal restored, with 128 + its number (SIGKILL cannot be caught; SIGBUS
/// and SIGABRT are handled in `io::fault`; SIGXFSZ is left to make a write fail instead).
const QUITTING: [c_int; 12] = [
    SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU,
    SIGIO, SIGPWR,
];

/// Turns every signal that would end the process ([`QUITTING`]: SIGTERM, SIGHUP, SIGINT,
/// SIGQUIT...) into a clean exit, SIGTSTP into a suspend and SIGCONT into a repaint.
pub(super) fn listen_for_signals(tx: mpsc::Sender<Event>) {
    let mut caught = QUITTING.to_vec();
    caught.extend([SIGTSTP, SIGCONT]);
    match signal_hook::iterator::Signals::new(caught) {
        Ok(mut signals) => {
            let spawned = thread::Builder::new()
                .name("paramscope-signals".into())
                .spawn(move || {
                    for signal in signals.forever() {
                        let event = match signal {
                            SIGTSTP => Event::Suspend,
                            SIGCONT => Event::Resume,
                            _ => {
                                QUIT_SIGNAL.store(signal, Ordering::SeqCst);
                                Event::Signal
                            }
                        };
                        if tx.send(event).is_err() {
                            break;
                        }
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
