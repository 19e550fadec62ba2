//! Tensors looked up by their Hugging Face names, checked against the shapes the config implies,
//! upcast to f32, and Linear weights packed once for the kernel.

use std::collections::HashMap;
use std::sync::Arc;

use ndarray::ArrayView2;

use super::error::FamilyError;
use crate::kernel::{self, Epilogue, PackedWeight};
use crate::model::{Model, ParamId};

/// The model's tensors by state_dict name (every path of a tied tensor), with the versions read.
pub struct Weights<'m> {
    model: &'m Model,
    names: HashMap<String, ParamId>,
    packed: HashMap<(ParamId, bool), Arc<PackedWeight>>,
    /// Every tensor read, with its version then: the plan is stale once any changes.
    pub versions: Vec<(ParamId, u64)>,
}

impl<'m> Weights<'m> {
    /// Indexes `model`'s tensors by name.
    #[must_use]
    pub fn new(model: &'m Model) -> Self {
        Self {
            model,
            names: model.state_dict().into_iter().collect(),
            packed: HashMap::new(),
            versions: Vec::new(),
        }
    }

    /// Whether the model holds a tensor of this name.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn id(&self, name: &str) -> Result<ParamId, FamilyError> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| FamilyError::Missing(name.to_owned()))
    }

    /// The values of `name` as f32, which must have exactly `shape`.
    pub fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, FamilyError> {
        let id = self.id(name)?;
        let tensor = self.model.store.get(id);
        if tensor.shape() != shape {
            return Err(FamilyError::Shape {
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: tensor.shape().to_vec(),
            });
        }
        self.versions.push((id, self.model.store.version(id)));
        tensor
            .to_f32_vec()
            .map_err(|source| FamilyError::Unreadable {
                name: name.to_owned(),
                source,
            })
    }

    /// `nn.Linear` at `path`: `weight` [out, in] and, when `bias`, `bias` [out].
    pub fn linear(
        &mut self,
        path: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Linear, FamilyError> {
        self.dense(path, in_features, out_features, bias, false)
    }

    /// GPT-2's `Conv1D` at `path`: a Linear whose `weight` is stored [in, out].
    pub fn conv1d(
        &mut self,
        path: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Linear, FamilyError> {
        self.dense(path, in_features, out_features, true, true)
    }

    /// Linear layers at `paths` that read the same input, as one: their weights stacked
    /// [Σ out, in] and packed once, their biases (when they have them) concatenated, so one
    /// product computes all their outputs side by side (query, key and value).
    pub fn linear_stack(
        &mut self,
        paths: &[&str],
        in_features: usize,
        out_features: &[usize],
        with_bias: bool,
    ) -> Result<Linear, FamilyError> {
        let (mut weight, mut bias) = (Vec::new(), Vec::new());
        for (path, &n) in paths.iter().zip(out_features) {
            weight.extend(self.get(&format!("{path}.weight"), &[n, in_features])?);
            if with_bias {
                bias.extend(self.get(&format!("{path}.bias"), &[n])?);
            }
        }
        let out: usize = out_features.iter().sum();
        let w = ArrayView2::from_shape((out, in_features), &weight).expect("rows checked");
        Ok(Linear {
            weight: Arc::new(PackedWeight::new(w)),
            bias: with_bias.then_some(bias),
        })
    }

    /// A 3-D tensor `[count, out, in]` (transformers 5's fused experts: `gate_up_proj`,
    /// `down_proj`) as `count` Linear layers, each packed on its own.
    pub fn linear_slices(
        &mut self,
        name: &str,
        count: usize,
        out_features: usize,
        in_features: usize,
    ) -> Result<Vec<Linear>, FamilyError> {
        let values = self.get(name, &[count, out_features, in_features])?;
        Ok(values
            .chunks_exact((out_features * in_features).max(1))
            .take(count)
            .map(|w| {
                let w =
                    ArrayView2::from_shape((out_features, in_features), w).expect("shape checked");
                Linear {
                    weight: Arc::new(PackedWeight::new(w)),
                    bias: None,
                }
            })
            .collect())
    }

    fn dense(
        &mut self,
        path: &str,
        k: usize,
        n: usize,
        bias: bool,
        stored_in_out: bool,
    ) -> Result<Linear, FamilyError> {
        let name = format!("{path}.weight");
        let id = self.id(&name)?;
        let weight = if let Some(packed) = self.packed.get(&(id, stored_in_out)) {
            self.versions.push((id, self.model.store.version(id)));
            Arc::clone(packed)
        } else {
            let shape = if stored_in_out { [k, n] } else { [n, k] };
            let values = self.get(&name, &shape)?;
            let w = ArrayView2::from_shape(shape, &values).expect("shape checked");
            let packed = Arc::new(PackedWeight::new(if stored_in_out { w.t() } else { w }));
            self.packed.insert((id, stored_in_out), Arc::clone(&packed));
            packed
        };
        let bias = if bias {
            Some(self.get(&format!("{path}.bias"), &[n])?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

/// A Linear layer ready to run: its weight packed, its bias.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Arc<PackedWeight>,
    bias: Option<Vec<f32>>,
}

impl Linear {
    /// A layer of no weights: what a build that only draws the tree gets.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            weight: Arc::new(PackedWeight::new(
                ArrayView2::from_shape((0, 0), &[]).expect("0 × 0"),
            )),
            bias: None,
        }
    }

    /// The width of the rows it reads.
    #[must_use]
    pub fn in_features(&self) -> usize {
        self.weight.in_features()
    }

    /// `y = x·wᵀ + b` for `x` [rows, in], `y` resized to [rows, out].
    pub fn forward(&self, x: &[f32], y: &mut Vec<f32>) {
        let rows = x.len() / self.weight.in_features();
        y.resize(rows * self.weight.out_features(), 0.0);
        let epilogue = Epilogue {
            bias: self.bias.as_deref(),
            relu: false,
        };
        kernel::linear_packed(x, rows, &self.weight, y, epilogue);
    }
}

/// An embedding table [count, width].
#[derive(Debug, Clone)]
pub struct Embedding {
    table: Vec<f32>,
    width: usize,
}

impl Embedding {
    /// A table of rows of `width` values (empty when only the tree is drawn).
    #[must_use]
    pub fn new(table: Vec<f32>, width: usize) -> Self {
        Self { table, width }
    }

    /// The number of rows.
    #[must_use]
    pub fn count(&self) -> usize {
        self.table.len() / self.width
    }

    /// Checks that a learned position table has a row for each of `len` tokens.
    pub fn check_positions(&self, len: usize) -> Result<(), FamilyError> {
        if len > self.count() {
            return Err(FamilyError::Input(format!(
                "{len} tokens is more than the model's {} positions",
                self.count()
            )));
        }
        Ok(())
    }

    /// Appends row `id` to `out`, or says the id is out of range.
    pub fn push(&self, id: usize, out: &mut Vec<f32>) -> Result<(), FamilyError> {
        let row = self
            .table
            .get(id * self.width..(id + 1) * self.width)
            .ok_or(FamilyError::TokenRange {
                id,
                count: self.count(),
            })?;
        out.extend_from_slice(row);
        Ok(())
    }

    /// Adds row `id` to `out` (the same width).
    pub fn add(&self, id: usize, out: &mut [f32]) -> Result<(), FamilyError> {
        let row = self
            .table
            .get(id * self.width..(id + 1) * self.width)
            .ok_or(FamilyError::TokenRange {
                id,
                count: self.count(),
            })?;
        out.iter_mut().zip(row).for_each(|(o, r)| *o += r);
        Ok(())
    }
}
