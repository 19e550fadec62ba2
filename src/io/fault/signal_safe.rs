//! Output a signal handler may make: `write(2)` in a loop, no allocation, no lock.
#![expect(
    unsafe_code,
    reason = "write(2) on a raw descriptor has no safe interface"
)]

use std::ffi::c_int;

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
