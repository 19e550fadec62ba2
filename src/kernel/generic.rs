//! The portable micro-kernel: plain Rust on fixed-size arrays, written so LLVM vectorizes it with
//! whatever SIMD the build targets (SSE2 on a default x86-64 build, NEON on aarch64).
//!
//! Why 4×8: 4 rows × 8 columns of accumulators are 8 SSE or NEON registers, leaving room for the B
//! row and a broadcast in the 16 that SSE2 has; LLVM keeps the whole tile in registers.

use super::tile::{Tile, write_scalar};

/// Rows of the register tile.
pub(crate) const MR: usize = 4;
/// Columns of the register tile.
pub(crate) const NR: usize = 8;

/// See [`super::tile::KernelFn`] for the contract.
///
/// # Safety
/// That of `KernelFn`.
pub(crate) unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    // SAFETY: the caller guarantees the packed panels hold kc·MR and kc·NR floats.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a, kc * MR),
            std::slice::from_raw_parts(b, kc * NR),
        )
    };
    let mut acc = [[0.0f32; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (row, &ai) in acc.iter_mut().zip(ap) {
            for (x, &bj) in row.iter_mut().zip(bp) {
                *x += ai * bj;
            }
        }
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe { write_scalar(acc.as_flattened(), NR, t) };
}
