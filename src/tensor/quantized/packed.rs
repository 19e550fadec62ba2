//! Integer codes packed into int32 words: GPTQ (codes along the input, zeros along the output),
//! AWQ's GEMM packing (both along the output, in the order 0 2 4 6 1 3 5 7) and compressed-tensors'
//! `pack-quantized` (codes along the input, zero points along the output, 2 to 8 bits packed
//! densely, a code straddling two words where the width does not divide 32). One field reader
//! unpacks all three, codes and zeros alike.

use std::ops::Range;

use super::parts::Grouping;
use super::{
    QuantError, Quantized, Scheme, Tensor, band_stride, ints, is_float_scale, stage, wrong_dtype,
    wrong_shape,
};
use crate::tensor::DType;

/// Where AWQ's GEMM packing puts output `k` of eight within a word (the inverse of its pack order
/// 0 2 4 6 1 3 5 7, as its `reverse_awq_order` undoes it).
const AWQ_ORDER: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// Field `k` of `bits` bits (1 to 8) of a row of int32 words, word `w` of the row given by
/// `word(w)`, packed densely from the lowest bit of the first word: bits `k·bits..(k+1)·bits` of
/// the row, a field that straddles two words taking its low bits from the first
/// (compressed-tensors' `unpack_from_int32`; the widths GPTQ and AWQ use divide 32, so their
/// fields never straddle).
#[inline]
fn field(word: impl Fn(usize) -> u32, k: usize, bits: u32) -> u8 {
    let start = k * bits as usize;
    let (w, shift) = (start / 32, (start % 32) as u32);
    let mut read = u64::from(word(w)) >> shift;
    if shift + bits > 32 {
        read |= u64::from(word(w + 1)) << (32 - shift);
    }
    // The mask keeps at most 8 bits: the cast cannot lose any.
    (read & ((1 << bits) - 1)) as u8
}

/// Stored word `at` (little-endian) of packed `bytes`.
#[inline]
fn word_at(bytes: &[u8], at: usize) -> u32 {
    // One slice of four, so that it compiles to one load.
    u32::from_le_bytes(bytes[4 * at..4 * at + 4].try_into().expect("4 bytes"))
}

/// Stored rows of a band gathered at a time (GPTQ's rows of words, AWQ's inputs): at most 32 KiB
/// of their words, which stay in L1 while they are unpacked.
const TILE: usize = 256;

/// The eight 4-bit fields of `word`, lowest first, one a byte.
fn spread_nibbles(word: u32) -> u64 {
    let x = u64::from(word);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f
}

/// Field `k` of `bits` bits, a width that divides 8 (so that no field straddles a byte), of a row
/// of little-endian words given as its bytes: bits `k·bits..` of the bytes, read without a branch
/// so that a loop of them vectorizes.
fn byte_field(row: &[u8], k: usize, bits: u32) -> u8 {
    let at = k * bits as usize;
    // The mask keeps at most 8 bits: the cast cannot lose any.
    (u16::from(row[at / 8] >> (at % 8)) & ((1 << bits) - 1)) as u8
}

/// Word `w` of a row of stored words decoded to i64 (an I32 decoded is sign-extended; the cast
/// keeps its 32 bits as stored).
fn stored(words: &[i64]) -> impl Fn(usize) -> u32 + '_ {
    |w| words[w] as u32
}

/// The word slot AWQ's GEMM packing gives column `k` of a word of `bits`-bit codes.
fn awq_slot(k: usize, bits: u32) -> usize {
    let per_word = 32 / bits as usize;
    let slot = if per_word == 8 {
        AWQ_ORDER[k % 8]
    } else {
        k % per_word
    };
    k - k % per_word + slot
}

