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
#[must_use]
pub fn top_k(logits: &[f32], k: usize) -> Vec<Candidate> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(order.len());
    let by_logit = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if k > 0 && k < order.len() {
        order.select_nth_unstable_by(k - 1, by_logit);
    }
    order.truncate(k);
    order.sort_by(by_logit);
    order
        .into_iter()
        .map(|id| {
            let logit = logits[id as usize];
            Candidate {
                id,
                logit,
                prob: (f64::from((logit - max).exp()) / sum) as f32,
            }
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
    }
}
