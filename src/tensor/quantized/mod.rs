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
//! - compressed-tensors' `pack-quantized` (2 to 8-bit codes offset by 2^(bits-1), packed densely along the input,
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
//! its codes into one byte per value along the weight, and finds each value's scale through one
//! grouping (`parts`): the dequantization (`dequant`, of any range of values, a row or a band of
//! rows of codes at a time, so that a statistics pass never holds the weight), the app's views of
//! the codes, the scales and the zero points, and `check`'s saturated codes all read the same
//! unpacking.

mod bnb;
mod dequant;
mod float;
mod packed;
mod parts;
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
            Scheme::Compressed { bits, .. } => match bits {
                2 => "compressed_int2",
                3 => "compressed_int3",
                5 => "compressed_int5",
                6 => "compressed_int6",
                7 => "compressed_int7",
                8 => "compressed_int8",
                _ => "compressed_int4",
            },
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
    values: OnceLock<Buffer>,
}

/// Where a weight's dequantized bytes are kept: a large weight's in an anonymous map asked for in
/// huge pages, because faulting in a gigabyte 4 KiB at a time costs more than dequantizing it.
enum Buffer {
    /// A small weight's.
    Heap(Box<[u8]>),
    /// A large weight's.
    Map(memmap2::MmapMut),
}

impl Buffer {
    /// `len` zero bytes.
    fn zeroed(len: usize) -> Buffer {
        if len >= HUGE_PAGE_BYTES
            && let Ok(map) = memmap2::MmapMut::map_anon(len)
        {
            // Only a hint: where the kernel has no transparent huge pages, 4 KiB pages it is.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            return Buffer::Map(map);
        }
        Buffer::Heap(vec![0; len].into_boxed_slice())
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Heap(bytes) => bytes,
            Buffer::Map(map) => map,
        }
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Buffer::Heap(bytes) => bytes,
            Buffer::Map(map) => map,
        }
    }
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

/// From this many bytes, dequantized values are kept in huge pages (two of them).
const HUGE_PAGE_BYTES: usize = 4 << 20;

/// Every element of an I32 or I64 tensor (the constructors admit only those here), read straight
/// from its bytes.
fn ints(t: &Tensor) -> Vec<i64> {
    let bytes = t.bytes();
    match t.dtype() {
        DType::I64 => bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes(c.try_into().expect("4 bytes"))))
            .collect(),
    }
}

/// The bytes from one row of a band to the next: its codes and 64 more, so that the band's rows,
/// written side by side, do not fall in one L1 set when a row is a multiple of 4 KiB long.
fn band_stride(width: usize) -> usize {
    width + 64
}

/// `len` bytes from each of `starts` in `bytes`, side by side in `out` (cleared first): the
/// stored lines of a band, gathered by a loop short enough that the processor fetches many of
/// them at once, before they are unpacked.
fn stage(bytes: &[u8], starts: impl Iterator<Item = usize>, len: usize, out: &mut Vec<u8>) {
    out.clear();
    for start in starts {
        out.extend_from_slice(&bytes[start..start + len]);
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
        self.values.get_or_init(|| self.dequantize())
    }

    /// Whether the scheme stores zero points (GPTQ, AWQ, asymmetric compressed-tensors).
    #[must_use]
    pub fn has_zeros(&self) -> bool {
        matches!(
            self.scheme,
            Scheme::Gptq { .. }
                | Scheme::Awq { .. }
                | Scheme::Compressed {
                    asymmetric: true,
                    ..
                }
        )
    }

    /// Whether the values have been dequantized whole (by [`Quantized::bytes`]).
    #[must_use]
    pub fn is_dequantized(&self) -> bool {
        self.values.get().is_some()
    }

    /// Every value as little-endian bytes of [`Quantized::dtype`], C order, on every core for a
    /// large weight.
    fn dequantize(&self) -> Buffer {
        let dequantizer = self.dequantizer();
        let numel = self.numel();
        let width = self.dtype.byte_len(1).expect("F32, BF16 or F16");
        let mut bytes = Buffer::zeroed(numel * width);
        let threads = if numel < PARALLEL_VALUES {
            1
        } else {
            crate::tensor::parallel::max_threads().max(1)
        };
        let per_thread = numel.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (k, part) in bytes.chunks_mut(per_thread * width).enumerate() {
                let dequantizer = &dequantizer;
                scope.spawn(move || {
                    let first = k * per_thread;
                    let range = first..first + part.len() / width;
                    dequantizer.encode(range, part);
                });
            }
        });
        bytes
    }

    /// The values of elements `range` (cut to the weight), without dequantizing the others: the
    /// whole weight's bytes when they are there already.
    #[must_use]
    pub fn range_values(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let range = range.start.min(self.numel())..range.end.min(self.numel());
        if let Some(bytes) = self.values.get() {
            let width = self.dtype.byte_len(1).expect("F32, BF16 or F16");
            let bytes = &bytes[range.start * width..range.end * width];
            return decode::to_f32(self.dtype, bytes, range.len()).expect("a float dtype");
        }
        let mut out = Vec::with_capacity(range.len());
        self.dequantizer().fill(range, &mut out);
        out
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
