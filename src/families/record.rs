//! Collects each module boundary's output as an [`Activation`], and tells progress per block.
//!
//! A recorder may be given the activations of an earlier pass to write into: a pass of a batch of
//! 8 × 128 tokens keeps ~65 MB of them, and fresh memory for each pass cost more in page faults
//! (a fifth of the pass) than the copies themselves.
//!
//! A module's output can be recorded two ways: [`Recorder::record`] copies values the forward
//! goes on changing (the residual stream), while [`Recorder::buffer`] and [`Recorder::keep`] let
//! the forward write an output straight into the buffer the recorder will hold, and read it back
//! from there ([`Recorder::kept`]): no copy at all, for the sublayers' outputs, which are most of
//! the ~65 MB (copying them was 4% of a batch's pass).

use ndarray::{ArrayD, ArrayView2, ArrayViewMut2, IxDyn};

use super::attention::{self, Heads, Mask};
use super::probe::Probe;
use super::probe::down::{DownRun, Seen};
use crate::model::forward::Activation;

/// Where a module's output is recorded: its path in the tree and its repr, as the scope that built
/// the module drew them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The module's dotted path (`encoder.layer.0.attention`).
    pub path: String,
    /// Its repr (`BertAttention`, `LayerNorm((8,), eps=1e-05, elementwise_affine=True)`).
    pub repr: String,
}

/// An output the recorder holds, to read back with [`Recorder::kept`].
#[derive(Debug, Clone, Copy)]
pub struct Kept(usize);

/// The activations of one pass, in execution order.
pub struct Recorder<'p> {
    batch: usize,
    len: usize,
    activations: Vec<Activation>,
    /// An earlier pass's activations, last first, whose buffers the next records reuse.
    spare: Vec<Activation>,
    /// A mixture of experts' choices: `[layer][token of sequence 0][expert ids]`.
    experts: Vec<Vec<Vec<u32>>>,
    progress: &'p mut dyn FnMut(usize, usize),
    /// What a probe asked to keep beyond the outputs.
    probe: Option<&'p mut Probe>,
}

impl<'p> Recorder<'p> {
    /// A recorder for a batch of `batch` sequences of `len` positions.
    pub fn new(batch: usize, len: usize, progress: &'p mut dyn FnMut(usize, usize)) -> Self {
        Self {
            batch,
            len,
            activations: Vec::new(),
            spare: Vec::new(),
            experts: Vec::new(),
            progress,
            probe: None,
        }
    }

    /// The recorder, also filling `probe`.
    #[must_use]
    pub fn probing(mut self, probe: &'p mut Probe) -> Self {
        self.probe = Some(probe);
        self
    }

    /// The residual stream `h` at a `hidden_states` boundary: the embeddings' output as the first
    /// block reads it, then each block's output.
    pub fn residual(&mut self, site: &Site, h: &[f32]) {
        if let Some(probe) = self.probe.as_deref_mut() {
            probe.residual(&site.path, h);
        }
    }

    /// [`record`](Self::record) and [`residual`](Self::residual) at once: a block's output.
    pub fn record_stream(&mut self, site: &Site, h: &[f32]) {
        self.record(site, h);
        self.residual(site, h);
    }

    /// Runs layer `layer`'s MLP by `run`, which shows the probe (when it asks) each down
    /// projection through the [`Seen`] it is given.
    pub fn down_projections<T>(&mut self, layer: usize, run: impl FnOnce(Seen) -> T) -> T {
        match self.probe.as_deref_mut().filter(|p| p.want.down_proj) {
            Some(probe) => run(Some(&mut |seen: DownRun<'_>| probe.down_proj(layer, seen))),
            None => run(None),
        }
    }

    /// [`attention::attend`], showing the weights to the probe.
    #[expect(clippy::too_many_arguments, reason = "attend's own arguments")]
    pub fn attend(
        &mut self,
        q: ArrayView2<f32>,
        k: ArrayView2<f32>,
        v: ArrayView2<f32>,
        out: ArrayViewMut2<f32>,
        len: usize,
        shape: Heads,
        mask: Mask,
    ) {
        match self.probe.as_deref_mut() {
            Some(probe) => probe.attend(q, k, v, out, len, shape, mask),
            None => attention::attend(q, k, v, out, len, shape, mask, None),
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

    /// Keeps a copy of `values` (`batch·len × width`) as the output of the module at `site`.
    pub fn record(&mut self, site: &Site, values: &[f32]) {
        let mut buffer = self.buffer();
        copy_in_parts(&mut buffer, values);
        self.keep(site, buffer);
    }

    /// A buffer to write the next module's output into and then [`keep`](Self::keep): an earlier
    /// pass's (whatever it holds), or an empty one.
    pub fn buffer(&mut self) -> Vec<f32> {
        self.spare
            .pop()
            .map(|a| a.output.into_raw_vec_and_offset().0)
            .unwrap_or_default()
    }

    /// Keeps `values` (`batch·len × width`) as the output of the module at `site`, without a copy;
    /// [`kept`](Self::kept) reads them back.
    pub fn keep(&mut self, site: &Site, values: Vec<f32>) -> Kept {
        let rows = self.batch * self.len;
        let width = values.len() / rows.max(1);
        let output = ArrayD::from_shape_vec(IxDyn(&[self.batch, self.len, width]), values)
            .expect("values are batch·len rows");
        self.activations.push(Activation {
            path: site.path.clone(),
            repr: site.repr.clone(),
            output,
        });
        Kept(self.activations.len() - 1)
    }

    /// Records a copy of a kept output as the output of another module too (a block whose output
    /// is its last sublayer's).
    pub fn record_kept(&mut self, site: &Site, kept: Kept) -> Kept {
        let mut buffer = self.buffer();
        copy_in_parts(&mut buffer, self.kept(kept));
        self.keep(site, buffer)
    }

    /// The values kept as `kept`.
    #[must_use]
    pub fn kept(&self, kept: Kept) -> &[f32] {
        self.activations[kept.0]
            .output
            .as_slice()
            .expect("kept outputs are C-order")
    }

    /// Tells the caller that `done` of `total` blocks have run.
    pub fn block_done(&mut self, done: usize, total: usize) {
        (self.progress)(done, total);
    }

    /// Keeps the experts layer `layer`'s router chose for each token of the batch's first
    /// sequence, best first (none for a dense layer of a mixture).
    pub fn route(&mut self, layer: usize, chosen: Vec<Vec<u32>>) {
        if self.experts.len() <= layer {
            self.experts.resize(layer + 1, Vec::new());
        }
        self.experts[layer] = chosen;
    }

    /// The experts chosen, `[layer][token][expert ids]`: empty for a model without experts.
    pub fn take_experts(&mut self) -> Vec<Vec<Vec<u32>>> {
        std::mem::take(&mut self.experts)
    }

    /// The activations recorded.
    #[must_use]
    pub fn into_activations(self) -> Vec<Activation> {
        self.activations
    }
}

/// `dst = src`, resized first (a no-op when `dst` is an earlier pass's buffer for the same module),
/// then copied in blocks shared across threads: 1.5-6 MB per module for a batch of 8 × 128 tokens.
fn copy_in_parts(dst: &mut Vec<f32>, src: &[f32]) {
    dst.resize(src.len(), 0.0);
    super::ops::in_parts(dst, 1 << 14, 1, &|offset, part| {
        part.copy_from_slice(&src[offset..offset + part.len()]);
    });
}
