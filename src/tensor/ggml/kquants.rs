//! The 256-value super-block types with per-group scales: Q2_K to Q6_K, IQ4_XS, and the ternary
//! TQ1_0 and TQ2_0.
//!
//! Bit fields are addressed as ggml lays them out: a byte array of 32 (or 64) bytes holds the
//! low bits of 32 (or 64) consecutive values, and its higher bit pairs or nibbles the next runs.

use super::legacy::KVALUES_IQ4NL;
use super::{half, u16_at};

/// Bits `2s..2s+2` of byte `l` of the 32-byte row `h` of `qs`: the 2-bit field of value
/// `h * 128 + s * 32 + l`, the packing Q2_K, Q3_K, Q6_K's high bits and TQ2_0 share.
fn crumb(qs: &[u8], e: usize) -> u8 {
    let (h, s, l) = (e / 128, (e % 128) / 32, e % 32);
    (qs[h * 32 + l] >> (2 * s)) & 3
}

/// The nibble of value `e` when each 32 bytes hold 64 values (low nibbles first): Q4_K and Q5_K.
fn nibble64(qs: &[u8], e: usize) -> u8 {
    let (c, a, l) = (e / 64, (e % 64) / 32, e % 32);
    (qs[c * 32 + l] >> (4 * a)) & 0x0f
}

/// Q2_K: `d * (scale & 15) * q - dmin * (scale >> 4)`, one scale byte per 16 values.
pub(super) fn q2_k(block: &[u8], out: &mut [f32]) {
    let (scales, qs) = (&block[..16], &block[16..80]);
    let (d, dmin) = (half(block, 80), half(block, 82));
    for (g, group) in out.chunks_exact_mut(16).enumerate() {
        let dl = d * f32::from(scales[g] & 0x0f);
        let ml = dmin * f32::from(scales[g] >> 4);
        for (i, y) in group.iter_mut().enumerate() {
            *y = dl * f32::from(crumb(qs, g * 16 + i)) - ml;
        }
    }
}

/// Q3_K: 2 low bits, a high bit from `hmask` (set means no offset, clear means -4), and 6-bit
/// signed scales packed 4 low bits in bytes 0-7 and 2 high bits in bytes 8-11.
pub(super) fn q3_k(block: &[u8], out: &mut [f32]) {
    let (hmask, qs, packed) = (&block[..32], &block[32..96], &block[96..108]);
    let d = half(block, 108);
    for (k, group) in out.chunks_exact_mut(16).enumerate() {
        let low = (packed[k % 8] >> (4 * (k / 8))) & 0x0f;
        let high = (packed[8 + k % 4] >> (2 * (k / 4))) & 0x03;
        let dl = d * f32::from((low | high << 4) as i8 - 32);
        for (i, y) in group.iter_mut().enumerate() {
            let e = k * 16 + i;
            let offset = if (hmask[e % 32] >> (e / 32)) & 1 == 0 {
                4
            } else {
                0
            };
            *y = dl * f32::from(crumb(qs, e) as i8 - offset);
        }
    }
}

/// The 6-bit scale and minimum of group `j` (of 8) from the 12 packed bytes of Q4_K and Q5_K
/// (`get_scale_min_k4`).
fn scale_min(packed: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 0x3f, packed[j + 4] & 0x3f)
    } else {
        (
            (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 2) & 0x30),
            (packed[j + 4] >> 4) | ((packed[j] >> 2) & 0x30),
        )
    }
}

/// Q4_K: `d * scale * q - dmin * min` per group of 32.
pub(super) fn q4_k(block: &[u8], out: &mut [f32]) {
    let (d, dmin) = (half(block, 0), half(block, 2));
    let (packed, qs) = (&block[4..16], &block[16..144]);
    // Each 32 bytes hold two groups: the low nibbles, then the high ones.
    for (c, (pair, bytes)) in out
        .chunks_exact_mut(64)
        .zip(qs.chunks_exact(32))
        .enumerate()
    {
        let (low, high) = pair.split_at_mut(32);
        for (half, shift, j) in [(low, 0, 2 * c), (high, 4, 2 * c + 1)] {
            let (sc, m) = scale_min(packed, j);
            let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
            for (y, &q) in half.iter_mut().zip(bytes) {
                *y = d1 * f32::from((q >> shift) & 0x0f) - m1;
            }
        }
    }
}

