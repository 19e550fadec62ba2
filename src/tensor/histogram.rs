//! The distribution of a tensor's values: equal bins over [min, max], streamed in chunks, with NaN
//! and ±Inf counted apart (they have no place on the axis).

use super::DType;
use super::decode::{self, Undecodable};

/// Counts of finite values in equal-width bins over `[lo, hi]`, and of the values outside the axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Left edge of the first bin.
    pub lo: f64,
    /// Right edge of the last bin (included in it, so that the maximum is counted).
    pub hi: f64,
    /// Finite values per bin, left to right.
    pub counts: Vec<usize>,
    /// NaN values.
    pub nan: usize,
    /// +Inf values.
    pub pos_inf: usize,
    /// -Inf values.
    pub neg_inf: usize,
    /// Finite values outside `[lo, hi]` (none when the range came from the same tensor's stats).
    pub outside: usize,
}

/// Elements decoded per chunk, as the stats pass does, so that progress comes in steady steps.
const CHUNK: usize = 4096;

impl Histogram {
    /// An empty histogram of `bins` bins (at least one) over `[lo, hi]`.
    #[must_use]
    pub fn new(lo: f64, hi: f64, bins: usize) -> Self {
        Histogram {
            lo,
            hi,
            counts: vec![0; bins.max(1)],
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            outside: 0,
        }
    }

    /// Counts one value.
    pub fn add(&mut self, v: f64) {
        if v.is_nan() {
            self.nan += 1;
        } else if v == f64::INFINITY {
            self.pos_inf += 1;
        } else if v == f64::NEG_INFINITY {
            self.neg_inf += 1;
        } else if let Some(bin) = self.bin_of(v) {
            self.counts[bin] += 1;
        } else {
            self.outside += 1;
        }
    }

    /// The bin a finite value falls in; a zero-width range (a constant tensor) puts it in the first.
    #[must_use]
    pub fn bin_of(&self, v: f64) -> Option<usize> {
        if !(self.lo..=self.hi).contains(&v) {
            return None;
        }
        let width = self.hi - self.lo;
        if width <= 0.0 {
            return Some(0);
        }
        let last = self.counts.len() - 1;
        Some((((v - self.lo) / width * self.counts.len() as f64) as usize).min(last))
    }

    /// Finite values counted in bins.
    #[must_use]
    pub fn finite(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// The histogram of `numel` elements of `dtype` in `bytes`, over `[lo, hi]` in `bins` bins;
/// `progress` hears how many elements are done after each chunk.
pub fn histogram(
    dtype: DType,
    bytes: &[u8],
    numel: usize,
    (lo, hi): (f64, f64),
    bins: usize,
    mut progress: impl FnMut(usize),
) -> Result<Histogram, Undecodable> {
    if !decode::is_decodable(dtype) {
        return Err(Undecodable(dtype));
    }
    let mut hist = Histogram::new(lo, hi, bins);
    let mut buffer = Vec::with_capacity(CHUNK.min(numel));
    let mut first = 0;
    while first < numel {
        let count = CHUNK.min(numel - first);
        decode::decode_f64(dtype, bytes, first, count, &mut buffer)?;
        for &v in &buffer {
            hist.add(v);
        }
        first += count;
        progress(first);
    }
    Ok(hist)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::decode::encode_f32;

    #[test]
    fn values_fall_in_equal_bins_and_the_maximum_in_the_last() {
        let values = [
            0.0,
            0.1,
            0.5,
            0.99,
            1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        let h = histogram(
            DType::F32,
            &encode_f32(&values),
            values.len(),
            (0.0, 1.0),
            4,
            |_| {},
        )
        .unwrap();
        assert_eq!(h.counts, [2, 0, 1, 2]);
        assert_eq!((h.nan, h.pos_inf, h.neg_inf, h.outside), (1, 1, 1, 0));
        assert_eq!(h.finite(), 5);
    }

    #[test]
    fn a_constant_tensor_fills_one_bin_and_progress_reaches_the_end() {
        let values = vec![3.0f32; 10_000];
        let mut done = 0;
        let h = histogram(
            DType::F32,
            &encode_f32(&values),
            values.len(),
            (3.0, 3.0),
            8,
            |n| done = n,
        )
        .unwrap();
        assert_eq!(h.counts[0], 10_000);
        assert_eq!(done, 10_000);
        assert!(histogram(DType::F4, &[], 0, (0.0, 1.0), 4, |_| {}).is_err());
    }
}
