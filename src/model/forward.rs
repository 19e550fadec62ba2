//! A forward pass that keeps every layer's activation, for the output and for the app to show.
//!
//! [`ForwardPlan::new`] flattens the model into steps and packs each Linear weight once into the
//! kernel's panel layout ([`PackedWeight`]); a tied weight is packed once for all its uses. The plan
//! keys on the model as it was then: after a re-init or a load, make a new plan
//! ([`ForwardPlan::is_current`] tells whether it is still valid).
//!
//! A pass writes into a [`ForwardBuffers`]: one flat vector per step, allocated on the first pass (or
//! when the input's shape changes) and reused after, so repeated passes allocate nothing
//! (`tests/forward_alloc.rs` counts). Every step reads and writes plain C-order slices (a Linear's
//! input seen as a rows×in matrix, its row count fixed when the buffers are sized): a pass builds no
//! ndarray array, view or dynamic shape, whose set-up cost more than the arithmetic of the chapter's
//! layers. The shapes are kept only to show the outputs. Each Linear
//! adds its bias in the kernel's write-out (the epilogue). A `ReLU` that follows a Linear is *not*
//! fused into that write-out: the app and `forward` show every layer's own output, and the
//! Linear's is the one before the `ReLU`. Fusing would drop it, and at the chapter's sizes the
//! separate pass over a few floats costs nanoseconds. [`ForwardPlan::run_last`] is the fused path for
//! callers that want only the model's output.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array2, ArrayD, ArrayViewD, IxDyn};
use thiserror::Error;

use super::Model;
use super::budget::{self, TooBig};
use super::layers::Layer;
use super::param::ParamId;
use super::rng::TorchGenerator;
use super::tree::{Module, ModuleKind, join};
use crate::kernel::{self, PackedWeight};
use crate::tensor::DType;
use crate::tensor::decode::encode_f32;
use crate::tensor::stats;

/// Why a model cannot run, or cannot run on this input.
#[derive(Debug, Error)]
pub enum ForwardError {
    /// A random batch was asked of a model without a Linear layer.
    #[error("the model has no Linear layer, so its input width is unknown: pass --input X.npy")]
    NoInputWidth,
    /// The activations would not fit in memory.
    #[error(transparent)]
    TooBig(#[from] TooBig),
    /// Some module's computation is unknown (a checkpoint read without an architecture).
    #[error(
        "cannot run a forward pass: module {path:?} has no known forward order{why}; only chains of Linear and activation layers run without an architecture: give it with --arch FILE (the text print(model) shows)"
    )]
    UnknownModule {
        /// The module's path (empty for the root).
        path: String,
        /// What the names show, starting with "; " (or nothing).
        why: String,
    },
    /// A parameter's values cannot be read as numbers.
    #[error("cannot run a forward pass: {0}")]
    Unreadable(String),
    /// The input does not fit a layer.
    #[error("layer {path} ({repr}) cannot take an input of shape {shape:?}: {reason}")]
    Shape {
        /// The layer's path.
        path: String,
        /// Its repr.
        repr: String,
        /// The shape it was given.
        shape: Vec<usize>,
        /// What it needed.
        reason: String,
    },
}

/// One layer's result.
#[derive(Debug, Clone)]
pub struct Activation {
    /// The layer's dotted path (`0.block1.2`).
    pub path: String,
    /// Its PyTorch repr.
    pub repr: String,
    /// What the layer produced.
    pub output: ArrayD<f32>,
}

/// What a layer's output looks like: what `forward` prints and the app shows per layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivationStats {
    /// Mean of the output's finite values.
    pub mean: f64,
    /// Their unbiased standard deviation.
    pub std: f64,
    /// The fraction of exact zeros (what a ReLU switched off).
    pub zero_fraction: f64,
}

