//! The dequantization itself, for any range of a weight's values: what the whole-weight buffer,
//! the statistics pass (a chunk at a time, never holding the weight) and `show`'s first values
//! all call, so they cannot disagree.
//!
//! A [`Reader`] takes the values in order, a row at a time. Where the stored layout puts a row's
//! codes a row of words apart (GPTQ's `(in/8, out)`, AWQ's `(in, out/8)`, MXFP4's blocks), it
//! unpacks a band of rows at once, reading each stored line once for all of them, and hands the
//! band out a row at a time: the values and their order are the same, only the reads are fewer.

use std::ops::Range;

use super::parts::Grouping;
use super::{Quantized, Scheme, band_stride, bnb, float};
use crate::tensor::simd::dequant;
use crate::tensor::stats::{ChunkReader, Chunks};
use crate::tensor::{DType, decode};

/// A weight's codes, scales and zero points laid out along it once, ready to give the values of
/// any range.
pub(crate) struct Dequantizer<'a> {
    weight: &'a Quantized,
    /// The codes one a value, where they are stored so (FP8, int8); `None` for the schemes whose
    /// codes are unpacked as they are read.
    codes: Option<&'a [u8]>,
    group: Grouping,
    /// The zero point of each group, for the integer schemes.
    zeros: Option<Vec<i64>>,
    /// The scale of each group in f32 (empty for MXFP4, whose scales are exponents).
    scales: Vec<f32>,
    /// MXFP4's E8M0 exponent of each group.
    exponents: Vec<u8>,
    /// The value of each code, for the schemes whose codes are looked up (FP8, bitsandbytes 4-bit).
    lut: [f32; 256],
    /// MXFP4's value of each exponent and code, at `exponent << 4 | code` (empty for the others):
    /// its 4,096 values are all it can make.
    mxfp4: Vec<f32>,
}

impl Quantized {
    /// Ready to dequantize any range of values.
    pub(crate) fn dequantizer(&self) -> Dequantizer<'_> {
        // MXFP4's scales are exponents, combined exactly; the others' are f32 values.
        let (scales, exponents) = if self.scheme == Scheme::Mxfp4 {
            (Vec::new(), self.mxfp4_exponents())
        } else {
            (self.scale_values(), Vec::new())
        };
        let lut: [f32; 256] = match self.scheme {
            Scheme::Fp8 | Scheme::Fp8Block { .. } => self.fp8_lut(),
            Scheme::Bnb4 { fp4, .. } => {
                let table = bnb::lut(fp4);
                std::array::from_fn(|code| table[code % 16])
            }
            _ => [0.0; 256],
        };
        let mxfp4 = if self.scheme == Scheme::Mxfp4 {
            (0..4096u16)
                .map(|k| float::mxfp4_value((k & 15) as u8, (k >> 4) as u8))
                .collect()
        } else {
            Vec::new()
        };
        Dequantizer {
            weight: self,
            codes: match self.scheme {
                Scheme::Fp8 | Scheme::Fp8Block { .. } | Scheme::BnbInt8 => {
                    Some(self.parts[0].1.bytes())
                }
                _ => None,
            },
            group: self.grouping(),
            zeros: self.zeros(),
            scales,
            exponents,
            lut,
            mxfp4,
        }
    }
}

