//! The activations of a product on the tile unit, split into three bf16 parts each and laid out
//! once per product as B tiles (the columns of a tile are 16 activation rows; its rows, the
//! pairs of values of a run), beside each row's sum over each run.

use std::arch::x86_64::{
    __m512, __m512i, _CMP_UNORD_Q, _mm512_add_ps, _mm512_and_si512, _mm512_castps_si512,
    _mm512_castsi512_ps, _mm512_cmp_ps_mask, _mm512_cmpneq_epi32_mask, _mm512_loadu_ps,
    _mm512_loadu_si512, _mm512_mask_blend_epi32, _mm512_maskz_sub_ps, _mm512_mul_ps,
    _mm512_permutex2var_epi16, _mm512_reduce_add_ps, _mm512_set1_epi32, _mm512_set1_ps,
    _mm512_setzero_si512, _mm512_storeu_si512, _mm512_sub_ps,
};

use std::cell::RefCell;

use ndarray::ArrayView2;

use super::integers::RUN;
use super::transpose::transpose16;
use super::{GROUP, PARTS, tiles};

/// A B tile: 16 rows, one per pair of values of a run, each holding the pair for 16 activation
/// rows (bf16, the even value in the low half).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Tile([u32; GROUP * GROUP]);

/// The activations, split and laid out once per product as B tiles.
pub(in crate::kernel::quant) struct Activations {
    /// For each group of 16 rows, run of 32 values and part: its tile.
    tiles: Vec<Tile>,
    /// For each group and run: the 16 rows' sums over the run (what offsets multiply).
    pub(super) sums: Vec<[f32; GROUP]>,
    /// Groups of 16 activation rows (the last one padded with zeros).
    pub(super) groups: usize,
    /// Runs of 32 values per row.
    pub(super) runs: usize,
    /// For each row: what its outputs are multiplied by at the end, the inverse of the power of
    /// two it was multiplied by (1 but for rows of tiny values, see [`TINY`]).
    pub(super) unscale: Vec<f32>,
}

thread_local! {
    /// The last product's tiles, kept for the next product on this thread (up to
    /// [`SPARE_TILES`]): a fresh buffer each time had its pages faulted in and zeroed, 3% of a
    /// prompt's pass.
    static SPARE: RefCell<Vec<Tile>> = const { RefCell::new(Vec::new()) };
}

/// Tiles kept for reuse at most (4 MiB).
const SPARE_TILES: usize = 4096;

impl Drop for Activations {
    fn drop(&mut self) {
        if self.tiles.len() <= SPARE_TILES {
            SPARE.set(std::mem::take(&mut self.tiles));
        }
    }
}

/// Rows whose largest value is below this are multiplied by a power of two before they are split.
///
/// Why: the tile unit reads bf16 subnormals as zero. A part of `x` falls below the normal range
/// when `|x|` is under about 2⁻¹¹⁰ (the last part is `x`'s lowest 8 bits, 16 below its top), so
/// a row of such values would lose them, where f32 keeps them. Scaled up, their products are
/// exact again, and the power of two comes off the outputs exactly. A row with larger values too
/// loses only parts that are below its sums' rounding.
const TINY: f32 = 1.0 / (1u64 << 60) as f32;

impl Activations {
    /// Splits `x` [rows, k] (k a multiple of [`RUN`], rows contiguous) into tiles.
    ///
    /// # Panics
    /// Unless [`super::takes`] found the tile unit (and with it AVX-512), or if `x` is not
    /// contiguous.
    pub(in crate::kernel::quant) fn pack(x: ArrayView2<f32>) -> Self {
        assert!(tiles::available(), "the tile path runs where AVX-512 does");
        let (rows, k) = x.dim();
        let x = x.as_slice().expect("x's rows are contiguous");
        let (groups, runs) = (rows.div_ceil(GROUP), k / RUN);
        // Every tile is written whole below, so a kept buffer's old contents need no clearing.
        let mut tiles = SPARE.take();
        let count = groups * runs * PARTS;
        if tiles.len() < count {
            tiles.resize(count, Tile([0; GROUP * GROUP]));
        }
        tiles.truncate(count);
        let mut sums = vec![[0.0; GROUP]; groups * runs];
        let scales: Vec<(f32, f32)> = x.chunks_exact(k.max(1)).map(row_scale).collect();
        for (g, group) in x.chunks(GROUP * k).enumerate() {
            let mut factors = [1.0; GROUP];
            for (f, (scale, _)) in factors.iter_mut().zip(&scales[g * GROUP..]) {
                *f = *scale;
            }
            for r in 0..runs {
                let at = g * runs + r;
                let tiles = &mut tiles[at * PARTS..(at + 1) * PARTS];
                // SAFETY: asserted above.
                unsafe { pack_run(group, k, r, &factors, tiles, &mut sums[at]) };
            }
        }
        Self {
            tiles,
            sums,
            groups,
            runs,
            unscale: scales.into_iter().map(|(_, unscale)| unscale).collect(),
        }
    }

