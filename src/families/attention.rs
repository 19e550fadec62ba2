//! Scaled dot-product attention over heads, multi-head or grouped-query, with a padding mask and
//! optionally a causal one: QKᵀ and AV for each (sequence, head) are small GEMMs through the kernel,
//! on strided views of the projected activations (no copies per head).

use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};

use ndarray::{ArrayView2, ArrayViewMut2, Axis, s};

use super::batch::Batch;
use super::config::Origin;
use super::error::FamilyError;
use super::ops::{soft_cap, softmax};
use crate::kernel;
use crate::model::budget;

/// Which keys each query may see.
#[derive(Debug, Clone, Copy)]
pub struct Mask<'a> {
    /// The real length of each sequence of the batch; keys past it are padding.
    pub lens: &'a [usize],
    /// Whether a query sees only keys at or before its position.
    pub causal: bool,
    /// A sliding window (Mistral): a query sees only the last `window` keys up to itself.
    pub window: Option<usize>,
    /// Keys cached before the queries (a generation step): the queries sit at positions
    /// `past..past + len` and see the cached keys too. Only a batch of one has a past.
    pub past: usize,
}

impl<'a> Mask<'a> {
    /// A causal mask over `lens`, with a window or not, and no past.
    #[must_use]
    pub fn causal(lens: &'a [usize], window: Option<usize>) -> Self {
        Self {
            lens,
            causal: true,
            window,
            past: 0,
        }
    }

    /// The keys `query` of sequence `seq` sees: always one range, `lo..hi` (empty when none).
    fn keys(&self, seq: usize, query: usize) -> (usize, usize) {
        let hi = if self.causal {
            self.lens[seq].min(query + 1)
        } else {
            self.lens[seq]
        } + self.past;
        let lo = self
            .window
            .map_or(0, |w| (self.past + query + 1).saturating_sub(w));
        (lo, hi)
    }
}

/// The head layout: `heads` query heads of `head_dim`, sharing `kv_heads` key/value heads.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; `heads` is a multiple.
    pub kv_heads: usize,
    /// The width of one head.
    pub head_dim: usize,
    /// What QKᵀ is multiplied by: `1/√head_dim` in most families (GPT-2 may also divide by the
    /// layer's number; Gemma 2 and 3 use `query_pre_attn_scalar`).
    pub scale: f32,
    /// Gemma 2's soft cap: scores become `cap·tanh(score / cap)` before the mask.
    pub softcap: Option<f32>,
}

impl Heads {
    /// `heads` query heads sharing `kv_heads`, scaled by `1/√head_dim`.
    #[must_use]
    pub fn new(heads: usize, kv_heads: usize, head_dim: usize) -> Self {
        Self {
            heads,
            kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            softcap: None,
        }
    }
}

thread_local! {
    /// Each thread's QKᵀ scratch (len × len), kept so that repeated passes allocate nothing.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A look at each (sequence, head)'s post-softmax weights, `len × len` with the queries as rows,
/// from the thread that computed them (a probe's).
pub type Observer<'a> = &'a (dyn Fn(usize, usize, &[f32]) + Sync);

/// Refuses a batch longer than the model's positions (`max_positions`, from the config read from
/// `origin`), or whose attention scores (one `len × len` buffer per thread) do not fit the memory
/// budget: checked once per pass, in one place for every family, before anything is allocated.
pub fn check_len(
    batch: &Batch,
    max_positions: Option<usize>,
    origin: Origin,
) -> Result<(), FamilyError> {
    let len = batch.len;
    if let Some(max) = max_positions
        && len > max
    {
        return Err(FamilyError::TooLong { origin, len, max });
    }
    let scores = (len as u64)
        .checked_mul(len as u64)
        .and_then(|n| n.checked_mul(kernel::max_threads() as u64));
    budget::check(
        "attention's scores",
        budget::Kind::Activations,
        budget::bytes_of(scores, 4),
    )?;
    Ok(())
}

/// `softmax(QKᵀ·scale + mask)·V` for every sequence and head.
///
/// `q` and `out` are `batch·len × heads·head_dim`, `k` and `v` `batch·(past + len) ×
/// kv_heads·head_dim` (views, so a fused QKV projection or a cache is read in place).
///
/// The (sequence, head) pairs are independent, so they are shared out across the kernel's
/// threads, each pair on one thread: a 128-token head's QKᵀ is too small to split well itself
/// (a pool hand-off per product), and the softmax between the two products would otherwise run on
/// one core while the other waits.
///
/// `observer`, when given, is shown each head's weights (the probes' attention maps).
///
/// # Panics
/// When `out` is not `batch·len × heads·head_dim`.
#[expect(
    clippy::too_many_arguments,
    reason = "the three inputs, the output, their shape, the mask and the observer"
)]
pub fn attend(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    out: ArrayViewMut2<f32>,
    len: usize,
    shape: Heads,
    mask: Mask,
    observer: Option<Observer>,
) {
    let Heads {
        heads, head_dim, ..
    } = shape;
    let batch = mask.lens.len();
    let keys = mask.past + len;
    assert!(
        mask.past == 0 || batch == 1,
        "attend: only a batch of one has a past"
    );
    assert_eq!(
        out.dim(),
        (batch * len, heads * head_dim),
        "attend: the output is not batch·len × heads·head_dim"
    );
    // Each pair's block of `out`, handed to whichever thread takes the pair.
    let mut blocks = Vec::with_capacity(batch * heads);
    let mut rest = out;
    for _ in 0..batch {
        let (mut rows, tail) = rest.split_at(Axis(0), len);
        rest = tail;
        for _ in 0..heads {
            let (block, others) = rows.split_at(Axis(1), head_dim);
            blocks.push(Mutex::new(Some(block)));
            rows = others;
        }
    }
    let units = blocks.len();
    let work = units.saturating_mul(2 * len * keys * head_dim);
    let parts = kernel::parts_for(work, units);
    let per_part = units.div_ceil(parts.max(1));
    kernel::run_parts(parts, &|part| {
        SCORES.with_borrow_mut(|scores| {
            scores.resize(len * keys, 0.0);
            let first = part * per_part;
            for (unit, block) in blocks.iter().enumerate().skip(first).take(per_part) {
                let block = block
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .expect("each pair is taken once");
                let (seq, head) = (unit / heads, unit % heads);
                attend_one(&q, &k, &v, block, (seq, head), len, shape, mask, scores);
                if let Some(observe) = observer {
                    observe(seq, head, scores);
                }
            }
        });
    });
}

