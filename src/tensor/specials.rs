//! NaN, ±Inf and zeros counted straight from a float tensor's bits: what a check that asks only
//! "is anything broken or empty here" needs, at memory speed, without the statistics' f64 sums
//! (an adapter's coverage reads every LoRA tensor of a 7B model this way).

use super::DType;
use super::decode::Undecodable;
use super::stats;

/// How many values are NaN, infinite, or zero (either sign), of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Specials {
    /// Values counted.
    pub total: usize,
    /// NaN values.
    pub nan: usize,
    /// Infinite values of either sign.
    pub inf: usize,
    /// Values equal to zero.
    pub zeros: usize,
}

/// The counts over the `numel` values of `dtype` in `bytes`: from the bits for F32, BF16 and F16
/// (a value is NaN when its exponent is all ones and its mantissa not zero, infinite when the
/// mantissa is zero, zero when all but the sign is), through the statistics pass for the others.
///
/// # Panics
/// When `bytes` is not exactly `numel` values of `dtype`.
pub fn specials(dtype: DType, bytes: &[u8], numel: usize) -> Result<Specials, Undecodable> {
    let (width, magnitude, exponent) = match dtype {
        DType::F32 => (4, 0x7fff_ffff, 0x7f80_0000),
        DType::BF16 => (2, 0x7fff, 0x7f80),
        DType::F16 => (2, 0x7fff, 0x7c00),
        _ => {
            let s = stats::stats(dtype, bytes, numel)?;
            return Ok(Specials {
                total: s.total(),
                nan: s.nan,
                inf: s.inf,
                zeros: s.zeros,
            });
        }
    };
    assert_eq!(
        numel.checked_mul(width),
        Some(bytes.len()),
        "specials: {numel} values of {dtype} do not fill {} bytes",
        bytes.len()
    );
    let mut s = Specials {
        total: numel,
        ..Specials::default()
    };
    let mut add = |bits: u32| {
        let bits = bits & magnitude;
        s.nan += usize::from(bits > exponent);
        s.inf += usize::from(bits == exponent);
        s.zeros += usize::from(bits == 0);
    };
    if width == 4 {
        for c in bytes.chunks_exact(4) {
            add(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
    } else {
        for c in bytes.chunks_exact(2) {
            add(u32::from(u16::from_le_bytes([c[0], c[1]])));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::decode::encode_as;

    #[test]
    fn the_bits_count_as_the_statistics_do() {
        let values = [
            0.0,
            -0.0,
            1.5,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            -65504.0,
            f32::MAX,
        ];
        for dtype in [DType::F32, DType::BF16, DType::F16, DType::F64] {
            let bytes = encode_as(dtype, &values).unwrap();
            let s = stats::stats(dtype, &bytes, values.len()).unwrap();
            let got = specials(dtype, &bytes, values.len()).unwrap();
            assert_eq!(
                got,
                Specials {
                    total: s.total(),
                    nan: s.nan,
                    inf: s.inf,
                    zeros: s.zeros
                },
                "{dtype}"
            );
            assert_eq!((got.nan, got.total), (2, 10), "{dtype}");
        }
    }
}