impl Quantized {
    /// GPTQ or AWQ (by `gptq_v1`: `Some(v1)` for GPTQ) from `qweight`, `qzeros`, `scales` and
    /// GPTQ's optional `g_idx` (`None`: groups of consecutive inputs). The bits per code are read
    /// from the shapes.
    pub fn packed(
        gptq_v1: Option<bool>,
        qweight: (String, Tensor),
        qzeros: (String, Tensor),
        scales: (String, Tensor),
        g_idx: Option<(String, Tensor)>,
    ) -> Result<Quantized, QuantError> {
        let name = if gptq_v1.is_some() { "gptq" } else { "awq" };
        for part in [&qweight, &qzeros] {
            if part.1.dtype() != DType::I32 {
                return Err(wrong_dtype(part, name, "I32"));
            }
        }
        let dtype = scales.1.dtype();
        if !is_float_scale(dtype) {
            return Err(wrong_dtype(&scales, name, "F32, BF16 or F16"));
        }
        let (&[qr, qc], &[groups, out], &[zr, zc]) =
            (qweight.1.shape(), scales.1.shape(), qzeros.1.shape())
        else {
            return Err(wrong_shape(&scales, qweight.1.shape(), name));
        };
        // qzeros packs the output dimension in both schemes: its width gives the bits.
        let bits = (zc * 32).checked_div(out).unwrap_or(0) as u32;
        let pack = if matches!(bits, 2 | 4 | 8) {
            32 / bits as usize
        } else {
            0
        };
        let inputs = if gptq_v1.is_some() { qr * pack } else { qr };
        let fits = pack > 0
            && zr == groups
            && zc * pack == out
            && groups > 0
            && if gptq_v1.is_some() {
                qc == out
            } else {
                qc * pack == out
            };
        if !fits {
            return Err(wrong_shape(&qzeros, qweight.1.shape(), name));
        }
        if let Some(g) = &g_idx
            && (g.1.shape() != [inputs] || !matches!(g.1.dtype(), DType::I32 | DType::I64))
        {
            return Err(wrong_shape(g, qweight.1.shape(), name));
        }
        let scheme = match gptq_v1 {
            Some(v1) => Scheme::Gptq { bits, v1 },
            None => Scheme::Awq { bits },
        };
        let mut parts = vec![qweight, qzeros, scales];
        parts.extend(g_idx);
        Ok(Quantized::made(scheme, parts, vec![out, inputs], dtype))
    }

    /// compressed-tensors' `pack-quantized`: `weight_packed` (I32, (out, ⌈in·bits/32⌉), packed
    /// densely), `weight_scale` ((out, groups)) and, when asymmetric, `weight_zero_point` (I32,
    /// packed along the output: (⌈out·bits/32⌉, groups)); the logical shape `[out, in]` from
    /// `weight_shape`; the bits per code from the config (`num_bits`) when it says, else the one
    /// width of 2 to 8 the packed shape fits.
    pub fn compressed(
        packed: (String, Tensor),
        scale: (String, Tensor),
        zero_point: Option<(String, Tensor)>,
        shape: [usize; 2],
        bits: Option<u32>,
    ) -> Result<Quantized, QuantError> {
        let name = "compressed";
        let dtype = scale.1.dtype();
        for part in std::iter::once(&packed).chain(&zero_point) {
            if part.1.dtype() != DType::I32 {
                return Err(wrong_dtype(part, name, "I32"));
            }
        }
        if !is_float_scale(dtype) {
            return Err(wrong_dtype(&scale, name, "F32, BF16 or F16"));
        }
        let [out, inputs] = shape;
        let (&[pr, pc], &[sr, groups]) = (packed.1.shape(), scale.1.shape()) else {
            return Err(wrong_shape(&scale, packed.1.shape(), name));
        };
        // `weight_shape` is the file's word: a width past the words stored fits no width.
        let fits = |b: &u32| {
            inputs > 0
                && inputs
                    .checked_mul(*b as usize)
                    .is_some_and(|n| n.div_ceil(32) == pc)
        };
        let mut widths = (2..=8u32).filter(|b| bits.is_none_or(|asked| asked == *b) && fits(b));
        let (width, other) = (widths.next(), widths.next());
        if let (Some(a), Some(b)) = (width, other) {
            return Err(QuantError::State {
                part: packed.0,
                why: format!(
                    "{pc} words a row fit {a} and {b} bits a code, and no num_bits in config.json says which"
                ),
            });
        }
        let shaped = pr == out && sr == out && groups > 0 && inputs % groups == 0;
        let (Some(bits), true) = (width, shaped) else {
            return Err(wrong_shape(&packed, &shape, name));
        };
        if let Some(z) = &zero_point
            && z.1.shape() != [(out * bits as usize).div_ceil(32), groups]
        {
            return Err(wrong_shape(z, &shape, name));
        }
        let scheme = Scheme::Compressed {
            bits,
            asymmetric: zero_point.is_some(),
        };
        let mut parts = vec![packed, scale];
        parts.extend(zero_point);
        Ok(Quantized::made(scheme, parts, shape.to_vec(), dtype))
    }

