//! The block decoders of the types the kernel reads fastest (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K): each
//! writes a block's values exactly as ggml's `dequantize_row_*` (and gguf-py) compute them, the
//! same f32 operations in the same order, in loops shaped so that LLVM turns them into SIMD once
//! inlined into code compiled for AVX2 or AVX-512.
//!
//! The tensor layer's decoders stay the reference: `tests/gguf_quant.rs` checks these against them
//! bit for bit on random blocks.

#![expect(
    clippy::inline_always,
    reason = "a decoder must inline into the #[target_feature] loop that calls it to get its SIMD"
)]

use super::Fused;

/// Bytes and values per block of `fused`.
pub(super) fn shape(fused: Fused) -> (usize, usize) {
    match fused {
        Fused::Q4_0 => (Q4_0::BYTES, Q4_0::VALUES),
        Fused::Q4_1 => (Q4_1::BYTES, Q4_1::VALUES),
        Fused::Q8_0 => (Q8_0::BYTES, Q8_0::VALUES),
        Fused::Q4_K => (Q4_K::BYTES, Q4_K::VALUES),
        Fused::Q6_K => (Q6_K::BYTES, Q6_K::VALUES),
    }
}

/// A block type: its size in bytes and values, and its decoder.
pub(super) trait Block {
    /// Bytes per block.
    const BYTES: usize;
    /// Values per block.
    const VALUES: usize;
    /// Writes the block's `VALUES` values into `out[..VALUES]`.
    fn decode<W: Widen>(block: &[u8], out: &mut [f32]);
}

/// How a block's f16 scales are widened to f32: F16C's instruction where the CPU has it, else
/// plain arithmetic. Both give `half::f16::to_f32`'s bits (tested), so they are interchangeable.
pub(super) trait Widen {
    /// The f16 with these bits, exactly.
    fn widen(bits: u16) -> f32;
}

/// Widening in integer arithmetic: any CPU.
pub(super) struct Arithmetic;

impl Widen for Arithmetic {
    #[inline(always)]
    fn widen(bits: u16) -> f32 {
        let h = u32::from(bits);
        let sign = (h & 0x8000) << 16;
        let (exp, man) = ((h >> 10) & 0x1f, h & 0x3ff);
        match exp {
            // Zero and subnormals: man·2⁻²⁴, exact in f32.
            0 => {
                #[expect(clippy::cast_precision_loss, reason = "man < 1024 is exact")]
                let v = man as f32 * (1.0 / 16_777_216.0);
                f32::from_bits(v.to_bits() | sign)
            }
            0x1f if man != 0 => f32::from_bits(sign | 0x7fc0_0000 | man << 13),
            0x1f => f32::from_bits(sign | 0x7f80_0000),
            _ => f32::from_bits(sign | (exp + 112) << 23 | man << 13),
        }
    }
}

/// Widening with F16C's `vcvtph2ps`: one instruction where the arithmetic takes a dozen, twice per
/// 32 values of Q4_1. Only the loops compiled with F16C enabled use it (rows.rs).
#[cfg(target_arch = "x86_64")]
pub(super) struct F16c;

#[cfg(target_arch = "x86_64")]
impl Widen for F16c {
    #[inline(always)]
    fn widen(bits: u16) -> f32 {
        use std::arch::x86_64::{_mm_cvtph_ps, _mm_cvtsi32_si128, _mm_cvtss_f32};
        // SAFETY: only instantiated inside functions compiled with `f16c` enabled, which run
        // only once the CPU has been found to have it (rows.rs), so the intrinsic is available.
        unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits)))) }
    }
}

