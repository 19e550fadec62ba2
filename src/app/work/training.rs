//! The worker's training jobs: a parameter's optimizer state with the update `step()` would make
//! with a zero gradient, a run's checkpoints followed tensor by tensor, and one tensor as one
//! checkpoint of the run holds it.

use crate::app::error::AppError;
use crate::app::job::{Optimizer, PartDetail, Reply, SummaryKey, TrainingJob};
use crate::app::summary::summarize;
use crate::checkpoint::{self, LoadOptions, training};
use crate::compare::trajectory::{self, Run};
use crate::io::pickle::Scalar;
use crate::model::Model;

/// Runs `job`, its progress and result sent to `reply`.
pub fn execute(job: TrainingJob, reply: &mut dyn FnMut(Reply)) {
    match job {
        TrainingJob::Optimizer {
            key,
            model,
            values,
            name,
        } => reply(Reply::Optimizer(
            key,
            optimizer(key, &model, &values, &name),
        )),
        TrainingJob::Checkpoint { key, spec, seed } => {
            let found = version(&key.0, &spec, seed);
            reply(Reply::Checkpoint(key, found));
        }
        TrainingJob::Trajectory { checkpoints, seed } => {
            let result = trajectory(&checkpoints, seed, &mut |done, all| {
                reply(Reply::TrajectoryProgress(done, all));
            });
            reply(Reply::Trajectory(result));
        }
    }
}

/// The optimizer block of parameter `name` (tensor `key`): `None` when the optimizer keeps no
/// state for it.
fn optimizer(
    key: SummaryKey,
    model: &Model,
    values: &[(String, Scalar)],
    name: &str,
) -> Result<Option<Box<Optimizer>>, AppError> {
    let Some(state) = training::state_of(model, values, name)? else {
        return Ok(None);
    };
    let param = model.store.get(key.0);
    training::read(param, &state)?;
    let next = training::next_step(param, state)?;
    let mut stats: Vec<_> = (next.state.tensors.iter())
        .map(|(name, t)| (*name, t.stats()))
        .collect();
    stats.push(("update", next.update.stats()));
    Ok(Some(Box::new(Optimizer { next, stats })))
}

/// Tensor `name` as checkpoint `spec` holds it, read and summarized.
fn version(name: &str, spec: &str, seed: u64) -> Result<Box<PartDetail>, AppError> {
    let model = checkpoint::open_adapted(spec, &options(seed), None, None)?.model;
    let id = (model.state_dict().into_iter())
        .find_map(|(n, id)| (n == name).then_some(id))
        .ok_or_else(|| AppError::NotInCheckpoint {
            name: name.to_owned(),
            checkpoint: spec.to_owned(),
        })?;
    let tensor = model.store.get(id).clone();
    checkpoint::fetch(&tensor)?;
    let summary = summarize(&tensor, &mut |_| {});
    Ok(Box::new(PartDetail { tensor, summary }))
}

fn options(seed: u64) -> LoadOptions<'static> {
    LoadOptions {
        arch: None,
        seed,
        array_items: None,
    }
}

/// Every tensor `checkpoints` share, followed, one tensor at a time; `progress` hears
/// `(tensors done, tensors in all)`.
fn trajectory(
    checkpoints: &[String],
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Box<Run>, AppError> {
    let models = checkpoints
        .iter()
        .map(|c| Ok(checkpoint::open_adapted(c, &options(seed), None, None)?.model))
        .collect::<Result<Vec<Model>, AppError>>()?;
    Ok(Box::new(trajectory::follow(
        &models,
        &checkpoint::fetch,
        progress,
    )?))
}
