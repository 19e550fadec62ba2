//! A tensor's summary for the tensor pane: statistics, a fine histogram that any pane width can
//! group evenly, and its quantiles.

use super::job::{QUANTILES, Summary};
use crate::tensor::Tensor;
use crate::tensor::decode::Undecodable;
use crate::tensor::summary;

/// Fine bins: 2520 is divisible by every whole number up to 10 and by most column counts a pane
/// has (12, 14, 15, 18, 20, 21, 24, 28, 30, 35, 36, 40, 42, 45, 56, 60, 63, 70, 72, 84, 90…), so
/// the bars group the same number of bins each and flat data draws flat.
pub const FINE_BINS: usize = 2520;

/// Statistics, histogram and [`QUANTILES`] of `tensor` (`progress` from 0 to 1): the quantiles
/// exact up to `tensor::quantile::EXACT_LIMIT` elements, else read from the fine histogram.
pub fn summarize(tensor: &Tensor, progress: &mut dyn FnMut(f64)) -> Result<Summary, Undecodable> {
    summary::summarize(tensor, FINE_BINS, &QUANTILES, progress)
}

/// How many screen columns the histogram takes at most `width` columns: the most that divides
/// the bins evenly, and for a small tensor no more than about twice √n, so that a few values do
/// not look like a sparse comb.
#[must_use]
pub fn columns(bins: usize, numel: usize, width: usize) -> usize {
    let cap = width.min(((numel as f64).sqrt() * 2.0).ceil().max(8.0) as usize);
    (1..=cap.max(1))
        .rev()
        .find(|&c| bins.is_multiple_of(c))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::{FINE_BINS, columns, summarize};
    use crate::tensor::Tensor;

    #[test]
    fn columns_divide_the_bins_evenly() {
        assert_eq!(columns(FINE_BINS, 1 << 20, 45), 45);
        assert_eq!(columns(FINE_BINS, 1 << 20, 78), 72);
        assert_eq!(
            columns(FINE_BINS, 32, 45),
            12,
            "2·√32 = 11.3, then 12 divides 2520"
        );
        assert_eq!(columns(FINE_BINS, 1 << 20, 0), 1);
    }

    #[test]
    fn quantiles_are_torchs() {
        // torch.quantile(torch.arange(10001) / 10000, [.01, .05, .25, .5, .75, .95, .99]).
        let values: Vec<f32> = (0..=10_000).map(|i| i as f32 / 10_000.0).collect();
        let s = summarize(&Tensor::from_f32(vec![values.len()], &values), &mut |_| {}).unwrap();
        let q = s.quantiles.unwrap();
        assert!(q.exact());
        for (got, want) in q
            .values
            .iter()
            .zip([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
        {
            assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        }
        let empty = summarize(&Tensor::from_f32(vec![0], &[]), &mut |_| {}).unwrap();
        assert_eq!(empty.quantiles, None);
    }
}
