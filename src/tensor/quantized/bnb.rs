//! bitsandbytes' weights as transformers saves them. 4-bit (`Linear4bit`): `W.weight` holds two
//! codes a byte (high nibble first, any storage dtype), `W.weight.absmax` one scale per flat block
//! of `blocksize` values (8-bit codes into `W.weight.nested_quant_map` times
//! `W.weight.nested_absmax` per block, plus an offset, when double-quantized), and
//! `W.weight.quant_state.bitsandbytes__nf4` the rest as JSON bytes (read by `checkpoint`, given here
//! as a [`Bnb4State`]). A value is `lut[code] * absmax` in f32, cast to the state's dtype, as the
//! library's pure-PyTorch backend computes it (`_dequantize_4bit_compute`). LLM.int8
//! (`Linear8bitLt`): int8 `W.weight` rows and their absmax `W.SCB`, `q * SCB * (1/127)` in f32
//! (`int8_vectorwise_dequant`).

use super::{
    Extra, QuantError, Quantized, Scheme, Tensor, is_float_scale, round_to, wrong_dtype,
    wrong_shape,
};
use crate::tensor::DType;

/// NF4's values by code (bitsandbytes' `get_4bit_type("nf4")`: normal quantiles, sorted).
const NF4: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// FP4's values by code before bitsandbytes divides them by their largest magnitude, 12 (one
/// sign, two exponent and one mantissa bit, in bit order: `get_4bit_type("fp4")`). Code 8 is +0:
/// the library's list spells it `-0`, a Python integer, which is zero without a sign.
const FP4_RAW: [f32; 16] = [
    0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, 0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0,
];

/// LLM.int8's `1/127`: the literal its `int8_vectorwise_dequant` multiplies by,
/// 7.874015718698502e-3, as the f32 a float tensor times a Python float rounds it to.
const INV_127: f32 = 7.874_016e-3;

/// The block sizes bitsandbytes' `dequantize_4bit` accepts.
const BLOCKSIZES: [usize; 8] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/// The entries of the nested absmax's 8-bit map.
const NESTED_MAP: usize = 256;

/// What bitsandbytes' `quant_state` JSON says of a 4-bit weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Bnb4State {
    /// FP4 rather than NF4.
    pub fp4: bool,
    /// Values per absmax.
    pub blocksize: usize,
    /// The dtype the weight is dequantized to.
    pub dtype: DType,
    /// The weight's shape.
    pub shape: Vec<usize>,
    /// Double quantization: the absmax's own block size, dtype and offset.
    pub nested: Option<(usize, DType, f32)>,
}

/// The 4-bit code table of NF4 or FP4, as bitsandbytes computes it in f32.
pub(super) fn lut(fp4: bool) -> [f32; 16] {
    if fp4 {
        // `data.div_(data.abs().max())` in f32: each an f32 division by 12.
        FP4_RAW.map(|v| v / 12.0)
    } else {
        NF4
    }
}

/// `n` 4-bit codes, two a byte, high nibble first.
pub(super) fn nibbles(bytes: &[u8], n: usize) -> Vec<u8> {
    let mut codes = Vec::with_capacity(n);
    nibbles_into(bytes, 0..n, &mut codes);
    codes
}

/// Codes `range` of 4-bit codes two a byte, high nibble first, appended to `out`.
pub(super) fn nibbles_into(bytes: &[u8], range: std::ops::Range<usize>, out: &mut Vec<u8>) {
    // Without a branch on the parity, so that the loop vectorizes.
    out.extend(range.map(|k| (bytes[k / 2] >> (4 - 4 * (k & 1))) & 0x0f));
}

/// One LLM.int8 value: the code times its row's absmax, then times 1/127, each product in f32.
pub(super) fn int8_value(code: u8, scb: f32) -> f32 {
    f32::from(code as i8) * scb * INV_127
}

