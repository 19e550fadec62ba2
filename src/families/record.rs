//! Collects each module boundary's output as an [`Activation`], and tells progress per block.

use ndarray::{ArrayD, IxDyn};

use crate::model::forward::Activation;

/// The activations of one pass, in execution order.
pub struct Recorder<'p> {
    batch: usize,
    len: usize,
    activations: Vec<Activation>,
    progress: &'p mut dyn FnMut(usize, usize),
}

impl<'p> Recorder<'p> {
    /// A recorder for a batch of `batch` sequences of `len` positions.
    pub fn new(batch: usize, len: usize, progress: &'p mut dyn FnMut(usize, usize)) -> Self {
        Self {
            batch,
            len,
            activations: Vec::new(),
            progress,
        }
    }

    /// Keeps a copy of `values` (`batch·len × width`) as the output of the module at `path`.
    pub fn record(&mut self, path: &str, repr: &str, values: &[f32]) {
        let rows = self.batch * self.len;
        let width = values.len() / rows.max(1);
        let output = ArrayD::from_shape_vec(IxDyn(&[self.batch, self.len, width]), values.to_vec())
            .expect("values are batch·len rows");
        self.activations.push(Activation {
            path: path.to_owned(),
            repr: repr.to_owned(),
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
