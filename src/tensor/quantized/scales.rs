//! What `check` says of a quantized weight's scales: zero ones (their group dequantizes to zeros),
//! non-finite ones, and outliers (where the outliers of the weight were).

use super::{Quantized, Scheme};

/// What `check` says of a quantized weight's scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScaleCheck {
    /// Scales that are zero: their group dequantizes to zeros.
    pub zero: usize,
    /// Scales that are NaN or infinite (MXFP4: the exponent 0xff).
    pub nonfinite: usize,
    /// Scales over [`OUTLIER_SCALE`] times the median's magnitude: where the outliers were.
    pub outliers: usize,
    /// All the scales.
    pub total: usize,
}

/// How far above the median scale a scale counts as an outlier.
pub const OUTLIER_SCALE: f64 = 20.0;

impl Quantized {
    /// Its scales: zero, non-finite, and outlying ones.
    #[must_use]
    pub fn check_scales(&self) -> ScaleCheck {
        let (part, exponents) = match self.scheme {
            Scheme::Gptq { .. } | Scheme::Awq { .. } => (&self.parts[2].1, false),
            Scheme::Mxfp4 => (&self.parts[1].1, true),
            _ => (&self.parts[1].1, false),
        };
        let scales: Vec<f64> = if exponents {
            part.bytes()
                .iter()
                .map(|&e| {
                    if e == 0xff {
                        f64::NAN
                    } else {
                        2f64.powi(i32::from(e) - 127)
                    }
                })
                .collect()
        } else {
            part.to_f32_vec()
                .unwrap_or_default()
                .into_iter()
                .map(f64::from)
                .collect()
        };
        let mut magnitudes: Vec<f64> = scales
            .iter()
            .filter(|s| s.is_finite())
            .map(|s| s.abs())
            .collect();
        magnitudes.sort_by(f64::total_cmp);
        let median = magnitudes.get(magnitudes.len() / 2).copied().unwrap_or(0.0);
        ScaleCheck {
            zero: scales.iter().filter(|s| **s == 0.0).count(),
            nonfinite: scales.iter().filter(|s| !s.is_finite()).count(),
            outliers: magnitudes
                .iter()
                .filter(|m| median > 0.0 && **m > OUTLIER_SCALE * median)
                .count(),
            total: scales.len(),
        }
    }
}
