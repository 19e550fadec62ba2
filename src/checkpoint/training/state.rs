//! A parameter's optimizer state, found beside it: by `param_names` when the optimizer was built
//! from named parameters, else by the order of the ids across `param_groups` against the model's
//! `parameters()` order (a Trainer's decay / no-decay split rebuilt), every shape checked.

use thiserror::Error;

use crate::checkpoint::remote::fetch;
use crate::io::pickle::Scalar;
use crate::model::Model;
use crate::model::tree::join_all;
use crate::tensor::Tensor;

/// Which `torch.optim` class a state dict comes from (its `param_groups` keys tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    /// `torch.optim.Adam` (weight decay as L2, folded into the gradient).
    Adam,
    /// `torch.optim.AdamW` (decoupled weight decay).
    AdamW,
    /// `torch.optim.SGD`.
    Sgd,
}

impl OptimizerKind {
    /// torch's class name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Adam => "Adam",
            OptimizerKind::AdamW => "AdamW",
            OptimizerKind::Sgd => "SGD",
        }
    }
}

/// One parameter group's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The class.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Adam's `(beta1, beta2)`.
    pub betas: (f64, f64),
    /// Adam's epsilon.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// SGD's momentum.
    pub momentum: f64,
    /// SGD's dampening.
    pub dampening: f64,
    /// SGD's Nesterov flag.
    pub nesterov: bool,
}

/// One parameter's optimizer state.
#[derive(Clone)]
pub struct ParamState {
    /// Its group's settings.
    pub group: Group,
    /// Adam's step count so far (`None` for SGD).
    pub step: Option<f64>,
    /// `(name, tensor)`: `exp_avg`, `exp_avg_sq` or `momentum_buffer`, as stored.
    pub tensors: Vec<(&'static str, Tensor)>,
}

impl ParamState {
    /// The state tensor called `name`.
    #[must_use]
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
    }
}

/// Why an optimizer's state cannot be put beside the parameters: said, never guessed past.
#[derive(Debug, Error)]
pub enum OptimizerError {
    /// The ids across `param_groups` and the model's parameters differ in number.
    #[error(
        "the optimizer lists {ids} parameters and the model has {params}: which is which cannot be told"
    )]
    Count {
        /// Ids in `param_groups`.
        ids: usize,
        /// Parameters of the model.
        params: usize,
    },
    /// Several groups without `param_names`, not split as a Trainer splits them.
    #[error(
        "{0} parameter groups without param_names, not split into decayed and not decayed parameters as a Trainer does: which id is which parameter cannot be told"
    )]
    Groups(usize),
    /// A `param_names` entry naming no parameter.
    #[error("param_names lists {0}, which the model does not hold")]
    UnknownName(String),
    /// A state tensor whose shape is not its parameter's.
    #[error("{state} of {param} has shape {got:?}, the parameter {want:?}")]
    Shape {
        /// The parameter.
        param: String,
        /// The state's name.
        state: &'static str,
        /// The state's shape.
        got: Vec<usize>,
        /// The parameter's shape.
        want: Vec<usize>,
    },
    /// Settings that tell no known optimizer.
    #[error("the optimizer's param_groups {0}")]
    Unknown(&'static str),
}

/// The state tensors each kind keeps.
const STATES: [&str; 3] = ["exp_avg", "exp_avg_sq", "momentum_buffer"];

/// Whether `values` (a checkpoint's plain values) hold an optimizer's `param_groups`.
#[must_use]
pub fn holds_optimizer(values: &[(String, Scalar)]) -> bool {
    optimizer_prefix(values).is_some()
}

/// Where the optimizer's state dict is among `values`: `""` at the top, `"optimizer."` nested.
fn optimizer_prefix(values: &[(String, Scalar)]) -> Option<String> {
    values.iter().find_map(|(name, _)| {
        if name.starts_with("param_groups.") {
            return Some(String::new());
        }
        name.split_once(".param_groups.")
            .map(|(owner, _)| format!("{owner}."))
    })
}

