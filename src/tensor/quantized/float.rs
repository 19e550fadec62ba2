//! The float-coded schemes: FP8 codes times a scale per tensor, per output row or per 128 × 128
//! block (DeepSeek-V3's `weight_scale_inv`), and MXFP4's E2M1 codes times an E8M0 power of two
//! per block of 32 (gpt-oss's experts).

use std::ops::Range;

use super::{
    QuantError, Quantized, Scheme, Tensor, band_stride, is_float_scale, stage, wrong_dtype,
    wrong_shape,
};
use crate::tensor::{DType, decode};

/// Logical rows of MXFP4 codes unpacked at a time: two blocks' 32 bytes from each stored row.
const MXFP4_BAND: usize = 64;

/// E2M1's values by code (sign in the top bit).
const E2M1: [f32; 16] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
];

/// Whether `dtype` is an FP8 the schemes store codes in.
fn is_fp8(dtype: DType) -> bool {
    matches!(dtype, DType::F8_E4M3 | DType::F8_E5M2)
}

impl Quantized {
    /// FP8 `codes` with `scale`: a scalar (or one element) per tensor, `[out]` or `[out, 1]` per
    /// output row, or with `block`, one per block of the 2-D codes (`weight_scale_inv`).
    pub fn fp8(
        codes: (String, Tensor),
        scale: (String, Tensor),
        block: Option<(usize, usize)>,
    ) -> Result<Quantized, QuantError> {
        let scheme = match block {
            Some((rows, cols)) => Scheme::Fp8Block { rows, cols },
            None => Scheme::Fp8,
        };
        if !is_fp8(codes.1.dtype()) {
            return Err(wrong_dtype(&codes, scheme.name(), "F8_E4M3 or F8_E5M2"));
        }
        let dtype = scale.1.dtype();
        if !is_float_scale(dtype) {
            return Err(wrong_dtype(&scale, scheme.name(), "F32, BF16 or F16"));
        }
        let shape = codes.1.shape().to_vec();
        let fits = match (scheme, shape.as_slice(), scale.1.shape()) {
            (Scheme::Fp8Block { rows, cols }, &[r, c], &[sr, sc]) => {
                rows > 0 && cols > 0 && r.div_ceil(rows) == sr && c.div_ceil(cols) == sc
            }
            (Scheme::Fp8, _, s) if s.iter().product::<usize>() == 1 => true,
            (Scheme::Fp8, &[r, _], &[sr] | &[sr, 1]) => sr == r,
            _ => false,
        };
        if !fits {
            return Err(wrong_shape(&scale, &shape, scheme.name()));
        }
        // The product is taken in f32 and returned in the scales' dtype (F32 for DeepSeek's).
        Ok(Quantized::made(scheme, vec![codes, scale], shape, dtype))
    }

    /// MXFP4 experts: `blocks` (U8, (experts, rows, G, 16)) and `scales` (U8, (experts, rows, G)).
    pub fn mxfp4(
        blocks: (String, Tensor),
        scales: (String, Tensor),
    ) -> Result<Quantized, QuantError> {
        for part in [&blocks, &scales] {
            if part.1.dtype() != DType::U8 {
                return Err(wrong_dtype(part, "mxfp4", "U8"));
            }
        }
        let (&[experts, rows, groups, 16], s) = (blocks.1.shape(), scales.1.shape()) else {
            return Err(wrong_shape(&blocks, blocks.1.shape(), "mxfp4"));
        };
        if s != [experts, rows, groups] {
            return Err(wrong_shape(&scales, blocks.1.shape(), "mxfp4"));
        }
        let shape = vec![experts, groups * 32, rows];
        Ok(Quantized::made(
            Scheme::Mxfp4,
            vec![blocks, scales],
            shape,
            DType::BF16,
        ))
    }

    /// Each FP8 code's value (both FP8 formats' values are f32 values, exactly).
    pub(super) fn fp8_lut(&self) -> [f32; 256] {
        let bytes: Vec<u8> = (0..=255).collect();
        let values = decode::to_f32(self.parts[0].1.dtype(), &bytes, 256)
            .expect("the constructor admits only FP8 codes");
        std::array::from_fn(|i| values[i])
    }

    /// MXFP4's E2M1 codes along the weight, (experts, G·32, rows): code `c` of a block of 32 is
    /// nibble `c` of its 16 bytes, low nibble first.
    pub(super) fn mxfp4_codes(&self) -> Vec<u8> {
        let [experts, columns, rows] = self.shape[..] else {
            unreachable!("MXFP4 weights are 3-D")
        };
        let mut codes = vec![0u8; experts * columns * rows];
        for (e, expert) in codes.chunks_exact_mut((columns * rows).max(1)).enumerate() {
            for c in (0..columns).step_by(MXFP4_BAND) {
                let end = (c + MXFP4_BAND).min(columns);
                self.mxfp4_rows(e, c..end, &mut expert[c * rows..], rows);
            }
        }
        codes
    }

