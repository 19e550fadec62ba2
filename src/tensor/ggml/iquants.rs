//! The codebook ("i-quant") types: IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S.
//!
//! Each run of 8 (or 4) values is a row of a fixed grid, picked by an index from the block, times
//! a scale, with signs from a sign byte. The grids are ggml's, generated into `grids_*.rs`.

use super::grids_iq1::IQ1S_GRID;
use super::grids_iq2::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID};
use super::grids_iq3::{IQ3S_GRID, IQ3XXS_GRID};
use super::{half, u16_at, u32_at};

/// Element `j` of a grid row packed as bytes (ggml's layout: byte j is element j).
fn grid_byte(row: u64, j: usize) -> u8 {
    (row >> (8 * j)) as u8
}

/// The sign byte for a 7-bit sign code: the code plus an eighth bit that makes the count of
/// negative signs even (`ksigns_iq2xs`).
fn ksigns(code: u32) -> u8 {
    let code = (code & 0x7f) as u8;
    code | (((code.count_ones() & 1) as u8) << 7)
}

/// +1 or -1 for bit `j` of `signs`.
fn sign(signs: u8, j: usize) -> f32 {
    if (signs >> j) & 1 == 0 { 1.0 } else { -1.0 }
}

/// IQ2_XXS: per 32 values two u32, the first holding 4 grid indices, the second 4 sign codes of
/// 7 bits and a 4-bit scale.
pub(super) fn iq2_xxs(block: &[u8], out: &mut [f32]) {
    let d = half(block, 0);
    for (ib, run) in out.chunks_exact_mut(32).enumerate() {
        let indices = &block[2 + 8 * ib..6 + 8 * ib];
        let aux = u32_at(block, 6 + 8 * ib);
        let db = d * (0.5 + (aux >> 28) as f32) * 0.25;
        for (l, eight) in run.chunks_exact_mut(8).enumerate() {
            let row = IQ2XXS_GRID[usize::from(indices[l])];
            let signs = ksigns(aux >> (7 * l));
            for (j, y) in eight.iter_mut().enumerate() {
                *y = db * f32::from(grid_byte(row, j)) * sign(signs, j);
            }
        }
    }
}

/// The 4-bit scale of 16-value group `k` (two per byte, low nibble first), as IQ2_XS and IQ2_S
/// store them, made into `d * (0.5 + s) * 0.25`.
fn quarter_scale(d: f32, scales: &[u8], k: usize) -> f32 {
    let s = (scales[k / 2] >> (4 * (k % 2))) & 0x0f;
    d * (0.5 + f32::from(s)) * 0.25
}

/// IQ2_XS: one u16 per 8 values, 9 bits of grid index and a 7-bit sign code.
pub(super) fn iq2_xs(block: &[u8], out: &mut [f32]) {
    let d = half(block, 0);
    let scales = &block[66..74];
    for (i, eight) in out.chunks_exact_mut(8).enumerate() {
        let q = u16_at(block, 2 + 2 * i);
        let db = quarter_scale(d, scales, i / 2);
        let row = IQ2XS_GRID[usize::from(q & 511)];
        let signs = ksigns(u32::from(q >> 9));
        for (j, y) in eight.iter_mut().enumerate() {
            *y = db * f32::from(grid_byte(row, j)) * sign(signs, j);
        }
    }
}

/// IQ2_S: a byte of grid index per 8 values with 2 more bits in `qh`, and an explicit sign byte.
pub(super) fn iq2_s(block: &[u8], out: &mut [f32]) {
    let d = half(block, 0);
    let (qs, signs, qh, scales) = (
        &block[2..34],
        &block[34..66],
        &block[66..74],
        &block[74..82],
    );
    for (i, eight) in out.chunks_exact_mut(8).enumerate() {
        let high = (qh[i / 4] >> (2 * (i % 4))) & 3;
        let row = IQ2S_GRID[usize::from(qs[i]) | usize::from(high) << 8];
        let db = quarter_scale(d, scales, i / 2);
        for (j, y) in eight.iter_mut().enumerate() {
            *y = db * f32::from(grid_byte(row, j)) * sign(signs[i], j);
        }
    }
}

