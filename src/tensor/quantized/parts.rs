//! A quantized weight's codes and scales as tensors of their own, laid out along the weight: what
//! the app shows one key away from the dequantized values (where the scale blocks are large is
//! where the outliers were), and what the dequantization and `check` read. A [`Grouping`] says
//! which scale each value takes; the scales are given one row per output row where the scheme
//! has rows of them (GPTQ's and AWQ's `(groups, out)` transposed to `(out, groups)`).

use super::{Quantized, Scheme};
use crate::tensor::{Bytes, DType, Tensor, decode};

/// Which scale each value of the weight (C order) takes, as an index into the scales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grouping {
    /// Consecutive runs of `block` values (bitsandbytes' flat blocks, one scale per tensor).
    Flat {
        /// Values per scale.
        block: usize,
    },
    /// Tiles of `rows` × `cols` over a matrix `width` columns wide (FP8 blocks, one scale per
    /// row, groups of inputs); the scales one row of tiles after another.
    Tiles {
        /// The matrix's columns (a 3-D weight's last dimension).
        width: usize,
        /// Rows of a tile.
        rows: usize,
        /// Columns of a tile.
        cols: usize,
    },
    /// Each input's group given by a list (GPTQ's `g_idx`), scales `(out, groups)`.
    Inputs {
        /// The group of each input.
        of_input: Vec<usize>,
        /// Where the run of inputs of one group from each input ends.
        run_end: Vec<usize>,
        /// Groups per output row.
        groups: usize,
    },
}

impl Grouping {
    /// The scale of value `i`, and where the run of values from `i` that share it ends (the end
    /// of its block, tile row or group of inputs; a run never spans two rows).
    pub(crate) fn run(&self, i: usize) -> (usize, usize) {
        let g = self.index(i);
        let end = match self {
            Grouping::Flat { block } => (i / block.max(&1) + 1) * block.max(&1),
            Grouping::Tiles { width, cols, .. } => {
                let (width, cols) = ((*width).max(1), (*cols).max(1));
                let (row, col) = (i - i % width, i % width);
                row + width.min((col / cols + 1) * cols)
            }
            Grouping::Inputs { run_end, .. } => {
                let inputs = run_end.len().max(1);
                i - i % inputs + run_end[i % inputs]
            }
        };
        (g, end)
    }

    /// The scale of value `i`.
    pub(crate) fn index(&self, i: usize) -> usize {
        match self {
            Grouping::Flat { block } => i / block.max(&1),
            Grouping::Tiles { width, rows, cols } => {
                let (width, rows, cols) = ((*width).max(1), (*rows).max(1), (*cols).max(1));
                (i / width / rows) * width.div_ceil(cols) + (i % width) / cols
            }
            Grouping::Inputs {
                of_input, groups, ..
            } => {
                let inputs = of_input.len().max(1);
                (i / inputs) * groups + of_input[i % inputs]
            }
        }
    }
}

/// E8M0's scale: 2^(e - 127), and NaN for 0xff (as the OCP MX format defines it).
fn e8m0(e: u8) -> f64 {
    if e == 0xff {
        f64::NAN
    } else {
        2f64.powi(i32::from(e) - 127)
    }
}

impl Quantized {
    /// Which scale each value takes.
    pub(crate) fn grouping(&self) -> Grouping {
        let width = self.shape.last().copied().unwrap_or(1);
        let numel = self.numel();
        match self.scheme {
            Scheme::Fp8Block { rows, cols } => Grouping::Tiles { width, rows, cols },
            Scheme::Fp8 if self.parts[1].1.numel() == 1 => Grouping::Flat { block: numel },
            Scheme::Fp8 | Scheme::BnbInt8 => Grouping::Tiles {
                width,
                rows: 1,
                cols: width,
            },
            Scheme::Gptq { .. } | Scheme::Awq { .. } => self.packed_grouping(),
            Scheme::Compressed { .. } => Grouping::Tiles {
                width,
                rows: 1,
                cols: width / self.parts[1].1.shape()[1],
            },
            // (experts, G·32, rows) as one matrix of `rows` columns: 32 of its rows per scale.
            Scheme::Mxfp4 => Grouping::Tiles {
                width,
                rows: 32,
                cols: 1,
            },
            Scheme::Bnb4 { blocksize, .. } => Grouping::Flat { block: blocksize },
        }
    }

    /// The scales' shape as [`Quantized::scale_values`] lays them out.
    #[must_use]
    pub fn scale_shape(&self) -> Vec<usize> {
        let stored = self.parts[1].1.shape();
        match self.scheme {
            Scheme::Fp8Block { .. } | Scheme::Compressed { .. } => stored.to_vec(),
            Scheme::Fp8 if self.parts[1].1.numel() == 1 => vec![1],
            Scheme::Fp8 | Scheme::BnbInt8 => vec![self.shape[0], 1],
            Scheme::Gptq { .. } | Scheme::Awq { .. } => {
                vec![self.shape[0], self.parts[2].1.shape()[0]]
            }
            Scheme::Mxfp4 => vec![stored[0], stored[2], stored[1]],
            Scheme::Bnb4 { blocksize, .. } => {
                let blocks = self.numel().div_ceil(blocksize);
                match self.shape[..] {
                    [rows, cols] if cols % blocksize == 0 => vec![rows, cols / blocksize],
                    _ => vec![blocks],
                }
            }
        }
    }

