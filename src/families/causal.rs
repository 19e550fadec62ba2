//! What every causal LM family does around its own pass, written once for GPT-2 and the decoder
//! families as the `Forward` of any `Causal`: a batch's logits (the head's output recorded before
//! the family's cap), generation's cache and step (one row through the head), and the logit
//! lens's readout.

use ndarray::{ArrayD, IxDyn};

use super::batch::Batch;
use super::blueprint::Forward;
use super::error::FamilyError;
use super::generate::KvCache;
use super::ops::soft_cap;
use super::record::{Recorder, Site};
use super::weights::Linear;

/// A causal LM's own parts: its pass over the tokens, its final norm and head, and its cache's
/// size. Each such model is a `Forward` through the impl below.
pub(super) trait Causal: std::fmt::Debug + Send + Sync {
    /// The final hidden state (final norm applied) of `ids` (sequences of `len`, real lengths
    /// `lens`), at the cache's next positions when there is one (a batch of one, then).
    fn pass(
        &self,
        ids: &[u32],
        lens: &[usize],
        len: usize,
        cache: Option<&mut KvCache>,
        rec: &mut Recorder,
    ) -> Result<Vec<f32>, FamilyError>;

    /// The final norm, applied in place to rows of the residual stream.
    fn final_norm(&self, h: &mut [f32]);

    /// The LM head and where its output is recorded, when the checkpoint has one.
    fn lm_head(&self) -> Option<&(Linear, Site)>;

    /// The family's soft cap on the logits (Gemma 2's `final_logit_softcapping`).
    fn logit_cap(&self) -> Option<f32>;

    /// The width of the residual stream.
    fn hidden(&self) -> usize;

    /// The blocks (each with its keys and values in the cache) and the most positions.
    fn cache_size(&self) -> (usize, usize);
}

impl<T: Causal> Forward for T {
    /// The logits `[batch, len, vocab]` (the last hidden state without a head), recording every
    /// module the pass records and the head.
    fn run(&self, batch: &Batch, rec: &mut Recorder) -> Result<ArrayD<f32>, FamilyError> {
        let len = batch.len;
        let mut out = self.pass(&batch.ids, &batch.lens, len, None, rec)?;
        if let Some((head, site)) = self.lm_head() {
            let mut logits = Vec::new();
            head.forward(&out, &mut logits);
            // transformers' hook sees the head's output; the cap comes after, in the LM's forward.
            rec.record(site, &logits);
            cap(self, &mut logits);
            out = logits;
        }
        let width = out.len() / (batch.size() * len);
        Ok(
            ArrayD::from_shape_vec(IxDyn(&[batch.size(), len, width]), out)
                .expect("batch·len·width"),
        )
    }

    /// An empty cache, when the model has a head to generate with.
    fn cache(&self) -> Option<KvCache> {
        self.lm_head()?;
        let (blocks, positions) = self.cache_size();
        Some(KvCache::new(blocks, positions))
    }

    /// `ids` fed at the cache's next positions; the logits of the last of them.
    fn step(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, FamilyError> {
        let Some((head, _)) = self.lm_head() else {
            return Err(FamilyError::Input(
                "the model has no language-model head".into(),
            ));
        };
        cache.check_room(ids.len())?;
        let mut progress = |_, _| {};
        let mut rec = Recorder::new(1, ids.len(), &mut progress);
        let h = self.pass(ids, &[ids.len()], ids.len(), Some(cache), &mut rec)?;
        // Only the last position's logits are needed: one row through the head.
        let mut logits = Vec::new();
        head.forward(&h[h.len() - self.hidden()..], &mut logits);
        cap(self, &mut logits);
        Ok(logits)
    }

    /// The family's own final norm (Gemma's `1 + w`), head and cap applied to rows of the
    /// residual stream `h` (normed in place), as the forward applies them; `false` without a head.
    fn head(&self, h: &mut [f32], logits: &mut Vec<f32>) -> bool {
        let Some((head, _)) = self.lm_head() else {
            return false;
        };
        self.final_norm(h);
        head.forward(h, logits);
        cap(self, logits);
        true
    }
}

fn cap(model: &impl Causal, logits: &mut [f32]) {
    if let Some(c) = model.logit_cap() {
        soft_cap(logits, c);
    }
}
