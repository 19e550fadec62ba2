//! Quantized safetensors layouts made into one logical weight: the stored parts (codes and
//! scales), the scheme that combines them, and the dequantized values, computed once, on first use,
//! exactly as the scheme's reference code computes them.
//!
//! - FP8 with `weight_scale` (per tensor, or per output channel): `q.float() * scale`;
//! - DeepSeek-V3's block FP8 with `weight_scale_inv`, one scale per 128 × 128 block:
//!   `q.float() * s` over each block (its `weight_dequant`);
//! - GPTQ (`qweight` packed along the input, `qzeros` along the output, `scales`, `g_idx`):
//!   `scales[g] * (q - z)` in the scales' dtype, `z` the stored zero plus one in the v1 format;
//! - AWQ's GEMM packing (both packed along the output, in the order 0 2 4 6 1 3 5 7):
//!   `(q - z) * scales[g]`;
//! - compressed-tensors' `pack-quantized` (codes offset by 2^(bits-1), packed along the input,
//!   `weight_scale` per group of inputs, `weight_zero_point` when asymmetric):
//!   `(q - z) * scale` in the scales' dtype;
//! - MXFP4 (gpt-oss's experts): `_blocks` of 32 E2M1 codes and an E8M0 `_scales` byte per block,
//!   `ldexp(lut[code], scale - 127)` in BF16, laid out (experts, G·32, rows) as transformers'
//!   `convert_moe_packed_tensors` returns it;
//! - bitsandbytes 4-bit (NF4, FP4): two codes a byte, high nibble first, `lut[code] * absmax` per
//!   flat block in f32, the absmax itself blockwise 8-bit when double-quantized, cast to
//!   `quant_state.dtype`; LLM.int8: `q * SCB * (1/127)` per row, in f32.
//!
//! GPTQ and AWQ weights are returned as `nn.Linear` holds them, (out, in). Every scheme unpacks
//! its codes once into [`parts`]' one-byte-per-value layout along the weight, and finds each
//! value's scale through one [`parts::Grouping`]: the dequantization, the app's views of the codes
//! and the scales, and `check`'s saturated codes all read the same unpacking.

mod bnb;
mod float;
mod packed;
pub mod parts;
mod scales;

use std::borrow::Cow;
use std::sync::OnceLock;

pub use bnb::Bnb4State;
pub use scales::{OUTLIER_SCALE, SATURATED_SHARE, ScaleCheck};
use thiserror::Error;

use super::{DType, Tensor, decode};

/// How the parts make the weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// FP8 codes times a scale per tensor or per output row.
    Fp8,
    /// FP8 codes times a scale per block of `rows` × `cols`.
    Fp8Block {
        /// Rows of a block.
        rows: usize,
        /// Columns of a block.
        cols: usize,
    },
    /// GPTQ's packing, `bits` per code; `v1` zeros are stored one less than they are.
    Gptq {
        /// Bits per code.
        bits: u32,
        /// The v1 checkpoint format.
        v1: bool,
    },
    /// AWQ's GEMM packing.
    Awq {
        /// Bits per code.
        bits: u32,
    },
    /// compressed-tensors' `pack-quantized`.
    Compressed {
        /// Bits per code.
        bits: u32,
        /// With a `weight_zero_point`.
        asymmetric: bool,
    },
    /// MXFP4 experts.
    Mxfp4,
    /// bitsandbytes' 4-bit NF4 or FP4.
    Bnb4 {
        /// FP4's code table rather than NF4's.
        fp4: bool,
        /// Values per absmax.
        blocksize: usize,
        /// The absmax stored 8-bit blockwise itself (double quantization).
        nested: bool,
    },
    /// bitsandbytes' LLM.int8 weights: int8 rows and their absmax (`SCB`).
    BnbInt8,
}

