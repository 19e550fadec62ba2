//! The SIGABRT handler: an allocation failure aborts without unwinding or a panic hook, so the
//! terminal the app set up and the temp files being written are seen to here, then the abort
//! goes on (status 134, a core if enabled).
#![expect(
    unsafe_code,
    reason = "the raise that ends the SIGABRT handler has no safe interface"
)]

use std::ffi::c_int;
use std::sync::atomic::AtomicBool;

use super::{signal_safe, temps, terminal};

/// Installs the SIGABRT handler (once; later calls do nothing).
pub fn install() {
    static DONE: AtomicBool = AtomicBool::new(false);
    // `on_abort` takes one argument and calls only async-signal-safe functions (write, tcsetattr,
    // unlink, raise). SA_RESETHAND: the default action is back before it runs, so raising again
    // aborts.
    signal_safe::install_once(
        &DONE,
        libc::SIGABRT,
        on_abort as *const () as usize,
        libc::SA_RESETHAND,
    );
}

extern "C" fn on_abort(_signal: c_int) {
    terminal::restore_in_handler();
    temps::remove_in_handler();
    // SAFETY: raise is async-signal-safe; SA_RESETHAND made the default action current.
    unsafe { libc::raise(libc::SIGABRT) };
}
