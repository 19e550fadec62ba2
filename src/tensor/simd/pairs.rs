//! The paired kernel of `diff`: over a stretch of f32 pairs `(a, b)`, the f64 sums Σa², Σb², Σab
//! and Σ(b − a)², max |b − a|, the pairs whose difference is NaN and the bit-identical pairs.
//!
//! Sixteen lanes, lane `l` taking the pairs at `l` mod 16, in the same order on every path, so the
//! AVX-512 loop (explicit, because the compiler leaves f32→f64 conversions scalar) and the
//! portable one give the same bits.

use super::{Level, level};

/// What one stretch of pairs adds up to, lane totals already folded.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PairSums {
    /// Σ a².
    pub aa: f64,
    /// Σ b².
    pub bb: f64,
    /// Σ a·b.
    pub ab: f64,
    /// Σ (b − a)².
    pub dd: f64,
    /// max |b − a| over the pairs whose difference is not NaN (0 when none).
    pub max_abs: f64,
    /// Pairs whose difference is NaN (a NaN on either side, or Inf − Inf).
    pub nan: u32,
    /// Pairs whose two elements are the same bits.
    pub identical: u32,
}

/// Pairs per block: 16 f32 fill one AVX-512 register.
pub const LANES: usize = 16;

/// The sums over the little-endian f32 values of `a` and `b`, element by element: the same length,
/// a whole number of [`LANES`]-value blocks.
#[must_use]
pub fn pair_sums(a: &[u8], b: &[u8]) -> PairSums {
    assert!(
        a.len() == b.len() && a.len().is_multiple_of(4 * LANES),
        "whole lane blocks of equal length only"
    );
    match level() {
        // SAFETY: the CPU supports AVX-512F (that is what this level means) and POPCNT.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 if std::arch::is_x86_feature_detected!("popcnt") => unsafe {
            pair_sums_avx512(a, b)
        },
        _ => pair_sums_portable(a, b),
    }
}

/// The portable body: one block of 16 pairs at a time, each lane its own accumulators.
fn pair_sums_portable(a: &[u8], b: &[u8]) -> PairSums {
    let mut aa = [0f64; LANES];
    let mut bb = [0f64; LANES];
    let mut ab = [0f64; LANES];
    let mut dd = [0f64; LANES];
    let mut max_abs = [0f64; LANES];
    let mut nan = 0u32;
    let mut identical = 0u32;
    for (block_a, block_b) in a.chunks_exact(4 * LANES).zip(b.chunks_exact(4 * LANES)) {
        for l in 0..LANES {
            let bits = |bytes: &[u8]| {
                u32::from_le_bytes([
                    bytes[4 * l],
                    bytes[4 * l + 1],
                    bytes[4 * l + 2],
                    bytes[4 * l + 3],
                ])
            };
            let (xa, xb) = (bits(block_a), bits(block_b));
            let (x, y) = (f64::from(f32::from_bits(xa)), f64::from(f32::from_bits(xb)));
            let d = y - x;
            aa[l] += x * x;
            bb[l] += y * y;
            ab[l] += x * y;
            dd[l] += d * d;
            // As MAXPD compares: a NaN difference leaves the lane's maximum as it was.
            let magnitude = d.abs();
            max_abs[l] = if magnitude > max_abs[l] {
                magnitude
            } else {
                max_abs[l]
            };
            nan += u32::from(d.is_nan());
            identical += u32::from(xa == xb);
        }
    }
    fold(&[aa, bb, ab, dd], &max_abs, nan, identical)
}

/// The lanes' totals, summed in lane order on every path.
fn fold(sums: &[[f64; LANES]; 4], max_abs: &[f64; LANES], nan: u32, identical: u32) -> PairSums {
    let [aa, bb, ab, dd] = sums.map(|lanes| lanes.iter().sum());
    PairSums {
        aa,
        bb,
        ab,
        dd,
        max_abs: max_abs.iter().fold(0.0, |m, &v| if v > m { v } else { m }),
        nan,
        identical,
    }
}

