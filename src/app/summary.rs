//! A tensor's summary for the tensor pane: statistics, a fine histogram that any pane width can
//! group evenly, and quantiles read from that histogram. A pure function of a tensor, shared by
//! the update (small tensors are summarized at once, on the key thread) and the worker (the rest).

use super::job::{QUANTILES, Summary};
use crate::tensor::Tensor;
use crate::tensor::decode::Undecodable;
use crate::tensor::histogram::{self, Histogram};

/// Fine bins: 2520 is divisible by every whole number up to 10 and by most column counts a pane
/// has (12, 14, 15, 18, 20, 21, 24, 28, 30, 35, 36, 40, 42, 45, 56, 60, 63, 70, 72, 84, 90…), so
/// the bars group the same number of bins each and flat data draws flat.
pub const FINE_BINS: usize = 2520;

/// Statistics then histogram of `tensor` (two fast streaming passes, `progress` from 0 to 1 over
/// both), and the quantiles read from the histogram.
pub fn summarize(tensor: &Tensor, progress: &mut dyn FnMut(f64)) -> Result<Summary, Undecodable> {
    let (stats, histogram) = histogram::summary(tensor, FINE_BINS, progress)?;
    let quantiles = quantiles(&histogram);
    Ok(Summary {
        stats,
        histogram,
        quantiles,
    })
}

/// The [`QUANTILES`] of the binned values: each at the point of its bin where the cumulative
/// count reaches it, counts taken as spread evenly within a bin (so off by at most one bin's
/// width, (max - min) / 2520). `None` without finite values.
#[must_use]
pub fn quantiles(h: &Histogram) -> Option<[f64; 7]> {
    let total = h.finite();
    if total == 0 {
        return None;
    }
    let width = (h.hi - h.lo) / h.counts.len() as f64;
    let mut out = [0.0; 7];
    for (slot, percent) in out.iter_mut().zip(QUANTILES) {
        let rank = percent / 100.0 * total as f64;
        let mut below = 0usize;
        *slot = h.hi;
        for (i, &n) in h.counts.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                *slot = h.lo + width * (i as f64 + within);
                break;
            }
            below += n;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{quantiles, summarize};
    use crate::tensor::Tensor;

    #[test]
    fn quantiles_of_evenly_spread_values_are_where_they_should_be() {
        let values: Vec<f32> = (0..=10_000).map(|i| i as f32 / 10_000.0).collect();
        let s = summarize(&Tensor::from_f32(vec![values.len()], &values), &mut |_| {}).unwrap();
        let q = s.quantiles.unwrap();
        for (got, want) in q.iter().zip([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]) {
            assert!((got - want).abs() < 1.0 / 2520.0 + 1e-4, "{got} vs {want}");
        }
        let empty = summarize(&Tensor::from_f32(vec![0], &[]), &mut |_| {}).unwrap();
        assert_eq!(quantiles(&empty.histogram), None);
    }
}
