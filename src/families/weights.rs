//! Tensors looked up by their Hugging Face names, checked against the shapes the config implies,
//! upcast to f32, and Linear weights packed once for the kernel, or, when a GGUF file holds them
//! in a block-quantized type the kernel multiplies (Q4_0 ... Q6_K), kept as the file holds them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use ndarray::ArrayView2;

use super::config::Origin;
use super::error::FamilyError;
use super::quant_weight::{Part, QuantWeight, kernel_quant};
use crate::kernel::{self, Epilogue, PackedWeight};
use crate::model::{Model, ParamId};
use crate::tensor::ggml::Quant;
use crate::tensor::{DType, Tensor};

/// The model's tensors by state_dict name (every path of a tied tensor), with the versions read.
pub struct Weights<'m> {
    model: &'m Model,
    names: HashMap<String, ParamId>,
    packed: HashMap<(ParamId, bool), Weight>,
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
            // The entry point that knows where the config was read says so (`read_from`).
            return Err(FamilyError::Shape {
                origin: Origin::ConfigJson,
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
        if let Some(weight) = self.quantized_stack(paths, in_features, out_features)? {
            let mut bias = Vec::new();
            if with_bias {
                for (path, &n) in paths.iter().zip(out_features) {
                    bias.extend(self.get(&format!("{path}.bias"), &[n])?);
                }
            }
            return Ok(Linear::new(
                Weight::Quant(Arc::new(weight)),
                with_bias.then_some(bias),
            ));
        }
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
            weight: Weight::Packed(Arc::new(PackedWeight::new(w))),
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
                    weight: Weight::Packed(Arc::new(PackedWeight::new(w))),
                    bias: None,
                }
            })
            .collect())
    }

    /// The weights at `paths` as one quantized matrix, their rows one after the other, when all
    /// are of one type the kernel multiplies; `None` otherwise (they are then upcast and packed).
    fn quantized_stack(
        &mut self,
        paths: &[&str],
        k: usize,
        out_features: &[usize],
    ) -> Result<Option<QuantWeight>, FamilyError> {
        let mut parts = Vec::with_capacity(paths.len());
        for (path, &n) in paths.iter().zip(out_features) {
            let name = format!("{path}.weight");
            let id = self.id(&name)?;
            let tensor = self.model.store.get(id);
            if tensor.shape() != [n, k] {
                return Ok(None);
            }
            parts.push((id, tensor.clone()));
        }
        let Some(quant) = parts.first().and_then(|(_, t)| kernel_quant(t.dtype(), k)) else {
            return Ok(None);
        };
        if parts.iter().any(|(_, t)| t.dtype() != DType::Ggml(quant)) {
            return Ok(None);
        }
        for (id, _) in &parts {
            self.versions.push((*id, self.model.store.version(*id)));
        }
        let tensors = parts.iter().map(|(_, tensor)| Part::of(tensor)).collect();
        Ok(Some(QuantWeight::new(tensors, quant, k)))
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
            packed.clone()
        } else {
            let shape = if stored_in_out { [k, n] } else { [n, k] };
            let tensor = self.model.store.get(id);
            let weight = match kernel_quant(tensor.dtype(), k) {
                Some(quant) if !stored_in_out && tensor.shape() == shape => {
                    self.versions.push((id, self.model.store.version(id)));
                    Weight::Quant(Arc::new(QuantWeight::new(vec![Part::of(tensor)], quant, k)))
                }
                _ => {
                    let values = self.get(&name, &shape)?;
                    let w = ArrayView2::from_shape(shape, &values).expect("shape checked");
                    Weight::Packed(Arc::new(PackedWeight::new(if stored_in_out {
                        w.t()
                    } else {
                        w
                    })))
                }
            };
            self.packed.insert((id, stored_in_out), weight.clone());
            weight
        };
        let bias = if bias {
            Some(self.get(&format!("{path}.bias"), &[n])?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias))
    }
}

/// A Linear layer's weight: packed f32, or kept block-quantized.
#[derive(Debug, Clone)]
enum Weight {
    Packed(Arc<PackedWeight>),
    Quant(Arc<QuantWeight>),
}

/// A Linear layer ready to run: its weight packed (or kept quantized), its bias.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    /// One value per output; for a quantized weight, in the order its rows are stored.
    bias: Option<Vec<f32>>,
}

