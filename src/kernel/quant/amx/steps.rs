//! One step of a product on the tile unit, and the steps of a segment: a run of 32 values of a
//! tile of 32 weight rows against one or two groups of 16 activation rows. Multiply (twelve tile
//! multiplies at most), store the four C tiles, scale them into the outputs.

#![expect(
    clippy::inline_always,
    reason = "the steps must inline into the #[target_feature] product to get its AVX-512"
)]

use std::arch::x86_64::{_mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps};
use std::ops::Range;

use super::activations::Activations;
use super::ahead::Ahead;
use super::integers::RUN;
use super::tiles::{self, Session, tile_dot, tile_load, tile_store, tile_zero};
use super::{GROUP, PARTS, WEIGHT_ROWS};

/// The C tiles of one step, stored for scaling: [tile][16 weight rows][16 activation rows].
#[repr(C, align(64))]
pub(super) struct Sums(pub(super) [f32; 4 * GROUP * GROUP]);

/// `out[o·ld + t] += Σ_runs scale·(q·x) + offset·Σx` for the tile's 32 weight rows `o`, every
/// activation row `t`, and the `runs` whose integers, scales and offsets the segment holds.
///
/// Each step's C tiles are stored into one of the two buffers of `stored` and scaled into `out`
/// only after the next step's multiplies are issued, so that the vector work runs while the tile
/// unit does.
///
/// # Safety
/// The tile unit must be configured by `_session` on this thread, and the CPU have AVX-512F.
#[target_feature(enable = "avx512f")]
#[expect(
    clippy::too_many_arguments,
    reason = "the step's operands, each its own buffer"
)]
pub(super) unsafe fn multiply(
    _session: &Session,
    acts: &Activations,
    runs: Range<usize>,
    integers: &[u16],
    weights: Weights<'_>,
    out: &mut [f32],
    stored: &mut [Sums; 2],
    ahead: &mut Ahead<'_>,
) {
    let step_values = WEIGHT_ROWS * RUN;
    assert!(integers.len() >= runs.len() * step_values);
    assert_eq!(out.len(), WEIGHT_ROWS * acts.groups * GROUP);
    let mut pending: Option<(Step, usize)> = None;
    for g0 in (0..acts.groups).step_by(2) {
        let pair = g0 + 1 < acts.groups;
        for (local, run) in runs.clone().enumerate() {
            let step = Step {
                local,
                run,
                g0,
                pair,
            };
            let half = pending.map_or(0, |(_, h)| 1 - h);
            // SAFETY: the session is configured; the integers hold this run's two A tiles.
            unsafe {
                dots(
                    acts,
                    &integers[local * step_values..][..step_values],
                    step,
                    ahead,
                );
            }
            if let Some((before, h)) = pending {
                scale(acts, before, &stored[h], weights, out);
            }
            // SAFETY: as above.
            unsafe { store(step, &mut stored[half]) };
            pending = Some((step, half));
        }
    }
    if let Some((before, h)) = pending {
        scale(acts, before, &stored[h], weights, out);
    }
}

/// Where a step of the product is: the run (its index in the segment, and in the activations)
/// and the one or two groups of activation rows from `g0`.
#[derive(Clone, Copy)]
struct Step {
    local: usize,
    run: usize,
    g0: usize,
    pair: bool,
}

/// A segment's scales and offsets: [run][weight row of the tile]; no offsets for types without.
#[derive(Clone, Copy)]
pub(super) struct Weights<'a> {
    pub(super) scales: &'a [f32],
    pub(super) offsets: Option<&'a [f32]>,
}

/// Zeroes the C tiles and multiplies the step's A tiles (`a`, the run's 2 KiB of integers) by
/// its B tiles, part after part.
///
/// # Safety
/// The tile unit must be configured on this thread.
#[inline(always)]
unsafe fn dots(acts: &Activations, a: &[u16], step: Step, ahead: &mut Ahead<'_>) {
    let Step { run, g0, pair, .. } = step;
    assert_eq!(a.len(), WEIGHT_ROWS * RUN);
    let a = a.as_ptr().cast::<u8>();
    // SAFETY: A tiles read the 2 KiB of `a`; B tiles read whole `Tile`s.
    unsafe {
        tile_zero!(0);
        tile_zero!(1);
        tile_load!(4, a, tiles::ROW_BYTES);
        tile_load!(5, a.add(GROUP * tiles::ROW_BYTES), tiles::ROW_BYTES);
        if pair {
            tile_zero!(2);
            tile_zero!(3);
        }
        for p in 0..PARTS {
            ahead.step();
            tile_load!(6, acts.tile(g0, run, p), tiles::ROW_BYTES);
            tile_dot!(0, 4, 6);
            tile_dot!(1, 5, 6);
            if pair {
                tile_load!(7, acts.tile(g0 + 1, run, p), tiles::ROW_BYTES);
                tile_dot!(2, 4, 7);
                tile_dot!(3, 5, 7);
            }
        }
    }
}