    /// The tile of group `g`, run `r`, part `p`.
    pub(super) fn tile(&self, g: usize, r: usize, p: usize) -> *const u8 {
        self.tiles[(g * self.runs + r) * PARTS + p]
            .0
            .as_ptr()
            .cast()
    }
}

/// The power of two a row is multiplied by before it is split, and its inverse: (1, 1) unless
/// the row's largest magnitude is below [`TINY`] (and not zero), then what brings it to about 1.
fn row_scale(row: &[f32]) -> (f32, f32) {
    let largest = row.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
    if largest >= TINY || largest == 0.0 || largest.is_nan() {
        return (1.0, 1.0);
    }
    // 2^e with e = -(about the exponent of `largest`): from 61 to 149 (the smallest subnormal).
    #[expect(
        clippy::cast_possible_truncation,
        reason = "log2 of a positive f32 is within ±150"
    )]
    let e = (-largest.log2().floor()).clamp(0.0, 149.0) as i32;
    // Two factors each way, since 2^149 is past f32's range; each is exact.
    let (a, b) = (e / 2, e - e / 2);
    (pow2(a) * pow2(b), pow2(-a) * pow2(-b))
}

/// 2^n for n in -126..=127, exactly.
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n + 127).cast_unsigned()) << 23)
}

/// Lays run `r` of a group's rows (`group`, rows of `k` values, at most 16) out as its three B
/// tiles, and sums each row over the run.
#[target_feature(enable = "avx512f,avx512bw")]
fn pack_run(
    group: &[f32],
    k: usize,
    r: usize,
    factors: &[f32; GROUP],
    tiles: &mut [Tile],
    sums: &mut [f32; GROUP],
) {
    // The u16 lanes holding the top halves of 32 f32 lanes, the first 16 of `a`, then of `b`.
    const TOPS: [u16; 32] = {
        let mut lanes = [0; 32];
        let mut i = 0;
        while i < 32 {
            lanes[i] = 2 * i as u16 + 1;
            i += 1;
        }
        lanes
    };
    // SAFETY: a load of the 32 lanes of `TOPS`.
    let tops = unsafe { _mm512_loadu_si512(TOPS.as_ptr().cast()) };
    let mut parts = [[_mm512_setzero_si512(); GROUP]; PARTS];
    for (t, row) in group.chunks_exact(k).enumerate() {
        let run: &[f32; RUN] = row[r * RUN..(r + 1) * RUN].try_into().expect("a run");
        let factor = _mm512_set1_ps(factors[t]);
        // SAFETY: two loads of 16 f32 within `run`.
        let (a, b) = unsafe {
            (
                _mm512_mul_ps(_mm512_loadu_ps(run.as_ptr()), factor),
                _mm512_mul_ps(_mm512_loadu_ps(run[16..].as_ptr()), factor),
            )
        };
        sums[t] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
        let (a, b) = (split(a), split(b));
        for p in 0..PARTS {
            // Row t: the run's 32 bf16 in order, that is its 16 pairs.
            parts[p][t] = _mm512_permutex2var_epi16(a[p], tops, b[p]);
        }
    }
    for (tile, part) in tiles.iter_mut().zip(parts) {
        for (pair, column) in tile.0.chunks_exact_mut(GROUP).zip(transpose16(&part)) {
            // SAFETY: a store of 16 u32 within the tile's row `pair`.
            unsafe { _mm512_storeu_si512(pair.as_mut_ptr().cast(), column) };
        }
    }
}

