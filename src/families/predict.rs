//! The next-token prediction at a sequence's last position: the `k` most likely ids, their logits
//! and their probabilities (softmax over the whole vocabulary).

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
/// One pass keeps the best `k` so far (most logits lose to the k-th at once), rather than ordering
/// an index of the whole vocabulary: the logit lens asks this of every position at every layer.
#[must_use]
pub fn top_k(logits: &[f32], k: usize) -> Vec<Candidate> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let k = k.min(logits.len());
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (id, &logit) in logits.iter().enumerate() {
        if k == 0 || (best.len() == k && logit.total_cmp(&best[k - 1].0).is_le()) {
            continue;
        }
        // After every equal logit: a lower id stays ahead.
        let at = best.partition_point(|(l, _)| l.total_cmp(&logit).is_ge());
        best.insert(at, (logit, id as u32));
        best.truncate(k);
    }
    best.into_iter()
        .map(|(logit, id)| Candidate {
            id,
            logit,
            prob: (f64::from((logit - max).exp()) / sum) as f32,
        })
        .collect()
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
}