impl Dequantizer<'_> {
    /// The values of one run of codes sharing group `g`, appended to `out`: each code combined with
    /// its group's scale as the scheme's reference combines them, in f32.
    fn run(&self, codes: &[u8], g: usize, out: &mut Vec<f32>) {
        let at = out.len();
        out.resize(at + codes.len(), 0.0);
        let values = &mut out[at..];
        match self.weight.scheme {
            Scheme::Fp8 | Scheme::Fp8Block { .. } | Scheme::Bnb4 { .. } => {
                dequant::lut_times(codes, &self.lut, self.scales[g], values);
            }
            Scheme::Gptq { .. } | Scheme::Awq { .. } | Scheme::Compressed { .. } => {
                let zero = self.zeros.as_ref().map_or(0, |z| z[g]);
                // A zero point is a code of at most 8 bits, plus one for GPTQ v1.
                let zero = i32::try_from(zero).expect("a small zero point");
                dequant::offset_times(codes, zero, self.scales[g], values);
            }
            Scheme::BnbInt8 => {
                let s = self.scales[g];
                for (v, &c) in values.iter_mut().zip(codes) {
                    *v = bnb::int8_value(c, s);
                }
            }
            Scheme::Mxfp4 => unreachable!("MXFP4 looks its values up a row at a time"),
        }
    }

    /// The values of the codes of elements `at..at + codes.len()` (inside one row), appended to
    /// `out` in the weight's dtype: a run of one group at a time, rounded where the product is
    /// taken in a narrower dtype than f32.
    fn row(&self, codes: &[u8], at: usize, out: &mut Vec<f32>) {
        if !self.mxfp4.is_empty() {
            // Along a row of MXFP4 experts each value has its own block, the blocks' exponents
            // one after another; the table's values are BF16's already.
            let g = self.group.index(at);
            let exponents = &self.exponents[g..g + codes.len()];
            out.extend(
                codes
                    .iter()
                    .zip(exponents)
                    .map(|(&c, &e)| self.mxfp4[usize::from(e) << 4 | usize::from(c & 15)]),
            );
            return;
        }
        let first = out.len();
        let mut i = 0;
        while i < codes.len() {
            let (g, run_end) = self.group.run(at + i);
            let end = (run_end - at).min(codes.len());
            self.run(&codes[i..end], g, out);
            i = end;
        }
        let values = &mut out[first..];
        match self.weight.dtype {
            DType::BF16 => dequant::round_bf16(values),
            DType::F16 => dequant::round_f16(values),
            _ => {}
        }
    }

    /// The values of elements `range`, appended to `out`.
    pub(crate) fn fill(&self, range: Range<usize>, out: &mut Vec<f32>) {
        Reader::new(self, range.clone()).fill(range, out);
    }

    /// The values of elements `range` as little-endian bytes of the weight's dtype, into `out`
    /// (exactly that long), a chunk at a time.
    pub(crate) fn encode(&self, range: Range<usize>, out: &mut [u8]) {
        let width = self.weight.dtype.byte_len(1).expect("F32, BF16 or F16");
        let mut reader = Reader::new(self, range.clone());
        let mut scratch = Vec::with_capacity(ENCODE_CHUNK);
        for (k, at) in range.clone().step_by(ENCODE_CHUNK).enumerate() {
            let end = (at + ENCODE_CHUNK).min(range.end);
            scratch.clear();
            reader.fill(at..end, &mut scratch);
            let bytes = &mut out[k * ENCODE_CHUNK * width..][..(end - at) * width];
            // Each value is already one of the dtype's (rounded where it multiplies).
            decode::encode_into(self.weight.dtype, &scratch, bytes)
                .expect("the constructors admit only F32, BF16 and F16 results");
        }
    }
}

/// Values dequantized at a time when writing bytes: 16 KiB of f32, which stay in L1.
const ENCODE_CHUNK: usize = 4096;

/// One thread's way through a weight's values, in order.
struct Reader<'d, 'a> {
    dequantizer: &'d Dequantizer<'a>,
    /// One past the last element this reader is asked for: no band reaches past its row.
    end: usize,
    /// The codes of rows `rows`, one a value, unpacked together (the interleaved layouts), a row
    /// every `band_stride(width)` bytes.
    band: Vec<u8>,
    rows: Range<usize>,
    /// The codes of the row just asked for (the layouts with a row's codes side by side).
    unpacked: Vec<u8>,
}

impl<'d, 'a> Reader<'d, 'a> {
    /// A reader of elements `range`.
    fn new(dequantizer: &'d Dequantizer<'a>, range: Range<usize>) -> Self {
        Reader {
            dequantizer,
            end: range.end,
            band: Vec::new(),
            rows: 0..0,
            unpacked: Vec::new(),
        }
    }

    /// The values of elements `range`, appended to `out`, a row at a time.
    fn fill(&mut self, range: Range<usize>, out: &mut Vec<f32>) {
        let d = self.dequantizer;
        let width = d.weight.shape.last().copied().unwrap_or(1).max(1);
        let mut at = range.start;
        while at < range.end {
            let end = (at / width + 1) * width;
            let end = end.min(range.end);
            let codes = self.codes(at..end, width);
            d.row(codes, at, out);
            at = end;
        }
    }

    /// The codes of elements `range`, inside one row of `width`.
    fn codes(&mut self, range: Range<usize>, width: usize) -> &[u8] {
        let weight = self.dequantizer.weight;
        if let Some(codes) = self.dequantizer.codes {
            return &codes[range];
        }
        let (row, column) = (range.start / width, range.start % width);
        match weight.scheme {
            Scheme::Gptq { .. } | Scheme::Awq { .. } | Scheme::Mxfp4 => {
                if !self.rows.contains(&row) {
                    // The band stops at the reader's last row (and holds at least this one).
                    let last = (self.end.saturating_sub(1) / width + 1).max(row + 1);
                    self.rows = if weight.scheme == Scheme::Mxfp4 {
                        weight.mxfp4_band(row, last, &mut self.band)
                    } else {
                        weight.band(row, last, &mut self.band)
                    };
                }
                let start = (row - self.rows.start) * band_stride(width) + column;
                &self.band[start..start + range.len()]
            }
            Scheme::Bnb4 { .. } => {
                self.unpacked.clear();
                bnb::nibbles_into(weight.parts[0].1.bytes(), range, &mut self.unpacked);
                &self.unpacked
            }
            _ => {
                self.unpacked.clear();
                weight.packed_codes_in(range, &mut self.unpacked);
                &self.unpacked
            }
        }
    }
}

