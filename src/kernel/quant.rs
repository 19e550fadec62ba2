//! Products with a weight kept in ggml's block-quantized layout (`y = x·wᵀ + b`, `w` [out, in]):
//! the weight is never dequantized whole. Each output row is read once, block by block: for the
//! types with a fused dot (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) a block's integers are unpacked into
//! registers and dotted with the activation, the block's scales applied to the integer-weighted
//! sums; for the others (Q5_0, Q5_1, Q2_K, Q3_K, Q5_K) a row is dequantized into a small buffer by
//! the caller's decoder (ggml's reference, as the tensor layer decodes it) and dotted from there.
//!
//! The result equals dequantize-then-multiply in f32 up to the rounding of the sums (a block's
//! scale is applied once to its sum rather than to each value). Rows are shared across the
//! kernel's threads. The arithmetic is plain Rust that LLVM vectorizes, compiled once more for
//! AVX2 with FMA and chosen at run time.

#![expect(
    clippy::inline_always,
    reason = "the arithmetic must inline into the #[target_feature] wrapper to get its SIMD"
)]

use std::sync::{Mutex, PoisonError};

use half::f16;

use super::threads;

/// The block types with a fused dot: a block's integers unpacked straight into registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(non_camel_case_types, reason = "the names are ggml's own")]
pub enum Fused {
    /// 32 values: f16 scale, 4-bit values offset by 8 (18 bytes).
    Q4_0,
    /// 32 values: f16 scale and minimum, 4-bit values (20 bytes).
    Q4_1,
    /// 32 values: f16 scale, signed bytes (34 bytes).
    Q8_0,
    /// 256 values: 8 groups of 32 with 6-bit scales and minimums, 4-bit values (144 bytes).
    Q4_K,
    /// 256 values: 16 groups of 16 with 8-bit scales, 6-bit values (210 bytes).
    Q6_K,
}

/// Dequantizes whole blocks (`bytes`, a run of them) appending their values to the buffer.
pub type Decode<'a> = &'a (dyn Fn(&[u8], &mut Vec<f32>) + Sync);

/// A block-quantized weight [out, in], borrowed.
#[derive(Clone, Copy)]
pub struct QuantMatrix<'a> {
    /// The rows, one after the other, each `in / block_values` blocks.
    pub bytes: &'a [u8],
    /// Rows (the layer's outputs).
    pub out_features: usize,
    /// Values per row (the layer's inputs).
    pub in_features: usize,
    /// The fused dot for this type, when the kernel has one.
    pub fused: Option<Fused>,
    /// The decoder of the other types (and the reference the fused dots are tested against).
    pub decode: Decode<'a>,
}

/// Multiply-adds' worth a value costs to unpack: what the split across threads counts.
const UNPACK_COST: usize = 2;
/// Rows a part gets at the least.
const MIN_ROWS: usize = 16;

/// `y = x·wᵀ (+ bias)` for `x` [rows, in], `y` [rows, out] (C order).
///
/// # Panics
/// When the slices do not have the sizes `w` and `rows` imply.
pub fn linear(x: &[f32], rows: usize, w: &QuantMatrix<'_>, y: &mut [f32], bias: Option<&[f32]>) {
    let (n, k) = (w.out_features, w.in_features);
    assert_eq!(x.len(), rows * k, "x is [rows, in]");
    assert_eq!(y.len(), rows * n, "y is [rows, out]");
    assert!(n == 0 || w.bytes.len().is_multiple_of(n), "whole rows");
    let row_bytes = w.bytes.len().checked_div(n).unwrap_or(0);
    let parts = threads::parts(n * k * (rows + UNPACK_COST), n / MIN_ROWS).max(1);
    let per = n.div_ceil(parts).max(1);
    // Each part writes its outputs [rows, its columns] here; they are put in place after.
    let results: Vec<Mutex<Vec<f32>>> = (0..parts).map(|_| Mutex::new(Vec::new())).collect();
    threads::run(parts, &|p| {
        let (start, end) = (p * per, ((p + 1) * per).min(n));
        if start >= end {
            return;
        }
        let mut out = vec![0f32; rows * (end - start)];
        let width = end - start;
        let mut buffer = Vec::with_capacity(k);
        for o in start..end {
            let row = &w.bytes[o * row_bytes..(o + 1) * row_bytes];
            match w.fused {
                Some(fused) if rows == 1 => out[o - start] = fused_dot(fused, row, x),
                _ => {
                    buffer.clear();
                    (w.decode)(row, &mut buffer);
                    for r in 0..rows {
                        out[r * width + o - start] = dot(&buffer, &x[r * k..(r + 1) * k]);
                    }
                }
            }
        }
        *results[p].lock().unwrap_or_else(PoisonError::into_inner) = out;
    });
    for (p, part) in results.into_iter().enumerate() {
        let part = part.into_inner().unwrap_or_else(PoisonError::into_inner);
        let start = p * per;
        let width = (((p + 1) * per).min(n)).saturating_sub(start);
        if width == 0 {
            continue;
        }
        for r in 0..rows {
            y[r * n + start..r * n + start + width]
                .copy_from_slice(&part[r * width..(r + 1) * width]);
        }
    }
    if let Some(bias) = bias {
        for row in y.chunks_exact_mut(n.max(1)) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
    }
}

