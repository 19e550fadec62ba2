//! The moments kernel: min, max, counts and shifted f64 sums over a chunk of f32 values.
//! `tensor::stats` builds its statistics on it.

use super::{Level, level};

/// What one chunk of finite-and-not values adds up to, lane totals already folded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkSums {
    /// Finite values.
    pub finite: u32,
    /// NaN values.
    pub nan: u32,
    /// Values equal to zero.
    pub zeros: u32,
    /// Smallest finite value (+∞ when none).
    pub min: f32,
    /// Largest finite value (−∞ when none).
    pub max: f32,
    /// Σ (x − shift) over the finite values, in f64.
    pub sum: f64,
    /// Σ (x − shift)² over the finite values, in f64.
    pub squares: f64,
}

/// Independent accumulators per lane: 16 f32 lanes fill one AVX-512 register.
pub const LANES: usize = 16;

/// f32 values as the kernel reads them, a block of [`LANES`] at a time: stored little-endian bytes
/// (a mapped F32 tensor) or values already in memory (a chunk just dequantized).
pub trait F32Lanes: Copy {
    /// How many values.
    fn count(self) -> usize;
    /// Values `LANES * b..LANES * (b + 1)`.
    fn block(self, b: usize) -> [f32; LANES];
}

impl F32Lanes for &[u8] {
    fn count(self) -> usize {
        self.len() / 4
    }
    #[expect(clippy::inline_always, reason = "part of the kernel's body")]
    #[inline(always)]
    fn block(self, b: usize) -> [f32; LANES] {
        let raw = &self[4 * LANES * b..4 * LANES * (b + 1)];
        std::array::from_fn(|l| {
            f32::from_le_bytes([raw[4 * l], raw[4 * l + 1], raw[4 * l + 2], raw[4 * l + 3]])
        })
    }
}

impl F32Lanes for &[f32] {
    fn count(self) -> usize {
        self.len()
    }
    #[expect(clippy::inline_always, reason = "part of the kernel's body")]
    #[inline(always)]
    fn block(self, b: usize) -> [f32; LANES] {
        self[LANES * b..LANES * (b + 1)]
            .try_into()
            .expect("a whole block")
    }
}