impl Quantized {
    /// bitsandbytes 4-bit: `codes` (any dtype: its bytes are the packed codes), `absmax`, and when
    /// the state says it is nested, `nested` (the nested absmax and its 256-entry map); `more`
    /// (the `quant_map`, the `quant_state` tensor) are listed as parts and read no further (the
    /// library's own table by quant type is what dequantizes).
    pub fn bnb4(
        codes: (String, Tensor),
        absmax: (String, Tensor),
        nested: Option<[(String, Tensor); 2]>,
        more: Vec<(String, Tensor)>,
        state: &Bnb4State,
    ) -> Result<Quantized, QuantError> {
        let scheme = Scheme::Bnb4 {
            fp4: state.fp4,
            blocksize: state.blocksize,
            nested: state.nested.is_some(),
        };
        let name = scheme.name();
        let codes_name = codes.0.clone();
        let invalid = |why: String| QuantError::State {
            part: codes_name.clone(),
            why,
        };
        if !BLOCKSIZES.contains(&state.blocksize) {
            return Err(invalid(format!(
                "blocksize {} is not one bitsandbytes uses",
                state.blocksize
            )));
        }
        if !is_float_scale(state.dtype) {
            return Err(invalid(format!(
                "dtype {} is not F32, BF16 or F16",
                state.dtype
            )));
        }
        let n = state
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|n| n.div_ceil(2) as u64 == codes.1.byte_len())
            .ok_or_else(|| wrong_shape(&codes, &state.shape, name))?;
        let blocks = n.div_ceil(state.blocksize);
        if absmax.1.shape() != [blocks] {
            return Err(wrong_shape(&absmax, &state.shape, name));
        }
        let mut parts = vec![codes, absmax];
        let extra = match (state.nested, nested) {
            (Some((blocksize, dtype, offset)), Some([nested_absmax, map])) => {
                if parts[1].1.dtype() != DType::U8 {
                    return Err(wrong_dtype(&parts[1], name, "U8 (double-quantized)"));
                }
                if blocksize == 0 || nested_absmax.1.shape() != [blocks.div_ceil(blocksize)] {
                    return Err(wrong_shape(&nested_absmax, &state.shape, name));
                }
                if map.1.shape() != [NESTED_MAP] {
                    return Err(wrong_shape(&map, &state.shape, name));
                }
                for part in [&nested_absmax, &map] {
                    if !is_float_scale(part.1.dtype()) {
                        return Err(wrong_dtype(part, name, "F32, BF16 or F16"));
                    }
                }
                if !is_float_scale(dtype) {
                    return Err(invalid(format!(
                        "nested dtype {dtype} is not F32, BF16 or F16"
                    )));
                }
                parts.extend([nested_absmax, map]);
                Extra::Nested {
                    blocksize,
                    dtype,
                    offset,
                }
            }
            (None, None) => {
                if !is_float_scale(parts[1].1.dtype()) {
                    return Err(wrong_dtype(&parts[1], name, "F32, BF16 or F16"));
                }
                Extra::None
            }
            (Some(_), None) => {
                return Err(invalid("nested_absmax or nested_quant_map missing".into()));
            }
            (None, Some(_)) => return Err(invalid("nested parts without nested_offset".into())),
        };
        parts.extend(more);
        let mut q = Quantized::made(scheme, parts, state.shape.clone(), state.dtype);
        q.extra = extra;
        Ok(q)
    }

    /// LLM.int8: `weight` (I8, (out, in)), `scb` (F32, (out)) and the optional `weight_format`
    /// (0, row-major: the only layout bitsandbytes still saves).
    pub fn bnb_int8(
        weight: (String, Tensor),
        scb: (String, Tensor),
        format: Option<(String, Tensor)>,
    ) -> Result<Quantized, QuantError> {
        let name = Scheme::BnbInt8.name();
        if weight.1.dtype() != DType::I8 {
            return Err(wrong_dtype(&weight, name, "I8"));
        }
        if scb.1.dtype() != DType::F32 {
            return Err(wrong_dtype(&scb, name, "F32"));
        }
        let &[out, _] = weight.1.shape() else {
            return Err(wrong_shape(&weight, weight.1.shape(), name));
        };
        if scb.1.shape() != [out] {
            return Err(wrong_shape(&scb, weight.1.shape(), name));
        }
        if let Some(f) = &format {
            let row_major = f.1.dtype() == DType::U8 && f.1.numel() == 1 && f.1.bytes() == [0];
            if !row_major {
                return Err(QuantError::State {
                    part: f.0.clone(),
                    why: "a tiled layout (col32, Turing or Ampere), not row-major".into(),
                });
            }
        }
        let shape = weight.1.shape().to_vec();
        let mut parts = vec![weight, scb];
        parts.extend(format);
        Ok(Quantized::made(Scheme::BnbInt8, parts, shape, DType::F32))
    }

    /// The absmax of each block in f32: stored, or dequantized from its 8-bit codes as
    /// `dequantize_blockwise` does (map[code] times the nested absmax in f32, cast to the nested
    /// dtype), plus the offset in that dtype.
    pub(super) fn absmax(&self) -> Vec<f32> {
        let floats = |t: &Tensor| t.to_f32_vec().expect("the constructor admits only floats");
        let Extra::Nested {
            blocksize,
            dtype,
            offset,
        } = self.extra
        else {
            return floats(&self.parts[1].1);
        };
        let (nested, map) = (floats(&self.parts[2].1), floats(&self.parts[3].1));
        self.parts[1]
            .1
            .bytes()
            .iter()
            .enumerate()
            .map(|(k, &code)| {
                let scaled = round_to(dtype, map[usize::from(code)] * nested[k / blocksize]);
                round_to(dtype, scaled + offset)
            })
            .collect()
    }
}
