//! What `check` says of a quantized weight's scales and codes: zero scales (their group
//! dequantizes to zeros), non-finite ones, outliers (where the outliers of the weight were), and
//! groups whose codes crowd the extreme codes (where values were clamped).

use super::Quantized;

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
    /// Codes at one of the scheme's extreme codes.
    pub extreme_codes: usize,
    /// All the codes.
    pub codes: usize,
    /// Groups with more than [`SATURATED_SHARE`] of their codes at an extreme code.
    pub saturated: usize,
}

/// How far above the median scale a scale counts as an outlier.
pub const OUTLIER_SCALE: f64 = 20.0;

/// The share of a group's codes at the extremes above which it counts as saturated: a scale that
/// fits its group's largest value puts only that value and its neighbours there.
pub const SATURATED_SHARE: f64 = 0.25;

impl Quantized {
    /// Its scales (zero, non-finite, outlying) and its codes (at the extremes, per group).
    #[must_use]
    pub fn check_scales(&self) -> ScaleCheck {
        let scales: Vec<f64> = self.scale_values().into_iter().map(f64::from).collect();
        let mut magnitudes: Vec<f64> = scales
            .iter()
            .filter(|s| s.is_finite())
            .map(|s| s.abs())
            .collect();
        magnitudes.sort_by(f64::total_cmp);
        let median = magnitudes.get(magnitudes.len() / 2).copied().unwrap_or(0.0);
        // Per group: (codes at an extreme, codes).
        let mut groups = vec![(0usize, 0usize); scales.len()];
        let grouping = self.grouping();
        let codes = self.codes();
        for (i, &code) in codes.iter().enumerate() {
            let slot = &mut groups[grouping.index(i)];
            slot.0 += usize::from(self.is_extreme(code));
            slot.1 += 1;
        }
        ScaleCheck {
            zero: scales.iter().filter(|s| **s == 0.0).count(),
            nonfinite: scales.iter().filter(|s| !s.is_finite()).count(),
            outliers: magnitudes
                .iter()
                .filter(|m| median > 0.0 && **m > OUTLIER_SCALE * median)
                .count(),
            total: scales.len(),
            extreme_codes: groups.iter().map(|g| g.0).sum(),
            codes: codes.len(),
            saturated: groups
                .iter()
                .filter(|&&(extreme, all)| extreme as f64 > SATURATED_SHARE * all as f64)
                .count(),
        }
    }
}