impl Activation {
    /// The output's mean, std and zero fraction, in one statistics pass.
    #[must_use]
    pub fn stats(&self) -> ActivationStats {
        let bytes = match self.output.as_slice() {
            Some(values) => encode_f32(values),
            None => self.output.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        let numel = self.output.len();
        let s = stats::stats(DType::F32, &bytes, numel).expect("F32 always decodes");
        ActivationStats {
            mean: s.mean,
            std: s.std,
            zero_fraction: s.zeros as f64 / numel.max(1) as f64,
        }
    }

    /// The largest magnitude among the finite values (what shows an exploding activation).
    #[must_use]
    pub fn absmax(&self) -> f32 {
        self.output
            .iter()
            .filter(|v| v.is_finite())
            .fold(0.0, |m, v| m.max(v.abs()))
    }
}

/// What a Linear needs at run time: its weight packed for the kernel, and its bias.
#[derive(Debug, Clone)]
struct LinearStep {
    weight: Arc<PackedWeight>,
    bias: Option<Arc<[f32]>>,
}

#[derive(Debug, Clone)]
enum Op {
    Linear(LinearStep),
    Layer(Layer),
}

#[derive(Debug, Clone)]
struct Step {
    path: String,
    repr: String,
    op: Op,
}

/// A model ready to run: the layers in execution order with their weights packed once.
#[derive(Debug, Clone)]
pub struct ForwardPlan {
    /// Tells buffers made for another plan apart; clones share it, as they share the steps.
    id: u64,
    steps: Vec<Step>,
    /// Every parameter read, with its version then.
    versions: Vec<(ParamId, u64)>,
}

/// The arrays a pass writes: one per step of the plan, reused from pass to pass.
///
/// Make one with [`ForwardBuffers::default`] and hand it to [`ForwardPlan::run_reusing`]; it sizes
/// itself on the first pass and again only when the input's shape (or the plan) changes. Each
/// output is kept as a flat vector in C order with its shape, so a pass walks plain slices.
#[derive(Debug, Default)]
pub struct ForwardBuffers {
    /// The plan and input shape the arrays are sized for; `None` until a pass succeeds.
    key: Option<(u64, Vec<usize>)>,
    /// A C-order copy of an input that is not in standard layout.
    input: Vec<f32>,
    outputs: Vec<Vec<f32>>,
    shapes: Vec<IxDyn>,
    /// For each step, its input seen as a matrix: the product of all but the last dimension.
    rows: Vec<usize>,
}

impl ForwardBuffers {
    /// The number of outputs: one per step of the plan of the last pass.
    #[must_use]
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// Whether no pass has filled the buffers yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// The output of step `i` (in the order of [`ForwardPlan::layers`]).
    ///
    /// # Panics
    /// When `i` is not below [`len`](Self::len).
    #[must_use]
    pub fn output(&self, i: usize) -> ArrayViewD<'_, f32> {
        ArrayViewD::from_shape(self.shapes[i].clone(), &self.outputs[i])
            .expect("each buffer holds its shape's elements")
    }

    /// The model's output: that of the last step.
    ///
    /// # Panics
    /// When no pass has filled the buffers.
    #[must_use]
    pub fn last(&self) -> ArrayViewD<'_, f32> {
        self.output(self.len() - 1)
    }
}