/// One sequence's one head: `scores` is len × (past + len) scratch.
#[expect(
    clippy::too_many_arguments,
    reason = "the buffers and shape of one head's attention"
)]
fn attend_one(
    q: &ArrayView2<f32>,
    k: &ArrayView2<f32>,
    v: &ArrayView2<f32>,
    out: ArrayViewMut2<f32>,
    (b, h): (usize, usize),
    len: usize,
    shape: Heads,
    mask: Mask,
    scores: &mut [f32],
) {
    let Heads {
        heads,
        kv_heads,
        head_dim,
        scale,
        softcap,
    } = shape;
    let group = heads / kv_heads;
    let keys = mask.past + len;
    let r = b * len..(b + 1) * len;
    let kr = b * keys..(b + 1) * keys;
    let cols = h * head_dim..(h + 1) * head_dim;
    let kv_cols = (h / group) * head_dim..(h / group + 1) * head_dim;
    let qh = q.slice(s![r, cols]);
    let kh = k.slice(s![kr.clone(), kv_cols.clone()]);
    let vh = v.slice(s![kr, kv_cols]);
    let a = ArrayViewMut2::from_shape((len, keys), &mut *scores).expect("scores is len × keys");
    kernel::gemm(scale, qh, kh.t(), 0.0, a);
    if let Some(cap) = softcap {
        soft_cap(scores, cap);
    }
    for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
        let (lo, hi) = mask.keys(b, i);
        if lo >= hi {
            // Masked whole (a padding query outside Mistral's window): uniform, as
            // transformers' additive `finfo.min` mask makes it, rather than NaN.
            row.fill(1.0 / keys as f32);
            continue;
        }
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
        softmax(&mut row[lo..hi]);
    }
    let a = ArrayView2::from_shape((len, keys), &*scores).expect("scores is len × keys");
    kernel::gemm(1.0, a, vh, 0.0, out);
}

#[cfg(test)]
mod tests {
    use super::super::ops::{view, view_mut};
    use super::*;

    #[test]
    fn long_sequences_meet_the_positions_then_the_scores_budget() {
        let batch = |len: usize| Batch {
            ids: vec![0; len],
            lens: vec![len],
            len,
        };
        assert!(matches!(
            check_len(&batch(17), Some(16), Origin::ConfigJson),
            Err(FamilyError::TooLong {
                len: 17,
                max: 16,
                ..
            })
        ));
        let gguf = check_len(&batch(17), Some(16), Origin::Gguf).unwrap_err();
        assert_eq!(
            gguf.to_string(),
            "17 tokens is more than the model's 16 positions (context_length in GGUF metadata)"
        );
        assert!(check_len(&batch(16), Some(16), Origin::ConfigJson).is_ok());
        // 70,000² f32 scores are 19.6 GB for one thread: over the cap on activations, whatever
        // the machine holds, and said before any of it is allocated.
        let err = check_len(&batch(70_000), None, Origin::ConfigJson)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("attention's scores needs ")
                && err.ends_with("that is over the cap of 17.2 GB on activations"),
            "{err}"
        );
    }

    #[test]
    fn causal_first_row_copies_the_first_value_and_groups_share_kv() {
        // One sequence of 2, two query heads of width 1 sharing one kv head.
        let q = [1.0, 2.0, 3.0, 4.0];
        let k = [0.5, -0.5];
        let v = [10.0, 20.0];
        let mut out = [0.0; 4];
        let shape = Heads::new(2, 1, 1);
        let mask = Mask::causal(&[2], None);
        attend(
            view(&q, 2),
            view(&k, 1),
            view(&v, 1),
            view_mut(&mut out, 2),
            2,
            shape,
            mask,
            None,
        );
        assert_eq!(&out[..2], &[10.0, 10.0]);
        // Second row, head 0: scores 3·0.5 and 3·-0.5.
        let w = 1.0 / (1.0 + (-3.0f32).exp());
        assert!((out[2] - (w * 10.0 + (1.0 - w) * 20.0)).abs() < 1e-5);
    }
}