/// The dot of one quantized row with `x`, on the best instruction set the CPU has.
fn fused_dot(fused: Fused, row: &[u8], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has just been found to support AVX2 and FMA.
        return unsafe { fused_dot_avx2(fused, row, x) };
    }
    fused_dot_impl(fused, row, x)
}

/// The dot of a row with `x`, on the best instruction set the CPU has.
fn dot(w: &[f32], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: as above.
        return unsafe { dot_avx2(w, x) };
    }
    dot_impl(w, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fused_dot_avx2(fused: Fused, row: &[u8], x: &[f32]) -> f32 {
    fused_dot_impl(fused, row, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(w: &[f32], x: &[f32]) -> f32 {
    dot_impl(w, x)
}

/// Lanes of the accumulators: two ymm registers.
const LANES: usize = 16;

#[inline(always)]
fn dot_impl(w: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let whole = w.len() / LANES * LANES;
    for (ws, xs) in w[..whole].chunks_exact(LANES).zip(x.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += ws[l] * xs[l];
        }
    }
    let tail: f32 = w[whole..].iter().zip(&x[whole..]).map(|(a, b)| a * b).sum();
    acc.iter().sum::<f32>() + tail
}

/// The dot of `q` (integers as f32) with `x`, and the plain sum of `x` when `SUM` (for a type
/// with minimums: `Σ (d·q + m)·x = d·Σ q·x + m·Σ x`).
#[inline(always)]
fn dot_sum<const N: usize, const SUM: bool>(q: &[f32; N], x: &[f32]) -> (f32, f32) {
    let x = &x[..N];
    let mut acc = [0f32; 8];
    let mut sum = [0f32; 8];
    for (qs, xs) in q.chunks_exact(8).zip(x.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += qs[l] * xs[l];
            if SUM {
                sum[l] += xs[l];
            }
        }
    }
    (acc.iter().sum(), sum.iter().sum())
}

fn half(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

#[inline(always)]
fn fused_dot_impl(fused: Fused, row: &[u8], x: &[f32]) -> f32 {
    match fused {
        Fused::Q4_0 => blocks::<18, 32>(row, x, q4_0),
        Fused::Q4_1 => blocks::<20, 32>(row, x, q4_1),
        Fused::Q8_0 => blocks::<34, 32>(row, x, q8_0),
        Fused::Q4_K => blocks::<144, 256>(row, x, q4_k),
        Fused::Q6_K => blocks::<210, 256>(row, x, q6_k),
    }
}

/// `Σ block(bytes, x part)` over a row of `BYTES`-byte blocks of `VALUES` values.
#[inline(always)]
fn blocks<const BYTES: usize, const VALUES: usize>(
    row: &[u8],
    x: &[f32],
    block: impl Fn(&[u8], &[f32]) -> f32,
) -> f32 {
    row.chunks_exact(BYTES)
        .zip(x.chunks_exact(VALUES))
        .map(|(b, xs)| block(b, xs))
        .sum()
}

/// Q4_0: `d·Σ (q - 8)·x`; value j of the block is the low nibble of byte j (j < 16) or the high
/// nibble of byte j - 16.
#[inline(always)]
fn q4_0(b: &[u8], x: &[f32]) -> f32 {
    let mut q = [0f32; 32];
    for j in 0..16 {
        q[j] = f32::from(b[2 + j] & 15) - 8.0;
        q[j + 16] = f32::from(b[2 + j] >> 4) - 8.0;
    }
    half(b, 0) * dot_sum::<32, false>(&q, x).0
}

/// Q4_1: `d·Σ q·x + m·Σ x`.
#[inline(always)]
fn q4_1(b: &[u8], x: &[f32]) -> f32 {
    let mut q = [0f32; 32];
    for j in 0..16 {
        q[j] = f32::from(b[4 + j] & 15);
        q[j + 16] = f32::from(b[4 + j] >> 4);
    }
    let (qx, sx) = dot_sum::<32, true>(&q, x);
    half(b, 0) * qx + half(b, 2) * sx
}

/// Q8_0: `d·Σ q·x` over signed bytes.
#[inline(always)]
fn q8_0(b: &[u8], x: &[f32]) -> f32 {
    let mut q = [0f32; 32];
    for (v, &byte) in q.iter_mut().zip(&b[2..34]) {
        *v = f32::from(byte.cast_signed());
    }
    half(b, 0) * dot_sum::<32, false>(&q, x).0
}

/// The 6-bit scale and minimum of group `j` (of 8) of Q4_K (`get_scale_min_k4`).
#[inline(always)]
fn scale_min(packed: &[u8], j: usize) -> (f32, f32) {
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

/// Q4_K: per group of 32, `d·sc·Σ q·x - dmin·m·Σ x`; each 32 bytes hold two groups, low nibbles
/// then high.
#[inline(always)]
fn q4_k(b: &[u8], x: &[f32]) -> f32 {
    let (d, dmin) = (half(b, 0), half(b, 2));
    let (packed, qs) = (&b[4..16], &b[16..144]);
    let mut total = 0f32;
    for c in 0..4 {
        let bytes = &qs[c * 32..c * 32 + 32];
        let (mut lo, mut hi) = ([0f32; 32], [0f32; 32]);
        for l in 0..32 {
            lo[l] = f32::from(bytes[l] & 15);
            hi[l] = f32::from(bytes[l] >> 4);
        }
        for (j, q, xs) in [
            (2 * c, &lo, &x[c * 64..c * 64 + 32]),
            (2 * c + 1, &hi, &x[c * 64 + 32..c * 64 + 64]),
        ] {
            let (sc, m) = scale_min(packed, j);
            let (qx, sx) = dot_sum::<32, true>(q, xs);
            total += d * sc * qx - dmin * m * sx;
        }
    }
    total
}

/// Q6_K: per group of 16, `d·scale·Σ (q - 32)·x`; value `h·128 + s·32 + l` has its low 4 bits in
/// nibble `s / 2` of `ql[h·64 + (s % 2)·32 + l]` and its high 2 bits in bits `2s..2s+2` of
/// `qh[h·32 + l]`.
#[inline(always)]
fn q6_k(b: &[u8], x: &[f32]) -> f32 {
    let (ql, qh, scales) = (&b[..128], &b[128..192], &b[192..208]);
    let d = half(b, 208);
    let mut total = 0f32;
    for h in 0..2 {
        for s in 0..4 {
            let mut q = [0f32; 32];
            for l in 0..32 {
                let low = (ql[h * 64 + (s % 2) * 32 + l] >> (4 * (s / 2))) & 15;
                let high = (qh[h * 32 + l] >> (2 * s)) & 3;
                q[l] = f32::from((low | high << 4).cast_signed()) - 32.0;
            }
            let at = h * 128 + s * 32;
            for g in 0..2 {
                let part: &[f32; 16] = q[g * 16..g * 16 + 16].try_into().expect("16 values");
                let (qx, _) = dot_sum::<16, false>(part, &x[at + g * 16..]);
                total += d * f32::from(scales[at / 16 + g].cast_signed()) * qx;
            }
        }
    }
    total
}
