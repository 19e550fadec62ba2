//! Intel AMX's tile unit, reached by inline assembly: whether the CPU and the kernel let this
//! process use it, the tile configuration every product runs under, and the four instructions the
//! products need (zero, load, multiply-add of bf16 pairs into f32, store).
//!
//! Why assembly: Rust's AMX intrinsics are not stable, and the tiles are named registers that no
//! operand class reaches, so each instruction is written with its registers fixed (the `tile!`
//! macros take them as literals). The compiler never allocates tile registers itself, so nothing
//! else clobbers them between two of these statements.
//!
//! Linux hands the tile state to a process only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM)`),
//! which the first call to [`available`] makes; a kernel or CPU without AMX, or a refusal, leaves
//! the products on the AVX-512 path.

use std::sync::OnceLock;

/// `arch_prctl` code asking for an extended state component (asm/prctl.h).
const ARCH_REQ_XCOMP_PERM: libc::c_ulong = 0x1023;
/// The tile data's state component number (XTILEDATA).
const XFEATURE_XTILEDATA: libc::c_ulong = 18;

/// Rows of every tile in the configuration: the hardware's most.
pub(super) const ROWS: usize = 16;
/// Bytes per tile row: the hardware's most (32 bf16, or 16 f32).
pub(super) const ROW_BYTES: usize = 64;

/// Whether this process may run the tile instructions: the CPU has AMX-TILE and AMX-BF16 (and
/// the AVX-512 the rest of the product is written in), and Linux granted the tile state.
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        // CPUID leaf 7 exists on every CPU with AVX-512, checked first.
        let has_amx = std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("f16c")
            && {
                let leaf = std::arch::x86_64::__cpuid_count(7, 0);
                leaf.edx & (1 << 22) != 0 && leaf.edx & (1 << 24) != 0
            };
        // SAFETY: the request changes nothing but the process's permission; a kernel that does
        // not know it answers with an error.
        has_amx
            && unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                )
            } == 0
    })
}

/// [`available`], saying so on stderr when not: a test's guard, since a CPU without the tile unit
/// has nothing of this path to check.
#[cfg(test)]
pub(super) fn available_to_test() -> bool {
    let there = available();
    if !there {
        eprintln!("no AMX on this CPU: nothing to check");
    }
    there
}

/// The 64-byte operand of `ldtilecfg`: palette 1, eight tiles of [`ROWS`]×[`ROW_BYTES`].
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    column_bytes: [u16; 16],
    rows: [u8; 16],
    reserved_end: [u8; 16],
}

/// The tile registers configured on this thread, released when dropped (so that the thread's
/// context switches stop saving 8 KiB of tile state).
pub(super) struct Session(std::marker::PhantomData<*const ()>);

impl Session {
    /// Configures every tile as [`ROWS`]×[`ROW_BYTES`] on the calling thread.
    ///
    /// # Safety
    /// [`available`] must have returned true.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn start() -> Self {
        let mut config = Config {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            column_bytes: [0; 16],
            rows: [0; 16],
            reserved_end: [0; 16],
        };
        config.column_bytes[..8].fill(ROW_BYTES as u16);
        config.rows[..8].fill(ROWS as u8);
        // SAFETY: the caller checked that the tile unit is there and granted; `config` is a valid
        // palette-1 configuration (every used tile within 16 rows of 64 bytes).
        unsafe {
            let config = &raw const config;
            std::arch::asm!("ldtilecfg [{}]", in(reg) config, options(nostack, readonly));
        }
        Self(std::marker::PhantomData)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: a `Session` exists only after `ldtilecfg` ran on this thread (the raw pointer
        // in it keeps it from being sent to another).
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// Zeroes tile `$t`.
macro_rules! tile_zero {
    ($t:literal) => {
        std::arch::asm!(concat!("tilezero tmm", $t), options(nostack))
    };
}

/// Loads tile `$t` from [`ROWS`] rows of [`ROW_BYTES`] at `$ptr`, `$stride` bytes apart.
macro_rules! tile_load {
    ($t:literal, $ptr:expr, $stride:expr) => {
        std::arch::asm!(
            concat!("tileloadd tmm", $t, ", [{0} + {1}]"),
            in(reg) $ptr,
            in(reg) $stride,
            options(nostack, readonly)
        )
    };
}

/// Tile `$c` (f32 [16 × 16]) += tile `$a` (bf16 [16 × 32]) · tile `$b` (bf16 pairs [16 × 16 × 2]).
macro_rules! tile_dot {
    ($c:literal, $a:literal, $b:literal) => {
        std::arch::asm!(
            concat!("tdpbf16ps tmm", $c, ", tmm", $a, ", tmm", $b),
            options(nostack)
        )
    };
}

/// Stores tile `$t` as [`ROWS`] rows of [`ROW_BYTES`] at `$ptr`, `$stride` bytes apart.
macro_rules! tile_store {
    ($t:literal, $ptr:expr, $stride:expr) => {
        std::arch::asm!(
            concat!("tilestored [{0} + {1}], tmm", $t),
            in(reg) $ptr,
            in(reg) $stride,
            options(nostack)
        )
    };
}

pub(super) use {tile_dot, tile_load, tile_store, tile_zero};
