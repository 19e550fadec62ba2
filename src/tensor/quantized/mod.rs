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
//!   `(q - z) * scales[g]`.
//!
//! - compressed-tensors' `pack-quantized` (signed codes offset by 2^(bits-1), packed along the
//!   input, `weight_scale` per group of inputs, symmetric): `q * scale` in the scales' dtype.
//! - MXFP4 (gpt-oss's experts): `_blocks` of 32 E2M1 codes and an E8M0 `_scales` byte per block,
//!   `ldexp(lut[code], scale - 127)` in BF16, laid out (experts, G·32, rows) as transformers'
//!   `convert_moe_packed_tensors` returns it.
//!
//! GPTQ and AWQ weights are returned as `nn.Linear` holds them, (out, in).

mod scales;

pub use scales::{OUTLIER_SCALE, ScaleCheck};
use std::sync::OnceLock;

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
    /// compressed-tensors' `pack-quantized`, symmetric.
    Compressed {
        /// Bits per code.
        bits: u32,
    },
    /// MXFP4 experts.
    Mxfp4,
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
            Scheme::Compressed { bits: 8 } => "compressed_int8",
            Scheme::Compressed { .. } => "compressed_int4",
            Scheme::Mxfp4 => "mxfp4",
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
}

/// One logical weight made of stored parts; its values are dequantized on the first read.
pub struct Quantized {
    scheme: Scheme,
    /// `(stored name, tensor)`: the codes first, then the scales.
    parts: Vec<(String, Tensor)>,
    shape: Vec<usize>,
    dtype: DType,
    values: OnceLock<Box<[u8]>>,
}

impl std::fmt::Debug for Quantized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quantized")
            .field("scheme", &self.scheme)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

