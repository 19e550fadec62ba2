//! What must still happen when the process dies abruptly: a file truncated under a memory map
//! raises SIGBUS on the next read of a vanished page, and the process ends there. Its handler
//! restores the terminal the app set up, removes temp files being written, says
//! `error: FILE changed on disk while being read` and exits with status 1.
//!
//! A signal handler may only call async-signal-safe functions and touch lock-free data, so
//! everything it needs is prepared beforehand in fixed tables of atomics: the maps' address ranges
//! with their messages, the temp files' paths as C strings, the terminal's saved mode.
#![expect(
    unsafe_code,
    reason = "a SIGBUS handler, termios calls and raw C strings for it have no safe interface"
)]

use std::ffi::{CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// How many maps the handler can name; older ones are forgotten first (their message falls back to
/// "a mapped file").
const MAPS: usize = 64;
/// How many temp files may be in progress at once.
const TEMPS: usize = 16;

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

static TEMP_SLOTS: [AtomicPtr<c_char>; TEMPS] = [const { AtomicPtr::new(ptr::null_mut()) }; TEMPS];
/// Serializes registering and unregistering temp files (never taken in a handler).
static TEMP_LOCK: Mutex<()> = Mutex::new(());

/// Whether the app's screen is up, and the terminal mode from before (leaked, for the handler).
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);
static TERMIOS_FOR_HANDLER: AtomicPtr<libc::termios> = AtomicPtr::new(ptr::null_mut());

/// Leaves the alternate screen, stops mouse reports and shows the cursor, as the app's restore does.
const LEAVE_SCREEN: &[u8] =
    b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?1049l\x1b[?25h";

/// Installs the SIGBUS handler, and the SIGABRT one that restores the terminal and removes temp
/// files before the abort goes on (an allocation failure aborts without unwinding or a panic hook)
/// (once; later calls do nothing).
pub fn install() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: `on_sigbus` has the signature SA_SIGINFO expects and calls only async-signal-safe
    // functions (write, tcsetattr, unlink, _exit) on data prepared before the signal.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &raw const action, ptr::null_mut());
        // SAFETY: as above; `on_abort` calls restore_unlocked's functions, signal and raise.
        let mut abort: libc::sigaction = std::mem::zeroed();
        abort.sa_sigaction = on_abort as *const () as usize;
        // Once: the default comes back before the handler runs, so raising again aborts.
        abort.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&raw mut abort.sa_mask);
        libc::sigaction(libc::SIGABRT, &raw const abort, ptr::null_mut());
    }
}

/// Remembers that the bytes `start..start + len` map `path`, so that a fault there names it.
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
    remove_temps_unlocked();
}

fn remove_temps_unlocked() {
    for slot in &TEMP_SLOTS {
        let raw = slot.load(Ordering::SeqCst);
        if !raw.is_null() {
            // SAFETY: a registered pointer is a live NUL-terminated C string until its guard's
            // drop takes it out of the slot; unlink is async-signal-safe.
            unsafe { libc::unlink(raw) };
        }
    }
}

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

extern "C" fn on_sigbus(_signal: c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let address = unsafe { (*info).si_addr() } as usize;
    restore_unlocked();
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

/// The terminal as it was (when the app's screen is up) and no temp file left: what every abrupt
/// end does first, with async-signal-safe calls only.
fn restore_unlocked() {
    if TERMINAL_ACTIVE.load(Ordering::SeqCst) {
        write_all(libc::STDOUT_FILENO, LEAVE_SCREEN);
        let mode = TERMIOS_FOR_HANDLER.load(Ordering::SeqCst);
        if !mode.is_null() {
            // SAFETY: `mode` is a leaked termios, valid for the life of the process.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, mode) };
        }
    }
    remove_temps_unlocked();
}

extern "C" fn on_abort(_signal: c_int) {
    restore_unlocked();
    // SAFETY: raise is async-signal-safe; SA_RESETHAND made the default action current, so the
    // process ends as an abort (status 134, a core if enabled).
    unsafe { libc::raise(libc::SIGABRT) };
}

/// `write(2)` until done or failing: async-signal-safe, no allocation.
fn write_all(fd: c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice; write reads at most its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