    /// Every scale in f32, in the order [`Grouping::index`] counts them: the stored scales
    /// (exact: they are F32, BF16 or F16), bitsandbytes' absmax (dequantized when nested), MXFP4's
    /// powers of two (NaN for the exponent 0xff).
    pub(crate) fn scale_values(&self) -> Vec<f32> {
        let stored = || {
            self.parts[1]
                .1
                .to_f32_vec()
                .expect("the constructors admit only float scales")
        };
        match self.scheme {
            Scheme::Fp8 | Scheme::Fp8Block { .. } | Scheme::Compressed { .. } | Scheme::BnbInt8 => {
                stored()
            }
            Scheme::Gptq { .. } | Scheme::Awq { .. } => {
                let s = self.parts[2].1.to_f32_vec().expect("float scales decode");
                let (groups, out) = (self.parts[2].1.shape()[0], self.shape[0]);
                (0..out * groups)
                    .map(|k| s[(k % groups) * out + k / groups])
                    .collect()
            }
            Scheme::Mxfp4 => self
                .mxfp4_exponents()
                .into_iter()
                .map(|e| e8m0(e) as f32)
                .collect(),
            Scheme::Bnb4 { .. } => self.absmax(),
        }
    }

    /// The codes as a tensor of the weight's shape: FP8 and int8 as stored, compressed-tensors'
    /// as the signed integers its own unpacking gives, the others as unsigned fields (U8).
    #[must_use]
    pub fn codes_tensor(&self) -> Tensor {
        let shape = self.shape.clone();
        match self.scheme {
            Scheme::Fp8 | Scheme::Fp8Block { .. } | Scheme::BnbInt8 => self.parts[0].1.clone(),
            Scheme::Compressed { bits, .. } => {
                let offset = 1i16 << (bits - 1);
                let signed: Vec<u8> = self
                    .codes()
                    .iter()
                    // Two's complement of the signed code: the I8 dtype's bytes.
                    .map(|&c| (i16::from(c) - offset).to_le_bytes()[0])
                    .collect();
                Tensor::new(shape, DType::I8, Bytes::Owned(signed.into()))
            }
            _ => Tensor::new(
                shape,
                DType::U8,
                Bytes::Owned(self.codes().into_owned().into()),
            ),
        }
    }

    /// The zero points as an I32 tensor laid out as the scales are, `(out, groups)`, when the
    /// scheme stores them: GPTQ's and AWQ's as they are subtracted (GPTQ v1's stored one less),
    /// asymmetric compressed-tensors' signed, as its codes are shown. `None` for the others.
    #[must_use]
    pub fn zeros_tensor(&self) -> Option<Tensor> {
        let offset = match self.scheme {
            Scheme::Gptq { .. } | Scheme::Awq { .. } => 0,
            Scheme::Compressed {
                bits,
                asymmetric: true,
            } => 1i64 << (bits - 1),
            _ => return None,
        };
        let zeros: Vec<u8> = self
            .zeros()?
            .into_iter()
            // A field of at most 8 bits, plus one: an i32 holds it.
            .flat_map(|z| ((z - offset) as i32).to_le_bytes())
            .collect();
        Some(Tensor::new(
            self.scale_shape(),
            DType::I32,
            Bytes::Owned(zeros.into()),
        ))
    }

    /// The scales as an F32 tensor of [`Quantized::scale_shape`].
    #[must_use]
    pub fn scales_tensor(&self) -> Tensor {
        let values = self.scale_values();
        Tensor::new(
            self.scale_shape(),
            DType::F32,
            Bytes::Owned(decode::encode_f32(&values).into()),
        )
    }

    /// Whether `code` is one of the scheme's extreme codes: where a value past the scale's
    /// range would have been clamped.
    pub(crate) fn is_extreme(&self, code: u8) -> bool {
        match self.scheme {
            // E4M3's ±448 and E5M2's ±57344, the largest finite codes.
            Scheme::Fp8 | Scheme::Fp8Block { .. } => {
                code & 0x7f
                    == if self.parts[0].1.dtype() == DType::F8_E5M2 {
                        0x7b
                    } else {
                        0x7e
                    }
            }
            Scheme::Gptq { bits, .. } | Scheme::Awq { bits } | Scheme::Compressed { bits, .. } => {
                code == 0 || u32::from(code) == (1 << bits) - 1
            }
            // E2M1's ±6.
            Scheme::Mxfp4 => code & 7 == 7,
            // NF4's ±1 are its first and last codes; FP4's are 0b011 and 0b1011.
            Scheme::Bnb4 { fp4: false, .. } => code == 0 || code == 15,
            Scheme::Bnb4 { fp4: true, .. } => code & 7 == 3,
            Scheme::BnbInt8 => matches!(code as i8, 127 | -127 | -128),
        }
    }
}
