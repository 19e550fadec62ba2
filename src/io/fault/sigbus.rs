//! The SIGBUS handler for mapped files: which map a faulting address belongs to, and the one line
//! that names its file before the process exits.
#![expect(
    unsafe_code,
    reason = "a SIGBUS handler and the raw writes it makes have no safe interface"
)]

use std::ffi::{c_int, c_void};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use super::signal_safe::{self, write_all};
use super::{temps, terminal};

/// How many maps the handler can name; older ones are forgotten first (their message falls back to
/// "a mapped file").
const MAPS: usize = 64;

struct MapSlot {
    start: AtomicUsize,
    end: AtomicUsize,
    /// A leaked, NUL-free message (`FILE`), length in `len`.
    message: AtomicPtr<u8>,
    len: AtomicUsize,
}

static MAP_SLOTS: [MapSlot; MAPS] = [const {
    MapSlot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        message: AtomicPtr::new(ptr::null_mut()),
        len: AtomicUsize::new(0),
    }
}; MAPS];
static NEXT_MAP: AtomicUsize = AtomicUsize::new(0);

/// Installs the SIGBUS handler (once; later calls do nothing).
pub fn install() {
    static DONE: AtomicBool = AtomicBool::new(false);
    // `on_sigbus` has the signature SA_SIGINFO expects and calls only async-signal-safe functions
    // (write, tcsetattr, unlink, _exit) on data prepared before the signal.
    signal_safe::install_once(
        &DONE,
        libc::SIGBUS,
        on_sigbus as *const () as usize,
        libc::SA_SIGINFO,
    );
}

/// Remembers that the bytes `start..start + len` map `path`, so that a fault there names it.
///
/// The handler writes straight to the terminal and cannot escape then (escaping allocates), so the
/// path is escaped here, ahead of time: this message is an edge of its own.
pub fn register_map(start: *const u8, len: usize, path: &Path) {
    let message = crate::text::escape(&path.display().to_string()).into_owned();
    let message: &'static mut [u8] = Box::leak(message.into_bytes().into_boxed_slice());
    let slot = &MAP_SLOTS[NEXT_MAP.fetch_add(1, Ordering::Relaxed) % MAPS];
    // Cleared first so the handler never pairs a new range with an old message; the old message
    // is leaked on purpose (a handler might be reading it), a few bytes per file opened.
    slot.end.store(0, Ordering::SeqCst);
    slot.message.store(message.as_mut_ptr(), Ordering::SeqCst);
    slot.len.store(message.len(), Ordering::SeqCst);
    slot.start.store(start as usize, Ordering::SeqCst);
    slot.end.store(start as usize + len, Ordering::SeqCst);
}

extern "C" fn on_sigbus(_signal: c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let address = unsafe { (*info).si_addr() } as usize;
    terminal::restore_in_handler();
    temps::remove_in_handler();
    write_all(libc::STDERR_FILENO, b"error: ");
    let named = MAP_SLOTS.iter().find(|slot| {
        let (start, end) = (
            slot.start.load(Ordering::SeqCst),
            slot.end.load(Ordering::SeqCst),
        );
        (start..end).contains(&address)
    });
    match named {
        Some(slot) => {
            let (message, len) = (
                slot.message.load(Ordering::SeqCst),
                slot.len.load(Ordering::SeqCst),
            );
            // SAFETY: registered messages are leaked slices of `len` bytes, never freed.
            write_all(libc::STDERR_FILENO, unsafe {
                std::slice::from_raw_parts(message, len)
            });
        }
        None => write_all(libc::STDERR_FILENO, b"a mapped file"),
    }
    write_all(
        libc::STDERR_FILENO,
        b" changed on disk while being read (truncated or replaced by another program)\n",
    );
    // SAFETY: _exit is async-signal-safe and does not return.
    unsafe { libc::_exit(1) };
}
