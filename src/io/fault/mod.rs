//! What must still happen when the process dies abruptly, each job in its own module:
//!
//! - [`sigbus`]: a file truncated under a memory map raises SIGBUS on the next read of a vanished
//!   page; the handler ends the process with `error: FILE changed on disk while being read` and
//!   status 1 instead of a crash, after the two jobs below;
//! - [`terminal`]: the terminal mode the app changed, restored from the handler;
//! - [`temps`]: temp files being written, removed from the handler or after SIGINT, SIGTERM and
//!   SIGHUP;
//! - [`abort`]: an allocation failure's abort (SIGABRT) does the two jobs above, then aborts.
//!
//! A signal handler may only call async-signal-safe functions and touch lock-free data, so
//! everything it needs is prepared beforehand in fixed tables of atomics: the maps' address ranges
//! with their messages, the temp files' paths as C strings, the terminal's saved mode.

pub mod abort;
pub mod sigbus;
mod signal_safe;
pub mod temps;
pub mod terminal;

pub use sigbus::register_map;

/// Installs the SIGBUS and SIGABRT handlers (once; later calls do nothing).
pub fn install() {
    sigbus::install();
    abort::install();
}
pub use temps::{TempGuard, register_temp, remove_temps};
pub use terminal::{save_terminal, set_terminal_active};
