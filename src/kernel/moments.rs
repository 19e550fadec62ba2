//! The moments micro-kernel: min, max, counts and shifted f64 sums over a chunk of f32 values,
//! compiled for AVX-512 and AVX2 as well as the baseline, and chosen at run time like the matmul
//! micro-kernels. `tensor::stats` builds its statistics on it.

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
const LANES: usize = 16;

/// Sums over `x` (whose length must be a multiple of 16) about `shift`, which must be a finite
/// value. `x` is used as scratch: each non-finite value is replaced by `shift`.
#[must_use]
pub fn chunk_sums(x: &mut [f32], shift: f32) -> ChunkSums {
    assert!(x.len().is_multiple_of(LANES), "whole lane blocks only");
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked on the line above.
            return unsafe { chunk_sums_avx512(x, shift) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked on the line above.
            return unsafe { chunk_sums_avx2(x, shift) };
        }
    }
    chunk_sums_portable(x, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chunk_sums_avx512(x: &mut [f32], shift: f32) -> ChunkSums {
    chunk_sums_portable(x, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn chunk_sums_avx2(x: &mut [f32], shift: f32) -> ChunkSums {
    chunk_sums_portable(x, shift)
}

/// The loops, written in lanes with selects instead of branches so that the compiler vectorizes
/// them for whatever instruction set the caller was compiled for (it is always inlined). No FMA is
/// formed (Rust does not contract `a * b + c`), so every path gives the same bits.
#[expect(
    clippy::inline_always,
    reason = "inlining into the target_feature wrappers is what compiles it for AVX-512 and AVX2"
)]
#[inline(always)]
fn chunk_sums_portable(x: &mut [f32], shift: f32) -> ChunkSums {
    let mut min = [f32::INFINITY; LANES];
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut finite = [0u32; LANES];
    let mut zeros = [0u32; LANES];
    let mut nan = [0u32; LANES];
    for block in x.chunks_exact_mut(LANES) {
        for l in 0..LANES {
            let v = block[l];
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
    let shift = f64::from(shift);
    let mut sum = [0f64; LANES];
    let mut squares = [0f64; LANES];
    for block in x.chunks_exact(LANES) {
        for l in 0..LANES {
            let d = f64::from(block[l]) - shift;
            sum[l] += d;
            squares[l] += d * d;
        }
    }
    ChunkSums {
        finite: finite.iter().sum(),
        nan: nan.iter().sum(),
        zeros: zeros.iter().sum(),
        min: min.iter().copied().fold(f32::INFINITY, f32::min),
        max: max.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        sum: sum.iter().sum(),
        squares: squares.iter().sum(),
    }
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
        let portable = chunk_sums_portable(&mut values.clone(), shift);
        assert_eq!(chunk_sums(&mut values.clone(), shift), portable);
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                // SAFETY: checked just above.
                assert_eq!(
                    unsafe { chunk_sums_avx2(&mut values.clone(), shift) },
                    portable
                );
            }
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: checked just above.
                assert_eq!(
                    unsafe { chunk_sums_avx512(&mut values.clone(), shift) },
                    portable
                );
            }
        }
        assert_eq!((portable.nan, portable.finite), (41, 4096 - 41 * 3));
    }
}