/// Sums over the f32 values of `input` (a whole number of 16-value blocks) about `shift`, which
/// must be finite. `scratch` (at least as many values) receives the values with each non-finite
/// one replaced by `shift`: decoding, cleaning and the f32 statistics take one read of the input,
/// and the f64 sums then read the cleaned copy from L1.
#[must_use]
pub fn chunk_sums<I: F32Lanes>(input: I, scratch: &mut [f32], shift: f32) -> ChunkSums {
    assert!(
        input.count().is_multiple_of(LANES),
        "whole lane blocks only"
    );
    let x = &mut scratch[..input.count()];
    match level() {
        // SAFETY: the CPU supports AVX-512F (that is what this level means).
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { chunk_sums_avx512(input, x, shift) },
        // SAFETY: the CPU supports AVX2 (that is what this level means).
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { chunk_sums_avx2(input, x, shift) },
        Level::Baseline => chunk_sums_portable(input, x, shift),
        #[cfg(not(target_arch = "x86_64"))]
        _ => chunk_sums_portable(input, x, shift),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chunk_sums_avx512<I: F32Lanes>(input: I, x: &mut [f32], shift: f32) -> ChunkSums {
    let mut sums = clean_and_count(input, x, shift);
    (sums.sum, sums.squares) = shifted_sums_avx512(x, f64::from(shift));
    sums
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn chunk_sums_avx2<I: F32Lanes>(input: I, x: &mut [f32], shift: f32) -> ChunkSums {
    chunk_sums_portable(input, x, shift)
}

/// Both passes, as the baseline and AVX2 builds run them.
#[expect(
    clippy::inline_always,
    reason = "inlining into the target_feature wrappers is what compiles it for AVX2"
)]
#[inline(always)]
fn chunk_sums_portable<I: F32Lanes>(input: I, x: &mut [f32], shift: f32) -> ChunkSums {
    let mut sums = clean_and_count(input, x, shift);
    (sums.sum, sums.squares) = shifted_sums(x, f64::from(shift));
    sums
}

/// Pass one: reads `input` into `x`, replacing each non-finite value by `shift`, and takes the
/// f32 statistics. Written in lanes with selects instead of branches, so that the compiler
/// vectorizes it for whatever instruction set the caller was compiled for (it is always inlined).
#[expect(
    clippy::inline_always,
    reason = "inlining into the target_feature wrappers is what compiles it for AVX-512 and AVX2"
)]
#[inline(always)]
fn clean_and_count<I: F32Lanes>(input: I, x: &mut [f32], shift: f32) -> ChunkSums {
    let mut min = [f32::INFINITY; LANES];
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut finite = [0u32; LANES];
    let mut zeros = [0u32; LANES];
    let mut nan = [0u32; LANES];
    for (b, block) in x.chunks_exact_mut(LANES).enumerate() {
        let values = input.block(b);
        for l in 0..LANES {
            let v = values[l];
            let is_finite = v.abs() < f32::INFINITY;
            let low = if is_finite { v } else { f32::INFINITY };
            let high = if is_finite { v } else { f32::NEG_INFINITY };
            min[l] = if low < min[l] { low } else { min[l] };
            max[l] = if high > max[l] { high } else { max[l] };
            finite[l] += u32::from(is_finite);
            zeros[l] += u32::from(v == 0.0);
            nan[l] += u32::from(v.is_nan());
            // A non-finite value becomes the shift, so that it adds zero to both sums.
            block[l] = if is_finite { v } else { shift };
        }
    }
    ChunkSums {
        finite: finite.iter().sum(),
        nan: nan.iter().sum(),
        zeros: zeros.iter().sum(),
        min: min.iter().copied().fold(f32::INFINITY, f32::min),
        max: max.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        sum: 0.0,
        squares: 0.0,
    }
}

/// Pass two: Σ(x − shift) and Σ(x − shift)² in f64, lane `l` taking the values at `l` mod 16.
/// No FMA is formed (Rust does not contract `a * b + c`), so the AVX-512 version below, which
/// keeps the same lanes and the same order, gives the same bits.
#[expect(
    clippy::inline_always,
    reason = "inlining into the target_feature wrappers is what compiles it for AVX2"
)]
#[inline(always)]
fn shifted_sums(x: &[f32], shift: f64) -> (f64, f64) {
    let mut sum = [0f64; LANES];
    let mut squares = [0f64; LANES];
    for block in x.chunks_exact(LANES) {
        for l in 0..LANES {
            let d = f64::from(block[l]) - shift;
            sum[l] += d;
            squares[l] += d * d;
        }
    }
    (sum.iter().sum(), squares.iter().sum())
}

/// [`shifted_sums`] with explicit AVX-512: the compiler leaves that loop's f32→f64 conversions
/// scalar, which made it the slowest part of a statistics pass.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn shifted_sums_avx512(x: &[f32], shift: f64) -> (f64, f64) {
    use std::arch::x86_64::{
        _mm256_loadu_ps, _mm512_add_pd, _mm512_cvtps_pd, _mm512_mul_pd, _mm512_set1_pd,
        _mm512_setzero_pd, _mm512_storeu_pd, _mm512_sub_pd,
    };
    let s = _mm512_set1_pd(shift);
    let (mut sum_low, mut sum_high) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    let (mut sq_low, mut sq_high) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    for block in x.chunks_exact(LANES) {
        // SAFETY: `block` holds 16 f32, so both 8-float loads are in bounds; loadu needs no alignment.
        let (low, high) = unsafe {
            (
                _mm256_loadu_ps(block.as_ptr()),
                _mm256_loadu_ps(block.as_ptr().add(8)),
            )
        };
        let d_low = _mm512_sub_pd(_mm512_cvtps_pd(low), s);
        let d_high = _mm512_sub_pd(_mm512_cvtps_pd(high), s);
        sum_low = _mm512_add_pd(sum_low, d_low);
        sum_high = _mm512_add_pd(sum_high, d_high);
        sq_low = _mm512_add_pd(sq_low, _mm512_mul_pd(d_low, d_low));
        sq_high = _mm512_add_pd(sq_high, _mm512_mul_pd(d_high, d_high));
    }
    let mut lanes = [[0f64; LANES]; 2];
    // SAFETY: each array holds 16 f64; the four stores write 8 each, inside them.
    unsafe {
        _mm512_storeu_pd(lanes[0].as_mut_ptr(), sum_low);
        _mm512_storeu_pd(lanes[0].as_mut_ptr().add(8), sum_high);
        _mm512_storeu_pd(lanes[1].as_mut_ptr(), sq_low);
        _mm512_storeu_pd(lanes[1].as_mut_ptr().add(8), sq_high);
    }
    (lanes[0].iter().sum(), lanes[1].iter().sum())
}