impl ForwardPlan {
    /// Flattens the model's Sequentials into a list of layers and packs each Linear's weight.
    pub fn new(model: &Model) -> Result<Self, ForwardError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let mut builder = Builder {
            model,
            steps: Vec::new(),
            packed: HashMap::new(),
            versions: Vec::new(),
        };
        builder.collect(&model.root, "")?;
        let Builder {
            mut steps,
            versions,
            ..
        } = builder;
        if steps.is_empty() {
            // An empty Sequential returns its input: one identity step keeps every path uniform.
            steps.push(Step {
                path: String::new(),
                repr: "Sequential()".into(),
                op: Op::Layer(Layer::Identity),
            });
        }
        Ok(ForwardPlan {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            steps,
            versions,
        })
    }

    /// Whether `model`'s parameters are still those this plan was made from (no re-init since).
    ///
    /// Only meaningful for the model the plan was made from: a store loaded afresh starts its
    /// versions again at zero.
    #[must_use]
    pub fn is_current(&self, model: &Model) -> bool {
        self.versions
            .iter()
            .all(|&(id, v)| id.0 < model.store.len() && model.store.version(id) == v)
    }

    /// The width of the input the first Linear expects, if there is one.
    #[must_use]
    pub fn in_features(&self) -> Option<usize> {
        self.steps.iter().find_map(|step| match &step.op {
            Op::Linear(linear) => Some(linear.weight.in_features()),
            Op::Layer(_) => None,
        })
    }

    /// The steps' `(path, repr)`, in the order of [`run_reusing`](Self::run_reusing)'s outputs.
    #[must_use]
    pub fn layers(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.steps
            .iter()
            .map(|s| (s.path.as_str(), s.repr.as_str()))
    }

    /// `torch.manual_seed(seed); torch.rand(batch, in_features)`: the random batch of `--batch`.
    /// An error when the model has no Linear to give the width, or when the batch would not fit.
    pub fn random_input(&self, batch: usize, seed: u64) -> Result<ArrayD<f32>, ForwardError> {
        let width = self.in_features().ok_or(ForwardError::NoInputWidth)?;
        // A width from a file times a batch from an argument: counted, not wrapped.
        let elements = batch.checked_mul(width);
        budget::check(
            "the random batch",
            budget::Kind::Values,
            budget::bytes_of(elements.map(|n| n as u64), 4),
        )?;
        let mut values = vec![0f32; batch * width];
        TorchGenerator::new(seed).fill_uniform(&mut values, 0.0, 1.0);
        Ok(ArrayD::from_shape_vec(IxDyn(&[batch, width]), values).expect("batch·width values"))
    }

    /// Runs the model on `x`, returning every layer's output in order (the last is the model's).
    pub fn run(&self, x: &ArrayD<f32>) -> Result<Vec<Activation>, ForwardError> {
        self.run_with_progress(x, &mut |_, _| {})
    }

    /// [`run`](Self::run), telling `progress` (layers done, layers in all) after each layer, for the
    /// app's progress bar.
    pub fn run_with_progress(
        &self,
        x: &ArrayD<f32>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Activation>, ForwardError> {
        let mut buffers = ForwardBuffers::default();
        self.pass(&mut buffers, x, false, progress)?;
        Ok(self
            .steps
            .iter()
            .zip(buffers.outputs.into_iter().zip(buffers.shapes))
            .map(|(step, (values, shape))| Activation {
                path: step.path.clone(),
                repr: step.repr.clone(),
                output: ArrayD::from_shape_vec(shape, values).expect("a buffer fits its shape"),
            })
            .collect())
    }

    /// Runs the model on `x` into `buffers` and returns them, holding every step's output in the
    /// order of [`layers`](Self::layers) (the last is the model's).
    ///
    /// After the first pass with an input of this shape, a pass allocates nothing (the kernel's
    /// pool threads, when a product is big enough to use them, size their own packing buffers on
    /// their first part and keep them).
    pub fn run_reusing<'b>(
        &self,
        buffers: &'b mut ForwardBuffers,
        x: &ArrayD<f32>,
    ) -> Result<&'b ForwardBuffers, ForwardError> {
        self.pass(buffers, x, false, &mut |_, _| {})?;
        Ok(buffers)
    }

    /// Runs the model on `x` into `buffers` and returns only its output, fusing each `ReLU` that
    /// follows a Linear into the Linear's write-out.
    ///
    /// A fused Linear's own output is not written, so the other outputs in `buffers` are partly
    /// stale afterwards; use [`run_reusing`](Self::run_reusing) to see every layer.
    pub fn run_last<'b>(
        &self,
        buffers: &'b mut ForwardBuffers,
        x: &ArrayD<f32>,
    ) -> Result<ArrayViewD<'b, f32>, ForwardError> {
        self.pass(buffers, x, true, &mut |_, _| {})?;
        Ok(buffers.last())
    }

    /// One pass; `fuse` lets a Linear write its following `ReLU`'s output directly.
    fn pass(
        &self,
        buffers: &mut ForwardBuffers,
        x: &ArrayD<f32>,
        fuse: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(), ForwardError> {
        let fresh = match &buffers.key {
            Some((id, shape)) => *id != self.id || shape.as_slice() != x.shape(),
            None => true,
        };
        if fresh {
            buffers.key = None;
            self.allocate(buffers, x.shape())?;
        }
        let ForwardBuffers {
            input,
            outputs,
            rows,
            ..
        } = buffers;
        let in_shape = x.shape();
        let x: &[f32] = if let Some(values) = x.as_slice() {
            values
        } else {
            input.clear();
            input.extend(x.iter().copied());
            input
        };
        let total = self.steps.len();
        let mut i = 0;
        while i < total {
            let (done, rest) = outputs.split_at_mut(i);
            let input = done.last().map_or(x, Vec::as_slice);
            let step = &self.steps[i];
            let fused = fuse
                && matches!(step.op, Op::Linear(_))
                && matches!(self.steps.get(i + 1), Some(s) if matches!(s.op, Op::Layer(Layer::ReLU)));
            let out = &mut rest[usize::from(fused)];
            match &step.op {
                Op::Linear(linear) => {
                    let bias = linear.bias.as_deref();
                    let epilogue = kernel::Epilogue { bias, relu: fused };
                    kernel::linear_packed(input, rows[i], &linear.weight, out, epilogue);
                }
                Op::Layer(layer) => layer.apply_elementwise(input, out),
            }
            i += 1 + usize::from(fused);
            progress(i, total);
        }
        if fresh {
            buffers.key = Some((self.id, in_shape.to_vec()));
        }
        Ok(())
    }

    /// Sizes `buffers` for an input of `shape`, checking that every layer takes it.
    fn allocate(&self, buffers: &mut ForwardBuffers, shape: &[usize]) -> Result<(), ForwardError> {
        let mut shape = shape.to_vec();
        buffers.outputs.clear();
        buffers.shapes.clear();
        buffers.rows.clear();
        let mut total = Some(0u64);
        for step in &self.steps {
            let shape_error = |shape: &[usize], reason: String| ForwardError::Shape {
                path: step.path.clone(),
                repr: step.repr.clone(),
                shape: shape.to_vec(),
                reason,
            };
            buffers
                .rows
                .push(shape[..shape.len().saturating_sub(1)].iter().product());
            match &step.op {
                Op::Linear(linear) => {
                    let needed = linear.weight.in_features();
                    if shape.last() != Some(&needed) {
                        return Err(shape_error(
                            &shape,
                            format!("the last dimension must be {needed}"),
                        ));
                    }
                    *shape.last_mut().expect("checked above") = linear.weight.out_features();
                }
                Op::Layer(Layer::Flatten { start_dim, end_dim }) => {
                    shape = flatten_shape(&shape, *start_dim, *end_dim)
                        .map_err(|reason| shape_error(&shape, reason))?;
                }
                Op::Layer(_) => {}
            }
            // Counted with checked arithmetic; nothing is allocated until all of it is known to fit.
            let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
            total = total.zip(elements).and_then(|(t, e)| t.checked_add(e));
            buffers.shapes.push(IxDyn(&shape));
        }
        budget::check(
            "the forward pass",
            budget::Kind::Activations,
            budget::bytes_of(total, 4),
        )?;
        for shape in &buffers.shapes {
            buffers
                .outputs
                .push(vec![0.0; ndarray::Dimension::size(shape)]);
        }
        Ok(())
    }
}