    /// The bits per code of a packed scheme, and whether it is GPTQ's layout.
    fn packing(&self) -> (u32, bool) {
        match self.scheme {
            Scheme::Gptq { bits, .. } => (bits, true),
            Scheme::Awq { bits } | Scheme::Compressed { bits, .. } => (bits, false),
            _ => unreachable!("only packed schemes unpack words"),
        }
    }

    /// GPTQ's, AWQ's or compressed-tensors' codes unpacked, (out, in).
    pub(super) fn packed_codes(&self) -> Vec<u8> {
        let (out, inputs) = (self.shape[0], self.shape[1]);
        let mut codes = Vec::with_capacity(out * inputs);
        for o in 0..out {
            self.packed_codes_in(o * inputs..(o + 1) * inputs, &mut codes);
        }
        codes
    }

    /// The codes of values `range` (inside one output row) appended to `out`, read from the
    /// stored words without unpacking the others: what dequantizes a chunk at a time.
    pub(super) fn packed_codes_in(&self, range: Range<usize>, out: &mut Vec<u8>) {
        let (rows, inputs) = (self.shape[0], self.shape[1].max(1));
        let (bits, gptq) = self.packing();
        let bytes = self.parts[0].1.bytes();
        let word = |at: usize| word_at(bytes, at);
        let (o, first) = (range.start / inputs, range.start % inputs);
        let columns = first..first + range.len();
        let width = self.parts[0].1.shape()[1];
        if gptq {
            // qweight is (in·bits/32, out): output o's words are column o, a row of words apart;
            // each is read once (one load per 32/bits codes), then its fields.
            let w0 = first * bits as usize / 32;
            let w1 = (first + range.len()) * bits as usize;
            let column: Vec<u32> = (w0..w1.div_ceil(32)).map(|w| word(w * rows + o)).collect();
            out.extend(columns.map(|i| field(|w| column[w - w0], i, bits)));
        } else if let Scheme::Awq { .. } = self.scheme {
            // qweight is (in, out·bits/32): each input's outputs along a row of words.
            let slot = awq_slot(o, bits);
            out.extend(columns.map(|i| field(|w| word(i * width + w), slot, bits)));
        } else if 8 % bits == 0 {
            let row = &bytes[4 * o * width..4 * (o + 1) * width];
            out.extend(columns.map(|k| byte_field(row, k, bits)));
        } else {
            out.extend(columns.map(|i| field(|w| word(o * width + w), i, bits)));
        }
    }

    /// The codes of output rows `first..` of a GPTQ or AWQ weight, whose stored layouts
    /// interleave the rows, into `band` one a value, row `k` at `k ·` [`band_stride`]: as many rows
    /// as share a stored line, and none from `last` on. Returns the rows unpacked.
    pub(super) fn band(&self, first: usize, last: usize, band: &mut Vec<u8>) -> Range<usize> {
        let (bits, gptq) = self.packing();
        let per_word = 32 / bits as usize;
        let inputs = self.shape[1];
        let stride = band_stride(inputs);
        // GPTQ: 32 rows' words, two 64-byte lines, from each row of words. AWQ: 16 words, one
        // line, from each input's row, 16 · 32/bits outputs.
        let end = if gptq {
            first + 32
        } else {
            first + 16 * per_word
        };
        let rows = first..end.min(last);
        // Each code is written over: what a band before left needs no clearing.
        band.resize(rows.len() * stride, 0);
        if gptq {
            self.gptq_band(rows.clone(), bits, band);
        } else {
            self.awq_band(rows.clone(), bits, band);
        }
        rows
    }

