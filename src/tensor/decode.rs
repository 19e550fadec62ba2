//! Turning little-endian bytes of any dtype into numbers, and numbers back into bytes.
//!
//! Every float format is decoded exactly (each of its values is representable in f64), so what is
//! shown is what PyTorch gets when it loads the file. A ggml quantized type is dequantized block
//! by block, exactly as ggml computes it in f32.

use half::slice::HalfFloatSliceExt as _;
use half::{bf16, f16};
use thiserror::Error;

use super::DType;

/// A dtype whose values paramscope does not turn into numbers.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("values of dtype {0} cannot be decoded")]
pub struct Undecodable(pub DType);

/// Whether values of `dtype` can be decoded to real numbers (for statistics).
#[must_use]
pub fn is_decodable(dtype: DType) -> bool {
    !matches!(
        dtype,
        DType::F4 | DType::F6_E2M3 | DType::F6_E3M2 | DType::C64
    )
}

/// One value exactly as PyTorch holds it after loading: integers in full, floats, complex pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// A BOOL element.
    Bool(bool),
    /// Any integer dtype, exact (i128 holds both I64 and U64).
    Int(i128),
    /// Any real float dtype, exactly (every format's values are f64 values).
    Float(f64),
    /// A C64 element: real and imaginary parts.
    Complex(f32, f32),
}

/// Decodes the `count` elements from element `first` as exact scalars (those of the range that
/// lie inside `bytes`: a range past the end gives fewer, or none).
///
/// The packed sub-byte floats (F4, F6_*) are not decoded: their bit order within a byte could not be
/// confirmed against a file PyTorch reads as numbers (torch cannot convert `float4_e2m1fn_x2`).
pub fn decode_scalars(
    dtype: DType,
    bytes: &[u8],
    first: usize,
    count: usize,
) -> Result<Vec<Scalar>, Undecodable> {
    if matches!(dtype, DType::F4 | DType::F6_E2M3 | DType::F6_E3M2) {
        return Err(Undecodable(dtype));
    }
    if let DType::Ggml(q) = dtype {
        let mut values = Vec::new();
        q.dequantize_range(bytes, first, count, &mut values);
        return Ok(values
            .into_iter()
            .map(|v| Scalar::Float(f64::from(v)))
            .collect());
    }
    let size = dtype.bits() / 8;
    Ok(window(bytes, size, first, count)
        .chunks_exact(size)
        .map(|e| match dtype {
            DType::BOOL => Scalar::Bool(e[0] != 0),
            DType::U8 => Scalar::Int(i128::from(e[0])),
            DType::I8 => Scalar::Int(i128::from(e[0] as i8)),
            DType::I16 => Scalar::Int(i128::from(i16::from_le_bytes([e[0], e[1]]))),
            DType::U16 => Scalar::Int(i128::from(u16::from_le_bytes([e[0], e[1]]))),
            DType::I32 => Scalar::Int(i128::from(i32::from_le_bytes(
                e.try_into().expect("4 bytes"),
            ))),
            DType::U32 => Scalar::Int(i128::from(u32::from_le_bytes(
                e.try_into().expect("4 bytes"),
            ))),
            DType::I64 => Scalar::Int(i128::from(i64::from_le_bytes(
                e.try_into().expect("8 bytes"),
            ))),
            DType::U64 => Scalar::Int(i128::from(u64::from_le_bytes(
                e.try_into().expect("8 bytes"),
            ))),
            DType::C64 => Scalar::Complex(
                f32::from_le_bytes(e[..4].try_into().expect("4 bytes")),
                f32::from_le_bytes(e[4..].try_into().expect("4 bytes")),
            ),
            _ => Scalar::Float(element_f64(dtype, e)),
        })
        .collect())
}

/// Decodes the `count` elements starting at element `first` into `out` (cleared first).
///
/// `bytes` holds the whole tensor; only the part of the range inside it is decoded, so a range
/// past the end leaves `out` shorter than `count`, or empty.
pub fn decode_f64(
    dtype: DType,
    bytes: &[u8],
    first: usize,
    count: usize,
    out: &mut Vec<f64>,
) -> Result<(), Undecodable> {
    out.clear();
    if !is_decodable(dtype) {
        return Err(Undecodable(dtype));
    }
    if let DType::Ggml(q) = dtype {
        let mut values = Vec::with_capacity(count.min(bytes.len()));
        q.dequantize_range(bytes, first, count, &mut values);
        out.extend(values.into_iter().map(f64::from));
        return Ok(());
    }
    let size = dtype.bits() / 8;
    out.extend(
        window(bytes, size, first, count)
            .chunks_exact(size)
            .map(|e| element_f64(dtype, e)),
    );
    Ok(())
}