impl Scheme {
    /// The name `tree --json` gives it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Fp8 => "fp8",
            Scheme::Fp8Block { .. } => "fp8_block",
            Scheme::Gptq { .. } => "gptq",
            Scheme::Awq { .. } => "awq",
            Scheme::Compressed { bits: 8, .. } => "compressed_int8",
            Scheme::Compressed { .. } => "compressed_int4",
            Scheme::Mxfp4 => "mxfp4",
            Scheme::Bnb4 { fp4: false, .. } => "bnb_nf4",
            Scheme::Bnb4 { fp4: true, .. } => "bnb_fp4",
            Scheme::BnbInt8 => "bnb_int8",
        }
    }
}

/// Parts that do not make a weight of their scheme.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QuantError {
    /// A part of a dtype the scheme does not store there.
    #[error("{part} is {dtype}, where {scheme} stores {expected}")]
    DType {
        /// The part.
        part: String,
        /// Its dtype.
        dtype: DType,
        /// The scheme.
        scheme: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// Scales whose shape does not fit the codes.
    #[error(
        "{part} has shape {shape:?}, which does not fit codes of shape {codes:?} under {scheme}"
    )]
    Shape {
        /// The part.
        part: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The codes' shape.
        codes: Vec<usize>,
        /// The scheme.
        scheme: &'static str,
    },
    /// A quantization state that cannot be read (bitsandbytes' JSON in a tensor).
    #[error("{part}: {why}")]
    State {
        /// The part.
        part: String,
        /// What is wrong with it.
        why: String,
    },
}

/// One logical weight made of stored parts; its values are dequantized on the first read.
pub struct Quantized {
    scheme: Scheme,
    /// `(stored name, tensor)`: the codes first, then the scales.
    parts: Vec<(String, Tensor)>,
    shape: Vec<usize>,
    dtype: DType,
    /// What a scheme reads beyond its parts (bitsandbytes' nested offset and dtype).
    extra: Extra,
    values: OnceLock<Box<[u8]>>,
}

/// What a scheme reads beyond its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Extra {
    /// Nothing.
    None,
    /// bitsandbytes' double quantization: the absmax's own blocks, dtype and the offset added back.
    Nested {
        /// Absmax codes per nested absmax.
        blocksize: usize,
        /// The dtype the nested absmax is dequantized in.
        dtype: DType,
        /// The mean taken out before it was quantized.
        offset: f32,
    },
}

impl std::fmt::Debug for Quantized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quantized")
            .field("scheme", &self.scheme)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

/// Below this many values a weight is dequantized on one thread: a spawn costs more.
const PARALLEL_VALUES: usize = 1 << 20;

/// Every element of an integer tensor (the constructors admit only integer dtypes here).
fn ints(t: &Tensor) -> Vec<i64> {
    decode::decode_scalars(t.dtype(), t.bytes(), 0, t.numel())
        .expect("integer parts decode")
        .into_iter()
        .map(|s| match s {
            decode::Scalar::Int(v) => v as i64,
            _ => 0,
        })
        .collect()
}

/// Code `k` of 4-bit codes packed two a byte: the high nibble first (bitsandbytes) or the low one
/// (MXFP4).
fn nibble(bytes: &[u8], k: usize, high_first: bool) -> u8 {
    let byte = bytes[k / 2];
    if k.is_multiple_of(2) == high_first {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

/// The float dtypes scales are stored in.
fn is_float_scale(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::BF16 | DType::F16)
}

/// `v` rounded to `dtype` (round to nearest even), as a product taken in that dtype is.
fn round_to(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::F16 => half::f16::from_f32(v).to_f32(),
        DType::BF16 => half::bf16::from_f32(v).to_f32(),
        _ => v,
    }
}

/// The error for `part` when its dtype is not one of `expected`.
fn wrong_dtype(
    part: &(String, Tensor),
    scheme: &'static str,
    expected: &'static str,
) -> QuantError {
    QuantError::DType {
        part: part.0.clone(),
        dtype: part.1.dtype(),
        scheme,
        expected,
    }
}

/// The error for `part` when its shape does not fit codes of shape `codes`.
fn wrong_shape(part: &(String, Tensor), codes: &[usize], scheme: &'static str) -> QuantError {
    QuantError::Shape {
        part: part.0.clone(),
        shape: part.1.shape().to_vec(),
        codes: codes.to_vec(),
        scheme,
    }
}