/// IQ3_XXS: a byte of grid index per 4 values; per 32 values a u32 of 4 sign codes and a scale.
pub(super) fn iq3_xxs(block: &[u8], out: &mut [f32]) {
    let d = half(block, 0);
    let qs = &block[2..66];
    for (ib, run) in out.chunks_exact_mut(32).enumerate() {
        let aux = u32_at(block, 66 + 4 * ib);
        let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
        for (l, eight) in run.chunks_exact_mut(8).enumerate() {
            let signs = ksigns(aux >> (7 * l));
            for (j, y) in eight.iter_mut().enumerate() {
                let e = ib * 32 + l * 8 + j;
                let row = u64::from(IQ3XXS_GRID[usize::from(qs[e / 4])]);
                *y = db * f32::from(grid_byte(row, e % 4)) * sign(signs, j);
            }
        }
    }
}

/// IQ3_S: a byte of grid index per 4 values with a ninth bit in `qh`, explicit sign bytes, and
/// an odd scale `1 + 2s` per 32 values.
pub(super) fn iq3_s(block: &[u8], out: &mut [f32]) {
    let d = half(block, 0);
    let (qs, qh, signs, scales) = (
        &block[2..66],
        &block[66..74],
        &block[74..106],
        &block[106..110],
    );
    for (e, y) in out.iter_mut().enumerate() {
        let k = e / 32;
        let s = (scales[k / 2] >> (4 * (k % 2))) & 0x0f;
        let db = d * f32::from(1 + 2 * s);
        let i = e / 4;
        let index = usize::from(qs[i]) | usize::from((qh[i / 8] >> (i % 8)) & 1) << 8;
        let row = u64::from(IQ3S_GRID[index]);
        *y = db * f32::from(grid_byte(row, e % 4)) * sign(signs[e / 8], e % 8);
    }
}

/// IQ1_S and IQ1_M shift every grid value by this much, up or down.
const IQ1_DELTA: f32 = 0.125;

/// Element `j` of row `index` of the ternary grid, as a float (-1, 0 or 1).
fn ternary(index: usize, j: usize) -> f32 {
    f32::from(grid_byte(IQ1S_GRID[index], j) as i8)
}

/// IQ1_S: per 32 values a u16 holding four 3-bit index extensions, a 3-bit scale and the sign of
/// the shift; a byte of grid index per 8 values.
pub(super) fn iq1_s(block: &[u8], out: &mut [f32]) {
    let d = half(block, 0);
    let qs = &block[2..34];
    for (ib, run) in out.chunks_exact_mut(32).enumerate() {
        let qh = u16_at(block, 34 + 2 * ib);
        let dl = d * f32::from(2 * ((qh >> 12) & 7) + 1);
        let delta = if qh & 0x8000 == 0 {
            IQ1_DELTA
        } else {
            -IQ1_DELTA
        };
        for (l, eight) in run.chunks_exact_mut(8).enumerate() {
            let index = usize::from(qs[4 * ib + l]) | usize::from((qh >> (3 * l)) & 7) << 8;
            for (j, y) in eight.iter_mut().enumerate() {
                *y = dl * (ternary(index, j) + delta);
            }
        }
    }
}

/// IQ1_M: per 8 values a byte of grid index and a nibble (3 index bits and the shift's sign); a
/// 3-bit scale per 16 values; the f16 scale is the top nibbles of the four scale words.
pub(super) fn iq1_m(block: &[u8], out: &mut [f32]) {
    let (qs, qh) = (&block[..32], &block[32..48]);
    let words: [u16; 4] = std::array::from_fn(|w| u16_at(block, 48 + 2 * w));
    let d_bits = (words[0] >> 12)
        | ((words[1] >> 8) & 0x00f0)
        | ((words[2] >> 4) & 0x0f00)
        | (words[3] & 0xf000);
    let d = ::half::f16::from_bits(d_bits).to_f32();
    for (i, eight) in out.chunks_exact_mut(8).enumerate() {
        let k = i / 2;
        let s = (words[k / 4] >> (3 * (k % 4))) & 7;
        let dl = d * f32::from(2 * s + 1);
        let nibble = (qh[i / 2] >> (4 * (i % 2))) & 0x0f;
        let index = usize::from(qs[i]) | usize::from(nibble & 7) << 8;
        let delta = if nibble & 8 == 0 {
            IQ1_DELTA
        } else {
            -IQ1_DELTA
        };
        for (j, y) in eight.iter_mut().enumerate() {
            *y = dl * (ternary(index, j) + delta);
        }
    }
}
