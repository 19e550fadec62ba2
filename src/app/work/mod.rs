//! The worker side: a thread for everything slow or touching the disk (statistics of big tensors,
//! forward passes, re-inits, loading and writing files), so that keys keep working meanwhile.
//! Each job reports progress and its result as [`Reply`] messages on the app's event channel.
//! The state, the update and the screen never import this: they meet it only in `job`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

pub mod compare;
pub mod family;
mod kept;
pub mod open;
pub mod parts;
pub mod probes;
pub mod training;

use family::Kept;
use kept::keep_or_make;

use crate::app::error::AppError;
use crate::app::job::{ForwardResult, Input, Job, LayerStats, Reply, SummaryKey};
use crate::app::summary::summarize;
use crate::checkpoint::save;
use crate::model::Model;
use crate::model::forward::ForwardPlan;
use crate::tensor::Tensor;
use crate::tensor::decode::Undecodable;

/// The worker thread's name: the panic hook knows by it that a panic there is reported in the
/// status bar, not over the screen.
pub const THREAD_NAME: &str = "paramscope-worker";

/// Starts the worker thread; `reply` carries its messages to the event loop.
pub fn spawn(reply: impl Fn(Reply) + Send + 'static) -> Sender<Job> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || serve(&rx, &reply))
        .expect("the OS can start a thread");
    tx
}

fn serve(rx: &Receiver<Job>, reply: &impl Fn(Reply)) {
    let mut worker = Worker::default();
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        for job in pick(jobs) {
            if guarded(|| worker.execute(job, &mut |r| reply(r)), &mut |r| reply(r)) {
                // What it kept may be half made: start afresh.
                worker = Worker::default();
            }
        }
    }
}

/// Runs `work`; a panic in it becomes a [`Reply::Panicked`] with its message, so that the app
/// reports it and goes on (the job's own reply never comes). Whether it panicked.
fn guarded(work: impl FnOnce(), reply: &mut dyn FnMut(Reply)) -> bool {
    let Err(payload) = catch_unwind(AssertUnwindSafe(work)) else {
        return false;
    };
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    reply(Reply::Panicked(message));
    true
}

/// What the worker keeps between jobs: the forward plan (Linear weights packed), reused until a
/// re-init changes a weight or another model is loaded.
#[derive(Default)]
pub struct Worker {
    plan: Option<(u64, ForwardPlan)>,
    /// The same for a family checkpoint, with its tokenizer.
    family: Kept,
    /// How many plans were built, for tests that check the reuse.
    pub plans_built: usize,
    /// The run's checkpoints `[`/`]` stepped to, kept opened.
    pub checkpoints: training::Opened,
}

/// Of the jobs that arrived together, those worth doing, in order: only the newest summary job
/// matters (the user has moved on from the others, and they are asked for again if the user
/// comes back; it holds every tensor version its screen shows), and only the newest forward pass
/// (the app drops the replies of older runs anyway); likewise only the newest Δ of a compared tensor
/// and the newest codes or scales of a quantized weight.
#[must_use]
pub fn pick(jobs: Vec<Job>) -> Vec<Job> {
    let newest_summary = jobs
        .iter()
        .rposition(|j| matches!(j, Job::Summarize { .. }));
    let is_forward = |j: &Job| matches!(j, Job::Forward { .. } | Job::Family { .. });
    let newest_forward = jobs.iter().rposition(is_forward);
    let newest_detail = jobs.iter().rposition(|j| matches!(j, Job::Detail { .. }));
    let newest_part = jobs.iter().rposition(|j| matches!(j, Job::Part { .. }));
    jobs.into_iter()
        .enumerate()
        .filter(|(i, job)| match job {
            Job::Summarize { .. } => Some(*i) == newest_summary,
            Job::Forward { .. } | Job::Family { .. } => Some(*i) == newest_forward,
            Job::Detail { .. } => Some(*i) == newest_detail,
            Job::Part { .. } => Some(*i) == newest_part,
            _ => true,
        })
        .map(|(_, job)| job)
        .collect()
}