/// [`pair_sums_portable`] in explicit AVX-512: lanes 0-7 in one register, 8-15 in another.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,popcnt")]
fn pair_sums_avx512(a: &[u8], b: &[u8]) -> PairSums {
    use std::arch::x86_64::{
        __m512d, _CMP_UNORD_Q, _mm256_castpd_ps, _mm512_abs_pd, _mm512_add_pd,
        _mm512_castpd512_pd256, _mm512_castps_pd, _mm512_castps_si512, _mm512_cmp_pd_mask,
        _mm512_cmpeq_epi32_mask, _mm512_cvtps_pd, _mm512_extractf64x4_pd, _mm512_loadu_ps,
        _mm512_max_pd, _mm512_mul_pd, _mm512_setzero_pd, _mm512_storeu_pd, _mm512_sub_pd,
    };
    let zero = _mm512_setzero_pd();
    // Accumulators [aa, bb, ab, dd, max] of lanes 0-7, then of lanes 8-15.
    let mut acc: [[__m512d; 5]; 2] = [[zero; 5]; 2];
    // Counted in 16-bit masks' popcounts, summed once per block of 16 pairs.
    let mut nan = 0u32;
    let mut identical = 0u32;
    for (block_a, block_b) in a.chunks_exact(4 * LANES).zip(b.chunks_exact(4 * LANES)) {
        // SAFETY: each block holds 64 bytes, one unaligned 512-bit load.
        let (va, vb) = unsafe {
            (
                _mm512_loadu_ps(block_a.as_ptr().cast()),
                _mm512_loadu_ps(block_b.as_ptr().cast()),
            )
        };
        identical +=
            _mm512_cmpeq_epi32_mask(_mm512_castps_si512(va), _mm512_castps_si512(vb)).count_ones();
        // The low and high eight floats of each register, widened to f64.
        let half = |v, high: bool| {
            let bits = _mm512_castps_pd(v);
            let quarter = if high {
                _mm512_extractf64x4_pd::<1>(bits)
            } else {
                _mm512_castpd512_pd256(bits)
            };
            _mm512_cvtps_pd(_mm256_castpd_ps(quarter))
        };
        for (h, r) in acc.iter_mut().enumerate() {
            let (x, y) = (half(va, h == 1), half(vb, h == 1));
            let d = _mm512_sub_pd(y, x);
            r[0] = _mm512_add_pd(r[0], _mm512_mul_pd(x, x));
            r[1] = _mm512_add_pd(r[1], _mm512_mul_pd(y, y));
            r[2] = _mm512_add_pd(r[2], _mm512_mul_pd(x, y));
            r[3] = _mm512_add_pd(r[3], _mm512_mul_pd(d, d));
            // MAXPD gives its second operand when either is NaN: the maximum so far.
            r[4] = _mm512_max_pd(_mm512_abs_pd(d), r[4]);
            nan += _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(d, d).count_ones();
        }
    }
    let mut lanes = [[0f64; LANES]; 5];
    for (h, registers) in acc.iter().enumerate() {
        for (out, register) in lanes.iter_mut().zip(registers) {
            // SAFETY: each array holds 16 f64; the store writes 8 of them, from 0 or from 8.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr().add(8 * h), *register) };
        }
    }
    fold(
        &[lanes[0], lanes[1], lanes[2], lanes[3]],
        &lanes[4],
        nan,
        identical,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field's bits, so that NaN sums compare equal to themselves.
    fn bits(p: &PairSums) -> [u64; 7] {
        [
            p.aa.to_bits(),
            p.bb.to_bits(),
            p.ab.to_bits(),
            p.dd.to_bits(),
            p.max_abs.to_bits(),
            u64::from(p.nan),
            u64::from(p.identical),
        ]
    }

    /// Both paths' figures for `a` and `b`, checked to be the same bits.
    fn both_paths(a: &[f32], b: &[f32]) -> PairSums {
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (ba, bb) = (bytes(a), bytes(b));
        let portable = pair_sums_portable(&ba, &bb);
        assert_eq!(bits(&pair_sums(&ba, &bb)), bits(&portable));
        #[cfg(target_arch = "x86_64")]
        if level() == Level::Avx512 && std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: checked just above.
            assert_eq!(
                bits(&unsafe { pair_sums_avx512(&ba, &bb) }),
                bits(&portable)
            );
        }
        portable
    }

    fn wave(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect()
    }

    #[test]
    fn finite_pairs_give_the_plain_loop_s_figures_on_every_path() {
        let a = wave(4096);
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                if i % 3 == 0 {
                    x
                } else {
                    x + (i % 13) as f32 * 1e-3
                }
            })
            .collect();
        let got = both_paths(&a, &b);
        let (mut aa, mut dd, mut max_abs, mut identical) = (0f64, 0f64, 0f64, 0u32);
        for (&x, &y) in a.iter().zip(&b) {
            let (x64, d) = (f64::from(x), f64::from(y) - f64::from(x));
            aa += x64 * x64;
            dd += d * d;
            max_abs = max_abs.max(d.abs());
            identical += u32::from(x.to_bits() == y.to_bits());
        }
        assert!((got.aa - aa).abs() <= 1e-12 * aa && (got.dd - dd).abs() <= 1e-12 * dd);
        assert_eq!(
            (got.max_abs, got.identical, got.nan),
            (max_abs, identical, 0)
        );
        assert!(identical > 0 && max_abs > 0.0);
    }

    #[test]
    fn nan_differences_are_counted_and_left_out_of_the_maximum() {
        let a: Vec<f32> = wave(4096)
            .into_iter()
            .enumerate()
            .map(|(i, x)| if i % 97 == 5 { f32::NAN } else { x })
            .collect();
        let mut b = a.clone();
        b[17] += 0.5;
        // Inf - Inf is NaN, as is any pair holding a NaN.
        b[40] = f32::INFINITY;
        let mut a = a;
        a[40] = f32::INFINITY;
        let got = both_paths(&a, &b);
        let nan_pairs = a.iter().filter(|x| x.is_nan()).count() as u32 + 1;
        assert_eq!(got.nan, nan_pairs);
        assert_eq!(got.max_abs, f64::from(b[17]) - f64::from(a[17]));
        // A NaN's bits equal themselves: a pair of the same NaN is bit-identical.
        assert_eq!(got.identical, 4096 - 1);
    }
}
