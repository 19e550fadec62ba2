//! A tensor's summary for the tensor pane: statistics, a fine histogram that any pane width can
//! group evenly, and its quantiles. A pure function of a tensor, shared by the update (small
//! tensors are summarized at once, on the key thread) and the worker (the rest).

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

#[cfg(test)]
mod tests {
    use super::summarize;
    use crate::tensor::Tensor;

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