/// Gathers the steps of a model, packing each distinct Linear weight once.
struct Builder<'m> {
    model: &'m Model,
    steps: Vec<Step>,
    packed: HashMap<ParamId, Arc<PackedWeight>>,
    versions: Vec<(ParamId, u64)>,
}

impl Builder<'_> {
    fn collect(&mut self, module: &Module, path: &str) -> Result<(), ForwardError> {
        match &module.kind {
            ModuleKind::Sequential => {
                for child in &module.children {
                    self.collect(child, &join(path, &child.name))?;
                }
            }
            ModuleKind::ModuleList | ModuleKind::Unknown | ModuleKind::Class(_) => {
                let why = module.numbering_gaps().map_or_else(String::new, |gaps| {
                    let gaps: Vec<String> = gaps.iter().map(ToString::to_string).collect();
                    format!(
                        "; its children are numbered with {} missing, which were layers without parameters (activations) that a checkpoint does not record",
                        gaps.join(", ")
                    )
                });
                return Err(ForwardError::UnknownModule {
                    path: path.to_owned(),
                    why,
                });
            }
            ModuleKind::Layer(Layer::Linear {
                in_features,
                out_features,
                ..
            }) => {
                let weight_id = module.param("weight").ok_or_else(|| {
                    ForwardError::Unreadable(format!("Linear {path:?} has no weight"))
                })?;
                let weight = if let Some(packed) = self.packed.get(&weight_id) {
                    Arc::clone(packed)
                } else {
                    let values = self.read_f32(weight_id, path, "weight")?;
                    let w = Array2::from_shape_vec((*out_features, *in_features), values)
                        .map_err(|e| ForwardError::Unreadable(format!("{path}.weight: {e}")))?;
                    let packed = Arc::new(PackedWeight::new(w.view()));
                    self.packed.insert(weight_id, Arc::clone(&packed));
                    packed
                };
                let bias: Option<Arc<[f32]>> = match module.param("bias") {
                    Some(id) => Some(Arc::from(self.read_f32(id, path, "bias")?)),
                    None => None,
                };
                if let Some(b) = &bias
                    && b.len() != *out_features
                {
                    return Err(ForwardError::Unreadable(format!(
                        "{path}.bias has {} values for {out_features} outputs",
                        b.len()
                    )));
                }
                self.steps.push(Step {
                    path: path.to_owned(),
                    repr: module.repr(),
                    op: Op::Linear(LinearStep { weight, bias }),
                });
            }
            ModuleKind::Layer(layer) => {
                self.steps.push(Step {
                    path: path.to_owned(),
                    repr: module.repr(),
                    op: Op::Layer(layer.clone()),
                });
            }
        }
        Ok(())
    }

    /// The values of a parameter as f32, recording its version.
    fn read_f32(&mut self, id: ParamId, path: &str, local: &str) -> Result<Vec<f32>, ForwardError> {
        let store = &self.model.store;
        self.versions.push((id, store.version(id)));
        store
            .get(id)
            .to_f32_vec()
            .map_err(|e| ForwardError::Unreadable(format!("{}: {e}", join(path, local))))
    }
}

/// The shape `torch.flatten(x, start_dim, end_dim)` gives an input of `shape`.
fn flatten_shape(shape: &[usize], start_dim: i64, end_dim: i64) -> Result<Vec<usize>, String> {
    let rank = shape.len() as i64;
    let wrap = |d: i64| if d < 0 { d + rank } else { d };
    let (start, end) = (wrap(start_dim), wrap(end_dim));
    if rank == 0 || start < 0 || end >= rank || start > end {
        return Err(format!(
            "Flatten(start_dim={start_dim}, end_dim={end_dim}) does not fit rank {rank}"
        ));
    }
    let (start, end) = (start as usize, end as usize);
    let mut new_shape = shape[..start].to_vec();
    new_shape.push(shape[start..=end].iter().product());
    new_shape.extend_from_slice(&shape[end + 1..]);
    Ok(new_shape)
}
