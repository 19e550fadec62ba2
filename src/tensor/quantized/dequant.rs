//! The dequantization itself, for any range of a weight's values: what the whole-weight buffer,
//! the statistics pass (a chunk at a time, never holding the weight) and `show`'s first values
//! all call, so they cannot disagree.

use std::borrow::Cow;
use std::ops::Range;

use super::parts::Grouping;
use super::{Quantized, Scheme, bnb, float, round_to};
use crate::tensor::simd::dequant;
use crate::tensor::stats::Chunks;
use crate::tensor::{DType, decode};

/// A weight's codes, scales and zero points laid out along it once, ready to give the values of
/// any range.
pub(crate) struct Dequantizer<'a> {
    weight: &'a Quantized,
    /// The codes one a value, where they are stored so or were unpacked whole; `None` for the
    /// packed integer schemes, whose codes are read from their words a run at a time.
    codes: Option<Cow<'a, [u8]>>,
    group: Grouping,
    /// The zero point of each group, for the integer schemes.
    zeros: Option<Vec<i64>>,
    /// The scale of each group in f32 (empty for MXFP4, whose scales are exponents).
    scales: Vec<f32>,
    /// MXFP4's E8M0 exponent of each group.
    exponents: Vec<u8>,
    /// The value of each code, for the schemes whose codes are looked up (FP8, bitsandbytes 4-bit).
    lut: [f32; 256],
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
        Dequantizer {
            weight: self,
            codes: match self.scheme {
                Scheme::Gptq { .. } | Scheme::Awq { .. } | Scheme::Compressed { .. } => None,
                _ => Some(self.codes()),
            },
            group: self.grouping(),
            zeros: self.zeros(),
            scales,
            exponents,
            lut,
        }
    }
}

impl Dequantizer<'_> {
    /// The values of one run of codes sharing group `g`, appended to `out`: each code combined with
    /// its group's scale as the scheme's reference combines them, rounded where it multiplies.
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
            Scheme::Mxfp4 => {
                let e = self.exponents[g];
                for (v, &c) in values.iter_mut().zip(codes) {
                    *v = float::mxfp4_value(c, e);
                }
            }
        }
        // The product is returned in the weight's dtype (MXFP4's values are BF16's already).
        round(self.weight.dtype, values);
    }

    /// The values of elements `range`, appended to `out`, a run of one group at a time.
    pub(crate) fn fill(&self, range: Range<usize>, out: &mut Vec<f32>) {
        let mut unpacked = Vec::new();
        let mut at = range.start;
        while at < range.end {
            // A run never spans two rows, so a packed run is one row's stretch of words.
            let (g, run_end) = self.group.run(at);
            let end = run_end.min(range.end);
            let codes = if let Some(codes) = &self.codes {
                &codes[at..end]
            } else {
                unpacked.clear();
                self.weight.packed_codes_in(at..end, &mut unpacked);
                &unpacked[..]
            };
            self.run(codes, g, out);
            at = end;
        }
    }

    /// The values of elements `range` as little-endian bytes of the weight's dtype, into `out`
    /// (exactly that long), through `scratch`, a chunk at a time.
    pub(crate) fn encode(&self, range: Range<usize>, out: &mut [u8], scratch: &mut Vec<f32>) {
        let width = self.weight.dtype.byte_len(1).expect("F32, BF16 or F16");
        for (k, at) in range.clone().step_by(ENCODE_CHUNK).enumerate() {
            let end = (at + ENCODE_CHUNK).min(range.end);
            scratch.clear();
            self.fill(at..end, scratch);
            let bytes = &mut out[k * ENCODE_CHUNK * width..][..(end - at) * width];
            // Each value is already one of the dtype's (rounded where it multiplies).
            decode::encode_into(self.weight.dtype, scratch, bytes)
                .expect("the constructors admit only F32, BF16 and F16 results");
        }
    }
}

/// Values dequantized at a time when writing bytes: 16 KiB of f32, which stay in L1.
const ENCODE_CHUNK: usize = 4096;

/// `values` rounded to `dtype` (round to nearest even), as a product taken in that dtype is.
fn round(dtype: DType, values: &mut [f32]) {
    match dtype {
        DType::BF16 => dequant::round_bf16(values),
        DType::F16 => values.iter_mut().for_each(|v| *v = round_to(dtype, *v)),
        _ => {}
    }
}

impl Chunks for Dequantizer<'_> {
    fn values(&self, range: Range<usize>, out: &mut Vec<f32>) {
        self.fill(range, out);
    }

    fn dtype(&self) -> DType {
        self.weight.dtype
    }

    fn prepare(&self, range: Range<usize>) {
        // The codes' bytes behind the range, where they are stored one a value in a mapped file
        // (FP8, int8): faulted in at once rather than a page at a time.
        if matches!(self.codes, Some(Cow::Borrowed(_))) {
            self.weight.parts[0].1.populate(range);
        }
    }
}