/// The bytes of the `count` elements of `size` bytes from element `first`, cut to what `bytes`
/// holds: a range past the end yields fewer elements, or none, rather than a panic.
fn window(bytes: &[u8], size: usize, first: usize, count: usize) -> &[u8] {
    let start = first.saturating_mul(size).min(bytes.len());
    let end = first
        .saturating_add(count)
        .saturating_mul(size)
        .min(bytes.len());
    &bytes[start..end.max(start)]
}

/// F16 or BF16 little-endian `bytes` appended to `out` as f32 (exactly).
///
/// # Panics
/// For any other dtype.
pub fn append_f32(dtype: DType, bytes: &[u8], out: &mut Vec<f32>) {
    match dtype {
        // Through `half`'s slice conversion, eight at a time with F16C where the CPU has it: one
        // value at a time, it asks whether the CPU has F16C at each, and an F16 tensor's
        // statistics ran at 0.6x a BF16 one's.
        DType::F16 => {
            const BLOCK: usize = 256;
            let (mut halves, mut floats) = ([f16::ZERO; BLOCK], [0f32; BLOCK]);
            for block in bytes.chunks(2 * BLOCK) {
                let n = block.len() / 2;
                for (h, c) in halves.iter_mut().zip(block.chunks_exact(2)) {
                    *h = f16::from_le_bytes([c[0], c[1]]);
                }
                halves[..n].convert_to_f32_slice(&mut floats[..n]);
                out.extend_from_slice(&floats[..n]);
            }
        }
        // A BF16 is the top half of the f32 of the same value.
        DType::BF16 => out.extend(
            (bytes.chunks_exact(2)).map(|c| f32::from_bits(u32::from_le_bytes([0, 0, c[0], c[1]]))),
        ),
        _ => panic!("append_f32: {dtype} is not a 16-bit float"),
    }
}

/// Decodes every element to f32 (64-bit integers and F64 are rounded; quantized types are
/// dequantized, which ggml does in f32, so exactly).
pub fn to_f32(dtype: DType, bytes: &[u8], numel: usize) -> Result<Vec<f32>, Undecodable> {
    match dtype {
        DType::F32 => {
            return Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect());
        }
        DType::Ggml(q) => {
            let mut values = Vec::with_capacity(numel);
            q.dequantize_range(bytes, 0, numel, &mut values);
            return Ok(values);
        }
        _ => {}
    }
    let mut wide = Vec::with_capacity(numel);
    decode_f64(dtype, bytes, 0, numel, &mut wide)?;
    Ok(wide.into_iter().map(|v| v as f32).collect())
}

/// One element of a byte-aligned dtype, from its little-endian bytes.
fn element_f64(dtype: DType, e: &[u8]) -> f64 {
    match dtype {
        DType::BOOL => f64::from(u8::from(e[0] != 0)),
        DType::U8 => f64::from(e[0]),
        DType::I8 => f64::from(e[0] as i8),
        DType::F8_E4M3 => f8_e4m3fn(e[0]),
        DType::F8_E5M2 => f8_e5m2(e[0]),
        DType::F8_E4M3FNUZ => f8_fnuz(e[0], 3, 8),
        DType::F8_E5M2FNUZ => f8_fnuz(e[0], 2, 16),
        DType::F8_E8M0 => f8_e8m0(e[0]),
        DType::I16 => f64::from(i16::from_le_bytes([e[0], e[1]])),
        DType::U16 => f64::from(u16::from_le_bytes([e[0], e[1]])),
        DType::F16 => f16::from_le_bytes([e[0], e[1]]).to_f64(),
        DType::BF16 => bf16::from_le_bytes([e[0], e[1]]).to_f64(),
        DType::I32 => f64::from(i32::from_le_bytes([e[0], e[1], e[2], e[3]])),
        DType::U32 => f64::from(u32::from_le_bytes([e[0], e[1], e[2], e[3]])),
        DType::F32 => f64::from(f32::from_le_bytes([e[0], e[1], e[2], e[3]])),
        DType::F64 => f64::from_le_bytes(e.try_into().expect("8 bytes")),
        DType::I64 => i64::from_le_bytes(e.try_into().expect("8 bytes")) as f64,
        DType::U64 => u64::from_le_bytes(e.try_into().expect("8 bytes")) as f64,
        DType::F4 | DType::F6_E2M3 | DType::F6_E3M2 | DType::C64 | DType::Ggml(_) => {
            unreachable!("checked by is_decodable, dequantized by the caller")
        }
    }
}

