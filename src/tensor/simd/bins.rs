//! The histogram kernel: bin indices of 16 f32 values at a time, computed in vector registers,
//! then counted into four interleaved count arrays so that neighbouring equal values (a peaked
//! distribution puts most values in a few bins) do not wait on each other's stores.

use super::{Level, level};

/// Values per block: one AVX-512 register of f32.
pub const LANES: usize = 16;

/// Count arrays the lanes are spread over.
pub const WAYS: usize = 4;

/// Equal bins over `[lo, hi]`: value `v` goes to `⌊(v − lo)·scale⌋`, the maximum to the last.
#[derive(Debug, Clone, Copy)]
pub struct Bins {
    /// Left edge of the first bin.
    pub lo: f64,
    /// Right edge of the last bin.
    pub hi: f64,
    /// Bins per unit of value: `bins / (hi − lo)`, or 0 for a zero-width range (all in bin 0).
    pub scale: f64,
    /// Number of bins.
    pub count: usize,
}

impl Bins {
    /// `count` bins (at least one) over `[lo, hi]`.
    #[must_use]
    pub fn new(lo: f64, hi: f64, count: usize) -> Self {
        let count = count.max(1);
        let width = hi - lo;
        let scale = if width > 0.0 {
            count as f64 / width
        } else {
            0.0
        };
        Bins {
            lo,
            hi,
            scale,
            count,
        }
    }

    /// The bin of `v`, or `None` outside `[lo, hi]` (NaN and ±∞ included).
    #[must_use]
    #[inline]
    pub fn of(&self, v: f64) -> Option<usize> {
        (v >= self.lo && v <= self.hi).then(|| self.index(v) as usize)
    }

    /// The bin of an in-range `v`, as f64; the same arithmetic in scalar and vector code.
    #[expect(
        clippy::inline_always,
        reason = "part of the kernel's body, which must inline into the target_feature wrappers"
    )]
    #[inline(always)]
    fn index(&self, v: f64) -> f64 {
        ((v - self.lo) * self.scale).min((self.count - 1) as f64)
    }

    /// Slots of the count array [`count_f32`] fills: per way, one per bin and one for the values
    /// outside the bins.
    #[must_use]
    pub fn slots(&self) -> usize {
        WAYS * (self.count + 1)
    }
}

/// What [`count_f32`] saw that has no bin, lane totals folded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Specials {
    /// NaN values.
    pub nan: u32,
    /// +∞ values.
    pub pos_inf: u32,
    /// −∞ values.
    pub neg_inf: u32,
}

/// Counts the little-endian f32 values in `bytes` (whole 16-value blocks, at most 2³¹ of them)
/// into `counts` (`bins.slots()` long): way `w`'s slot `b` counts the values of lanes `w`, `w+4`,
/// ... falling in bin `b`, and its last slot the values in no bin. NaN and ±∞ are also counted
/// apart in the returned [`Specials`], so finite values outside `[lo, hi]` are the last slots'
/// total less those.
///
/// # Panics
/// When `bytes` is not whole blocks or `counts` is not `bins.slots()` long.
pub fn count_f32(bytes: &[u8], bins: &Bins, counts: &mut [u32]) -> Specials {
    assert!(
        bytes.len().is_multiple_of(4 * LANES),
        "whole lane blocks only"
    );
    assert_eq!(counts.len(), bins.slots(), "one slot per bin and way");
    match level() {
        // SAFETY: the CPU supports AVX-512F (that is what this level means).
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { count_avx512(bytes, bins, counts) },
        // SAFETY: the CPU supports AVX2 (that is what this level means).
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { count_avx2(bytes, bins, counts) },
        Level::Baseline => count_portable(bytes, bins, counts),
        #[cfg(not(target_arch = "x86_64"))]
        _ => count_portable(bytes, bins, counts),
    }
}

/// [`count_portable`] with the slot indices computed in explicit AVX-512 (the compiler leaves the
/// f32→f64 conversions of the portable body scalar): the same arithmetic, so the same counts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn count_avx512(bytes: &[u8], bins: &Bins, counts: &mut [u32]) -> Specials {
    use std::arch::x86_64::{
        _CMP_GE_OQ, _CMP_LE_OQ, _mm256_loadu_ps, _mm256_storeu_si256, _mm512_add_epi64,
        _mm512_add_pd, _mm512_castpd_si512, _mm512_cmp_pd_mask, _mm512_cvtepi64_epi32,
        _mm512_cvtps_pd, _mm512_mask_blend_epi64, _mm512_min_pd, _mm512_mul_pd,
        _mm512_roundscale_pd, _mm512_set1_epi64, _mm512_set1_pd, _mm512_setr_epi64, _mm512_sub_pd,
    };
    let way = i64::from(bins.count as u32 + 1);
    let (lo, hi) = (_mm512_set1_pd(bins.lo), _mm512_set1_pd(bins.hi));
    let scale = _mm512_set1_pd(bins.scale);
    let last = _mm512_set1_pd((bins.count - 1) as f64);
    let two_52 = _mm512_set1_pd(f64::from_bits(0x4330_0000_0000_0000));
    let outside = _mm512_set1_epi64(i64::from(bins.count as u32));
    // Lane l's way is l mod 4: the offsets of lanes 0-7 (and, the same, of 8-15).
    let ways = _mm512_setr_epi64(0, way, 2 * way, 3 * way, 0, way, 2 * way, 3 * way);
    let mut specials = Specials::default();
    let mut slots = [0u32; LANES];
    for raw in bytes.chunks_exact(4 * LANES) {
        let mut inside_all = true;
        for half in 0..2 {
            // SAFETY: `raw` holds 64 bytes; each half reads 32 of them, unaligned.
            let values = unsafe { _mm256_loadu_ps(raw.as_ptr().add(32 * half).cast()) };
            let d = _mm512_cvtps_pd(values);
            let inside =
                _mm512_cmp_pd_mask::<_CMP_GE_OQ>(d, lo) & _mm512_cmp_pd_mask::<_CMP_LE_OQ>(d, hi);
            inside_all &= inside == 0xff;
            // ⌊min((d − lo)·scale, count − 1)⌋ + 2⁵², whose low 32 bits are the bin.
            let index = _mm512_min_pd(_mm512_mul_pd(_mm512_sub_pd(d, lo), scale), last);
            let floored = _mm512_roundscale_pd::<0x09>(index);
            let bin = _mm512_castpd_si512(_mm512_add_pd(floored, two_52));
            let slot = _mm512_add_epi64(_mm512_mask_blend_epi64(inside, outside, bin), ways);
            // SAFETY: `slots` holds 16 u32; this half's eight go to 0 or 8, inside it.
            unsafe {
                _mm256_storeu_si256(
                    slots.as_mut_ptr().add(8 * half).cast(),
                    _mm512_cvtepi64_epi32(slot),
                );
            }
        }
        for &slot in &slots {
            counts[slot as usize] += 1;
        }
        if !inside_all {
            specials = add_specials(specials, raw);
        }
    }
    specials
}