/// Where AWQ's GEMM packing puts output `k` of eight within a word (the inverse of its pack order
/// 0 2 4 6 1 3 5 7, as its `reverse_awq_order` undoes it).
const AWQ_ORDER: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// Every element of an integer tensor.
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
        let wrong_dtype = |part: &str, dtype, expected| QuantError::DType {
            part: part.to_owned(),
            dtype,
            scheme: scheme.name(),
            expected,
        };
        if !is_fp8(codes.1.dtype()) {
            return Err(wrong_dtype(&codes.0, codes.1.dtype(), "F8_E4M3 or F8_E5M2"));
        }
        let dtype = scale.1.dtype();
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(wrong_dtype(&scale.0, dtype, "F32, BF16 or F16"));
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
            return Err(QuantError::Shape {
                part: scale.0,
                shape: scale.1.shape().to_vec(),
                codes: shape,
                scheme: scheme.name(),
            });
        }
        Ok(Quantized {
            scheme,
            parts: vec![codes, scale],
            shape,
            // The product is taken in f32 and returned in the scales' dtype (F32 for DeepSeek's).
            dtype,
            values: OnceLock::new(),
        })
    }

    /// GPTQ or AWQ (by `scheme`) from `qweight`, `qzeros`, `scales` and GPTQ's optional `g_idx`
    /// (`None`: groups of consecutive inputs). The bits per code are read from the shapes.
    pub fn packed(
        gptq_v1: Option<bool>,
        qweight: (String, Tensor),
        qzeros: (String, Tensor),
        scales: (String, Tensor),
        g_idx: Option<(String, Tensor)>,
    ) -> Result<Quantized, QuantError> {
        let name = if gptq_v1.is_some() { "gptq" } else { "awq" };
        let shape_error = |part: &(String, Tensor), codes: &Tensor| QuantError::Shape {
            part: part.0.clone(),
            shape: part.1.shape().to_vec(),
            codes: codes.shape().to_vec(),
            scheme: name,
        };
        for part in [&qweight, &qzeros] {
            if part.1.dtype() != DType::I32 {
                return Err(QuantError::DType {
                    part: part.0.clone(),
                    dtype: part.1.dtype(),
                    scheme: name,
                    expected: "I32",
                });
            }
        }
        let dtype = scales.1.dtype();
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(QuantError::DType {
                part: scales.0,
                dtype,
                scheme: name,
                expected: "F32, BF16 or F16",
            });
        }
        let (&[qr, qc], &[groups, out], &[zr, zc]) =
            (qweight.1.shape(), scales.1.shape(), qzeros.1.shape())
        else {
            return Err(shape_error(&scales, &qweight.1));
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
            return Err(shape_error(&qzeros, &qweight.1));
        }
        if let Some(g) = &g_idx
            && (g.1.shape() != [inputs] || !matches!(g.1.dtype(), DType::I32 | DType::I64))
        {
            return Err(shape_error(g, &qweight.1));
        }
        let scheme = match gptq_v1 {
            Some(v1) => Scheme::Gptq { bits, v1 },
            None => Scheme::Awq { bits },
        };
        let mut parts = vec![qweight, qzeros, scales];
        parts.extend(g_idx);
        Ok(Quantized {
            scheme,
            parts,
            shape: vec![out, inputs],
            dtype,
            values: OnceLock::new(),
        })
    }

    /// compressed-tensors' `pack-quantized`: `weight_packed` (I32, (out, in·bits/32)) and
    /// `weight_scale` ((out, groups)), the logical shape `[out, in]` from `weight_shape`.
    pub fn compressed(
        packed: (String, Tensor),
        scale: (String, Tensor),
        shape: [usize; 2],
    ) -> Result<Quantized, QuantError> {
        let name = "compressed_int4";
        let dtype = scale.1.dtype();
        if packed.1.dtype() != DType::I32 {
            return Err(QuantError::DType {
                part: packed.0,
                dtype: packed.1.dtype(),
                scheme: name,
                expected: "I32",
            });
        }
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(QuantError::DType {
                part: scale.0,
                dtype,
                scheme: name,
                expected: "F32, BF16 or F16",
            });
        }
        let [out, inputs] = shape;
        let (&[pr, pc], &[sr, groups]) = (packed.1.shape(), scale.1.shape()) else {
            return Err(QuantError::Shape {
                part: scale.0,
                shape: scale.1.shape().to_vec(),
                codes: packed.1.shape().to_vec(),
                scheme: name,
            });
        };
        // Only widths that divide 32 keep each code inside one word; those are the ones in use.
        let bits = [4u32, 8]
            .into_iter()
            .find(|b| inputs > 0 && (inputs * *b as usize).div_ceil(32) == pc);
        let fits = pr == out && sr == out && groups > 0 && inputs % groups == 0;
        let (Some(bits), true) = (bits, fits) else {
            return Err(QuantError::Shape {
                part: packed.0,
                shape: packed.1.shape().to_vec(),
                codes: shape.to_vec(),
                scheme: name,
            });
        };
        Ok(Quantized {
            scheme: Scheme::Compressed { bits },
            parts: vec![packed, scale],
            shape: shape.to_vec(),
            dtype,
            values: OnceLock::new(),
        })
    }

    /// MXFP4 experts: `blocks` (U8, (experts, rows, G, 16)) and `scales` (U8, (experts, rows, G)).
    pub fn mxfp4(
        blocks: (String, Tensor),
        scales: (String, Tensor),
    ) -> Result<Quantized, QuantError> {
        for part in [&blocks, &scales] {
            if part.1.dtype() != DType::U8 {
                return Err(QuantError::DType {
                    part: part.0.clone(),
                    dtype: part.1.dtype(),
                    scheme: "mxfp4",
                    expected: "U8",
                });
            }
        }
        let (&[experts, rows, groups, 16], s) = (blocks.1.shape(), scales.1.shape()) else {
            return Err(QuantError::Shape {
                part: blocks.0,
                shape: blocks.1.shape().to_vec(),
                codes: blocks.1.shape().to_vec(),
                scheme: "mxfp4",
            });
        };
        if s != [experts, rows, groups] {
            return Err(QuantError::Shape {
                part: scales.0,
                shape: s.to_vec(),
                codes: blocks.1.shape().to_vec(),
                scheme: "mxfp4",
            });
        }
        Ok(Quantized {
            scheme: Scheme::Mxfp4,
            parts: vec![blocks, scales],
            shape: vec![experts, groups * 32, rows],
            dtype: DType::BF16,
            values: OnceLock::new(),
        })
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
                .expect("the constructor admits only F32, BF16 and F16 scales")
                .into_boxed_slice()
        })
    }

    /// Every value in f32, C order.
    fn dequantize(&self) -> Vec<f32> {
        match self.scheme {
            Scheme::Gptq { bits, .. } | Scheme::Awq { bits } => self.unpack(bits),
            Scheme::Compressed { bits } => self.signed(bits),
            Scheme::Mxfp4 => self.mxfp4_values(),
            Scheme::Fp8 => self.scaled(None),
            Scheme::Fp8Block { rows, cols } => self.scaled(Some((rows, cols))),
        }
    }

    /// FP8 codes times their scale (per tensor, per row, or per block), in f32.
    fn scaled(&self, block: Option<(usize, usize)>) -> Vec<f32> {
        let [(_, codes), (_, scale)] = &self.parts[..] else {
            unreachable!("FP8 weights have two parts")
        };
        // Both decode exactly: FP8 and the scales' half or single floats are all f32 values.
        let q = codes.to_f32_vec().expect("FP8 decodes");
        let s = scale.to_f32_vec().expect("float scales decode");
        let cols = self.shape.get(1).copied().unwrap_or(1).max(1);
        match block {
            Some((rows, bc)) => {
                let scale_cols = cols.div_ceil(bc);
                q.iter()
                    .enumerate()
                    .map(|(i, v)| v * s[(i / cols / rows) * scale_cols + (i % cols) / bc])
                    .collect()
            }
            None if s.len() == 1 => q.iter().map(|v| v * s[0]).collect(),
            None => q.iter().enumerate().map(|(i, v)| v * s[i / cols]).collect(),
        }
    }

    /// compressed-tensors' signed codes times their group's scale, rounded to the scales' dtype.
    fn signed(&self, bits: u32) -> Vec<f32> {
        let (out, inputs) = (self.shape[0], self.shape[1]);
        let words = ints(&self.parts[0].1);
        let scales = self.parts[1].1.to_f32_vec().expect("float scales decode");
        let (groups, width) = (self.parts[1].1.shape()[1], self.parts[0].1.shape()[1]);
        let (pack, mask, offset) = (32 / bits as usize, (1i64 << bits) - 1, 1i64 << (bits - 1));
        let size = inputs / groups;
        let mut values = Vec::with_capacity(out * inputs);
        for o in 0..out {
            for i in 0..inputs {
                let word = words[o * width + i / pack];
                let code = ((word >> ((i % pack) as u32 * bits)) & mask) - offset;
                values.push(self.round(scales[o * groups + i / size] * code as f32));
            }
        }
        values
    }

    /// MXFP4 codes as transformers' `convert_moe_packed_tensors` makes them: the E2M1 value (low
    /// nibble first) times 2^(scale - 127) exactly, rounded to BF16, transposed to (experts, G·32, rows).
    fn mxfp4_values(&self) -> Vec<f32> {
        const E2M1: [f32; 16] = [
            0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
        ];
        let [experts, columns, rows] = self.shape[..] else {
            unreachable!("MXFP4 weights are 3-D")
        };
        let (blocks, scales) = (self.parts[0].1.bytes(), self.parts[1].1.bytes());
        let groups = columns / 32;
        let mut values = vec![0.0f32; experts * columns * rows];
        for e in 0..experts {
            for r in 0..rows {
                for c in 0..columns {
                    let block = (e * rows + r) * groups + c / 32;
                    let byte = blocks[block * 16 + (c % 32) / 2];
                    let code = if c % 2 == 0 { byte & 0x0f } else { byte >> 4 };
                    // torch.ldexp is exact, then rounded: 0 stays 0 under 2^128, 0.5 · 2^128 is 2^127,
                    // and only a product past the range is infinite. f64 holds every product.
                    let power = 2f64.powi(i32::from(scales[block]) - 127);
                    let exact = f64::from(E2M1[usize::from(code)]) * power;
                    let v = half::bf16::from_f64(exact).to_f32();
                    values[(e * columns + c) * rows + r] = v;
                }
            }
        }
        values
    }

    /// A product rounded to the scales' dtype, as the references multiply in it.
    fn round(&self, v: f32) -> f32 {
        match self.dtype {
            DType::F16 => half::f16::from_f32(v).to_f32(),
            DType::BF16 => half::bf16::from_f32(v).to_f32(),
            _ => v,
        }
    }

    /// GPTQ's or AWQ's codes and zeros unpacked, times the scales, rounded to the scales' dtype
    /// once per value (the reference multiplies in that dtype, which on the CPU is an f32 product
    /// rounded), as (out, in).
    fn unpack(&self, bits: u32) -> Vec<f32> {
        let (out, inputs) = (self.shape[0], self.shape[1]);
        let qweight = ints(&self.parts[0].1);
        let qzeros = ints(&self.parts[1].1);
        let scales = self.parts[2].1.to_f32_vec().expect("float scales decode");
        let groups = self.parts[2].1.shape()[0];
        let pack = 32 / bits as usize;
        let mask = (1i64 << bits) - 1;
        let (gptq, v1) = match self.scheme {
            Scheme::Gptq { v1, .. } => (true, v1),
            _ => (false, false),
        };
        let shift = |j: usize| -> i64 {
            let k = j % pack;
            let k = if gptq || pack != 8 { k } else { AWQ_ORDER[k] };
            (k as i64) * i64::from(bits)
        };
        let word_cols = out / pack;
        let zero = |g: usize, o: usize| {
            let z = (qzeros[g * word_cols + o / pack] >> shift(o)) & mask;
            if v1 { z + 1 } else { z }
        };
        let g_idx: Vec<usize> = if let Some((_, g)) = self.parts.get(3) {
            ints(g)
                .into_iter()
                .map(|g| usize::try_from(g).unwrap_or(0).min(groups - 1))
                .collect()
        } else {
            let size = inputs.div_ceil(groups).max(1);
            (0..inputs).map(|i| i / size).collect()
        };
        let mut values = vec![0.0f32; out * inputs];
        for i in 0..inputs {
            let g = g_idx[i];
            for o in 0..out {
                let code = if gptq {
                    (qweight[(i / pack) * out + o] >> shift(i)) & mask
                } else {
                    (qweight[i * word_cols + o / pack] >> shift(o)) & mask
                };
                let scale = scales[g * out + o];
                values[o * inputs + i] = self.round(scale * (code - zero(g, o)) as f32);
            }
        }
        values
    }
}
