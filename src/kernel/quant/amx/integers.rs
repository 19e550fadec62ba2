//! A quantized weight row taken apart for the tile unit (amx/mod.rs): its small integers as bf16, and
//! for each run of 32 values the scale and offset that make them the dequantized values
//! (`value = scale·q + offset`).
//!
//! Why the integers and not the values: a 4- or 8-bit integer is exact in bf16, so the tile
//! unit's bf16 products lose nothing, where a dequantized value (an f16 times the integer, plus a
//! minimum) needs up to 24 bits. The scale and offset are then applied to each run's sum in f32.
//!
//! The types: Q4_0 (`d·(q - 8)`), Q4_1 (`d·q + m`), Q8_0 (`d·q`) and Q4_K (`(d·sc)·q - dmin·m`
//! per group of 32), as blocks.rs decodes them. Q6_K's runs are 16 values under an 8-bit scale,
//! whose products with its integers are not exact in bf16, so it stays on the f32 path.

#![expect(
    clippy::inline_always,
    reason = "the per-block loops must inline into the #[target_feature] row function"
)]

use std::arch::x86_64::{
    __m256i, __m512i, _mm_and_si128, _mm_cvtph_ps, _mm_cvtsi32_si128, _mm_cvtss_f32,
    _mm_loadu_si128, _mm_movehdup_ps, _mm_set1_epi8, _mm_srli_epi16, _mm256_and_si256,
    _mm256_castsi128_si256, _mm256_inserti128_si256, _mm256_loadu_si256, _mm256_set1_epi8,
    _mm256_srli_epi16, _mm256_storeu_si256, _mm512_castps_si512, _mm512_cvtepi8_epi32,
    _mm512_cvtepi32_epi16, _mm512_cvtepi32_ps, _mm512_cvtepu8_epi16, _mm512_loadu_si512,
    _mm512_permutexvar_epi16, _mm512_srli_epi32, _mm512_storeu_si512,
};

use super::super::Fused;
use super::super::blocks::{F16c, Widen, scale_min};

/// Values per run: one scale and offset each, and one tile multiply deep.
pub(super) const RUN: usize = 32;

/// Whether the tile path takes weights of this type.
pub(super) fn supported(fused: Fused) -> bool {
    matches!(fused, Fused::Q4_0 | Fused::Q4_1 | Fused::Q8_0 | Fused::Q4_K)
}

/// Whether the type's runs have a non-zero offset (the minimum of Q4_1 and Q4_K), which the
/// product adds as `offset · (sum of the activations over the run)`.
pub(super) fn has_offset(fused: Fused) -> bool {
    matches!(fused, Fused::Q4_1 | Fused::Q4_K)
}

/// The bf16 bits of a small integer (exact: its low 16 bits are zero).
const fn bf16(v: f32) -> u16 {
    (v.to_bits() >> 16) as u16
}

/// bf16 of `i - base` for each nibble value `i`, the table `vpermw` looks nibbles up in.
const fn nibble_table(base: i32) -> [u16; 32] {
    let mut table = [0; 32];
    let mut i = 0;
    while i < 16 {
        table[i] = bf16((i as i32 - base) as f32);
        i += 1;
    }
    table
}

const UNSIGNED: [u16; 32] = nibble_table(0);
const OFFSET_BY_8: [u16; 32] = nibble_table(8);

/// Where a row's runs go: run `i`'s [`RUN`] integers at `q[i·run_stride..]`, its scale and offset
/// at `scales[i·scale_stride]` and `offsets[i·scale_stride]`.
pub(super) struct RowOut<'a> {
    pub q: &'a mut [u16],
    pub run_stride: usize,
    pub scales: &'a mut [f32],
    pub offsets: &'a mut [f32],
    pub scale_stride: usize,
}

