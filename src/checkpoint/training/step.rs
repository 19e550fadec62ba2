//! The update an optimizer's `step()` would make with a zero gradient, computed as torch's
//! single-tensor (CPU) Adam, AdamW and SGD compute it, and its ratio to the parameter.

use super::state::{OptimizerError, OptimizerKind, ParamState, state_of};
use crate::checkpoint::remote::fetch;
use crate::io::pickle::Scalar;
use crate::model::Model;
use crate::tensor::decode::Undecodable;
use crate::tensor::{FetchError, Tensor};

/// What `step()` subtracts from `param` when every gradient is zero (`param_before -
/// param_after`), computed in f32 as torch's single-tensor (CPU) Adam, AdamW and SGD do, in the same
/// order of operations.
pub fn next_update(param: &Tensor, state: &ParamState) -> Result<Vec<f32>, Undecodable> {
    let p = param.to_f32_vec()?;
    let read = |name: &str| {
        state
            .tensor(name)
            .map(Tensor::to_f32_vec)
            .transpose()
            .map(|v| v.unwrap_or_else(|| vec![0.0; p.len()]))
    };
    let g = &state.group;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "torch casts its scalars to the tensor's f32"
    )]
    let f = |x: f64| x as f32;
    Ok(match g.kind {
        OptimizerKind::Adam | OptimizerKind::AdamW => {
            let (m, v) = (read("exp_avg")?, read("exp_avg_sq")?);
            let step = state.step.unwrap_or(0.0) + 1.0;
            let (b1, b2) = g.betas;
            let step_size = g.lr / (1.0 - b1.powf(step));
            let bc2_sqrt = (1.0 - b2.powf(step)).sqrt();
            let decay = f(1.0 - g.lr * g.weight_decay);
            p.iter()
                .zip(m.iter().zip(&v))
                .map(|(&p0, (&m, &v))| {
                    let (mut param, mut grad) = (p0, 0.0f32);
                    // torch skips the decay when it is 0, so that an Inf parameter stays Inf.
                    match g.kind {
                        _ if g.weight_decay == 0.0 => {}
                        OptimizerKind::AdamW => param *= decay,
                        _ => grad += f(g.weight_decay) * param,
                    }
                    let m = lerp(m, grad, f(1.0 - b1));
                    let v = v * f(b2) + f(1.0 - b2) * grad * grad;
                    let denom = v.sqrt() / f(bc2_sqrt) + f(g.eps);
                    let after = param + f(-step_size) * m / denom;
                    p0 - after
                })
                .collect()
        }
        OptimizerKind::Sgd => {
            let buf = read("momentum_buffer")?;
            p.iter()
                .zip(&buf)
                .map(|(&p0, &b)| {
                    let grad = if g.weight_decay == 0.0 {
                        0.0f32
                    } else {
                        0.0f32 + f(g.weight_decay) * p0
                    };
                    let grad = if g.momentum == 0.0 {
                        grad
                    } else {
                        let b = b * f(g.momentum) + f(1.0 - g.dampening) * grad;
                        if g.nesterov {
                            grad + f(g.momentum) * b
                        } else {
                            b
                        }
                    };
                    p0 - (p0 + f(-g.lr) * grad)
                })
                .collect()
        }
    })
}

/// `||update|| / ||param||`: the parameter's effective step size.
#[must_use]
pub fn update_ratio(param: &[f32], update: &[f32]) -> f64 {
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    norm(update) / norm(param)
}

/// An update ratio over this many times the median of the model's is an outlier.
pub const UPDATE_OUTLIER: f64 = 10.0;

/// Every parameter holding optimizer state, with its update ratio, and the median of those ratios.
pub fn update_ratios(
    model: &Model,
    values: &[(String, Scalar)],
) -> Result<(Vec<(String, f64)>, f64), OptimizerError> {
    let mut ratios = Vec::new();
    for (name, id) in model.named_parameters() {
        let param = model.store.get(id);
        let Some(state) = state_of(model, values, &name)? else {
            continue;
        };
        // An undecodable dtype has no ratio to compare.
        if let (Ok(values), Ok(update)) = (param.to_f32_vec(), next_update(param, &state)) {
            ratios.push((name, update_ratio(&values, &update)));
        }
    }
    let mut finite: Vec<f64> = ratios
        .iter()
        .map(|r| r.1)
        .filter(|r| r.is_finite())
        .collect();
    finite.sort_unstable_by(f64::total_cmp);
    let median = finite.get(finite.len() / 2).copied().unwrap_or(f64::NAN);
    Ok((ratios, median))
}

/// ATen's `lerp`, in its two halves for accuracy.
fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight.abs() < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

/// A parameter's optimizer state with the update `step()` would make with a zero gradient.
pub struct Next {
    /// The state.
    pub state: ParamState,
    /// `param_before - param_after`, in the parameter's shape, F32.
    pub update: Tensor,
    /// `||update|| / ||param||`.
    pub ratio: f64,
}

impl Next {
    /// The state tensor called `name`, or the update (`"update"`).
    #[must_use]
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        if name == "update" {
            return Some(&self.update);
        }
        self.state.tensor(name)
    }

    /// The names [`Next::tensor`] knows for this parameter.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.state.tensors.iter().map(|(n, _)| *n).collect();
        names.push("update");
        names
    }
}

/// Reads what [`next_step`] reads: the parameter's values and its state's (a remote tensor
/// fetched, a distributed checkpoint's put together).
pub fn read(param: &Tensor, state: &ParamState) -> Result<(), FetchError> {
    fetch(param)?;
    state.tensors.iter().try_for_each(|(_, t)| fetch(t))
}

/// The next update of `param` under `state`, and its ratio (both read: [`read`]).
pub fn next_step(param: &Tensor, state: ParamState) -> Result<Next, Undecodable> {
    let update = next_update(param, &state)?;
    let ratio = update_ratio(&param.to_f32_vec()?, &update);
    Ok(Next {
        update: Tensor::from_f32(param.shape().to_vec(), &update),
        state,
        ratio,
    })
}