impl Quantized {
    /// A weight of `scheme` from checked parts.
    fn made(
        scheme: Scheme,
        parts: Vec<(String, Tensor)>,
        shape: Vec<usize>,
        dtype: DType,
    ) -> Quantized {
        Quantized {
            scheme,
            parts,
            shape,
            dtype,
            extra: Extra::None,
            values: OnceLock::new(),
        }
    }

    /// The scheme.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The stored parts, codes first.
    #[must_use]
    pub fn parts(&self) -> &[(String, Tensor)] {
        &self.parts
    }

    /// The logical weight's shape.
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of values.
    #[must_use]
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The dtype the scheme's reference returns.
    #[must_use]
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dequantized values as little-endian bytes of [`Quantized::dtype`], computed on the first
    /// call.
    pub fn bytes(&self) -> &[u8] {
        self.values.get_or_init(|| {
            let values = self.dequantize();
            decode::encode_as(self.dtype, &values)
                .expect("the constructors admit only F32, BF16 and F16 results")
                .into_boxed_slice()
        })
    }

    /// Every value in f32, C order: each code combined with its group's scale as the scheme's
    /// reference combines them, on every core for a large weight.
    fn dequantize(&self) -> Vec<f32> {
        let codes = self.codes();
        let group = self.grouping();
        let zeros = self.zeros();
        // MXFP4's scales are exponents, combined exactly; the others' are f32 values.
        let (scales, exponents) = if self.scheme == Scheme::Mxfp4 {
            (Vec::new(), self.mxfp4_exponents())
        } else {
            (self.scale_values(), Vec::new())
        };
        // The value of each code, for the schemes whose codes are looked up.
        let lut: [f32; 256] = match self.scheme {
            Scheme::Fp8 | Scheme::Fp8Block { .. } => self.fp8_lut(),
            Scheme::Bnb4 { fp4, .. } => {
                let table = bnb::lut(fp4);
                std::array::from_fn(|code| table[code % 16])
            }
            _ => [0.0; 256],
        };
        let value = |i: usize| -> f32 {
            let (code, g) = (codes[i], group.index(i));
            match self.scheme {
                Scheme::Fp8 | Scheme::Fp8Block { .. } => lut[usize::from(code)] * scales[g],
                Scheme::Gptq { .. } | Scheme::Awq { .. } | Scheme::Compressed { .. } => {
                    let z = zeros.as_ref().map_or(0, |z| z[g]);
                    round_to(self.dtype, scales[g] * (i64::from(code) - z) as f32)
                }
                Scheme::Bnb4 { .. } => round_to(self.dtype, lut[usize::from(code)] * scales[g]),
                Scheme::BnbInt8 => bnb::int8_value(code, scales[g]),
                Scheme::Mxfp4 => float::mxfp4_value(code, exponents[g]),
            }
        };
        let mut values = vec![0.0f32; codes.len()];
        let threads = if values.len() < PARALLEL_VALUES {
            1
        } else {
            crate::tensor::parallel::max_threads().max(1)
        };
        let per_thread = values.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (k, part) in values.chunks_mut(per_thread).enumerate() {
                let value = &value;
                scope.spawn(move || {
                    for (j, slot) in part.iter_mut().enumerate() {
                        *slot = value(k * per_thread + j);
                    }
                });
            }
        });
        values
    }

    /// The codes one byte per value along the weight, as the scheme stores them unpacked: FP8's
    /// own bytes, an unsigned field of a packed word, an int8's two's complement.
    pub(crate) fn codes(&self) -> Cow<'_, [u8]> {
        match self.scheme {
            Scheme::Fp8 | Scheme::Fp8Block { .. } | Scheme::BnbInt8 => {
                Cow::Borrowed(self.parts[0].1.bytes())
            }
            Scheme::Gptq { .. } | Scheme::Awq { .. } | Scheme::Compressed { .. } => {
                Cow::Owned(self.packed_codes())
            }
            Scheme::Mxfp4 => Cow::Owned(self.mxfp4_codes()),
            Scheme::Bnb4 { .. } => Cow::Owned(bnb::nibbles(self.parts[0].1.bytes(), self.numel())),
        }
    }
}