    /// [`Quantized::band`] of GPTQ's `(in·bits/32, out)` words: the band's words of a tile of rows
    /// of words gathered, then unpacked a row of the band at a time.
    fn gptq_band(&self, rows: Range<usize>, bits: u32, band: &mut [u8]) {
        let (per_word, mask) = (32 / bits as usize, (1u32 << bits) - 1);
        let (out, inputs) = (self.shape[0], self.shape[1]);
        let (bytes, stride) = (self.parts[0].1.bytes(), band_stride(inputs));
        let words = rows.len();
        let mut staged = Vec::new();
        for first in (0..inputs / per_word).step_by(TILE) {
            let tile = first..(first + TILE).min(inputs / per_word);
            let starts = tile.clone().map(|w| 4 * (w * out + rows.start));
            stage(bytes, starts, 4 * words, &mut staged);
            for k in 0..words {
                let codes = &mut band[k * stride + first * per_word..][..tile.len() * per_word];
                let tile_words = staged.chunks_exact(4 * words).map(|row| word_at(row, k));
                for (codes, word) in codes.chunks_exact_mut(per_word).zip(tile_words) {
                    if bits == 4 {
                        codes.copy_from_slice(&spread_nibbles(word).to_le_bytes());
                    } else {
                        for (j, c) in codes.iter_mut().enumerate() {
                            *c = ((word >> (j * bits as usize)) & mask) as u8;
                        }
                    }
                }
            }
        }
    }

    /// [`Quantized::band`] of AWQ's `(in, out·bits/32)` words: a tile of inputs' words for the
    /// band gathered, then unpacked a row of the band at a time.
    fn awq_band(&self, rows: Range<usize>, bits: u32, band: &mut [u8]) {
        let (per_word, mask) = (32 / bits as usize, (1u32 << bits) - 1);
        let inputs = self.shape[1];
        let (bytes, stride) = (self.parts[0].1.bytes(), band_stride(inputs));
        let width = self.parts[0].1.shape()[1];
        // Where each row's code sits: its word along an input's row and the shift in it.
        let (at, shift): (Vec<usize>, Vec<u32>) = rows
            .clone()
            .map(|o| {
                let slot = awq_slot(o, bits);
                (slot / per_word, (slot % per_word) as u32 * bits)
            })
            .unzip();
        let w0 = rows.start / per_word;
        let words = (rows.end - 1) / per_word + 1 - w0;
        let mut staged = Vec::new();
        for first in (0..inputs).step_by(TILE) {
            let tile = first..(first + TILE).min(inputs);
            stage(
                bytes,
                tile.clone().map(|i| 4 * (i * width + w0)),
                4 * words,
                &mut staged,
            );
            for (k, (&w, &s)) in at.iter().zip(&shift).enumerate() {
                let codes = &mut band[k * stride + first..][..tile.len()];
                let tile_words = staged
                    .chunks_exact(4 * words)
                    .map(|row| word_at(row, w - w0));
                for (c, word) in codes.iter_mut().zip(tile_words) {
                    *c = ((word >> s) & mask) as u8;
                }
            }
        }
    }

    /// The zero point of each group, (out, groups) as [`Quantized::scale_values`] orders them:
    /// GPTQ's and AWQ's `qzeros` (GPTQ v1's plus one), compressed-tensors' `weight_zero_point`, or
    /// its symmetric codes' offset 2^(bits-1). `None` for the schemes without zero points.
    pub(super) fn zeros(&self) -> Option<Vec<i64>> {
        let (out, v1, part) = match self.scheme {
            Scheme::Gptq { v1, .. } => (self.shape[0], v1, 1),
            Scheme::Awq { .. } => (self.shape[0], false, 1),
            Scheme::Compressed { bits, asymmetric } => {
                let (out, groups) = (self.shape[0], self.parts[1].1.shape()[1]);
                if !asymmetric {
                    return Some(vec![1 << (bits - 1); out * groups]);
                }
                // Packed along the output: each group's column of words holds its outputs.
                let words = ints(&self.parts[2].1);
                let rows = self.parts[2].1.shape()[0];
                let mut zeros = vec![0; out * groups];
                let mut column = vec![0i64; rows];
                for g in 0..groups {
                    for (r, slot) in column.iter_mut().enumerate() {
                        *slot = words[r * groups + g];
                    }
                    for o in 0..out {
                        zeros[o * groups + g] = i64::from(field(stored(&column), o, bits));
                    }
                }
                return Some(zeros);
            }
            _ => return None,
        };
        // GPTQ's and AWQ's widths (2, 4, 8) divide a byte.
        let (bits, gptq) = self.packing();
        let bytes = self.parts[part].1.bytes();
        let (groups, width) = (self.parts[2].1.shape()[0], self.parts[part].1.shape()[1]);
        let mut zeros = vec![0; out * groups];
        for g in 0..groups {
            let row = &bytes[4 * g * width..4 * (g + 1) * width];
            for o in 0..out {
                let k = if gptq { o } else { awq_slot(o, bits) };
                zeros[o * groups + g] = i64::from(byte_field(row, k, bits)) + i64::from(v1);
            }
        }
        Some(zeros)
    }