/// Q5_K: Q4_K with a fifth bit, bit `j` of `qh[l]` for value `l` of group `j`.
pub(super) fn q5_k(block: &[u8], out: &mut [f32]) {
    let (d, dmin) = (half(block, 0), half(block, 2));
    let (packed, qh, qs) = (&block[4..16], &block[16..48], &block[48..176]);
    for (j, group) in out.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min(packed, j);
        let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
        for (l, y) in group.iter_mut().enumerate() {
            let q = nibble64(qs, j * 32 + l) | ((qh[l] >> j) & 1) << 4;
            *y = d1 * f32::from(q) - m1;
        }
    }
}

/// Q6_K: 4 low bits (64 values per 64 bytes, per half), 2 high bits, signed 8-bit scales per 16.
pub(super) fn q6_k(block: &[u8], out: &mut [f32]) {
    let (ql, qh, scales) = (&block[..128], &block[128..192], &block[192..208]);
    let d = half(block, 208);
    for (g, group) in out.chunks_exact_mut(16).enumerate() {
        let dl = d * f32::from(scales[g] as i8);
        for (i, y) in group.iter_mut().enumerate() {
            let e = g * 16 + i;
            let (h, a, l) = (e / 128, (e % 128) / 64, e % 64);
            let low = (ql[h * 64 + l] >> (4 * a)) & 0x0f;
            let q = (low | crumb(qh, e) << 4) as i8 - 32;
            *y = dl * f32::from(q);
        }
    }
}

/// IQ4_XS: IQ4_NL's table with a 6-bit signed scale per 32 values (4 low bits in `scales_l`,
/// 2 high bits in the 16-bit `scales_h`).
pub(super) fn iq4_xs(block: &[u8], out: &mut [f32]) {
    let (d, scales_h) = (half(block, 0), u16_at(block, 2));
    let (scales_l, qs) = (&block[4..8], &block[8..136]);
    for (k, group) in out.chunks_exact_mut(32).enumerate() {
        let low = (scales_l[k / 2] >> (4 * (k % 2))) & 0x0f;
        let high = ((scales_h >> (2 * k)) & 3) as u8;
        let dl = d * f32::from((low | high << 4) as i8 - 32);
        for (e, y) in group.iter_mut().enumerate() {
            let q = (qs[k * 16 + e % 16] >> (4 * (e / 16))) & 0x0f;
            *y = dl * f32::from(KVALUES_IQ4NL[usize::from(q)]);
        }
    }
}

/// Powers of three that bring each base-3 digit of a TQ1_0 byte to the top (`pow3`).
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// TQ1_0: five ternary digits per byte (32 + 16 bytes), four in each of the 4 `qh` bytes, each
/// byte a fixed-point fraction whose digits come out by multiplying by 3^n and taking the top.
pub(super) fn tq1_0(block: &[u8], out: &mut [f32]) {
    let (qs, qh) = (&block[..48], &block[48..52]);
    let d = half(block, 52);
    for (e, y) in out.iter_mut().enumerate() {
        let byte = match e {
            0..160 => qs[e % 32].wrapping_mul(POW3[e / 32]),
            160..240 => qs[32 + (e - 160) % 16].wrapping_mul(POW3[(e - 160) / 16]),
            _ => qh[(e - 240) % 4].wrapping_mul(POW3[(e - 240) / 4]),
        };
        let digit = ((u16::from(byte) * 3) >> 8) as i8 - 1;
        *y = f32::from(digit) * d;
    }
}

/// TQ2_0: 2-bit ternary values minus one.
pub(super) fn tq2_0(block: &[u8], out: &mut [f32]) {
    let (qs, d) = (&block[..64], half(block, 64));
    for (e, y) in out.iter_mut().enumerate() {
        *y = f32::from(crumb(qs, e) as i8 - 1) * d;
    }
}
