//! Greedy generation: a causal family's keys and values kept per layer ([`KvCache`]), so that
//! each new token costs one token's work, and the loop that feeds the most likely token back
//! until `n` tokens, an end-of-sequence id, or the model's last position.

use std::ops::Range;

use ndarray::ArrayView2;

use super::error::FamilyError;
use super::ops::view;
use super::predict;

/// The keys and values every layer has seen, one sequence's, row by row.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    len: usize,
    cap: usize,
}

impl KvCache {
    /// An empty cache for `layers` layers of a model of `cap` positions.
    #[must_use]
    pub fn new(layers: usize, cap: usize) -> Self {
        Self {
            layers: vec![(Vec::new(), Vec::new()); layers],
            len: 0,
            cap,
        }
    }

    /// The positions seen so far: where the next tokens go.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position has been seen.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The model's positions (`max_position_embeddings`).
    #[must_use]
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Refuses `len` more tokens past the model's positions.
    pub fn check_room(&self, len: usize) -> Result<(), FamilyError> {
        if self.len + len > self.cap {
            return Err(FamilyError::Input(format!(
                "{} tokens is more than the model's {} positions (max_position_embeddings)",
                self.len + len,
                self.cap
            )));
        }
        Ok(())
    }

    /// Appends the keys (columns `k`) and values (columns `v`) of the rows of `fused` (rows of
    /// `width`, a fused `[q | k | v]` projection of the new tokens) to layer `layer`; gives views of
    /// all its keys and values so far.
    ///
    /// # Panics
    /// When `layer` is not one of the cache's layers.
    pub fn extend(
        &mut self,
        layer: usize,
        fused: &[f32],
        width: usize,
        k: Range<usize>,
        v: Range<usize>,
    ) -> (ArrayView2<'_, f32>, ArrayView2<'_, f32>) {
        let kv_width = k.len();
        let (keys, values) = &mut self.layers[layer];
        for row in fused.chunks_exact(width) {
            keys.extend_from_slice(&row[k.clone()]);
            values.extend_from_slice(&row[v.clone()]);
        }
        (view(keys, kv_width), view(values, kv_width))
    }

    /// Counts `len` new positions as seen, once every layer has its keys.
    pub fn advance(&mut self, len: usize) {
        self.len += len;
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// As many tokens as asked.
    Length,
    /// The model chose an end-of-sequence id (kept as the last token, as transformers keeps it).
    Eos,
    /// The next token would pass the model's positions (`max_position_embeddings`).
    Positions(usize),
}

/// What a greedy run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The new ids, after the prompt.
    pub ids: Vec<u32>,
    /// Why it stopped.
    pub stop: Stop,
}

/// One step of a causal model over a cache: the logits of the last of `ids`, after feeding them
/// all at the cache's next positions.
pub type Step<'a> = dyn FnMut(&[u32], &mut KvCache) -> Result<Vec<f32>, FamilyError> + 'a;

/// Greedy decoding, as transformers' `generate(do_sample=False)`: the prompt fed once, then the
/// most likely token (the lowest id among equals, as `argmax`) fed back one at a time, each
/// told to `on_token` as it comes.
pub fn greedy(
    step: &mut Step,
    cache: &mut KvCache,
    prompt: &[u32],
    n: usize,
    eos: &[u32],
    on_token: &mut dyn FnMut(u32),
) -> Result<Generated, FamilyError> {
    if prompt.is_empty() {
        return Err(FamilyError::Input(
            "generation needs at least one token".into(),
        ));
    }
    cache.check_room(prompt.len())?;
    let mut ids = Vec::with_capacity(n.min(cache.cap()));
    if n == 0 {
        return Ok(Generated {
            ids,
            stop: Stop::Length,
        });
    }
    let mut logits = step(prompt, cache)?;
    loop {
        let Some(best) = predict::top_k(&logits, 1).first().map(|c| c.id) else {
            return Err(FamilyError::Input("the model gave no logits".into()));
        };
        ids.push(best);
        on_token(best);
        let stop = if eos.contains(&best) {
            Some(Stop::Eos)
        } else if ids.len() >= n {
            Some(Stop::Length)
        } else if cache.len() >= cache.cap() {
            Some(Stop::Positions(cache.cap()))
        } else {
            None
        };
        if let Some(stop) = stop {
            return Ok(Generated { ids, stop });
        }
        logits = step(&[best], cache)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that always predicts `last + 1`, over a cache of 4 positions.
    fn counting(ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, FamilyError> {
        cache.check_room(ids.len())?;
        cache.advance(ids.len());
        let mut logits = vec![0.0; 16];
        logits[*ids.last().unwrap() as usize + 1] = 1.0;
        Ok(logits)
    }

    #[test]
    fn stops_at_n_at_eos_and_at_the_last_position() {
        let mut seen = Vec::new();
        let mut cache = KvCache::new(1, 16);
        let g = greedy(&mut counting, &mut cache, &[1], 3, &[], &mut |id| {
            seen.push(id);
        })
        .unwrap();
        assert_eq!((g.ids.as_slice(), g.stop), (&[2, 3, 4][..], Stop::Length));
        assert_eq!(seen, [2, 3, 4]);
        let g = greedy(
            &mut counting,
            &mut KvCache::new(1, 16),
            &[1],
            9,
            &[3],
            &mut |_| {},
        )
        .unwrap();
        assert_eq!((g.ids.as_slice(), g.stop), (&[2, 3][..], Stop::Eos));
        let g = greedy(
            &mut counting,
            &mut KvCache::new(1, 4),
            &[1, 2],
            9,
            &[],
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            (g.ids.as_slice(), g.stop),
            (&[3, 4, 5][..], Stop::Positions(4))
        );
        let err = greedy(
            &mut counting,
            &mut KvCache::new(1, 1),
            &[1, 2],
            1,
            &[],
            &mut |_| {},
        );
        assert!(err.unwrap_err().to_string().contains("positions"));
    }
}