    /// Which group each input of a GPTQ or AWQ weight belongs to: GPTQ's `g_idx` (clamped, as an
    /// index past the groups has no scale), or consecutive runs of inputs.
    pub(super) fn packed_grouping(&self) -> Grouping {
        let (inputs, groups) = (self.shape[1], self.parts[2].1.shape()[0]);
        let of_input: Vec<usize> = if let Some((_, g)) = self.parts.get(3) {
            ints(g)
                .into_iter()
                .map(|g| usize::try_from(g).unwrap_or(0).min(groups - 1))
                .collect()
        } else {
            let size = inputs.div_ceil(groups).max(1);
            (0..inputs).map(|i| i / size).collect()
        };
        // Where each input's run of inputs of its group ends, found once from the last input.
        let mut run_end = vec![inputs; inputs];
        for i in (0..inputs.saturating_sub(1)).rev() {
            if of_input[i] == of_input[i + 1] {
                run_end[i] = run_end[i + 1];
            } else {
                run_end[i] = i + 1;
            }
        }
        Grouping::Inputs {
            of_input,
            run_end,
            groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Bytes;

    #[test]
    fn a_field_straddling_two_words_takes_its_low_bits_from_the_first() {
        // 3-bit codes 0..=7 repeated, packed densely as compressed-tensors' pack_to_int32 does.
        let codes: Vec<u64> = (0..40).map(|k| k % 8).collect();
        let mut words = vec![0u64; (40 * 3usize).div_ceil(32)];
        for (k, &c) in codes.iter().enumerate() {
            let start = k * 3;
            words[start / 32] |= (c << (start % 32)) & 0xffff_ffff;
            if start % 32 + 3 > 32 {
                words[start / 32 + 1] |= c >> (32 - start % 32);
            }
        }
        // As an I32 part decodes: sign-extended.
        let words: Vec<i64> = words.iter().map(|&w| i64::from(w as u32 as i32)).collect();
        let unpacked: Vec<u64> = (0..40)
            .map(|k| u64::from(field(stored(&words), k, 3)))
            .collect();
        assert_eq!(unpacked, codes);
    }

    #[test]
    fn a_width_the_packed_shape_cannot_tell_needs_the_config() {
        // Ten inputs in one word fit 2 and 3 bits a code.
        let part = |dtype, shape: Vec<usize>, bytes: Vec<u8>| {
            Tensor::new(shape, dtype, Bytes::Owned(bytes.into()))
        };
        let packed = ("p".to_owned(), part(DType::I32, vec![1, 1], vec![0; 4]));
        let scale = ("s".to_owned(), Tensor::from_f32(vec![1, 1], &[1.0]));
        let made = |bits| Quantized::compressed(packed.clone(), scale.clone(), None, [1, 10], bits);
        let Err(QuantError::State { why, .. }) = made(None) else {
            panic!("an ambiguous width is refused");
        };
        assert!(why.contains("fit 2 and 3 bits"), "{why}");
        assert_eq!(
            made(Some(3)).map(|q| q.scheme()),
            Ok(Scheme::Compressed {
                bits: 3,
                asymmetric: false
            })
        );
        assert!(made(Some(5)).is_err(), "5 bits need two words");
    }
}