/// The three bf16 parts of each lane of `x` (in the top halves, the low halves zero), whose sum
/// is exactly `x`: each part is the top half of what the ones before it left, and 24 bits of
/// significand take three halves of 8. Infinities and NaNs are all in the first part (a NaN kept
/// a NaN however its payload lies).
#[target_feature(enable = "avx512f")]
fn split(x: __m512) -> [__m512i; PARTS] {
    let top = _mm512_set1_epi32(0xffff_0000_u32.cast_signed());
    let exponent = _mm512_set1_epi32(0x7f80_0000);
    let bits = _mm512_castps_si512(x);
    let finite = _mm512_cmpneq_epi32_mask(_mm512_and_si512(bits, exponent), exponent);
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
    let hi = _mm512_mask_blend_epi32(
        nan,
        _mm512_and_si512(bits, top),
        _mm512_set1_epi32(0x7fc0_0000),
    );
    let rest = _mm512_maskz_sub_ps(finite, x, _mm512_castsi512_ps(hi));
    let mid = _mm512_and_si512(_mm512_castps_si512(rest), top);
    let lo = _mm512_sub_ps(rest, _mm512_castsi512_ps(mid));
    [hi, mid, _mm512_and_si512(_mm512_castps_si512(lo), top)]
}

#[cfg(test)]
mod tests {
    use std::arch::x86_64::{_mm512_loadu_ps, _mm512_storeu_si512};

    use super::*;

    /// For values of every exponent and significand (and the odd ones), the three parts are
    /// bf16 (low halves zero) and add up to the value exactly (to below f32's normal range, for
    /// values under 2^-100); NaN and infinities are their first.
    #[test]
    fn parts_add_up_to_the_value() {
        if !tiles::available_to_test() {
            return;
        }
        let mut bits = 0x1234_5678_u32;
        let mut values: Vec<f32> = (0..4096)
            .map(|_| {
                bits ^= bits << 13;
                bits ^= bits >> 17;
                bits ^= bits << 5;
                f32::from_bits(bits)
            })
            .collect();
        values.extend([
            0.0,
            -0.0,
            1.0,
            f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            -f32::MAX,
            1.0 + f32::EPSILON,
        ]);
        values.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0x7f80_0001),
        ]);
        values.resize(values.len().next_multiple_of(16), 0.0);
        for chunk in values.chunks_exact(16) {
            let mut parts = [[0_u32; 16]; PARTS];
            // SAFETY: AVX-512F is there (`available`); the loads and stores are of 16 lanes.
            unsafe {
                let split = split(_mm512_loadu_ps(chunk.as_ptr()));
                for (part, lanes) in parts.iter_mut().zip(split) {
                    _mm512_storeu_si512(part.as_mut_ptr().cast(), lanes);
                }
            }
            for (i, &v) in chunk.iter().enumerate() {
                let [hi, mid, lo] = [parts[0][i], parts[1][i], parts[2][i]];
                assert!(
                    [hi, mid, lo].iter().all(|p| p.trailing_zeros() >= 16),
                    "{v:e}"
                );
                if v.is_finite() {
                    let sum = f64::from(f32::from_bits(hi))
                        + f64::from(f32::from_bits(mid))
                        + f64::from(f32::from_bits(lo));
                    // Below about 2^-110 the last part is subnormal and loses bits (what
                    // `TINY` scales rows away from): then the loss is below f32's normal range.
                    let lost = (sum - f64::from(v)).abs();
                    if v.abs() >= 2.0_f32.powi(-100) || v == 0.0 {
                        assert_eq!(lost, 0.0, "{v:e} = {hi:#x} + {mid:#x} + {lo:#x}");
                    } else {
                        assert!(lost < f64::from(f32::MIN_POSITIVE), "{v:e}: {lost:e} lost");
                    }
                } else {
                    let first = f32::from_bits(hi);
                    assert!(
                        v.is_nan() && first.is_nan() || first == v,
                        "{v} is its first part"
                    );
                    assert_eq!((mid, lo), (0, 0), "{v} has no other parts");
                }
            }
        }
    }
}
