//! What of a training checkpoint is not the model: an optimizer's state (Adam's `exp_avg`,
//! `exp_avg_sq`, `step`) sits beside the weights in `{"model": ..., "optimizer": ...}`, and counting
//! it made a 12,778-parameter model show 38,340. Such tensors stay in the tree (shown, exported,
//! listed by `tree`) but are marked as not parameters, so totals and re-inits leave them out.
//!
//! Each parameter's own state is then found beside it ([`state_of`]): matched by `param_names`
//! when the optimizer was built from named parameters, else by the order of the ids across
//! `param_groups` against the model's `parameters()` order (rebuilding a Trainer's decay /
//! no-decay split), every shape checked; and the update `step()` would apply with a zero gradient
//! is computed as torch's single-tensor Adam, AdamW and SGD compute it ([`next_update`]).
//!
//! [`state`] finds a parameter's state, [`step`] computes its next update.

mod state;
mod step;

use crate::io::pickle::Scalar;
use crate::model::tree::{Class, Module, ModuleKind};

pub use state::{Group, OptimizerError, OptimizerKind, ParamState, holds_optimizer, state_of};
pub use step::{Next, UPDATE_OUTLIER, next_step, next_update, read, update_ratio, update_ratios};

/// The class name an optimizer's state dict is shown with (torch has no module class for it).
const OPTIMIZER_STATE: &str = "OptimizerState";

/// Marks every optimizer state dict in `root` as holding no parameters, and returns the paths of
/// the ones found. An optimizer's `state_dict()` is `{"state": {...}, "param_groups": [...]}`,
/// and its `param_groups` are plain values (`optimizer.param_groups.0.lr`), which is how it is found
/// wherever it is nested.
pub fn mark_optimizer_state(root: &mut Module, values: &[(String, Scalar)]) -> Vec<String> {
    let mut found: Vec<String> = values
        .iter()
        .filter_map(|(name, _)| {
            if name.starts_with("param_groups.") {
                return Some(String::new());
            }
            name.split_once(".param_groups.")
                .map(|(owner, _)| owner.to_owned())
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found.retain(|path| {
        let module = path
            .split('.')
            .filter(|s| !s.is_empty())
            .try_fold(&mut *root, |module, segment| {
                module.children.iter_mut().find(|c| c.name == segment)
            });
        module.is_some_and(|module| {
            mark(module);
            true
        })
    });
    found
}

/// Makes every tensor under `module` a non-parameter: each module becomes a class whose own tensors
/// are all buffers. Iterative: a file's nesting must not set the depth of a recursion.
fn mark(module: &mut Module) {
    let mut stack = vec![module];
    while let Some(module) = stack.pop() {
        let buffers = module.params.iter().map(|(n, _)| n.to_string()).collect();
        module.kind = ModuleKind::Class(Box::new(Class {
            name: OPTIMIZER_STATE.to_owned(),
            repr: OPTIMIZER_STATE.to_owned(),
            buffers,
        }));
        stack.extend(module.children.iter_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::mark_optimizer_state;
    use crate::io::Checkpoint;
    use crate::io::pickle::Scalar;
    use crate::tensor::Tensor;

    #[test]
    fn an_optimizers_moments_are_not_parameters() {
        let tensor = |n: usize| Tensor::from_f32(vec![n], &vec![0.0; n]);
        let tensors = vec![
            ("model.0.weight".to_owned(), tensor(12)),
            ("model.0.bias".to_owned(), tensor(3)),
            ("optimizer.state.0.exp_avg".to_owned(), tensor(12)),
            ("optimizer.state.0.exp_avg_sq".to_owned(), tensor(12)),
            ("optimizer.state.0.step".to_owned(), tensor(1)),
        ];
        let mut model = crate::checkpoint::from_checkpoint(
            Checkpoint::new(tensors, std::collections::BTreeMap::new()),
            false,
        )
        .unwrap();
        assert_eq!(model.total_params(), 40);
        let values = vec![
            ("epoch".to_owned(), Scalar::Int(7)),
            (
                "optimizer.param_groups.0.lr".to_owned(),
                Scalar::Float(1e-3),
            ),
        ];
        let found = mark_optimizer_state(std::sync::Arc::make_mut(&mut model.root), &values);
        assert_eq!(found, ["optimizer"]);
        assert_eq!(model.total_params(), 15);
        assert_eq!(model.count_buffers(&model.root), 25);
        assert_eq!(model.state_dict().len(), 5);
    }
}
