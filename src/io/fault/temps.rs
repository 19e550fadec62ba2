//! Temp files being written, kept as C strings in a fixed table so that a signal handler can remove
//! them without allocating or locking.
#![expect(
    unsafe_code,
    reason = "raw C strings shared with a signal handler, and unlink, have no safe interface"
)]

use std::ffi::{CString, c_char};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, Ordering};

/// How many temp files may be in progress at once.
const TEMPS: usize = 16;

static TEMP_SLOTS: [AtomicPtr<c_char>; TEMPS] = [const { AtomicPtr::new(ptr::null_mut()) }; TEMPS];
/// Serializes registering and unregistering temp files (never taken in a handler).
static TEMP_LOCK: Mutex<()> = Mutex::new(());

/// A temp file in progress: removed by the handlers if the process dies, forgotten on drop.
pub struct TempGuard(Option<usize>);

/// Registers `path` as a temp file to remove should the process be killed while it exists.
pub fn register_temp(path: &Path) -> TempGuard {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return TempGuard(None);
    };
    let _lock = TEMP_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(index) = TEMP_SLOTS
        .iter()
        .position(|s| s.load(Ordering::SeqCst).is_null())
    else {
        return TempGuard(None);
    };
    TEMP_SLOTS[index].store(c.into_raw(), Ordering::SeqCst);
    TempGuard(Some(index))
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(index) = self.0 {
            let _lock = TEMP_LOCK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let raw = TEMP_SLOTS[index].swap(ptr::null_mut(), Ordering::SeqCst);
            if !raw.is_null() {
                // SAFETY: `raw` came from `CString::into_raw` in `register_temp` and was taken out
                // of its slot just now, so nothing else owns it.
                drop(unsafe { CString::from_raw(raw) });
            }
        }
    }
}

/// Removes every temp file in progress (after SIGINT, SIGTERM or SIGHUP, before exiting).
pub fn remove_temps() {
    let _lock = TEMP_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    remove_in_handler();
}

/// Removes every temp file in progress without taking the lock: async-signal-safe (atomic loads
/// and unlink), for the SIGBUS handler, which must not wait on a lock its own thread may hold.
pub(super) fn remove_in_handler() {
    for slot in &TEMP_SLOTS {
        let raw = slot.load(Ordering::SeqCst);
        if !raw.is_null() {
            // SAFETY: a registered pointer is a live NUL-terminated C string until its guard's
            // drop takes it out of the slot; unlink is async-signal-safe.
            unsafe { libc::unlink(raw) };
        }
    }
}