/// Takes apart the whole blocks in `row` into `out`.
///
/// The loops write through pointers checked once against the buffers' lengths: as zipped
/// iterators over strided chunks they spent two scalar instructions for each vector one.
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW and F16C; `fused` must be [`supported`].
///
/// # Panics
/// If `out`'s buffers cannot hold every run of `row`.
#[target_feature(enable = "avx512f,avx512bw,f16c")]
pub(super) unsafe fn decode_row(fused: Fused, row: &[u8], out: RowOut<'_>) {
    let (bytes, runs_per_block) = match fused {
        Fused::Q4_0 => (18, 1),
        Fused::Q4_1 => (20, 1),
        Fused::Q8_0 => (34, 1),
        Fused::Q4_K => (144, 8),
        Fused::Q6_K => unreachable!("Q6_K is not supported on the tile path"),
    };
    let runs = row.len() / bytes * runs_per_block;
    if runs == 0 {
        return;
    }
    let RowOut {
        q,
        run_stride,
        scales,
        offsets,
        scale_stride,
    } = out;
    assert!(
        q.len() >= (runs - 1) * run_stride + RUN,
        "room for every run's integers"
    );
    assert!(
        scales.len() > (runs - 1) * scale_stride,
        "room for every run's scale"
    );
    assert!(
        offsets.len() > (runs - 1) * scale_stride,
        "room for every run's offset"
    );
    let (q, scales, offsets) = (q.as_mut_ptr(), scales.as_mut_ptr(), offsets.as_mut_ptr());
    // SAFETY (every write below): run i < runs writes q[i·run_stride..][..32], scales[i·
    // scale_stride] and offsets[i·scale_stride], within the lengths asserted above.
    unsafe {
        let put = |i: usize, (scale, offset): (f32, f32)| {
            *scales.add(i * scale_stride) = scale;
            *offsets.add(i * scale_stride) = offset;
            q.add(i * run_stride)
        };
        match fused {
            Fused::Q4_0 => {
                for (i, b) in row.chunks_exact(18).enumerate() {
                    nibbles16(&OFFSET_BY_8, b, 2, put(i, (half(b, 0), 0.0)));
                }
            }
            Fused::Q4_1 => {
                for (i, b) in row.chunks_exact(20).enumerate() {
                    nibbles16(&UNSIGNED, b, 4, put(i, halves(b)));
                }
            }
            Fused::Q8_0 => {
                for (i, b) in row.chunks_exact(34).enumerate() {
                    let q = put(i, (half(b, 0), 0.0));
                    bytes_signed(b, 2, q);
                    bytes_signed(b, 18, q.add(16));
                }
            }
            Fused::Q4_K => {
                for (i, b) in row.chunks_exact(144).enumerate() {
                    let (d, dmin) = halves(b);
                    for j in 0..8 {
                        let (sc, m) = scale_min(&b[4..16], j);
                        let q = put(i * 8 + j, (d * sc, -(dmin * m)));
                        nibbles32(b, 16 + (j / 2) * 32, j % 2 == 1, q);
                    }
                }
            }
            Fused::Q6_K => unreachable!("Q6_K is not supported on the tile path"),
        }
    }
}

/// The two f16 at the start of `b` (a scale and a minimum), widened by one instruction.
#[inline(always)]
fn halves(b: &[u8]) -> (f32, f32) {
    let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    // SAFETY: F16C and SSE3 as in `decode_row`, the only caller.
    unsafe {
        let both = _mm_cvtph_ps(_mm_cvtsi32_si128(bits.cast_signed()));
        (_mm_cvtss_f32(both), _mm_cvtss_f32(_mm_movehdup_ps(both)))
    }
}

