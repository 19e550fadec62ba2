//! What every handler here shares: installing it once, and the output it may make (`write(2)` in a
//! loop, no allocation, no lock).
#![expect(
    unsafe_code,
    reason = "sigaction and write(2) on a raw descriptor have no safe interface"
)]

use std::ffi::c_int;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Installs `handler` for `signal` with `flags`, once per `done` flag (later calls do nothing).
///
/// The caller promises that `handler` has the signature `flags` implies (`SA_SIGINFO`: three
/// arguments, else one) and calls only async-signal-safe functions on data prepared beforehand.
pub(super) fn install_once(done: &AtomicBool, signal: c_int, handler: usize, flags: c_int) {
    if done.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: a zeroed sigaction is a valid empty one; the handler's signature and safety are the
    // caller's promise above.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(signal, &raw const action, ptr::null_mut());
    }
}

/// `write(2)` until done or failing: async-signal-safe, no allocation.
pub(super) fn write_all(fd: c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice; write reads at most its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
