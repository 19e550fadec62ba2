//! A 16×16 block of 32-bit values transposed in AVX-512 registers: how the tile path (amx/mod.rs)
//! lays activation rows out as B tiles' columns, and turns its transposed outputs back into rows.
//! Element by element, those two moves had taken a sixth of a prompt's time.

use std::arch::x86_64::{
    __m512i, _mm512_shuffle_i32x4, _mm512_unpackhi_epi32, _mm512_unpackhi_epi64,
    _mm512_unpacklo_epi32, _mm512_unpacklo_epi64,
};

/// Row `i` of the result is column `i` of `rows`.
///
/// Four rounds of shuffles: 32-bit pairs of rows, 64-bit pairs, then two rounds of 128-bit lanes.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn transpose16(rows: &[__m512i; 16]) -> [__m512i; 16] {
    let mut t = *rows;
    for i in (0..16).step_by(2) {
        t[i] = _mm512_unpacklo_epi32(rows[i], rows[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(rows[i], rows[i + 1]);
    }
    // Within each 128-bit lane, u[4b + c] holds column 4·lane + c of rows 4b .. 4b + 4.
    let mut u = t;
    for b in (0..16).step_by(4) {
        u[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
        u[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
        u[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
        u[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
    }
    // Rows 0-7 and 8-15 each gathered: v[c] even lanes, v[c + 4] odd lanes.
    let mut v = u;
    for half in [0, 8] {
        for c in 0..4 {
            v[half + c] = _mm512_shuffle_i32x4::<0x88>(u[half + c], u[half + c + 4]);
            v[half + c + 4] = _mm512_shuffle_i32x4::<0xdd>(u[half + c], u[half + c + 4]);
        }
    }
    let mut out = v;
    for c in 0..8 {
        out[c] = _mm512_shuffle_i32x4::<0x88>(v[c], v[c + 8]);
        out[c + 8] = _mm512_shuffle_i32x4::<0xdd>(v[c], v[c + 8]);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::arch::x86_64::{_mm512_loadu_si512, _mm512_storeu_si512};

    use super::*;

    #[test]
    fn every_element_lands_on_its_mirror() {
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 on this CPU: nothing to check");
            return;
        }
        let m: Vec<[u32; 16]> = (0..16)
            .map(|i| std::array::from_fn(|j| (i * 16 + j) as u32))
            .collect();
        let mut got = [[0_u32; 16]; 16];
        // SAFETY: AVX-512F is present; each load and store is of one 16-lane row.
        unsafe {
            let rows = std::array::from_fn(|i| _mm512_loadu_si512(m[i].as_ptr().cast()));
            for (row, out) in transpose16(&rows).iter().zip(&mut got) {
                _mm512_storeu_si512(out.as_mut_ptr().cast(), *row);
            }
        }
        for (i, row) in got.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, m[j][i], "element ({i}, {j})");
            }
        }
    }
}
