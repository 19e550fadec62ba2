//! The terminal mode the app changes (raw mode, the alternate screen), saved beforehand so that the
//! SIGBUS handler can give the user back a working shell.
#![expect(
    unsafe_code,
    reason = "termios calls have no safe interface, and the handler's copy is a raw pointer"
)]

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use super::signal_safe::write_all;

/// Whether the app's screen is up, and the terminal mode from before (leaked, for the handler).
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);
static TERMIOS_FOR_HANDLER: AtomicPtr<libc::termios> = AtomicPtr::new(ptr::null_mut());

/// Leaves the alternate screen, stops mouse reports and shows the cursor, as the app's restore does.
const LEAVE_SCREEN: &[u8] =
    b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?1049l\x1b[?25h";

/// Saves the terminal's mode before the app changes it (call before raw mode).
pub fn save_terminal() {
    // SAFETY: tcgetattr writes a termios for fd 0 into memory we own.
    let mut mode: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &raw mut mode) } != 0 {
        return;
    }
    if TERMIOS_FOR_HANDLER.load(Ordering::SeqCst).is_null() {
        let leaked: &'static mut libc::termios = Box::leak(Box::new(mode));
        TERMIOS_FOR_HANDLER.store(leaked, Ordering::SeqCst);
    }
}

/// Tells the handler whether the app's screen is up (so that a fault must restore it).
pub fn set_terminal_active(active: bool) {
    TERMINAL_ACTIVE.store(active, Ordering::SeqCst);
}

/// Leaves the app's screen and restores the saved mode, when the screen is up: async-signal-safe
/// (atomic loads, write and tcsetattr on a mode leaked beforehand).
pub(super) fn restore_in_handler() {
    if !TERMINAL_ACTIVE.load(Ordering::SeqCst) {
        return;
    }
    write_all(libc::STDOUT_FILENO, LEAVE_SCREEN);
    let mode = TERMIOS_FOR_HANDLER.load(Ordering::SeqCst);
    if !mode.is_null() {
        // SAFETY: `mode` is a leaked termios, valid for the life of the process.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, mode) };
    }
}
