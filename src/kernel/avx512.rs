//! The AVX-512 micro-kernel: a 12×32 tile of C held in 24 zmm registers.
//!
//! Why 12×32: each k step loads one row of the B micro-panel as two zmm vectors and broadcasts 12
//! values of A straight from memory into the FMAs (embedded broadcast), so 24 accumulators + 2 B
//! vectors + scratch fit the 32 zmm registers, and the 24 independent FMAs per step cover the
//! FMA latency (4 cycles) on both FMA pipes several times over. NR = 32 floats = two cache lines,
//! so a row of C's tile is written with two full-width stores when C is row-major.

use core::arch::x86_64::{
    __m512, _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_fmadd_ps, _mm512_load_ps,
    _mm512_loadu_ps, _mm512_max_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

use super::tile::{Tile, write_scalar};

/// Rows of the register tile.
pub(crate) const MR: usize = 12;
/// Rows of the short tile: 8×32 in 16 zmm registers, for products whose rows are a multiple of 8
/// and few (64 rows are 5⅓ tiles of 12, so the 12-row kernel would spend 11% of its FMAs on
/// padding); 16 independent FMAs per k step still cover the FMA latency on both pipes.
pub(crate) const MR_SHORT: usize = 8;
/// Columns of the register tile: two zmm vectors.
pub(crate) const NR: usize = 32;
/// How far ahead of the k step being multiplied B is prefetched, in floats: 4 KiB, 32 k steps.
///
/// A product of few rows (a sentence through a Linear layer: 15 rows against megabytes of
/// prepacked weights) streams B from L3 or memory once, and the hardware prefetcher alone kept
/// the kernel waiting on B's loads 80% of the time: measured on a Xeon (Sapphire Rapids class),
/// 15 rows through MiniLM's 42 MB of weights took 8.8 ms without it and 3.2-3.4 ms with it. Where
/// B's panel is already in L1 (many rows), the hint costs a load slot per 12 FMAs and still
/// gained 6% (the next panel starts arriving before the last row tile of this one ends).
const PREFETCH: usize = 1024;
/// k steps per trip of the micro-kernel's loop.
///
/// Reading A in place, the one-step loop worked out each of the 12 rows' addresses on every step:
/// 54 instructions per 24 FMAs, 13 of them integer, where a packed A needs 44 (objdump of the
/// release build). Four steps per trip share that work: 182 instructions per 96 FMAs. Measured on
/// a Xeon (Sapphire Rapids class) on MiniLM's four batch products (1024 rows), the two kernels
/// taking turns in one process, 40 rounds a run: 3-7% faster on one thread and on two, up to 11% in
/// the VM's slow phase (when, it seems, another guest shares the core: L1 read bandwidth fell from
/// 148 to 100 GB/s while FMA throughput held). Two steps a trip gained less; eight ran 1.5x slower.
const UNROLL: usize = 4;

/// See [`super::tile::KernelFn`] for the contract.
///
/// # Safety
/// That of `KernelFn`, and the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { kernel_rows::<MR, true>(kc, a, b, t) }
}

/// [`kernel`] reading A in place: see [`super::tile::KernelFn`] for the unpacked contract.
///
/// # Safety
/// That of `KernelFn` for an unpacked A, and the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn kernel_unpacked(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { unpacked_rows::<MR>(kc, a, b, t) }
}

/// [`kernel_short`] reading A in place.
///
/// # Safety
/// As for [`kernel_unpacked`], with tiles of [`MR_SHORT`] rows.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn kernel_short_unpacked(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { unpacked_rows::<MR_SHORT>(kc, a, b, t) }
}

/// A tile of A read in place with exactly `t.rows` rows (at most `FULL`): the last tile of a
/// product multiplies only the rows that exist, where a packed one would pad them with zeros (a
/// 15-row product in 12-row tiles spent 37% of its FMAs on padding) and write them out one float
/// at a time.
///
/// # Safety
/// As for [`kernel_unpacked`]; `t.rows <= FULL <= MR`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn unpacked_rows<const FULL: usize>(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    // SAFETY (every arm): forwarded from the caller's contract; the kernel reads `rows` rows of A.
    unsafe {
        match t.rows {
            r if r >= FULL => kernel_rows::<FULL, false>(kc, a, b, t),
            1 => kernel_rows::<1, false>(kc, a, b, t),
            2 => kernel_rows::<2, false>(kc, a, b, t),
            3 => kernel_rows::<3, false>(kc, a, b, t),
            4 => kernel_rows::<4, false>(kc, a, b, t),
            5 => kernel_rows::<5, false>(kc, a, b, t),
            6 => kernel_rows::<6, false>(kc, a, b, t),
            7 => kernel_rows::<7, false>(kc, a, b, t),
            8 => kernel_rows::<8, false>(kc, a, b, t),
            9 => kernel_rows::<9, false>(kc, a, b, t),
            10 => kernel_rows::<10, false>(kc, a, b, t),
            11 => kernel_rows::<11, false>(kc, a, b, t),
            // No tile is empty; MR is 12, so every count below it has its arm.
            _ => kernel_rows::<FULL, false>(kc, a, b, t),
        }
    }
}

/// The 8×32 kernel; see [`MR_SHORT`].
///
/// # Safety
/// As for [`kernel`], with tiles of [`MR_SHORT`] rows.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn kernel_short(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { kernel_rows::<MR_SHORT, true>(kc, a, b, t) }
}