/// The optimizer state of parameter `param` (a state_dict key of `model`), if the checkpoint
/// holds an optimizer; `Ok(None)` when it holds none, or nothing yet for this parameter.
pub fn state_of(
    model: &Model,
    values: &[(String, Scalar)],
    param: &str,
) -> Result<Option<ParamState>, OptimizerError> {
    let Some(prefix) = optimizer_prefix(values) else {
        return Ok(None);
    };
    let value = |key: &str| lookup(values, &format!("{prefix}param_groups.{key}"));
    let mut groups = Vec::new();
    while value(&format!("{}.lr", groups.len())).is_some() {
        let g = groups.len();
        let list = |field: &str| {
            (0..)
                .map_while(|i| value(&format!("{g}.{field}.{i}")))
                .collect::<Vec<_>>()
        };
        let ids: Vec<i64> = list("params")
            .iter()
            .filter_map(|v| match v {
                Scalar::Int(i) => Some(*i),
                _ => None,
            })
            .collect();
        let names: Vec<String> = list("param_names")
            .iter()
            .filter_map(|v| match v {
                Scalar::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        groups.push((group(&|k| value(&format!("{g}.{k}")))?, ids, names));
    }
    let params = parameters(model, prefix.trim_end_matches('.'));
    let id_of = ids_by_param(&params, &groups)?;
    let Some(position) = params.iter().position(|(n, _)| n == param) else {
        return Ok(None);
    };
    let (id, g) = id_of[position];
    let want = params[position].1.shape().to_vec();
    let mut tensors = Vec::new();
    let mut step = None;
    for (name, tensor) in model
        .named_parameters()
        .into_iter()
        .chain(model.state_dict())
    {
        let Some(rest) = name.strip_prefix(&format!("{prefix}state.{id}.")) else {
            continue;
        };
        let t = model.store.get(tensor);
        if rest == "step" {
            // A distributed checkpoint's step tensor is read when first asked for.
            step = fetch(t)
                .ok()
                .and_then(|()| t.to_f32_vec().ok())
                .and_then(|v| v.first().copied())
                .map(f64::from);
        } else if let Some(&state) = STATES.iter().find(|s| **s == rest) {
            if t.shape() != want.as_slice() {
                return Err(OptimizerError::Shape {
                    param: param.to_owned(),
                    state,
                    got: t.shape().to_vec(),
                    want,
                });
            }
            if tensors.iter().all(|(n, _)| *n != state) {
                tensors.push((state, t.clone()));
            }
        }
    }
    if tensors.is_empty() {
        return Ok(None);
    }
    // A `step` kept as a plain int (older torch) is a value, not a tensor.
    if step.is_none()
        && let Some(Scalar::Int(n)) = lookup(values, &format!("{prefix}state.{id}.step"))
    {
        step = Some(*n as f64);
    }
    Ok(Some(ParamState {
        group: groups[g].0.clone(),
        step,
        tensors,
    }))
}

/// A plain value by name, following a shared object (`betas` listed once for all groups) to where
/// it was listed.
fn lookup<'v>(values: &'v [(String, Scalar)], key: &str) -> Option<&'v Scalar> {
    if let Some((_, v)) = values.iter().find(|(n, _)| n == key) {
        return Some(v);
    }
    // `a.b.0` where `a.b` is the same object as `x.y`: `x.y.0`.
    let (head, tail) = key.rsplit_once('.')?;
    match values.iter().find(|(n, _)| n == head) {
        Some((_, Scalar::Same(first))) => values
            .iter()
            .find(|(n, _)| *n == format!("{first}.{tail}"))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// One group's settings, and which class they are from.
fn group<'v>(get: &dyn Fn(&str) -> Option<&'v Scalar>) -> Result<Group, OptimizerError> {
    let number = |k: &str| match get(k) {
        Some(Scalar::Float(x)) => Some(*x),
        Some(Scalar::Int(i)) => Some(*i as f64),
        _ => None,
    };
    let flag = |k: &str| matches!(get(k), Some(Scalar::Bool(true)));
    if flag("amsgrad") || flag("maximize") {
        return Err(OptimizerError::Unknown(
            "ask for amsgrad or maximize, whose next step paramscope does not compute",
        ));
    }
    let lr = number("lr").ok_or(OptimizerError::Unknown("have no lr"))?;
    let weight_decay = number("weight_decay").unwrap_or(0.0);
    let mut out = Group {
        kind: OptimizerKind::Sgd,
        lr,
        betas: (0.0, 0.0),
        eps: 0.0,
        weight_decay,
        momentum: number("momentum").unwrap_or(0.0),
        dampening: number("dampening").unwrap_or(0.0),
        nesterov: flag("nesterov"),
    };
    if let (Some(b1), Some(b2)) = (number("betas.0"), number("betas.1")) {
        out.betas = (b1, b2);
        out.eps = number("eps").ok_or(OptimizerError::Unknown("have betas but no eps"))?;
        out.kind = match get("decoupled_weight_decay") {
            Some(Scalar::Bool(true)) => OptimizerKind::AdamW,
            Some(Scalar::Bool(false)) => OptimizerKind::Adam,
            // Older torch wrote no flag: the two differ only when weights decay.
            _ if weight_decay == 0.0 => OptimizerKind::Adam,
            _ => {
                return Err(OptimizerError::Unknown(
                    "do not say whether the weight decay is decoupled (Adam or AdamW)",
                ));
            }
        };
    } else if get("momentum").is_none() {
        return Err(OptimizerError::Unknown(
            "are neither Adam's, AdamW's nor SGD's",
        ));
    }
    Ok(out)
}

/// The model's `parameters()` in order, by name: tensors that are neither buffers nor optimizer
/// state, under `owner` (the optimizer's sibling `model.` when nested) when it holds any.
fn parameters<'m>(model: &'m Model, optimizer: &str) -> Vec<(String, &'m Tensor)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    model
        .root
        .for_each_param(&mut |segments, module, local, id| {
            let name = join_all(segments, local);
            let in_optimizer = !optimizer.is_empty()
                && (name.starts_with(&format!("{optimizer}.")) || name == optimizer);
            if !module.is_buffer(local) && !in_optimizer && seen.insert(id) {
                out.push((name, model.store.get(id)));
            }
        });
    out
}

