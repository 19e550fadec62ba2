//! Summary statistics of a tensor in one streaming, NaN-aware pass, accumulated in f64.

use super::DType;
use super::decode::{self, Undecodable};

/// What `show` reports about a tensor's values. NaN and ±Inf are counted and left out of the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Finite values seen.
    pub finite: usize,
    /// Smallest finite value (NaN when there is none).
    pub min: f64,
    /// Largest finite value (NaN when there is none).
    pub max: f64,
    /// Mean of the finite values.
    pub mean: f64,
    /// Unbiased (n-1) standard deviation of the finite values, as `torch.std` computes by default.
    pub std: f64,
    /// Values equal to zero.
    pub zeros: usize,
    /// NaN values.
    pub nan: usize,
    /// Infinite values of either sign.
    pub inf: usize,
}

/// Running moments of one chunk, merged with Chan's formula so that chunks may come in any order.
#[derive(Debug, Clone, Copy)]
struct Moments {
    count: usize,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    zeros: usize,
    nan: usize,
    inf: usize,
}

impl Moments {
    const EMPTY: Moments = Moments {
        count: 0,
        mean: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        zeros: 0,
        nan: 0,
        inf: 0,
    };

    /// Two passes over a chunk that sits in cache: the mean first, then squared deviations from it.
    fn of_chunk(values: &[f64]) -> Moments {
        let mut m = Moments::EMPTY;
        let mut sum = 0.0;
        for &v in values {
            if v.is_nan() {
                m.nan += 1;
            } else if v.is_infinite() {
                m.inf += 1;
            } else {
                m.count += 1;
                sum += v;
                m.min = m.min.min(v);
                m.max = m.max.max(v);
                m.zeros += usize::from(v == 0.0);
            }
        }
        if m.count > 0 {
            m.mean = sum / m.count as f64;
            m.m2 = values
                .iter()
                .filter(|v| v.is_finite())
                .map(|v| (v - m.mean) * (v - m.mean))
                .sum();
        }
        m
    }

    fn merge(self, other: Moments) -> Moments {
        let count = self.count + other.count;
        let (mean, m2) = if count == 0 {
            (0.0, 0.0)
        } else {
            let delta = other.mean - self.mean;
            let weight = other.count as f64 / count as f64;
            (
                self.mean + delta * weight,
                self.m2 + other.m2 + delta * delta * self.count as f64 * weight,
            )
        };
        Moments {
            count,
            mean,
            m2,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            zeros: self.zeros + other.zeros,
            nan: self.nan + other.nan,
            inf: self.inf + other.inf,
        }
    }

    fn finish(self) -> Stats {
        let none = self.count == 0;
        Stats {
            finite: self.count,
            min: if none { f64::NAN } else { self.min },
            max: if none { f64::NAN } else { self.max },
            mean: if none { f64::NAN } else { self.mean },
            std: if self.count < 2 {
                f64::NAN
            } else {
                (self.m2 / (self.count - 1) as f64).sqrt()
            },
            zeros: self.zeros,
            nan: self.nan,
            inf: self.inf,
        }
    }
}

/// Elements decoded per chunk: small enough to stay in L1/L2, big enough to amortize the loop.
const CHUNK: usize = 4096;

/// The stats of `numel` elements of `dtype` stored in `bytes`.
pub fn stats(dtype: DType, bytes: &[u8], numel: usize) -> Result<Stats, Undecodable> {
    stats_with_progress(dtype, bytes, numel, |_| {})
}

/// [`stats`], telling `progress` how many elements are done after each chunk, so that a caller
/// streaming a 1 GiB tensor can show how far it got.
pub fn stats_with_progress(
    dtype: DType,
    bytes: &[u8],
    numel: usize,
    mut progress: impl FnMut(usize),
) -> Result<Stats, Undecodable> {
    let mut buffer = Vec::with_capacity(CHUNK.min(numel));
    let mut total = Moments::EMPTY;
    let mut first = 0;
    while first < numel {
        let count = CHUNK.min(numel - first);
        decode::decode_f64(dtype, bytes, first, count, &mut buffer)?;
        total = total.merge(Moments::of_chunk(&buffer));
        first += count;
        progress(first);
    }
    if numel == 0 && !decode::is_decodable(dtype) {
        return Err(Undecodable(dtype));
    }
    Ok(total.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::decode::encode_f32;

    #[test]
    fn nan_and_inf_are_counted_and_left_out() {
        let values = [1.0, f32::NAN, 3.0, f32::INFINITY, 0.0, f32::NEG_INFINITY];
        let s = stats(DType::F32, &encode_f32(&values), values.len()).unwrap();
        assert_eq!((s.nan, s.inf, s.zeros, s.finite), (1, 2, 1, 3));
        assert_eq!((s.min, s.max, s.mean), (0.0, 3.0, 4.0 / 3.0));
        // Unbiased: sum of squared deviations 14/3 over n-1 = 2.
        assert!((s.std - (7.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn chunks_merge_to_the_exact_moments() {
        let values: Vec<f32> = (0..10_001).map(|i| (i % 7) as f32 - 3.0 + 1e3).collect();
        let s = stats(DType::F32, &encode_f32(&values), values.len()).unwrap();
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        assert!((s.mean - mean).abs() < 1e-9);
        assert!((s.std - var.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn an_empty_tensor_has_no_moments() {
        let s = stats(DType::F32, &[], 0).unwrap();
        assert_eq!(s.finite, 0);
        assert!(s.mean.is_nan() && s.std.is_nan() && s.min.is_nan());
    }
}
