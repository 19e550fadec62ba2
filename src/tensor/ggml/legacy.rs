//! The 32-value block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL and MXFP4.
//!
//! Each writes value j of the block from the low nibble of byte j (j < 16) or the high nibble of
//! byte j - 16, as ggml's `dequantize_row_*` does, with the same f32 operations in the same order.

use super::{half, u32_at};

/// IQ4_NL's (and IQ4_XS's) non-linear 4-bit table (`kvalues_iq4nl`).
pub(super) const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// MXFP4's e2m1 values, doubled so that they are integers (`kvalues_mxfp4`).
const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// The 4-bit field of value `j` of a 32-value block whose nibbles start at `qs`.
fn nibble(block: &[u8], qs: usize, j: usize) -> u8 {
    if j < 16 {
        block[qs + j] & 0x0f
    } else {
        block[qs + j - 16] >> 4
    }
}

/// Q4_0: `d * (q - 8)`.
pub(super) fn q4_0(block: &[u8], out: &mut [f32]) {
    let d = half(block, 0);
    for (j, y) in out.iter_mut().enumerate() {
        *y = f32::from(nibble(block, 2, j) as i8 - 8) * d;
    }
}

/// Q4_1: `d * q + m`.
pub(super) fn q4_1(block: &[u8], out: &mut [f32]) {
    let (d, m) = (half(block, 0), half(block, 2));
    for (j, y) in out.iter_mut().enumerate() {
        *y = f32::from(nibble(block, 4, j)) * d + m;
    }
}

/// The 5-bit value `j` of a Q5 block: its nibble and bit `j` of the 32-bit `qh` as the fifth bit.
fn five_bits(block: &[u8], qh: u32, qs: usize, j: usize) -> u8 {
    nibble(block, qs, j) | (((qh >> j) & 1) as u8) << 4
}

/// Q5_0: `d * (q - 16)`.
pub(super) fn q5_0(block: &[u8], out: &mut [f32]) {
    let (d, qh) = (half(block, 0), u32_at(block, 2));
    for (j, y) in out.iter_mut().enumerate() {
        *y = f32::from(five_bits(block, qh, 6, j) as i8 - 16) * d;
    }
}

/// Q5_1: `d * q + m`.
pub(super) fn q5_1(block: &[u8], out: &mut [f32]) {
    let (d, m, qh) = (half(block, 0), half(block, 2), u32_at(block, 4));
    for (j, y) in out.iter_mut().enumerate() {
        *y = f32::from(five_bits(block, qh, 8, j)) * d + m;
    }
}

/// Q8_0: `d * q` over signed bytes.
pub(super) fn q8_0(block: &[u8], out: &mut [f32]) {
    let d = half(block, 0);
    for (y, &q) in out.iter_mut().zip(&block[2..]) {
        *y = f32::from(q as i8) * d;
    }
}

/// IQ4_NL: `d * kvalues[q]`.
pub(super) fn iq4_nl(block: &[u8], out: &mut [f32]) {
    let d = half(block, 0);
    for (j, y) in out.iter_mut().enumerate() {
        *y = d * f32::from(KVALUES_IQ4NL[usize::from(nibble(block, 2, j))]);
    }
}

/// MXFP4: `kvalues[q] * scale`, the scale being half of 2^(e - 127) (`ggml_e8m0_to_fp32_half`).
pub(super) fn mxfp4(block: &[u8], out: &mut [f32]) {
    let e = u32::from(block[0]);
    // Exponents 0 and 1 give subnormal halves; the others a normal f32 of exponent e - 1.
    let d = f32::from_bits(if e < 2 {
        0x0020_0000 << e
    } else {
        (e - 1) << 23
    });
    for (j, y) in out.iter_mut().enumerate() {
        *y = f32::from(KVALUES_MXFP4[usize::from(nibble(block, 1, j))]) * d;
    }
}