/// Stores the step's C tiles into `sums`: tile `a + 2·(g - g0)` for A tile `a` and group `g`.
///
/// # Safety
/// The tile unit must be configured on this thread.
#[inline(always)]
unsafe fn store(step: Step, sums: &mut Sums) {
    let at = sums.0.as_mut_ptr();
    // SAFETY: each store writes 1 KiB, one of the four in `sums`.
    unsafe {
        tile_store!(0, at, tiles::ROW_BYTES);
        tile_store!(1, at.add(GROUP * GROUP), tiles::ROW_BYTES);
        if step.pair {
            tile_store!(2, at.add(2 * GROUP * GROUP), tiles::ROW_BYTES);
            tile_store!(3, at.add(3 * GROUP * GROUP), tiles::ROW_BYTES);
        }
    }
}

/// `out[o·ld + t] += scale(o)·sums + offset(o)·Σx(t)` for the step's C tiles stored in `sums`.
#[inline(always)]
fn scale(acts: &Activations, step: Step, sums: &Sums, weights: Weights<'_>, out: &mut [f32]) {
    let ld = acts.groups * GROUP;
    assert_eq!(out.len(), WEIGHT_ROWS * ld);
    let first = step.local * WEIGHT_ROWS;
    let scales = &weights.scales[first..first + WEIGHT_ROWS];
    let offsets = weights.offsets.map(|o| &o[first..first + WEIGHT_ROWS]);
    for g in step.g0..step.g0 + 1 + usize::from(step.pair) {
        let x_sums = &acts.sums[g * acts.runs + step.run];
        for a in 0..2 {
            let tile = &sums.0[(a + 2 * (g - step.g0)) * GROUP * GROUP..][..GROUP * GROUP];
            let rows = a * GROUP..(a + 1) * GROUP;
            let target = &mut out[a * GROUP * ld + g * GROUP..];
            // SAFETY: `target` holds 16 rows `ld` apart of at least 16 values each (the outputs
            // are 32 rows of `ld`, and `g·16 + 16 <= ld`); the callers run with AVX-512F.
            unsafe {
                match offsets {
                    Some(offsets) => scale_tile::<true>(
                        tile,
                        &scales[rows.clone()],
                        &offsets[rows],
                        x_sums,
                        target,
                        ld,
                    ),
                    None => scale_tile::<false>(tile, &scales[rows], &[], x_sums, target, ld),
                }
            }
        }
    }
}

/// One C tile's 16 rows scaled into 16 output rows `ld` apart from `target` (the offsets and the
/// activation sums used only if `OFFSET`), in straight-line code: the loop over rows as
/// iterators, with the offset's test inside, ran at twice the time.
///
/// # Safety
/// `target` must hold 15·ld + 16 values, and the CPU have AVX-512F.
#[inline(always)]
unsafe fn scale_tile<const OFFSET: bool>(
    tile: &[f32],
    scales: &[f32],
    offsets: &[f32],
    x_sums: &[f32; GROUP],
    target: &mut [f32],
    ld: usize,
) {
    assert!(tile.len() == GROUP * GROUP && scales.len() == GROUP);
    assert!(!OFFSET || offsets.len() == GROUP);
    assert!(target.len() >= (GROUP - 1) * ld + GROUP);
    let out = target.as_mut_ptr();
    // SAFETY: the sums load is of 16 f32; each row's loads and store stay within `tile` (asserted
    // 256 values) and `target` (asserted to reach row 15's 16 values).
    unsafe {
        let x_sums = _mm512_loadu_ps(x_sums.as_ptr());
        for i in 0..GROUP {
            let row = out.add(i * ld);
            let mut acc = _mm512_fmadd_ps(
                _mm512_loadu_ps(tile.as_ptr().add(i * GROUP)),
                _mm512_set1_ps(*scales.get_unchecked(i)),
                _mm512_loadu_ps(row),
            );
            if OFFSET {
                acc = _mm512_fmadd_ps(x_sums, _mm512_set1_ps(*offsets.get_unchecked(i)), acc);
            }
            _mm512_storeu_ps(row, acc);
        }
    }
}
