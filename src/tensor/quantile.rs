//! Quantiles of a tensor's finite values: exact, as `torch.quantile` computes them (linear
//! interpolation between the two order statistics around `q·(n − 1)`), for every tensor whose
//! values fit a selection pass in memory; read from a histogram above that, with the error bound
//! (one bin's width) said beside them.

use super::decode::{self, Undecodable};
use super::histogram::Histogram;
use super::{DType, Tensor};

/// The largest tensor whose quantiles are exact: its finite values are copied (as f64, 128 MiB at
/// this size) and selected in place. Above it, the histogram answers, within one bin.
pub const EXACT_LIMIT: usize = 16 << 20;

/// Quantiles and how far each may be from the exact one.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantiles {
    /// One value per asked percent, in the order asked.
    pub values: Vec<f64>,
    /// The most any value may differ from `torch.quantile`'s: 0 when exact, one bin's width when
    /// read from a histogram.
    pub bound: f64,
}

impl Quantiles {
    /// Whether the values are the exact ones.
    #[must_use]
    pub fn exact(&self) -> bool {
        self.bound == 0.0
    }
}

/// The `percents` (0 to 100) of `tensor`'s finite values: exact up to [`EXACT_LIMIT`] elements,
/// else read from `histogram` (the tensor's, over its finite range). `None` without a finite value.
///
/// NaN and ±Inf are left out, as the statistics leave them out: on a tensor of finite values
/// this is `torch.quantile`, on one holding NaN it is `torch.nanquantile` of the finite values.
pub fn quantiles(
    tensor: &Tensor,
    histogram: &Histogram,
    percents: &[f64],
) -> Result<Option<Quantiles>, Undecodable> {
    if tensor.numel() > EXACT_LIMIT {
        return Ok(from_histogram(histogram, percents));
    }
    let mut values = finite_values(tensor.dtype(), tensor.bytes(), tensor.numel())?;
    Ok(exact(&mut values, percents).map(|values| Quantiles { values, bound: 0.0 }))
}

/// Every finite value of `numel` elements of `dtype` in `bytes`, as f64.
fn finite_values(dtype: DType, bytes: &[u8], numel: usize) -> Result<Vec<f64>, Undecodable> {
    const CHUNK: usize = 4096;
    let mut out = Vec::with_capacity(numel);
    let mut buffer = Vec::with_capacity(CHUNK.min(numel));
    for first in (0..numel).step_by(CHUNK) {
        decode::decode_f64(dtype, bytes, first, CHUNK.min(numel - first), &mut buffer)?;
        out.extend(buffer.iter().copied().filter(|v| v.is_finite()));
    }
    Ok(out)
}

/// The exact quantiles of `values` (finite, reordered in place), as `torch.quantile` with its
/// default `interpolation='linear'`; `None` when there is none.
#[must_use]
pub fn exact(values: &mut [f64], percents: &[f64]) -> Option<Vec<f64>> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    // Each percent needs the order statistics at ⌊r⌋ and ⌈r⌉, r = q·(n − 1). Selected in rising
    // order, each selection only searches what lies above the previous one.
    let ranks: Vec<f64> = percents
        .iter()
        .map(|p| (p / 100.0).clamp(0.0, 1.0) * (n - 1) as f64)
        .collect();
    let mut wanted: Vec<usize> = ranks
        .iter()
        .flat_map(|r| [r.floor() as usize, r.ceil() as usize])
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut order = Vec::with_capacity(wanted.len());
    let mut start = 0;
    for &k in &wanted {
        let (_, nth, _) = values[start..].select_nth_unstable_by(k - start, f64::total_cmp);
        order.push((k, *nth));
        start = k;
    }
    let at = |k: usize| {
        order[order
            .binary_search_by_key(&k, |&(i, _)| i)
            .expect("selected")]
        .1
    };
    Some(
        ranks
            .iter()
            .map(|&r| lerp(at(r.floor() as usize), at(r.ceil() as usize), r - r.floor()))
            .collect(),
    )
}

/// `torch.lerp`'s formula: from the nearer end, so that weight 0 and 1 give the ends exactly.
fn lerp(start: f64, end: f64, weight: f64) -> f64 {
    if weight < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

/// The `percents` read from `h`: each at the point of its bin where the cumulative count reaches
/// it, counts taken as spread evenly within a bin, so within one bin's width of the exact value.
/// `None` without finite values.
#[must_use]
pub fn from_histogram(h: &Histogram, percents: &[f64]) -> Option<Quantiles> {
    let total = h.finite();
    if total == 0 {
        return None;
    }
    let width = (h.hi - h.lo) / h.counts.len() as f64;
    let values = percents
        .iter()
        .map(|percent| {
            let rank = percent / 100.0 * total as f64;
            let mut below = 0usize;
            for (i, &n) in h.counts.iter().enumerate() {
                if n > 0 && (below + n) as f64 >= rank {
                    let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                    return h.lo + width * (i as f64 + within);
                }
                below += n;
            }
            h.hi
        })
        .collect();
    Some(Quantiles {
        values,
        bound: width,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_quantiles_interpolate_between_order_statistics() {
        // torch.quantile(torch.tensor([3., 1., 4., 1., 5.]), [0, .25, .5, .9, 1]) = 1, 1, 3, 4.6, 5.
        let mut values = [3.0, 1.0, 4.0, 1.0, 5.0];
        let q = exact(&mut values, &[0.0, 25.0, 50.0, 90.0, 100.0]).unwrap();
        assert_eq!(q[..3], [1.0, 1.0, 3.0]);
        assert!((q[3] - 4.6).abs() < 1e-12 && q[4] == 5.0, "{q:?}");
        assert_eq!(exact(&mut [7.0], &[1.0, 99.0]), Some(vec![7.0, 7.0]));
        assert_eq!(exact(&mut [], &[50.0]), None);
    }

    #[test]
    fn a_large_tensor_reads_its_histogram_and_says_the_bin_width() {
        let mut h = Histogram::new(0.0, 1.0, 10);
        for i in 0..=100 {
            h.add(f64::from(i) / 100.0);
        }
        let q = from_histogram(&h, &[50.0]).unwrap();
        assert!((q.bound - 0.1).abs() < 1e-15 && !q.exact());
        assert!((q.values[0] - 0.5).abs() <= q.bound, "{q:?}");
        assert_eq!(from_histogram(&Histogram::new(0.0, 0.0, 4), &[50.0]), None);
    }
}
