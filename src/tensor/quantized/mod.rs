//! Quantized safetensors layouts made into one logical weight: the stored parts (codes and
//! scales), the scheme that combines them, and the dequantized values, computed once, on first use,
//! exactly as the scheme's reference code computes them.
//!
//! - FP8 with `weight_scale` (per tensor, or per output channel): `q.float() * scale`;
//! - DeepSeek-V3's block FP8 with `weight_scale_inv`, one scale per 128 × 128 block:
//!   `q.float() * s` over each block (its `weight_dequant`).

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
}

impl Scheme {
    /// The name `tree --json` gives it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Fp8 => "fp8",
            Scheme::Fp8Block { .. } => "fp8_block",
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
        let [(_, codes), (_, scale)] = &self.parts[..] else {
            unreachable!("FP8 weights have two parts")
        };
        // Both decode exactly: FP8 and the scales' half or single floats are all f32 values.
        let q = codes.to_f32_vec().expect("FP8 decodes");
        let s = scale.to_f32_vec().expect("float scales decode");
        let cols = self.shape.get(1).copied().unwrap_or(1).max(1);
        match self.scheme {
            Scheme::Fp8Block { rows, cols: bc } => {
                let scale_cols = cols.div_ceil(bc);
                q.iter()
                    .enumerate()
                    .map(|(i, v)| v * s[(i / cols / rows) * scale_cols + (i % cols) / bc])
                    .collect()
            }
            Scheme::Fp8 if s.len() == 1 => q.iter().map(|v| v * s[0]).collect(),
            Scheme::Fp8 => q.iter().enumerate().map(|(i, v)| v * s[i / cols]).collect(),
        }
    }
}
