//! What training left behind, in the tensor pane: the optimizer block of the selected parameter
//! (asked of the worker when its view shows), and a run followed across its checkpoints
//! (`--trajectory`), whose figures the worker computes while the app stays usable, and the
//! selected tensor as each checkpoint of that run holds it (`[`/`]`).

use super::{Effects, report, say};
use crate::app::error::AppError;
use crate::app::format::counted;
use crate::app::job::{CheckpointKey, Job, Optimizer, PartDetail, SummaryKey, TrainingJob};
use crate::app::state::{App, Message, OptimizerBlock, View};
use crate::app::trajectory::Trajectory;
use crate::compare::trajectory::Run;

/// Follows the run of `checkpoints` (at least two) on the worker.
pub fn follow_run(app: &mut App, checkpoints: Vec<String>) -> Effects {
    let mut fx = Effects::default();
    app.message = Some(Message::Info(format!(
        "following {} checkpoints",
        checkpoints.len()
    )));
    fx.jobs.push(Job::Training(TrainingJob::Trajectory {
        checkpoints: checkpoints.clone(),
        seed: app.seed,
    }));
    app.trajectory = Some(Trajectory::new(checkpoints));
    fx
}

/// `[`/`]` with a followed run: the selected tensor as the previous or next checkpoint holds it.
pub(super) fn step_checkpoint(app: &mut App, later: bool, fx: &mut Effects) {
    let Some(t) = &mut app.trajectory else {
        return;
    };
    t.step(later);
    // Another checkpoint's tensor may have another shape: the cursor starts over.
    app.tensor.grid = crate::app::state::Grid::default();
    request_version(app, fx);
}

/// Asks the worker for the selected tensor as the checkpoint stepped to holds it, when it is not
/// there or on its way.
pub(super) fn request_version(app: &mut App, fx: &mut Effects) {
    if app.selected_param().is_none() {
        return;
    }
    let name = app.selected_path().to_owned();
    let Some(t) = &mut app.trajectory else {
        return;
    };
    let Some(at) = t.at else {
        return;
    };
    let key = (name, at);
    if t.version.as_ref().is_some_and(|(k, _)| *k == key) {
        return;
    }
    t.version = Some((key.clone(), None));
    fx.jobs.push(Job::Training(TrainingJob::Checkpoint {
        spec: t.checkpoints[at].clone(),
        key,
        seed: app.seed,
    }));
}

/// The worker's version of a tensor, kept when it is still the one asked for.
pub(super) fn received_version(
    app: &mut App,
    key: CheckpointKey,
    result: Result<Box<PartDetail>, AppError>,
) {
    let Some((asked, slot)) = app.trajectory.as_mut().and_then(|t| t.version.as_mut()) else {
        return;
    };
    if *asked != key {
        return;
    }
    match result {
        Ok(detail) => *slot = Some(Ok(*detail)),
        Err(e) => {
            *slot = Some(Err(()));
            report(app, &e);
        }
    }
}

/// How far the worker got.
pub(super) fn progress(app: &mut App, done: usize, all: usize) {
    if let Some(t) = &mut app.trajectory {
        t.progress = Some((done, all));
    }
}

/// The run followed, laid over the open model; the status bar says what it flagged.
pub(super) fn received_run(app: &mut App, result: Result<Box<Run>, AppError>) {
    let Some(t) = &mut app.trajectory else {
        return;
    };
    t.progress = None;
    let run = match result {
        Ok(run) => *run,
        Err(e) => return report(app, &e),
    };
    let said = format!(
        "followed {} tensors over {} checkpoints · {} (! in the drift column)",
        run.series.len(),
        t.checkpoints.len(),
        counted(run.flags.len(), "flag"),
    );
    t.receive(run, &app.doc.model);
    say(app, Message::Info(said));
}

/// Asks the worker for the selected parameter's optimizer block, when its view shows and it is
/// not asked for yet.
pub(super) fn request_optimizer(app: &mut App, fx: &mut Effects) {
    let (Some(id), Some(values)) = (app.selected_param(), &app.doc.optimizer) else {
        return;
    };
    if app.view_of(id) != View::Optimizer {
        return;
    }
    let key = (id, app.doc.model.store.version(id));
    if app.cache.optimizer.contains_key(&key) {
        return;
    }
    app.cache.optimizer.insert(key, OptimizerBlock::Asked);
    fx.jobs.push(Job::Training(TrainingJob::Optimizer {
        key,
        model: app.doc.model.clone(),
        values: values.clone(),
        name: app.selected_path().to_owned(),
    }));
}

/// The worker's optimizer block for parameter version `key`.
pub(super) fn received_optimizer(
    app: &mut App,
    key: SummaryKey,
    result: Result<Option<Box<Optimizer>>, AppError>,
) {
    let block = match result {
        Ok(found) => OptimizerBlock::Ready(found),
        Err(e) => OptimizerBlock::Failed(e),
    };
    app.cache.optimizer.insert(key, block);
}

/// `v`: the next view the selected tensor offers.
pub(super) fn cycle_view(app: &mut App, fx: &mut Effects) {
    let Some(id) = app.selected_param() else {
        return;
    };
    let views = app.views(id);
    let at = views
        .iter()
        .position(|v| *v == app.view_of(id))
        .unwrap_or(0);
    app.tensor.view = views[(at + 1) % views.len()];
    request_optimizer(app, fx);
}
