//! The inner loops of the quantized-safetensors dequantization, one run of codes sharing a scale
//! at a time, compiled for each instruction set (`per_level!`): FP8 and 4-bit codes looked up and
//! scaled (a gather under AVX-512), integer codes less their zero point and scaled, and the round
//! to BF16 or F16 a product in that dtype makes. Every level gives the same bits: each lane is one f32
//! product and one integer rounding, which no instruction set rounds differently.

use super::{Level, level};

/// `out[i] = lut[codes[i]] * scale`, each product in f32.
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn lut_times_body(codes: &[u8], lut: &[f32; 256], scale: f32, out: &mut [f32]) {
    for (v, &c) in out.iter_mut().zip(codes) {
        *v = lut[usize::from(c)] * scale;
    }
}

/// `out[i] = scale * (codes[i] - zero)`, the difference exact in f32 (codes and zero points have
/// at most 9 bits), the product in f32.
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn offset_times_body(codes: &[u8], zero: i32, scale: f32, out: &mut [f32]) {
    for (v, &c) in out.iter_mut().zip(codes) {
        *v = scale * (i32::from(c) - zero) as f32;
    }
}

/// Each value rounded to the nearest BF16, ties to even, NaN kept NaN with its quiet bit set: the
/// bits `half::bf16::from_f32` gives, without its branches.
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn round_bf16_body(values: &mut [f32]) {
    for v in values.iter_mut() {
        let x = v.to_bits();
        let nan = x & 0x7fff_ffff > 0x7f80_0000;
        let rounded = x.wrapping_add(0x7fff + ((x >> 16) & 1)) & 0xffff_0000;
        let quiet = (x | 0x0040_0000) & 0xffff_0000;
        *v = f32::from_bits(if nan { quiet } else { rounded });
    }
}

/// Each value rounded to the nearest F16, ties to even, and back to f32: the bits
/// `half::f16::from_f32(v).to_f32()` gives (past 65504 infinity; a NaN quiet, its payload's top
/// ten bits kept), without its branches. An F16 subnormal's rounding is the f32 addition of 0.5,
/// whose spacing, 2^-24, is the subnormals'.
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn round_f16_body(values: &mut [f32]) {
    for v in values.iter_mut() {
        let x = v.to_bits();
        let (sign, magnitude) = (x & 0x8000_0000, x & 0x7fff_ffff);
        let normal = (magnitude + 0xfff + ((magnitude >> 13) & 1)) & 0xffff_e000;
        let normal = if normal >= 0x4780_0000 {
            0x7f80_0000
        } else {
            normal
        };
        let subnormal = ((f32::from_bits(magnitude) + 0.5) - 0.5).to_bits();
        let rounded = if magnitude < 0x3880_0000 {
            subnormal
        } else {
            normal
        };
        let special = if magnitude > 0x7f80_0000 {
            0x7fc0_0000 | (magnitude & 0x007f_e000)
        } else {
            0x7f80_0000
        };
        let bits = if magnitude >= 0x7f80_0000 {
            special
        } else {
            rounded
        };
        *v = f32::from_bits(sign | bits);
    }
}

per_level! {
    /// `out[i] = lut[codes[i]] * scale` (FP8's and bitsandbytes' 4-bit codes).
    pub fn lut_times(codes: &[u8], lut: &[f32; 256], scale: f32, out: &mut [f32]) = lut_times_body;
}

per_level! {
    /// `out[i] = scale * (codes[i] - zero)` in f32 (GPTQ, AWQ, compressed-tensors).
    pub fn offset_times(codes: &[u8], zero: i32, scale: f32, out: &mut [f32]) = offset_times_body;
}

per_level! {
    /// Each value rounded to BF16 as `half::bf16::from_f32` rounds it.
    pub fn round_bf16(values: &mut [f32]) = round_bf16_body;
}

per_level! {
    /// Each value rounded to F16 as `half::f16::from_f32` rounds it, in f32.
    pub fn round_f16(values: &mut [f32]) = round_f16_body;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Awkward f32 bit patterns: ties both ways, NaNs signalling and quiet, infinities, the largest
    /// finite values (which round to infinity), subnormals, and a spread of ordinary values.
    fn patterns() -> Vec<f32> {
        let mut bits: Vec<u32> = vec![
            0x3f80_8000,
            0x3f81_8000,
            0x3f80_8001,
            0x3f80_7fff,
            0x7f80_0001,
            0xff80_0001,
            0x7fc0_0000,
            0x7f80_0000,
            0xff80_0000,
            0x7f7f_ffff,
            0xff7f_ffff,
            0x0000_8000,
            0x0001_8000,
            0x8000_0000,
            0,
        ];
        bits.extend((0..4099u32).map(|i| i.wrapping_mul(2_654_435_761)));
        bits.into_iter().map(f32::from_bits).collect()
    }

    #[test]
    fn every_level_rounds_to_bf16_as_half_does() {
        let values = patterns();
        rounds_as(&values, round_bf16, round_bf16_body, |v| {
            half::bf16::from_f32(v).to_f32()
        });
    }

    /// The dispatched rounding and the portable body both give `want`'s bits for every value.
    fn rounds_as(
        values: &[f32],
        fast: fn(&mut [f32]),
        body: fn(&mut [f32]),
        want: impl Fn(f32) -> f32,
    ) {
        let mut got = values.to_vec();
        fast(&mut got);
        let mut portable = values.to_vec();
        body(&mut portable);
        for ((v, g), p) in values.iter().zip(&got).zip(&portable) {
            let want = want(*v).to_bits();
            assert_eq!(
                (g.to_bits(), p.to_bits()),
                (want, want),
                "{:#x}",
                v.to_bits()
            );
        }
    }

    #[test]
    fn every_level_rounds_to_f16_as_half_does() {
        // Every F16 value, the midpoints either side of it (ties both ways) and their neighbours,
        // as f32: the normal and subnormal ranges, the overflow to infinity, NaN payloads.
        let mut values = patterns();
        for h in 0..=u16::MAX {
            let v = half::f16::from_bits(h).to_f32();
            let next = half::f16::from_bits(h.wrapping_add(1)).to_f32();
            let mid = f64::midpoint(f64::from(v), f64::from(next)) as f32;
            for m in [v, mid] {
                values.extend([
                    m,
                    f32::from_bits(m.to_bits().wrapping_add(1)),
                    f32::from_bits(m.to_bits().wrapping_sub(1)),
                ]);
            }
        }
        values.extend([
            65504.0,
            65519.996,
            65520.0,
            1e-8,
            2.98e-8,
            2.980_232_2e-8,
            5.96e-8,
        ]);
        rounds_as(&values, round_f16, round_f16_body, |v| {
            half::f16::from_f32(v).to_f32()
        });
    }

    #[test]
    fn every_level_scales_codes_as_the_plain_loop_does() {
        let codes: Vec<u8> = (0..4111u32).map(|i| (i * 37 % 256) as u8).collect();
        let lut: [f32; 256] = std::array::from_fn(|i| f32::from_bits(i as u32 * 16_777_259));
        let scale = 0.0123_f32;
        let mut got = vec![f32::NAN; codes.len()];
        lut_times(&codes, &lut, scale, &mut got);
        for (g, &c) in got.iter().zip(&codes) {
            assert_eq!(g.to_bits(), (lut[usize::from(c)] * scale).to_bits());
        }
        offset_times(&codes, 8, scale, &mut got);
        for (g, &c) in got.iter().zip(&codes) {
            assert_eq!(g.to_bits(), (scale * (f32::from(c) - 8.0)).to_bits());
        }
    }
}