/// A float with `man_bits` of mantissa and exponent bias `bias`, IEEE subnormals included, from its
/// sign, biased exponent and mantissa.
fn compose(negative: bool, exponent: i32, mantissa: u32, man_bits: u32, bias: i32) -> f64 {
    let scale = f64::from(1u32 << man_bits);
    let magnitude = if exponent == 0 {
        f64::from(mantissa) / scale * 2f64.powi(1 - bias)
    } else {
        (1.0 + f64::from(mantissa) / scale) * 2f64.powi(exponent - bias)
    };
    if negative { -magnitude } else { magnitude }
}

/// `float8_e4m3fn`: bias 7, no infinities, NaN only at exponent and mantissa all ones.
fn f8_e4m3fn(b: u8) -> f64 {
    let (exponent, mantissa) = (i32::from((b >> 3) & 0xf), u32::from(b & 0x7));
    if exponent == 0xf && mantissa == 0x7 {
        return f64::NAN;
    }
    compose(b & 0x80 != 0, exponent, mantissa, 3, 7)
}

/// `float8_e5m2`: IEEE-style with bias 15, infinities and NaNs.
fn f8_e5m2(b: u8) -> f64 {
    f16::from_bits(u16::from(b) << 8).to_f64()
}

/// The AMD "fnuz" 8-bit floats: no infinities, no negative zero, 0x80 is the only NaN.
fn f8_fnuz(b: u8, man_bits: u32, bias: i32) -> f64 {
    if b == 0x80 {
        return f64::NAN;
    }
    let exponent = i32::from((b & 0x7f) >> man_bits);
    let mantissa = u32::from(b) & ((1 << man_bits) - 1);
    compose(b & 0x80 != 0, exponent, mantissa, man_bits, bias)
}

/// `float8_e8m0fnu`: an unsigned power of two, 2^(b-127); 0xff is NaN.
fn f8_e8m0(b: u8) -> f64 {
    if b == 0xff {
        f64::NAN
    } else {
        2f64.powi(i32::from(b) - 127)
    }
}

/// F32 values as little-endian bytes.
#[must_use]
pub fn encode_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Values rounded to `dtype` (round to nearest even) as little-endian bytes.
///
/// Only the float types a re-init writes are supported: F16, BF16, F32, F64.
pub fn encode_as(dtype: DType, values: &[f32]) -> Result<Vec<u8>, Undecodable> {
    let width = match dtype {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => dtype.bits() / 8,
        other => return Err(Undecodable(other)),
    };
    let mut out = vec![0; values.len() * width];
    encode_into(dtype, values, &mut out)?;
    Ok(out)
}

/// [`encode_as`] into `out`, which holds `values.len()` elements of `dtype` (a part of a larger
/// buffer, written by one of several threads).
pub fn encode_into(dtype: DType, values: &[f32], out: &mut [u8]) -> Result<(), Undecodable> {
    fn write<const N: usize>(values: &[f32], out: &mut [u8], f: impl Fn(f32) -> [u8; N]) {
        for (v, o) in values.iter().zip(out.chunks_exact_mut(N)) {
            o.copy_from_slice(&f(*v));
        }
    }
    match dtype {
        DType::F32 => write(values, out, f32::to_le_bytes),
        DType::F64 => write(values, out, |v| f64::from(v).to_le_bytes()),
        DType::F16 => write(values, out, |v| f16::from_f32(v).to_le_bytes()),
        DType::BF16 => write(values, out, |v| bf16::from_f32(v).to_le_bytes()),
        other => return Err(Undecodable(other)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::{DType, append_f32};

    /// Every F16 bit pattern, across the conversion's blocks and an odd byte left over, gives the
    /// value one conversion at a time gives (NaN as NaN).
    #[test]
    fn every_f16_converts_as_one_at_a_time() {
        let bytes: Vec<u8> = (0..=u16::MAX)
            .flat_map(u16::to_le_bytes)
            .chain([7])
            .collect();
        let mut out = vec![-1.0];
        append_f32(DType::F16, &bytes, &mut out);
        assert_eq!(out.len(), 1 + 65536);
        for (h, got) in (0..=u16::MAX).zip(&out[1..]) {
            let want = f16::from_bits(h).to_f32();
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#06x}: {got} against {want}"
            );
        }
    }
}
