//! The SIGABRT handler: an allocation failure aborts without unwinding or a panic hook, so the
//! terminal the app set up and the temp files being written are seen to here, then the abort
//! goes on (status 134, a core if enabled).
#![expect(
    unsafe_code,
    reason = "a SIGABRT handler and the raise it makes have no safe interface"
)]

use std::ffi::c_int;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{temps, terminal};

/// Installs the SIGABRT handler (once; later calls do nothing).
pub fn install() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: `on_abort` has the plain handler signature and calls only async-signal-safe
    // functions (write, tcsetattr, unlink, raise) on data prepared before the signal.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_abort as *const () as usize;
        // Once: the default action is back before the handler runs, so raising again aborts.
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(libc::SIGABRT, &raw const action, ptr::null_mut());
    }
}

extern "C" fn on_abort(_signal: c_int) {
    terminal::restore_in_handler();
    temps::remove_in_handler();
    // SAFETY: raise is async-signal-safe; SA_RESETHAND made the default action current.
    unsafe { libc::raise(libc::SIGABRT) };
}
