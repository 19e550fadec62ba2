//! A forward pass that keeps every layer's activation, for the output and for the app to show.

use ndarray::{Array2, ArrayD, IxDyn};
use thiserror::Error;

use super::Model;
use super::layers::{self, Layer};
use super::rng::TorchGenerator;
use super::tree::{Module, ModuleKind, join};

/// Why a model cannot run, or cannot run on this input.
#[derive(Debug, Error)]
pub enum ForwardError {
    /// Some module's computation is unknown (a checkpoint read without an architecture).
    #[error(
        "cannot run a forward pass: module {0:?} has no known kind; give its architecture with --arch FILE (the text print(model) shows)"
    )]
    UnknownModule(String),
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

/// What a Linear needs at run time: its weight as an f32 matrix, and its bias.
#[derive(Debug, Clone)]
struct LinearStep {
    weight: Array2<f32>,
    bias: Option<Vec<f32>>,
}

#[derive(Debug, Clone)]
enum Op {
    Linear(LinearStep),
    Layer(Layer),
}

/// A model ready to run: the layers in execution order with their weights decoded once.
#[derive(Debug, Clone)]
pub struct ForwardPlan {
    steps: Vec<(String, String, Op)>,
}

impl ForwardPlan {
    /// Flattens the model's Sequentials into a list of layers and decodes each Linear's weights.
    pub fn new(model: &Model) -> Result<Self, ForwardError> {
        let mut steps = Vec::new();
        collect(model, &model.root, "", &mut steps)?;
        Ok(ForwardPlan { steps })
    }

    /// The width of the input the first Linear expects, if there is one.
    #[must_use]
    pub fn in_features(&self) -> Option<usize> {
        self.steps.iter().find_map(|(_, _, op)| match op {
            Op::Linear(step) => Some(step.weight.ncols()),
            Op::Layer(_) => None,
        })
    }

    /// `torch.manual_seed(seed); torch.rand(batch, in_features)`: the random batch of `--batch`;
    /// `None` when the model has no Linear to give the width.
    #[must_use]
    pub fn random_input(&self, batch: usize, seed: u64) -> Option<ArrayD<f32>> {
        let width = self.in_features()?;
        let mut values = vec![0f32; batch * width];
        TorchGenerator::new(seed).fill_uniform(&mut values, 0.0, 1.0);
        Some(ArrayD::from_shape_vec(IxDyn(&[batch, width]), values).expect("batch·width values"))
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
        let mut activations: Vec<Activation> = Vec::with_capacity(self.steps.len());
        for (path, repr, op) in &self.steps {
            let input = activations.last().map_or(x, |a| &a.output);
            let shape_error = |reason: String| ForwardError::Shape {
                path: path.clone(),
                repr: repr.clone(),
                shape: input.shape().to_vec(),
                reason,
            };
            let output = match op {
                Op::Linear(step) => {
                    let needed = step.weight.ncols();
                    if input.ndim() == 0 || input.shape()[input.ndim() - 1] != needed {
                        return Err(shape_error(format!("the last dimension must be {needed}")));
                    }
                    layers::linear(input, &step.weight, step.bias.as_deref())
                }
                Op::Layer(Layer::Flatten { start_dim, end_dim }) => {
                    flatten(input, *start_dim, *end_dim).map_err(shape_error)?
                }
                Op::Layer(layer) => {
                    let mut output = input.clone();
                    layer.apply_elementwise(&mut output);
                    output
                }
            };
            activations.push(Activation {
                path: path.clone(),
                repr: repr.clone(),
                output,
            });
            progress(activations.len(), self.steps.len());
        }
        if activations.is_empty() {
            activations.push(Activation {
                path: String::new(),
                repr: "Sequential()".into(),
                output: x.clone(),
            });
        }
        Ok(activations)
    }
}

fn collect(
    model: &Model,
    module: &Module,
    path: &str,
    steps: &mut Vec<(String, String, Op)>,
) -> Result<(), ForwardError> {
    match &module.kind {
        ModuleKind::Sequential => {
            for child in &module.children {
                collect(model, child, &join(path, &child.name), steps)?;
            }
        }
        ModuleKind::Unknown => return Err(ForwardError::UnknownModule(path.to_owned())),
        ModuleKind::Layer(Layer::Linear {
            in_features,
            out_features,
            ..
        }) => {
            let weight = read_f32(model, module, path, "weight")?.ok_or_else(|| {
                ForwardError::Unreadable(format!("Linear {path:?} has no weight"))
            })?;
            let weight = Array2::from_shape_vec((*out_features, *in_features), weight)
                .map_err(|e| ForwardError::Unreadable(format!("{path}.weight: {e}")))?;
            let bias = read_f32(model, module, path, "bias")?;
            steps.push((
                path.to_owned(),
                module.repr(),
                Op::Linear(LinearStep { weight, bias }),
            ));
        }
        ModuleKind::Layer(layer) => {
            steps.push((path.to_owned(), module.repr(), Op::Layer(layer.clone())));
        }
    }
    Ok(())
}

/// The values of `module`'s parameter `local` as f32, if it has one.
fn read_f32(
    model: &Model,
    module: &Module,
    path: &str,
    local: &str,
) -> Result<Option<Vec<f32>>, ForwardError> {
    let Some(id) = module.param(local) else {
        return Ok(None);
    };
    model
        .store
        .get(id)
        .to_f32_vec()
        .map(Some)
        .map_err(|e| ForwardError::Unreadable(format!("{}: {e}", join(path, local))))
}

/// `torch.flatten(x, start_dim, end_dim)`.
fn flatten(x: &ArrayD<f32>, start_dim: i64, end_dim: i64) -> Result<ArrayD<f32>, String> {
    let rank = x.ndim() as i64;
    let wrap = |d: i64| if d < 0 { d + rank } else { d };
    let (start, end) = (wrap(start_dim), wrap(end_dim));
    if rank == 0 || start < 0 || end >= rank || start > end {
        return Err(format!(
            "Flatten(start_dim={start_dim}, end_dim={end_dim}) does not fit rank {rank}"
        ));
    }
    let (start, end) = (start as usize, end as usize);
    let shape = x.shape();
    let mut new_shape = shape[..start].to_vec();
    new_shape.push(shape[start..=end].iter().product());
    new_shape.extend_from_slice(&shape[end + 1..]);
    Ok(x.to_owned()
        .into_shape_with_order(IxDyn(&new_shape))
        .expect("same number of elements"))
}
