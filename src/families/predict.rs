//! The next-token prediction at a sequence's last position: the `k` most likely ids, their logits
//! and their probabilities (softmax over the whole vocabulary).

use crate::tensor::simd::math::{lane_maxima, sum_exp};

/// The maxima [`lane_maxima`] gives, and the logits tested at once against the floor.
const LANES: usize = 16;

/// One candidate next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The token id.
    pub id: u32,
    /// Its logit.
    pub logit: f32,
    /// Its probability.
    pub prob: f32,
}

/// The `k` highest logits of `logits`, highest first (ties by lower id, as a stable sort gives).
///
/// The logit lens asks this of every position at every layer, over the whole vocabulary, so it
/// orders no index of it: one vectorized pass finds a floor (the k-th largest of 16 interleaved
/// maxima, each a logit, so no top-k logit is under it); one pass keeps the best `k` of the
/// logits not under it (most fail that one comparison), and its first is the maximum the softmax
/// shifts by; a last, vectorized, sums the exponentials.
#[must_use]
#[expect(
    clippy::needless_bitwise_bool,
    reason = "branch-free, so that the test of a block vectorizes"
)]
pub fn top_k(logits: &[f32], k: usize) -> Vec<Candidate> {
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    let floor = if k <= LANES {
        let mut maxima = lane_maxima(logits);
        maxima.sort_unstable_by(|a, b| b.total_cmp(a));
        maxima[k - 1]
    } else {
        f32::NEG_INFINITY
    };
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (b, block) in logits.chunks(LANES).enumerate() {
        // Most blocks lie wholly under the floor: one branch-free test (it vectorizes) passes
        // them by. A NaN is not under it, and the total order places it.
        if block.iter().fold(true, |under, &l| under & (l < floor)) {
            continue;
        }
        for (i, &logit) in block.iter().enumerate() {
            if logit >= floor || logit.is_nan() {
                offer(&mut best, k, logit, b * LANES + i);
            }
        }
    }
    let max = best[0].0;
    let sum = sum_exp(logits, max);
    best.into_iter()
        .map(|(logit, id)| Candidate {
            id: id as u32,
            logit,
            prob: (f64::from(logit - max).exp() / sum) as f32,
        })
        .collect()
}

/// Keeps `(value, index)` in `best`, the `k` largest offered so far in total order, largest first,
/// if it is one of them; offered in index order, equal values keep the lower index first (as a
/// stable sort does).
pub(crate) fn offer(best: &mut Vec<(f32, usize)>, k: usize, value: f32, index: usize) {
    if best.len() == k
        && best
            .last()
            .is_none_or(|(last, _)| value.total_cmp(last).is_le())
    {
        return;
    }
    let at = best.partition_point(|(b, _)| b.total_cmp(&value).is_ge());
    best.insert(at, (value, index));
    best.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::top_k;

    #[test]
    fn highest_first_with_probabilities() {
        let top = top_k(&[0.0, 2.0, 1.0, 2.0], 3);
        let ids: Vec<u32> = top.iter().map(|c| c.id).collect();
        assert_eq!(ids, [1, 3, 2]);
        let e = std::f32::consts::E;
        let sum = 1.0 + 2.0 * e * e + e;
        assert!((top[0].prob - e * e / sum).abs() < 1e-6);
        assert!(top_k(&[1.0], 5).len() == 1);
        assert!(top_k(&[1.0, 2.0], 0).is_empty());
        // Equal logits keep the lower id first, wherever they come.
        let ties: Vec<u32> = top_k(&[1.0, 3.0, 1.0, 3.0, 0.5, 1.0], 4)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ties, [1, 3, 0, 2]);
    }

    #[test]
    fn blocks_passed_by_lose_nothing_against_a_full_sort() {
        // Rising then falling, repeats and a late maximum: blocks skipped and blocks not.
        let logits: Vec<f32> = (0..5000u32)
            .map(|i| ((i * 7919) % 613) as f32 / 10.0 - 30.0)
            .chain([100.0, -0.0, 0.0, 61.2])
            .collect();
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        let ids: Vec<u32> = top_k(&logits, 7).iter().map(|c| c.id).collect();
        assert_eq!(ids, order[..7]);
        let sum: f64 = logits.iter().map(|&l| f64::from(l - 100.0).exp()).sum();
        assert!((f64::from(top_k(&logits, 1)[0].prob) - 1.0 / sum).abs() < 1e-7);
    }
}