/// The smallest nonzero magnitude among `x` (+∞ when none), none of them NaN: what sets the
/// spacing the exact F16 and BF16 sums are checked against.
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn tiniest_body(x: &[f32]) -> f32 {
    let mut least = [f32::INFINITY; LANES];
    let blocks = x.chunks_exact(LANES);
    let rest = blocks.remainder();
    for block in blocks {
        for l in 0..LANES {
            let a = block[l].abs();
            least[l] = if a != 0.0 && a < least[l] {
                a
            } else {
                least[l]
            };
        }
    }
    rest.iter()
        .map(|v| v.abs())
        .filter(|&a| a != 0.0)
        .chain(least)
        .fold(f32::INFINITY, f32::min)
}

per_level! {
    /// The smallest nonzero magnitude among `x` (+∞ when none); no value may be NaN.
    pub fn tiniest(x: &[f32]) -> f32 = tiniest_body;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_gives_the_same_bits() {
        let values: Vec<f32> = (0..4096)
            .map(|i| match i % 101 {
                7 => f32::NAN,
                8 => f32::INFINITY,
                9 => f32::NEG_INFINITY,
                _ => (i as f32 * 0.37).sin() * 3.0,
            })
            .collect();
        let shift = values[0];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut scratch = vec![0f32; values.len()];
        let portable = chunk_sums_portable(&bytes[..], &mut scratch, shift);
        assert_eq!(chunk_sums(&bytes[..], &mut scratch, shift), portable);
        assert_eq!(chunk_sums(&values[..], &mut scratch, shift), portable);
        #[cfg(target_arch = "x86_64")]
        {
            if level() != Level::Baseline {
                // SAFETY: either x86 level has AVX2 (Rust's AVX-512F implies it).
                let avx2 = unsafe { chunk_sums_avx2(&bytes[..], &mut scratch, shift) };
                assert_eq!(avx2, portable);
            }
            if level() == Level::Avx512 {
                // SAFETY: checked just above.
                let avx512 = unsafe { chunk_sums_avx512(&bytes[..], &mut scratch, shift) };
                assert_eq!(avx512, portable);
            }
        }
        assert_eq!((portable.nan, portable.finite), (41, 4096 - 41 * 3));
    }

    #[test]
    fn the_tiniest_magnitude_skips_zeros_on_every_path() {
        let mut values: Vec<f32> = (0..4099).map(|i| (i as f32 - 2000.5) * 0.25).collect();
        values[37] = -1e-40;
        values[100] = 0.0;
        values[4098] = -0.0;
        assert_eq!(tiniest(&values), 1e-40);
        assert_eq!(tiniest_body(&values), 1e-40);
        values[37] = 3.0;
        values[4097] = 1e-30;
        assert_eq!((tiniest(&values), tiniest(&values[..4097])), (1e-30, 0.125));
        assert_eq!(tiniest(&[0.0, -0.0]), f32::INFINITY);
    }
}
