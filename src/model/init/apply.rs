//! Applying schemes to every Linear under a module, as `model[path].apply(fn)` does.

use std::collections::HashSet;

use super::{InitError, InitScheme, Role};
use crate::model::Model;
use crate::model::layers::Layer;
use crate::model::param::ParamId;
use crate::model::rng::TorchGenerator;
use crate::model::tree::{Module, join};

/// A re-initialization of every Linear under a module, as `model[path].apply(fn)` does.
#[derive(Debug, Clone)]
pub struct InitPlan {
    /// The scheme for each Linear's weight.
    pub weight: Option<InitScheme>,
    /// The scheme for each Linear's bias; `None` leaves biases as they are.
    pub bias: Option<InitScheme>,
    /// The seed of the generator (`torch.manual_seed(seed)` just before `apply`).
    pub seed: u64,
}

/// The tensors one apply wrote, each with its canonical path, so that a caller may report or undo.
#[derive(Debug, Clone, Default)]
pub struct InitReport {
    /// `(state_dict key, id)` of every tensor written, in the order they were drawn.
    pub written: Vec<(String, ParamId)>,
}

impl InitPlan {
    /// Applies the plan to every Linear under the module at `path` (the module itself included).
    ///
    /// Modules are visited children first, as `nn.Module.apply` does, and a module reached twice
    /// (a tied layer) is initialized once. Nothing is written unless every tensor succeeds.
    pub fn apply(&self, model: &mut Model, path: &str) -> Result<InitReport, InitError> {
        let (module_path, only) = resolve_target(model, path)?;
        let module = model.find_module(&module_path).map_err(bad_at)?.1;
        let mut linears = Vec::new();
        collect_linears_post_order(module, &module_path, &mut linears);
        let mut rng = TorchGenerator::new(self.seed);
        let mut seen = HashSet::new();
        let mut updates = Vec::new();
        let mut report = InitReport::default();
        for (path, weight, bias, in_features) in linears {
            if !seen.insert(weight) {
                continue;
            }
            let targets = [
                (self.weight.as_ref(), Some(weight), "weight", Role::Weight),
                (
                    self.bias.as_ref(),
                    bias,
                    "bias",
                    Role::Bias {
                        fan_in: in_features,
                    },
                ),
            ];
            for (scheme, id, local, role) in targets {
                let (Some(scheme), Some(id)) = (scheme, id) else {
                    continue;
                };
                if only.is_some_and(|only| only != id) {
                    continue;
                }
                let tensor = model.store.get(id);
                let values = scheme.sample(tensor.shape(), role, &mut rng)?;
                let updated = tensor.with_values(&values).map_err(|e| InitError::Unfit {
                    scheme: scheme.name(),
                    shape: tensor.shape().to_vec(),
                    reason: e.to_string(),
                })?;
                updates.push((id, updated));
                report.written.push((join(&path, local), id));
            }
        }
        for (id, tensor) in updates {
            model.store.set(id, tensor);
        }
        Ok(report)
    }
}

/// The module a re-init walks, and the one tensor it is limited to when `path` names a parameter
/// (`0.weight`, as `nn.init.normal_(net[0].weight)`): then the walk starts at its module.
fn resolve_target(model: &Model, path: &str) -> Result<(String, Option<ParamId>), InitError> {
    let module_error = match model.find_module(path) {
        Ok((module_path, _)) => return Ok((module_path, None)),
        Err(e) => e,
    };
    let (key, id) = model.find_param(path).map_err(|_| bad_at(module_error))?;
    // The module that owns the key: the root for a name kept whole there (`a..b`).
    let module_path = key
        .rsplit_once('.')
        .map_or("", |(module, _)| module)
        .to_owned();
    if model.find_module(&module_path).is_err() {
        return Ok((String::new(), Some(id)));
    }
    Ok((module_path, Some(id)))
}

/// `--at` that names neither a module nor a parameter.
fn bad_at(error: crate::model::LookupError) -> InitError {
    InitError::BadValue {
        scheme: "init",
        key: "at".into(),
        reason: error.to_string(),
    }
}

/// `(path, weight, bias, in_features)` of every Linear under `module`, children before parents.
fn collect_linears_post_order(
    module: &Module,
    path: &str,
    out: &mut Vec<(String, ParamId, Option<ParamId>, usize)>,
) {
    for child in &module.children {
        collect_linears_post_order(child, &join(path, &child.name), out);
    }
    if let (Some(Layer::Linear { in_features, .. }), Some(weight)) =
        (module.layer(), module.param("weight"))
    {
        out.push((path.to_owned(), weight, module.param("bias"), *in_features));
    }
}
