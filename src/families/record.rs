//! Collects each module boundary's output as an [`Activation`], and tells progress per block.
//!
//! A recorder may be given the activations of an earlier pass to write into: a pass of a batch of
//! 8 × 128 tokens keeps ~65 MB of them, and fresh memory for each pass cost more in page faults
//! (a fifth of the pass) than the copies themselves.

use ndarray::{ArrayD, IxDyn};

use crate::model::forward::Activation;

/// The activations of one pass, in execution order.
pub struct Recorder<'p> {
    batch: usize,
    len: usize,
    activations: Vec<Activation>,
    /// An earlier pass's activations, last first, whose buffers the next records reuse.
    spare: Vec<Activation>,
    progress: &'p mut dyn FnMut(usize, usize),
}

impl<'p> Recorder<'p> {
    /// A recorder for a batch of `batch` sequences of `len` positions.
    pub fn new(batch: usize, len: usize, progress: &'p mut dyn FnMut(usize, usize)) -> Self {
        Self {
            batch,
            len,
            activations: Vec::new(),
            spare: Vec::new(),
            progress,
        }
    }

    /// A recorder that writes into `spare`, an earlier pass's activations, where it can.
    pub fn reusing(
        batch: usize,
        len: usize,
        progress: &'p mut dyn FnMut(usize, usize),
        mut spare: Vec<Activation>,
    ) -> Self {
        spare.reverse();
        Self {
            activations: Vec::with_capacity(spare.len()),
            spare,
            ..Self::new(batch, len, progress)
        }
    }

    /// Keeps a copy of `values` (`batch·len × width`) as the output of the module at `path`.
    pub fn record(&mut self, path: &str, repr: &str, values: &[f32]) {
        let rows = self.batch * self.len;
        let width = values.len() / rows.max(1);
        let (mut old_path, mut old_repr, mut buffer) = match self.spare.pop() {
            Some(a) => (a.path, a.repr, a.output.into_raw_vec_and_offset().0),
            None => (String::new(), String::new(), Vec::new()),
        };
        // Sized first (a no-op when the buffer is an earlier pass's of this module), then copied
        // in blocks shared across threads: 1.5-6 MB per module for a batch of 8 × 128 tokens.
        buffer.resize(values.len(), 0.0);
        super::ops::in_parts(&mut buffer, 1 << 14, 1, &|offset, part| {
            part.copy_from_slice(&values[offset..offset + part.len()]);
        });
        old_path.clear();
        old_path.push_str(path);
        old_repr.clear();
        old_repr.push_str(repr);
        let output = ArrayD::from_shape_vec(IxDyn(&[self.batch, self.len, width]), buffer)
            .expect("values are batch·len rows");
        self.activations.push(Activation {
            path: old_path,
            repr: old_repr,
            output,
        });
    }

    /// Tells the caller that `done` of `total` blocks have run.
    pub fn block_done(&mut self, done: usize, total: usize) {
        (self.progress)(done, total);
    }

    /// The activations recorded.
    #[must_use]
    pub fn into_activations(self) -> Vec<Activation> {
        self.activations
    }
}