/// The f16 at `at`, widened.
#[inline(always)]
fn half(b: &[u8], at: usize) -> f32 {
    F16c::widen(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// The 32 nibbles of `b[at..at + 16]` (low nibbles are values 0-15, high ones 16-31) looked up
/// in `table` into `q[..32]`.
///
/// # Safety
/// `q` must be valid for 32 writes; the CPU must have AVX-512BW.
#[inline(always)]
unsafe fn nibbles16(table: &[u16; 32], b: &[u8], at: usize, q: *mut u16) {
    let bytes: &[u8; 16] = b[at..at + 16].try_into().expect("16 bytes");
    // SAFETY: the loads stay within `bytes` and `table`, the store within the caller's 32
    // values; the features are those of `decode_row`, the only caller.
    unsafe {
        let packed = _mm_loadu_si128(bytes.as_ptr().cast());
        let mask = _mm_set1_epi8(0x0f);
        let low = _mm_and_si128(packed, mask);
        let high = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
        let both = _mm256_inserti128_si256(_mm256_castsi128_si256(low), high, 1);
        store_looked_up(table, both, q);
    }
}

/// Q4_K's group: the low (or, if `high`, high) nibbles of `b[at..at + 32]` into `q[..32]`.
///
/// # Safety
/// As for [`nibbles16`].
#[inline(always)]
unsafe fn nibbles32(b: &[u8], at: usize, high: bool, q: *mut u16) {
    let bytes: &[u8; 32] = b[at..at + 32].try_into().expect("32 bytes");
    // SAFETY: as in `nibbles16`.
    unsafe {
        let packed = _mm256_loadu_si256(bytes.as_ptr().cast());
        let packed = if high {
            _mm256_srli_epi16(packed, 4)
        } else {
            packed
        };
        store_looked_up(
            &UNSIGNED,
            _mm256_and_si256(packed, _mm256_set1_epi8(0x0f)),
            q,
        );
    }
}

/// `out[j] = table[nibbles[j]]` for the 32 bytes of `nibbles` (each below 16).
///
/// # Safety
/// `out` must be valid for 32 writes; the CPU must have AVX-512BW.
#[inline(always)]
unsafe fn store_looked_up(table: &[u16; 32], nibbles: __m256i, out: *mut u16) {
    // SAFETY: the load stays within `table`, the store within the caller's 32 values.
    unsafe {
        let lookup: __m512i = _mm512_loadu_si512(table.as_ptr().cast());
        let values = _mm512_permutexvar_epi16(_mm512_cvtepu8_epi16(nibbles), lookup);
        _mm512_storeu_si512(out.cast(), values);
    }
}

/// The 16 signed bytes `b[at..at + 16]` as bf16 into `q[..16]`: widened to f32, whose top half
/// is then the exact bf16.
///
/// # Safety
/// `q` must be valid for 16 writes; the CPU must have AVX-512F.
#[inline(always)]
unsafe fn bytes_signed(b: &[u8], at: usize, q: *mut u16) {
    let bytes: &[u8; 16] = b[at..at + 16].try_into().expect("16 bytes");
    // SAFETY: as in `nibbles16`.
    unsafe {
        let floats =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(bytes.as_ptr().cast())));
        let top = _mm512_srli_epi32(_mm512_castps_si512(floats), 16);
        _mm256_storeu_si256(q.cast(), _mm512_cvtepi32_epi16(top));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every supported type's integers, scaled and offset per run, give back the values
    /// blocks.rs decodes exactly (as numbers: Q4_0's zero comes back +0 where `0·d` can be -0).
    #[test]
    fn runs_rebuild_the_decoded_values() {
        if !super::super::tiles::available_to_test() {
            return;
        }
        let mut seed = 7_u32;
        let mut byte = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as u8
        };
        for (fused, bytes) in [
            (Fused::Q4_0, 18),
            (Fused::Q4_1, 20),
            (Fused::Q8_0, 34),
            (Fused::Q4_K, 144),
        ] {
            let mut row: Vec<u8> = (0..bytes * 4).map(|_| byte()).collect();
            // Keep the f16 scales finite and small so that every value is finite.
            for block in row.chunks_exact_mut(bytes) {
                block[1] &= 0x3b;
                if matches!(fused, Fused::Q4_1 | Fused::Q4_K) {
                    block[3] &= 0x3b;
                }
            }
            let values = row.len() / bytes * if fused == Fused::Q4_K { 256 } else { 32 };
            let mut want = vec![0.0; values];
            super::super::super::rows::run(
                fused,
                super::super::super::rows::Job::Decode {
                    bytes: &row,
                    out: &mut want,
                },
            );
            let mut q = vec![0_u16; values];
            let (mut scales, mut offsets) =
                (vec![f32::NAN; values / RUN], vec![f32::NAN; values / RUN]);
            let out = RowOut {
                q: &mut q,
                run_stride: RUN,
                scales: &mut scales,
                offsets: &mut offsets,
                scale_stride: 1,
            };
            // SAFETY: `available` found AVX-512F/BW, F16C and AMX; the type is supported.
            unsafe { decode_row(fused, &row, out) };
            for (j, (&bits, want)) in q.iter().zip(&want).enumerate() {
                let (scale, offset) = (scales[j / RUN], offsets[j / RUN]);
                let got = scale * f32::from_bits(u32::from(bits) << 16) + offset;
                assert!(got == *want, "{fused:?} value {j}: {got} against {want}");
            }
        }
    }
}