impl Linear {
    /// `weight` with `bias` (as shown), which a quantized weight's stored order takes once here.
    fn new(weight: Weight, bias: Option<Vec<f32>>) -> Self {
        let bias = match &weight {
            Weight::Quant(w) => bias.map(|b| w.stored_bias(b)),
            Weight::Packed(_) => bias,
        };
        Self { weight, bias }
    }

    /// A layer of no weights: what a build that only draws the tree gets.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            weight: Weight::Packed(Arc::new(PackedWeight::new(
                ArrayView2::from_shape((0, 0), &[]).expect("0 × 0"),
            ))),
            bias: None,
        }
    }

    /// The width of the rows it reads.
    #[must_use]
    pub fn in_features(&self) -> usize {
        match &self.weight {
            Weight::Packed(w) => w.in_features(),
            Weight::Quant(w) => w.in_features,
        }
    }

    /// `y = x·wᵀ + b` for `x` [rows, in], `y` resized to [rows, out].
    pub fn forward(&self, x: &[f32], y: &mut Vec<f32>) {
        match &self.weight {
            Weight::Packed(w) => {
                let rows = x.len() / w.in_features();
                y.resize(rows * w.out_features(), 0.0);
                let epilogue = Epilogue {
                    bias: self.bias.as_deref(),
                    relu: false,
                };
                kernel::linear_packed(x, rows, w, y, epilogue);
            }
            Weight::Quant(w) => {
                let rows = x.len() / w.in_features;
                y.resize(rows * w.out_features, 0.0);
                w.linear(x, rows, y, self.bias.as_deref());
            }
        }
    }
}

/// An embedding table [count, width]: f32, or a GGUF file's quantized rows, each dequantized when
/// a token looks it up (so a model's largest tensor stays the size the file gives it).
#[derive(Debug, Clone)]
pub struct Embedding {
    table: Table,
    width: usize,
    count: usize,
}

#[derive(Clone)]
enum Table {
    F32(Vec<f32>),
    Quant(Tensor, Quant),
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::F32(v) => write!(f, "F32({} values)", v.len()),
            Self::Quant(_, q) => write!(f, "{q}"),
        }
    }
}

impl Weights<'_> {
    /// The embedding table `name` [count, width], kept quantized when the file holds it so.
    pub fn embedding(
        &mut self,
        name: &str,
        count: usize,
        width: usize,
    ) -> Result<Embedding, FamilyError> {
        let id = self.id(name)?;
        let tensor = self.model.store.get(id);
        if let DType::Ggml(q) = tensor.dtype()
            && tensor.shape() == [count, width]
        {
            self.versions.push((id, self.model.store.version(id)));
            return Ok(Embedding {
                table: Table::Quant(tensor.clone(), q),
                width,
                count,
            });
        }
        Ok(Embedding::new(self.get(name, &[count, width])?, width))
    }
}

impl Embedding {
    /// A table of rows of `width` values (empty when only the tree is drawn).
    #[must_use]
    pub fn new(table: Vec<f32>, width: usize) -> Self {
        Self {
            count: table.len().checked_div(width).unwrap_or(0),
            table: Table::F32(table),
            width,
        }
    }

    /// The number of rows.
    #[must_use]
    pub fn count(&self) -> usize {
        self.count
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

    /// Row `id`, or that it is out of range.
    fn row(&self, id: usize) -> Result<Cow<'_, [f32]>, FamilyError> {
        let range = FamilyError::TokenRange {
            id,
            count: self.count,
        };
        if id >= self.count {
            return Err(range);
        }
        match &self.table {
            Table::F32(t) => t
                .get(id * self.width..(id + 1) * self.width)
                .map(Cow::Borrowed)
                .ok_or(range),
            Table::Quant(tensor, q) => {
                let mut row = Vec::with_capacity(self.width);
                q.dequantize_range(tensor.bytes(), id * self.width, self.width, &mut row);
                Ok(Cow::Owned(row))
            }
        }
    }

    /// Appends row `id` to `out`, or says the id is out of range.
    pub fn push(&self, id: usize, out: &mut Vec<f32>) -> Result<(), FamilyError> {
        out.extend_from_slice(&self.row(id)?);
        Ok(())
    }

    /// Adds row `id` to `out` (the same width).
    pub fn add(&self, id: usize, out: &mut [f32]) -> Result<(), FamilyError> {
        let row = self.row(id)?;
        out.iter_mut().zip(row.iter()).for_each(|(o, r)| *o += r);
        Ok(())
    }
}