/// The little-endian f16 at `at`, widened exactly.
#[inline(always)]
fn half<W: Widen>(bytes: &[u8], at: usize) -> f32 {
    W::widen(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// 32 values: f16 scale, 4-bit values offset by 8; value j is the low nibble of byte j (j < 16)
/// or the high nibble of byte j - 16. `(q - 8)·d`.
pub(super) struct Q4_0;

impl Block for Q4_0 {
    const BYTES: usize = 18;
    const VALUES: usize = 32;
    #[inline(always)]
    fn decode<W: Widen>(block: &[u8], out: &mut [f32]) {
        let d = half::<W>(block, 0);
        let qs: &[u8; 16] = block[2..18].try_into().expect("16 bytes");
        let (low, high) = out[..32].split_at_mut(16);
        for j in 0..16 {
            low[j] = f32::from((qs[j] & 15).cast_signed() - 8) * d;
            high[j] = f32::from((qs[j] >> 4).cast_signed() - 8) * d;
        }
    }
}

/// 32 values: f16 scale and minimum, 4-bit values. `q·d + m`.
pub(super) struct Q4_1;

impl Block for Q4_1 {
    const BYTES: usize = 20;
    const VALUES: usize = 32;
    #[inline(always)]
    fn decode<W: Widen>(block: &[u8], out: &mut [f32]) {
        let (d, m) = (half::<W>(block, 0), half::<W>(block, 2));
        let qs: &[u8; 16] = block[4..20].try_into().expect("16 bytes");
        let (low, high) = out[..32].split_at_mut(16);
        for j in 0..16 {
            low[j] = f32::from(qs[j] & 15) * d + m;
            high[j] = f32::from(qs[j] >> 4) * d + m;
        }
    }
}

/// 32 values: f16 scale, signed bytes. `q·d`.
pub(super) struct Q8_0;

impl Block for Q8_0 {
    const BYTES: usize = 34;
    const VALUES: usize = 32;
    #[inline(always)]
    fn decode<W: Widen>(block: &[u8], out: &mut [f32]) {
        let d = half::<W>(block, 0);
        let qs: &[u8; 32] = block[2..34].try_into().expect("32 bytes");
        for (y, &q) in out[..32].iter_mut().zip(qs) {
            *y = f32::from(q.cast_signed()) * d;
        }
    }
}

/// The 6-bit scale and minimum of group `j` (of 8) of Q4_K (`get_scale_min_k4`).
#[inline(always)]
pub(super) fn scale_min(packed: &[u8], j: usize) -> (f32, f32) {
    let (s, m) = if j < 4 {
        (packed[j] & 0x3f, packed[j + 4] & 0x3f)
    } else {
        (
            (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 2) & 0x30),
            (packed[j + 4] >> 4) | ((packed[j] >> 2) & 0x30),
        )
    };
    (f32::from(s), f32::from(m))
}

/// 256 values: 8 groups of 32 with 6-bit scales and minimums, 4-bit values; each 32 bytes hold
/// two groups, low nibbles then high. `(d·sc)·q - dmin·m` per group.
#[expect(non_camel_case_types, reason = "the names are ggml's own")]
pub(super) struct Q4_K;

impl Block for Q4_K {
    const BYTES: usize = 144;
    const VALUES: usize = 256;
    #[inline(always)]
    fn decode<W: Widen>(block: &[u8], out: &mut [f32]) {
        let (d, dmin) = (half::<W>(block, 0), half::<W>(block, 2));
        let packed = &block[4..16];
        for c in 0..4 {
            let bytes: &[u8; 32] = block[16 + c * 32..48 + c * 32]
                .try_into()
                .expect("32 bytes");
            let (sc, m) = scale_min(packed, 2 * c);
            let (d1, m1) = (d * sc, dmin * m);
            let (sc, m) = scale_min(packed, 2 * c + 1);
            let (d2, m2) = (d * sc, dmin * m);
            let (low, high) = out[c * 64..c * 64 + 64].split_at_mut(32);
            for l in 0..32 {
                low[l] = d1 * f32::from(bytes[l] & 15) - m1;
                high[l] = d2 * f32::from(bytes[l] >> 4) - m2;
            }
        }
    }
}

/// 256 values: 16 groups of 16 with signed 8-bit scales, 6-bit values offset by 32. Value
/// `h·128 + s·32 + l` has its low 4 bits in nibble `s / 2` of `ql[h·64 + (s % 2)·32 + l]` and its
/// high 2 bits in bits `2s..2s+2` of `qh[h·32 + l]`. `(d·scale)·q`.
#[expect(non_camel_case_types, reason = "the names are ggml's own")]
pub(super) struct Q6_K;

impl Block for Q6_K {
    const BYTES: usize = 210;
    const VALUES: usize = 256;
    #[inline(always)]
    fn decode<W: Widen>(block: &[u8], out: &mut [f32]) {
        let (ql, qh, scales) = (&block[..128], &block[128..192], &block[192..208]);
        let d = half::<W>(block, 208);
        for h in 0..2 {
            let low: &[u8; 64] = ql[h * 64..h * 64 + 64].try_into().expect("64 bytes");
            let high: &[u8; 32] = qh[h * 32..h * 32 + 32].try_into().expect("32 bytes");
            let mut q = [[0i8; 32]; 4];
            for l in 0..32 {
                let bits = |s: usize| {
                    let nibble = (low[(s % 2) * 32 + l] >> (4 * (s / 2))) & 15;
                    (nibble | ((high[l] >> (2 * s)) & 3) << 4).cast_signed() - 32
                };
                for (s, run) in q.iter_mut().enumerate() {
                    run[l] = bits(s);
                }
            }
            for (s, run) in q.iter().enumerate() {
                let at = h * 128 + s * 32;
                for (g, values) in run.chunks_exact(16).enumerate() {
                    let dl = d * f32::from(scales[at / 16 + g].cast_signed());
                    for (y, &v) in out[at + g * 16..at + g * 16 + 16].iter_mut().zip(values) {
                        *y = dl * f32::from(v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f16_widens_as_the_half_crate_does() {
        let check = |widen: fn(u16) -> f32, name: &str| {
            for bits in 0..=u16::MAX {
                let (ours, theirs) = (widen(bits), half::f16::from_bits(bits).to_f32());
                assert!(
                    ours.to_bits() == theirs.to_bits() || (ours.is_nan() && theirs.is_nan()),
                    "{name} {bits:#06x}: {ours} against {theirs}"
                );
            }
        };
        check(Arithmetic::widen, "arithmetic");
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("f16c") {
            check(F16c::widen, "f16c");
        }
    }
}