impl Chunks for Dequantizer<'_> {
    fn dtype(&self) -> DType {
        self.weight.dtype
    }

    fn reader(&self, range: Range<usize>) -> Box<dyn ChunkReader + '_> {
        Box::new(Reader::new(self, range))
    }
}

impl ChunkReader for Reader<'_, '_> {
    fn values(&mut self, range: Range<usize>, out: &mut Vec<f32>) {
        self.fill(range, out);
    }

    fn prepare(&mut self, range: Range<usize>) {
        // The codes' bytes behind the range, where they are stored one a value in a mapped file
        // (FP8, int8): faulted in at once rather than a page at a time.
        if self.dequantizer.codes.is_some() {
            self.dequantizer.weight.parts[0].1.populate(range);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::quantized::{Bnb4State, round_to};
    use crate::tensor::{Bytes, Tensor};

    /// The same pseudo-random words on every run.
    fn words(n: usize, seed: u32) -> Vec<u32> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            })
            .collect()
    }

    fn part(name: &str, shape: Vec<usize>, dtype: DType, bytes: Vec<u8>) -> (String, Tensor) {
        let tensor = Tensor::new(shape, dtype, Bytes::Owned(bytes.into()));
        (name.to_owned(), tensor)
    }

    fn int32(name: &str, shape: Vec<usize>, seed: u32) -> (String, Tensor) {
        let n = shape.iter().product();
        let bytes = words(n, seed)
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        part(name, shape, DType::I32, bytes)
    }

    fn f16_scales(name: &str, shape: Vec<usize>) -> (String, Tensor) {
        let n: usize = shape.iter().product();
        let bytes = (0..n)
            .flat_map(|k| half::f16::from_f32(0.001 + k as f32 * 0.0007).to_le_bytes())
            .collect();
        part(name, shape, DType::F16, bytes)
    }

    /// Field `k` of `bits` bits of a row of little-endian words, however it straddles them.
    fn field_of(row: &[u32], k: usize, bits: usize) -> u8 {
        let wide: u128 = u128::from(row[k * bits / 32])
            | row
                .get(k * bits / 32 + 1)
                .map_or(0, |&w| u128::from(w) << 32);
        ((wide >> (k * bits % 32)) & ((1 << bits) - 1)) as u8
    }

    /// Every value of `q` one at a time from the formulas, its code found by `code(o, i)`
    /// (`o` the value's row, `i` its column), each rounded to the weight's dtype.
    fn by_formula(q: &Quantized, code: &dyn Fn(usize, usize) -> u8) -> Vec<u32> {
        let width = *q.shape().last().unwrap();
        let (group, scales) = (q.grouping(), q.scale_values());
        let zeros = q.zeros();
        let exponents = if q.scheme() == Scheme::Mxfp4 {
            q.mxfp4_exponents()
        } else {
            Vec::new()
        };
        let lut = match q.scheme() {
            Scheme::Bnb4 { fp4, .. } => bnb::lut(fp4),
            _ => [0.0; 16],
        };
        (0..q.numel())
            .map(|k| {
                let (c, g) = (code(k / width, k % width), group.index(k));
                let v = match q.scheme() {
                    Scheme::Mxfp4 => float::mxfp4_value(c, exponents[g]),
                    Scheme::Bnb4 { .. } => lut[usize::from(c)] * scales[g],
                    _ => scales[g] * (i64::from(c) - zeros.as_ref().unwrap()[g]) as f32,
                };
                round_to(q.dtype(), v).to_bits()
            })
            .collect()
    }

    /// Whole, in steps of 7 from a start inside a band's row (or half-way), and through the
    /// whole-weight bytes: each the values `want` holds.
    fn reads_alike(q: &Quantized, want: &[u32]) {
        let d = q.dequantizer();
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let mut whole = Vec::new();
        d.fill(0..q.numel(), &mut whole);
        assert_eq!(bits(&whole), want, "{:?} whole", q.scheme());
        let start = (q.shape().last().unwrap() * 17 + 3).min(q.numel() / 2);
        let mut reader = Reader::new(&d, start..q.numel());
        let mut steps = Vec::new();
        for at in (start..q.numel()).step_by(7) {
            reader.fill(at..(at + 7).min(q.numel()), &mut steps);
        }
        assert_eq!(bits(&steps), want[start..], "{:?} in steps", q.scheme());
        let stored = decode::to_f32(q.dtype(), q.bytes(), q.numel()).unwrap();
        assert_eq!(bits(&stored), want, "{:?} bytes", q.scheme());
    }

    #[test]
    fn bands_of_interleaved_rows_give_each_value_its_formula() {
        // GPTQ: 40 and 48 rows (bands of 32, then 8 or 16), act-order groups; 2, 4 and 8 bits;
        // 4-bit with 260 rows of words (tiles of 256 and 4).
        for (bits, out, word_rows) in [(4usize, 40usize, 260usize), (2, 48, 3), (8, 20, 3)] {
            let (per, inputs) = (32 / bits, word_rows * 32 / bits);
            let g_idx: Vec<u8> = (0..inputs as i32)
                .flat_map(|i| ((i * 5 + 1) % 3).to_le_bytes())
                .collect();
            let q = Quantized::packed(
                Some(true),
                int32("qweight", vec![inputs / per, out], 1),
                int32("qzeros", vec![3, out / per], 2),
                f16_scales("scales", vec![3, out]),
                Some(part("g_idx", vec![inputs], DType::I32, g_idx)),
            )
            .unwrap();
            let qweight = words(inputs / per * out, 1);
            let code = |o, i| field_of(&[qweight[i / per * out + o]], i % per, bits);
            reads_alike(&q, &by_formula(&q, &code));
        }
        // AWQ: 136 rows (a band of 128, then 8), 300 inputs (tiles of 256 and 44).
        let (out, inputs) = (136, 300);
        let q = Quantized::packed(
            None,
            int32("qweight", vec![inputs, out / 8], 3),
            int32("qzeros", vec![5, out / 8], 4),
            f16_scales("scales", vec![5, out]),
            None,
        )
        .unwrap();
        let qweight = words(inputs * out / 8, 3);
        let slot = [0, 4, 1, 5, 2, 6, 3, 7];
        let code = |o: usize, i: usize| field_of(&[qweight[i * out / 8 + o / 8]], slot[o % 8], 4);
        reads_alike(&q, &by_formula(&q, &code));
        // MXFP4: 2 experts of 96 rows (bands of 64, then 32 to the expert's end), 5 columns.
        let (experts, rows, groups) = (2, 5, 3);
        let blocks: Vec<u8> = words(experts * rows * groups * 16, 5)
            .iter()
            .map(|&w| w as u8)
            .collect();
        let scales: Vec<u8> = (0..experts * rows * groups)
            .map(|k| [0, 120, 127, 131, 255][k % 5])
            .collect();
        let q = Quantized::mxfp4(
            part(
                "b",
                vec![experts, rows, groups, 16],
                DType::U8,
                blocks.clone(),
            ),
            part("s", vec![experts, rows, groups], DType::U8, scales),
        )
        .unwrap();
        let code = |o: usize, r: usize| {
            let (e, c) = (o / 96, o % 96);
            (blocks[(e * rows + r) * 48 + c / 2] >> (4 * (c % 2))) & 15
        };
        reads_alike(&q, &by_formula(&q, &code));
    }

    #[test]
    fn codes_side_by_side_give_each_value_its_formula() {
        // compressed-tensors: 4 bits (a byte's fields) and 3 (straddling words), 19 rows of 40.
        for bits in [4usize, 3] {
            let (out, inputs, per_row) = (19, 40, (40 * bits).div_ceil(32));
            let q = Quantized::compressed(
                int32("packed", vec![out, per_row], 6),
                f16_scales("scale", vec![out, 5]),
                None,
                [out, inputs],
                Some(bits as u32),
            )
            .unwrap();
            let packed = words(out * per_row, 6);
            let code = |o: usize, i| field_of(&packed[o * per_row..(o + 1) * per_row], i, bits);
            reads_alike(&q, &by_formula(&q, &code));
        }
        // bitsandbytes NF4: 7 x 33 values (odd), blocks of 64 across rows, high nibble first.
        let n: usize = 7 * 33;
        let codes: Vec<u8> = words(n.div_ceil(2), 7).iter().map(|&w| w as u8).collect();
        let absmax: Vec<f32> = (0..n.div_ceil(64)).map(|b| 0.5 + b as f32).collect();
        let state = Bnb4State {
            fp4: false,
            blocksize: 64,
            dtype: DType::F16,
            shape: vec![7, 33],
            nested: None,
        };
        let q = Quantized::bnb4(
            part("w", vec![codes.len()], DType::U8, codes.clone()),
            (
                "absmax".into(),
                Tensor::from_f32(vec![absmax.len()], &absmax),
            ),
            None,
            Vec::new(),
            &state,
        )
        .unwrap();
        let code = |o: usize, i: usize| {
            let k = o * 33 + i;
            (codes[k / 2] >> if k.is_multiple_of(2) { 4 } else { 0 }) & 15
        };
        reads_alike(&q, &by_formula(&q, &code));
    }
}