/// The micro-kernel for a tile of `MR` rows: A packed (MR floats per k step) or, unless `PACKED`,
/// read in place (unit column stride, `t.ars` floats between rows).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn kernel_rows<const MR: usize, const PACKED: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    t: &Tile,
) {
    // Element (i, p) of the A panel: packed k-major, or row i of A in place.
    let (row_step, k_step) = if PACKED { (1, MR as isize) } else { (t.ars, 1) };
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // Warm the C tile's lines while the k loop runs: the write-out otherwise waits on them, to
    // read them (beta != 0) or to own them before its stores (a Linear layer's fresh output,
    // beta == 0, which the stores alone fetched only at the end). A row of the tile is 32 floats,
    // two cache lines (when C's rows are 64-byte aligned): warm both.
    if t.cs == 1 {
        for i in 0..t.rows {
            let row = t.c.wrapping_offset(i as isize * t.rs);
            // A prefetch is a hint: it never faults, whatever the address.
            _mm_prefetch::<_MM_HINT_T0>(row.cast());
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1).cast());
        }
    }
    // Four k steps per trip: the in-place rows' addresses are worked out once per trip rather than
    // once per step (a dozen integer operations beside 24 FMAs). See [`UNROLL`].
    let mut step_at = |q: usize| {
        // SAFETY: every caller passes q < kc, so the packed B panel (kc rows of NR floats, 64-byte
        // aligned) holds row q, and A's panel (kc·MR floats packed, or MR rows of kc floats `ars`
        // apart in place) holds column q of its MR rows.
        unsafe {
            step(
                &mut acc,
                a.offset(q as isize * k_step),
                row_step,
                b.add(q * NR),
            );
        }
    };
    let mut p = 0;
    while p + UNROLL <= kc {
        for q in p..p + UNROLL {
            step_at(q);
        }
        p += UNROLL;
    }
    for q in p..kc {
        step_at(q);
    }
    if t.rows == MR && t.cols == NR && t.cs == 1 {
        // A whole tile is written out here, row by row with constant indices, rather than by a
        // function taking `&acc` or looping to `t.rows`: either made LLVM keep the accumulators
        // in memory and zero them (1.5 KB of memset) on every call.
        for (i, row) in acc.iter().enumerate() {
            for (h, &sum) in row.iter().enumerate() {
                // SAFETY: the tile is MR×NR with unit column stride, so these 16 floats are inside
                // row i of C (and inside the bias, when there is one, which has NR values).
                unsafe { store_finished(sum, t.c.offset(i as isize * t.rs).add(16 * h), h, t) };
            }
        }
    } else {
        // SAFETY: forwarded from the caller's contract.
        unsafe { write_edge(acc, t) };
    }
}

/// One k step of the tile: the B panel's row at `bp` (NR floats, 64-byte aligned) times the A
/// column whose row i is at `ap + i·row_step`, added into the accumulators.
///
/// # Safety
/// `bp` must hold NR floats, 64-byte aligned, and `ap + i·row_step` one float for each i < MR.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn step<const MR: usize>(
    acc: &mut [[__m512; 2]; MR],
    ap: *const f32,
    row_step: isize,
    bp: *const f32,
) {
    // A prefetch is a hint: it never faults, even past the end of B.
    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH).cast());
    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH + 16).cast());
    // SAFETY: the caller's contract covers B's NR floats and A's MR.
    unsafe {
        let b0 = _mm512_load_ps(bp);
        let b1 = _mm512_load_ps(bp.add(16));
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = _mm512_set1_ps(*ap.offset(i as isize * row_step));
            row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
        }
    }
}

/// The write-out of an edge tile: the first `t.rows` rows with vector stores when the tile is NR
/// wide with unit column stride, else through an array in memory, element by element. Out of
/// line and by value, so that only this path copies the accumulators to memory.
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn write_edge<const MR: usize>(acc: [[__m512; 2]; MR], t: &Tile) {
    if t.cols == NR && t.cs == 1 {
        for (i, row) in acc.iter().enumerate().take(t.rows) {
            for (h, &sum) in row.iter().enumerate() {
                // SAFETY: the tile is NR wide with unit column stride and i is below its rows,
                // so these 16 floats are inside row i of C (and of the bias, when there is one).
                unsafe { store_finished(sum, t.c.offset(i as isize * t.rs).add(16 * h), h, t) };
            }
        }
        return;
    }
    // Sized for the tallest tile: MR * NR is not a constant expression in a generic.
    let mut spill = [0.0f32; self::MR * NR];
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: each store writes 16 floats inside row i of the MR×NR spill array.
        unsafe {
            _mm512_storeu_ps(spill.as_mut_ptr().add(i * NR), row[0]);
            _mm512_storeu_ps(spill.as_mut_ptr().add(i * NR + 16), row[1]);
        }
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe { write_scalar(&spill, NR, t) };
}

/// Finishes 16 accumulated columns (half `h` of a tile row) and stores them at `dst`:
/// `alpha·sum + beta·C + bias`, then `ReLU`.
///
/// # Safety
/// `dst` must hold 16 floats of C, and the tile's bias (if any) NR values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_finished(sum: __m512, dst: *mut f32, h: usize, t: &Tile) {
    // SAFETY: `dst` and the bias's half `h` hold 16 floats (the caller's contract).
    unsafe {
        let mut v = _mm512_mul_ps(_mm512_set1_ps(t.alpha), sum);
        // beta == 0 must not read C: it may hold NaN.
        if t.beta != 0.0 {
            v = _mm512_fmadd_ps(_mm512_set1_ps(t.beta), _mm512_loadu_ps(dst), v);
        }
        if !t.bias.is_null() {
            v = _mm512_add_ps(v, _mm512_loadu_ps(t.bias.add(16 * h)));
        }
        if t.relu {
            // max(0, v) returns v when v is NaN: ReLU keeps NaN, as PyTorch's does.
            v = _mm512_max_ps(_mm512_setzero_ps(), v);
        }
        _mm512_storeu_ps(dst, v);
    }
}