/// For each parameter, its id in the optimizer's state and its group.
fn ids_by_param(
    params: &[(String, &Tensor)],
    groups: &[(Group, Vec<i64>, Vec<String>)],
) -> Result<Vec<(i64, usize)>, OptimizerError> {
    let ids: usize = groups.iter().map(|(_, ids, _)| ids.len()).sum();
    if ids != params.len() {
        return Err(OptimizerError::Count {
            ids,
            params: params.len(),
        });
    }
    let mut out = vec![None; params.len()];
    let named = groups
        .iter()
        .all(|(_, ids, names)| names.len() == ids.len());
    if named {
        // `param_names` are the module's own names; the checkpoint may nest them (`model.`).
        for (g, (_, ids, names)) in groups.iter().enumerate() {
            for (id, name) in ids.iter().zip(names) {
                let at = params
                    .iter()
                    .position(|(p, _)| p == name || p.ends_with(&format!(".{name}")))
                    .ok_or_else(|| OptimizerError::UnknownName(name.clone()))?;
                out[at] = Some((*id, g));
            }
        }
    } else {
        let order = group_order(params, groups)?;
        let mut next = groups
            .iter()
            .map(|(_, ids, _)| ids.iter())
            .collect::<Vec<_>>();
        for (at, g) in order.into_iter().enumerate() {
            let id = next[g]
                .next()
                .copied()
                .ok_or(OptimizerError::Groups(groups.len()))?;
            out[at] = Some((id, g));
        }
    }
    out.into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or(OptimizerError::Groups(groups.len()))
}

/// Which group each parameter (in `parameters()` order) is in: the only group, or a Trainer's
/// split: weights decayed, biases and norm weights not.
fn group_order(
    params: &[(String, &Tensor)],
    groups: &[(Group, Vec<i64>, Vec<String>)],
) -> Result<Vec<usize>, OptimizerError> {
    match groups {
        [_] => Ok(vec![0; params.len()]),
        [(decayed, d, _), (plain, _, _)]
            if decayed.weight_decay > 0.0 && plain.weight_decay == 0.0 =>
        {
            let no_decay = |name: &str| {
                let lower = name.to_ascii_lowercase();
                lower.ends_with("bias") || lower.contains("norm") || lower.contains("ln_")
            };
            let order: Vec<usize> = params
                .iter()
                .map(|(n, _)| usize::from(no_decay(n)))
                .collect();
            if order.iter().filter(|&&g| g == 0).count() == d.len() {
                Ok(order)
            } else {
                Err(OptimizerError::Groups(2))
            }
        }
        _ => Err(OptimizerError::Groups(groups.len())),
    }
}