    /// The codes of logical rows `columns` of expert `e` (each `rows` long) into `out`, one row
    /// every `stride` bytes. The bytes holding them are copied out of each stored row first (the
    /// stored rows are G·16 bytes apart, and a short copy loop has many of them fetched at once),
    /// then each logical row written out in order.
    fn mxfp4_rows(&self, e: usize, columns: Range<usize>, out: &mut [u8], stride: usize) {
        let [_, width, rows] = self.shape[..] else {
            unreachable!("MXFP4 weights are 3-D")
        };
        let (first, len) = (
            columns.start / 2,
            columns.end.div_ceil(2) - columns.start / 2,
        );
        let starts = (0..rows).map(|r| (e * rows + r) * width / 2 + first);
        let mut staged = Vec::new();
        stage(self.parts[0].1.bytes(), starts, len, &mut staged);
        for (k, c) in columns.enumerate() {
            // Two codes a byte, the low nibble first.
            let (at, shift) = (c / 2 - first, 4 * (c % 2));
            let row = &mut out[k * stride..][..rows];
            for (code, bytes) in row.iter_mut().zip(staged.chunks_exact(len)) {
                *code = (bytes[at] >> shift) & 0x0f;
            }
        }
    }

    /// The codes of logical rows `first..` into `band` (one a value, a row every
    /// [`band_stride`] bytes), as many as two blocks of 32 hold from `first` and no more than
    /// `last` or the expert's: returns the rows unpacked.
    pub(super) fn mxfp4_band(&self, first: usize, last: usize, band: &mut Vec<u8>) -> Range<usize> {
        let [_, width, rows] = self.shape[..] else {
            unreachable!("MXFP4 weights are 3-D")
        };
        let (e, c) = (first / width, first % width);
        let end = ((first / MXFP4_BAND + 1) * MXFP4_BAND)
            .min(last)
            .min((e + 1) * width);
        let stride = band_stride(rows);
        // Each code is written over: what a band before left needs no clearing.
        band.resize((end - first) * stride, 0);
        self.mxfp4_rows(e, c..c + end - first, band, stride);
        first..end
    }

    /// MXFP4's E8M0 exponents as the scales are laid out along the weight, (experts, G, rows).
    pub(super) fn mxfp4_exponents(&self) -> Vec<u8> {
        let stored = self.parts[1].1.bytes();
        let &[experts, rows, groups] = self.parts[1].1.shape() else {
            unreachable!("the constructor admits only 3-D scales")
        };
        let mut exponents = vec![0u8; stored.len()];
        for e in 0..experts {
            for r in 0..rows {
                for g in 0..groups {
                    exponents[(e * groups + g) * rows + r] = stored[(e * rows + r) * groups + g];
                }
            }
        }
        exponents
    }
}

/// An MXFP4 value as transformers' `convert_moe_packed_tensors` makes it: the E2M1 value of
/// `code` times 2^(exponent - 127) exactly, rounded to BF16.
pub(super) fn mxfp4_value(code: u8, exponent: u8) -> f32 {
    // torch.ldexp is exact, then rounded: 0 stays 0 under 2^128 (the exponent 0xff, which
    // transformers does not treat as NaN), 0.5 · 2^128 is 2^127, and only a product past the
    // range is infinite. f64 holds every product.
    let exact = f64::from(E2M1[usize::from(code & 0x0f)]) * 2f64.powi(i32::from(exponent) - 127);
    half::bf16::from_f64(exact).to_f32()
}

#[cfg(test)]
mod tests {
    use crate::tensor::{Bytes, DType, Tensor, decode};

    use super::Quantized;

    #[test]
    fn a_weight_of_millions_of_values_dequantizes_alike_wherever_the_threads_split_it() {
        // An odd number of rows: the two threads' parts meet inside a row, and inside a run.
        let (rows, cols) = (1023, 2048);
        // Every FP8 code but the two NaNs, in an order no split lines up with.
        let codes: Vec<u8> = (0..rows * cols)
            .map(|i| match (i * 7 + i / 3) % 256 {
                0x7f | 0xff => 0,
                c => c as u8,
            })
            .collect();
        let scales: Vec<f32> = (0..rows).map(|r| (r + 1) as f32 / 1024.0).collect();
        let weight = Quantized::fp8(
            (
                "w".into(),
                Tensor::new(
                    vec![rows, cols],
                    DType::F8_E4M3,
                    Bytes::Owned(codes.clone().into()),
                ),
            ),
            ("s".into(), Tensor::from_f32(vec![rows, 1], &scales)),
            None,
        )
        .unwrap();
        let values = decode::to_f32(DType::F32, weight.bytes(), rows * cols).unwrap();
        let code_values = decode::to_f32(DType::F8_E4M3, &codes, rows * cols).unwrap();
        for (i, (&v, &c)) in values.iter().zip(&code_values).enumerate() {
            assert_eq!(v.to_bits(), (c * scales[i / cols]).to_bits(), "value {i}");
        }
    }
}
