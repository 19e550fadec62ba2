//! One layer's attention over text 0 as the attention kernel hands it out, head by head from
//! whichever thread ran the head: per query, the entropy (nats) and the weight on the first token
//! (the "sink"), and the whole `[heads, queries, keys]` weights when asked.

use std::sync::{Mutex, PoisonError};

use ndarray::{ArrayView2, ArrayViewMut2};

use super::{Probe, Weights};
use crate::families::attention::{self, Heads, Mask};

/// One head's figures, per query of text 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadMap {
    /// `-Σ p·ln p` over the keys, per query.
    pub entropy: Vec<f32>,
    /// The weight on key 0, per query.
    pub sink: Vec<f32>,
    /// `[queries][keys]` of text 0, C order, when kept.
    pub weights: Option<Vec<f32>>,
}

/// One layer's heads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerMap {
    /// Text 0's length: the queries and keys of each head.
    pub tokens: usize,
    /// One per query head.
    pub heads: Vec<HeadMap>,
}

/// Collects a layer's heads as the kernel's threads finish them.
pub(crate) struct Collect {
    tokens: usize,
    keep: bool,
    heads: Vec<Mutex<HeadMap>>,
}

impl Collect {
    /// For `heads` heads over text 0 of `tokens` positions, keeping the whole weights if `keep`.
    pub(crate) fn new(heads: usize, tokens: usize, keep: bool) -> Self {
        Self {
            tokens,
            keep,
            heads: (0..heads).map(|_| Mutex::default()).collect(),
        }
    }

    /// Takes head `head` of sequence `seq`: `weights` is `len × len`, rows the queries.
    pub(crate) fn see(&self, seq: usize, head: usize, weights: &[f32], len: usize) {
        if seq != 0 {
            return;
        }
        let n = self.tokens;
        let rows = || weights.chunks_exact(len).take(n).map(|row| &row[..n]);
        let entropy = rows()
            .map(|row| {
                let sum: f64 = row
                    .iter()
                    .filter(|&&p| p > 0.0)
                    .map(|&p| f64::from(p) * f64::from(p).ln())
                    .sum();
                // 0 - sum, not -sum: a query that attends to one key has entropy 0, not -0.
                (0.0 - sum) as f32
            })
            .collect();
        let sink = rows().map(|row| row[0]).collect();
        let kept = self.keep.then(|| rows().flatten().copied().collect());
        *self.heads[head]
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = HeadMap {
            entropy,
            sink,
            weights: kept,
        };
    }

    /// The layer's figures.
    pub(crate) fn finish(self) -> LayerMap {
        LayerMap {
            tokens: self.tokens,
            heads: self
                .heads
                .into_iter()
                .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
                .collect(),
        }
    }
}

impl Probe {
    /// Runs one layer's attention, keeping what `want` asks of it.
    #[expect(clippy::too_many_arguments, reason = "attend's own arguments")]
    pub(crate) fn attend(
        &mut self,
        q: ArrayView2<f32>,
        k: ArrayView2<f32>,
        v: ArrayView2<f32>,
        out: ArrayViewMut2<f32>,
        len: usize,
        shape: Heads,
        mask: Mask,
    ) {
        if !self.want.attention {
            attention::attend(q, k, v, out, len, shape, mask, None);
            return;
        }
        let layer = self.attention.len();
        let keep = match self.want.weights {
            Weights::None => false,
            Weights::All => true,
            Weights::Layer(l) => l == layer,
        };
        let collect = Collect::new(shape.heads, self.first_len(), keep);
        let observer = |seq: usize, head: usize, weights: &[f32]| {
            collect.see(seq, head, weights, len);
        };
        attention::attend(q, k, v, out, len, shape, mask, Some(&observer));
        self.attention.push(collect.finish());
    }
}