/// `so_far` plus the NaN and ±∞ values among the f32 of `raw`.
#[expect(
    clippy::inline_always,
    reason = "part of the kernel's body, which must inline into the target_feature wrappers"
)]
#[inline(always)]
fn add_specials(mut so_far: Specials, raw: &[u8]) -> Specials {
    for c in raw.chunks_exact(4) {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        so_far.nan += u32::from(v.is_nan());
        so_far.pos_inf += u32::from(v == f32::INFINITY);
        so_far.neg_inf += u32::from(v == f32::NEG_INFINITY);
    }
    so_far
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_avx2(bytes: &[u8], bins: &Bins, counts: &mut [u32]) -> Specials {
    count_portable(bytes, bins, counts)
}

/// The kernel: per block, the 16 slot indices are computed in lanes (decode, range test, scale,
/// clamp, floor: all vectorized), then the 16 counts are bumped one by one. A block with a value
/// outside the bins (rare: NaN, ±∞, or a range narrower than the data) is scanned again for NaN
/// and ±∞.
#[expect(
    clippy::inline_always,
    reason = "inlining into the target_feature wrappers is what compiles it for AVX-512 and AVX2"
)]
#[inline(always)]
fn count_portable(bytes: &[u8], bins: &Bins, counts: &mut [u32]) -> Specials {
    let way = bins.count as u32 + 1;
    let outside = bins.count as u32;
    // Adding 2⁵² to a whole number below 2³² leaves it in the low bits of the f64: a conversion
    // in two vector operations, where `as u32` would add its saturation checks.
    let two_52 = f64::from_bits(0x4330_0000_0000_0000);
    let mut specials = Specials::default();
    let mut slots = [0u32; LANES];
    for raw in bytes.chunks_exact(4 * LANES) {
        let mut any_outside = 0u32;
        for l in 0..LANES {
            let c = &raw[4 * l..4 * l + 4];
            let d = f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            let inside = d >= bins.lo && d <= bins.hi;
            // In range, the index is a whole number in [0, count − 1] once floored.
            let bin = (bins.index(d).floor() + two_52).to_bits() as u32;
            slots[l] = if inside { bin } else { outside } + (l % WAYS) as u32 * way;
            any_outside |= u32::from(!inside);
        }
        for &slot in &slots {
            counts[slot as usize] += 1;
        }
        if any_outside != 0 {
            specials = add_specials(specials, raw);
        }
    }
    specials
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_counts_what_the_scalar_rule_says() {
        let values: Vec<f32> = (0..4096)
            .map(|i| match i % 103 {
                7 => f32::NAN,
                8 => f32::INFINITY,
                9 => f32::NEG_INFINITY,
                10 => 5.0,
                11 => -1.0,
                _ => (i as f32 * 0.37).sin() * 2.0,
            })
            .collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bins = Bins::new(-1.0, 2.0, 13);
        let mut want = vec![0u32; bins.count + 1];
        for &v in &values {
            want[bins.of(f64::from(v)).unwrap_or(bins.count)] += 1;
        }
        let fold = |counts: &[u32]| -> Vec<u32> {
            (0..=bins.count)
                .map(|b| (0..WAYS).map(|w| counts[w * (bins.count + 1) + b]).sum())
                .collect()
        };
        let mut counts = vec![0u32; bins.slots()];
        let specials = count_portable(&bytes, &bins, &mut counts);
        assert_eq!(fold(&counts), want);
        assert_eq!(
            (specials.nan, specials.pos_inf, specials.neg_inf),
            (40, 40, 40)
        );
        let mut dispatched = vec![0u32; bins.slots()];
        assert_eq!(count_f32(&bytes, &bins, &mut dispatched), specials);
        assert_eq!(dispatched, counts);
        #[cfg(target_arch = "x86_64")]
        if level() != Level::Baseline {
            let mut avx2 = vec![0u32; bins.slots()];
            // SAFETY: either x86 level has AVX2 (Rust's AVX-512F implies it).
            assert_eq!(unsafe { count_avx2(&bytes, &bins, &mut avx2) }, specials);
            assert_eq!(avx2, counts);
        }
        #[cfg(target_arch = "x86_64")]
        if level() == Level::Avx512 {
            let mut avx512 = vec![0u32; bins.slots()];
            // SAFETY: checked just above.
            assert_eq!(
                unsafe { count_avx512(&bytes, &bins, &mut avx512) },
                specials
            );
            assert_eq!(avx512, counts);
        }
    }
}
