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

/// The run's checkpoints opened so far, kept so that stepping back and forth through them with
/// `[` and `]` opens each one once: an opened model holds its headers and its mapped (or lazily
/// read) files, not its values, so keeping a run's worth is cheap.
#[derive(Default)]
pub struct Opened {
    /// (spec, seed) and the model, oldest first.
    models: Vec<((String, u64), Model)>,
    /// How many checkpoints were opened, for tests that check the reuse.
    pub count: usize,
}

/// Checkpoints kept at most: a run's worth; past it the oldest is let go.
const MAX_OPENED: usize = 64;

impl Opened {
    /// Checkpoint `spec` opened with `seed`, opened now unless it already was.
    fn get(&mut self, spec: &str, seed: u64) -> Result<&Model, AppError> {
        let key = (spec.to_owned(), seed);
        let at = if let Some(at) = self.models.iter().position(|(k, _)| *k == key) {
            at
        } else {
            let model = checkpoint::open_adapted(spec, &options(seed), None, None)?.model;
            self.count += 1;
            if self.models.len() == MAX_OPENED {
                self.models.remove(0);
            }
            self.models.push((key, model));
            self.models.len() - 1
        };
        Ok(&self.models[at].1)
    }
}

/// Runs `job`, its progress and result sent to `reply`; checkpoints `[`/`]` step to are kept
/// opened in `opened`.
pub fn execute(job: TrainingJob, opened: &mut Opened, reply: &mut dyn FnMut(Reply)) {
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
            let found = version(&key.0, &spec, seed, opened);
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
fn version(
    name: &str,
    spec: &str,
    seed: u64,
    opened: &mut Opened,
) -> Result<Box<PartDetail>, AppError> {
    let model = opened.get(spec, seed)?;
    let id = (model.state_dict().into_iter())
        .find_map(|(n, id)| (n == name).then_some(id))
        .ok_or_else(|| AppError::NotInCheckpoint {
            name: name.to_owned(),
            checkpoint: spec.to_owned(),
        })?;
    // A handle of its own: what the read fetches or puts together goes with the reply, and the
    // kept model holds no checkpoint's values.
    let tensor = model.store.get(id).transient();
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