impl Worker {
    /// Runs one job, sending progress and the result to `reply` (tests call this directly).
    #[expect(clippy::too_many_lines, reason = "one short arm per kind of job")]
    pub fn execute(&mut self, job: Job, reply: &mut dyn FnMut(Reply)) {
        match job {
            Job::Summarize { tensors } => summarize_all(tensors, reply),
            Job::Forward {
                model,
                load,
                input,
                generation,
            } => {
                let result = fetch_all(&model)
                    .and_then(|()| self.plan(&model, load))
                    .and_then(|plan| {
                        forward(plan, &input, &mut |done, all| {
                            reply(Reply::ForwardProgress(generation, done, all));
                        })
                    });
                reply(Reply::Forward(generation, result));
            }
            Job::Family {
                model,
                load,
                checkpoint,
                text,
                attention_layer,
                generation,
            } => {
                let result = fetch_all(&model).and_then(|()| {
                    self.family.run(
                        &model,
                        load,
                        &checkpoint,
                        &text,
                        attention_layer,
                        &mut |done, all| reply(Reply::ForwardProgress(generation, done, all)),
                        &mut self.plans_built,
                    )
                });
                reply(Reply::Forward(generation, result));
            }
            Job::Zero {
                model,
                id,
                flat,
                label,
            } => {
                reply(Reply::Init(label, probes::zeroed(model, id, flat)));
            }
            Job::Init {
                label,
                mut model,
                path,
                plan,
            } => {
                let result = fetch_all(&model)
                    .and_then(|()| plan.apply(&mut model, &path).map_err(AppError::from))
                    .and_then(|report| {
                        if report.written.is_empty() {
                            let under = if path.is_empty() { "the model" } else { &path };
                            return Err(AppError::NothingToInit(under.to_owned()));
                        }
                        Ok(report
                            .written
                            .into_iter()
                            .map(|(_, id)| (id, model.store.get(id).clone()))
                            .collect())
                    });
                // The snapshot goes before the reply: the app then writes the new tensors into
                // a store no one else holds, so that write copies nothing.
                drop(model);
                reply(Reply::Init(label, result));
            }
            Job::Save {
                model,
                path,
                overwrite,
            } => {
                // A link planted where the proposed name is would redirect the write.
                if let Err(link) = crate::io::atomic::refuse_link(&path) {
                    let error = crate::io::FileError::new(&path, link);
                    reply(Reply::Saved(Err(AppError::from(error))));
                    return;
                }
                if !overwrite && path.exists() {
                    reply(Reply::SaveExists(path));
                    return;
                }
                let result = fetch_all(&model).and_then(|()| {
                    save::save_model(&model, &path)
                        .map(|()| path)
                        .map_err(AppError::from)
                });
                reply(Reply::Saved(result));
            }
            Job::Load(spec) => {
                let result = open::open(&spec).map(Box::new);
                reply(Reply::Loaded(spec.model, result));
            }
            Job::Compare { a, b, generation } => {
                let result = compare::compare(&a, b).map(Box::new);
                reply(Reply::Compared(generation, result));
            }
            Job::Detail { key, a, b } => {
                reply(Reply::Detail(key, Box::new(compare::detail(&a, b))));
            }
            Job::Part { key, weight } => {
                reply(Reply::Part(key, Box::new(parts::part(&weight, key.1))));
            }
            Job::Training(job) => training::execute(job, &mut self.checkpoints, reply),
        }
    }

    /// The kept plan when it was made for this load and no weight changed since, else a new one.
    fn plan(&mut self, model: &Model, load: u64) -> Result<&ForwardPlan, AppError> {
        keep_or_make(
            &mut self.plan,
            load,
            |plan| plan.is_current(model),
            || ForwardPlan::new(model).map_err(AppError::from),
            &mut self.plans_built,
        )
    }
}

/// Runs the model on `input`, reporting layers done; the error is one line.
fn forward(
    plan: &ForwardPlan,
    input: &Input,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ForwardResult, AppError> {
    let x = match input {
        Input::Random { batch, seed } => plan.random_input(*batch, *seed)?,
        Input::File { array, .. } => array.clone(),
    };
    let activations = plan.run_with_progress(&x, progress)?;
    let layers = activations.iter().map(LayerStats::of).collect();
    let output = activations
        .into_iter()
        .next_back()
        .expect("run yields at least one activation")
        .output;
    Ok(ForwardResult {
        input_shape: x.shape().to_vec(),
        output,
        layers,
        next: Vec::new(),
        embedding_norm: None,
        probes: None,
        said: None,
    })
}

/// Summaries of `tensors`, in order, each with its progress. A remote tensor's range is fetched here,
/// off the key loop; the clone shares the fetched bytes with the app's copy, which the values grid
/// then reads.
fn summarize_all(tensors: Vec<(SummaryKey, Tensor)>, reply: &mut dyn FnMut(Reply)) {
    for (key, tensor) in tensors {
        if let Err(e) = crate::checkpoint::fetch(&tensor) {
            // Why the values could not be read (a server's refusal, a damaged chunk naming its
            // file) goes to the status bar; the pane has no numbers to show.
            reply(Reply::Unread(AppError::from(e)));
            reply(Reply::Summary(key, Err(Undecodable(tensor.dtype()))));
            continue;
        }
        let mut last = -1.0;
        let result = summarize(&tensor, &mut |done| {
            // One message per percent, however many chunks.
            if done - last >= 0.01 {
                last = done;
                reply(Reply::SummaryProgress(key, done));
            }
        });
        reply(Reply::Summary(key, result));
    }
}

/// Every tensor of a remote model fetched, before a job reads all of its values.
fn fetch_all(model: &Model) -> Result<(), AppError> {
    crate::checkpoint::fetch_all(model).map_err(AppError::from)
}

#[cfg(test)]
mod tests {
    use super::{Reply, guarded};

    #[test]
    fn a_panic_in_a_job_becomes_a_reply() {
        let mut replies = Vec::new();
        let panicked = guarded(|| panic!("chunk size must be non-zero"), &mut |r| {
            replies.push(r);
        });
        assert!(panicked);
        assert!(
            matches!(&replies[..], [Reply::Panicked(m)] if m == "chunk size must be non-zero"),
            "one reply, with the panic's message"
        );
        assert!(!guarded(|| (), &mut |r| replies.push(r)));
        assert_eq!(replies.len(), 1);
    }
}
