//! The worker: a thread for everything slow or touching the disk (statistics of big tensors,
//! forward passes, re-inits, loading and writing files), so that keys keep working meanwhile.
//! Each job reports progress and its result as [`Reply`] messages on the app's event channel.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use ndarray::ArrayD;

use super::state::{Input, SummaryKey};
use crate::checkpoint::{self, LoadOptions};
use crate::io::model_file;
use crate::model::forward::ForwardPlan;
use crate::model::init::InitPlan;
use crate::model::{Model, ParamId};
use crate::tensor::Tensor;
use crate::tensor::histogram::{Histogram, histogram};
use crate::tensor::stats::Stats;

/// The most bins a histogram has; the screen merges neighbours to fit its width.
pub const MAX_BINS: usize = 128;

/// A tensor's statistics and value distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// min, max, mean, unbiased std, zeros, NaN, Inf.
    pub stats: Stats,
    /// Bins over [min, max].
    pub histogram: Histogram,
}

/// One layer's output, summarized.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// The layer's path.
    pub path: String,
    /// Its repr.
    pub repr: String,
    /// The output's shape.
    pub shape: Vec<usize>,
    /// Mean of the output.
    pub mean: f64,
    /// Unbiased std of the output.
    pub std: f64,
    /// Fraction of exact zeros (what a ReLU switched off).
    pub zeros: f64,
}

/// What a forward pass produced.
#[derive(Debug, Clone)]
pub struct ForwardResult {
    /// The input's shape.
    pub input_shape: Vec<usize>,
    /// The model's output.
    pub output: ArrayD<f32>,
    /// Every layer's output, summarized, in order.
    pub layers: Vec<LayerStats>,
}

/// Slow work for the worker.
pub enum Job {
    /// Statistics and histograms of the tensor versions one screen shows (a tensor, and its
    /// state before a re-init), in order, each under its cache key.
    Summarize {
        /// The cache keys and the tensors (their bytes are shared, not copied).
        tensors: Vec<(SummaryKey, Tensor)>,
    },
    /// A forward pass.
    Forward {
        /// The model as it is now.
        model: Model,
        /// The input.
        input: Input,
        /// The panel's run number.
        generation: u64,
    },
    /// A re-initialization, drawn on a copy of the model whose new tensors come back.
    Init {
        /// What is done, for the status line and the undo record.
        label: String,
        /// The model as it is now.
        model: Model,
        /// The module the plan applies to.
        path: String,
        /// The schemes and seed.
        plan: InitPlan,
    },
    /// Saving the model; without `overwrite`, an existing file is asked about first.
    Save {
        /// The model to write.
        model: Model,
        /// Where.
        path: PathBuf,
        /// Whether replacing an existing file was confirmed.
        overwrite: bool,
    },
    /// Loading another model.
    Load {
        /// A `MODEL` argument: `demo:rgnet` or a file.
        spec: String,
    },
}

/// What the worker tells the app.
#[derive(Clone)]
pub enum Reply {
    /// A summary is this far along (0 to 1).
    SummaryProgress(SummaryKey, f64),
    /// A summary is done.
    Summary(SummaryKey, Result<Summary, String>),
    /// A forward pass has run this many layers of all of them.
    ForwardProgress(u64, usize, usize),
    /// A forward pass is done.
    Forward(u64, Result<ForwardResult, String>),
    /// A re-init is done (its label echoed): the new tensors, or why it failed.
    Init(String, Result<Vec<(ParamId, Tensor)>, String>),
    /// The file exists and was not written; the user must confirm.
    SaveExists(PathBuf),
    /// The model was written, or why not.
    Saved(Result<PathBuf, String>),
    /// Another model is loaded.
    Loaded(String, Result<Box<Model>, String>),
}

/// Starts the worker thread; `reply` carries its messages to the event loop.
pub fn spawn(reply: impl Fn(Reply) + Send + 'static) -> Sender<Job> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("paramscope-worker".into())
        .spawn(move || serve(&rx, &reply))
        .expect("the OS can start a thread");
    tx
}

fn serve(rx: &Receiver<Job>, reply: &impl Fn(Reply)) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        for job in pick(jobs) {
            execute(job, &mut |r| reply(r));
        }
    }
}

/// Of the jobs that arrived together, those worth doing, in order: only the newest summary job
/// matters (the user has moved on from the others, and they are asked for again if the user
/// comes back; it holds every tensor version its screen shows), and only the newest forward pass
/// (the app drops the replies of older runs anyway).
#[must_use]
pub fn pick(jobs: Vec<Job>) -> Vec<Job> {
    let newest_summary = jobs
        .iter()
        .rposition(|j| matches!(j, Job::Summarize { .. }));
    let newest_forward = jobs.iter().rposition(|j| matches!(j, Job::Forward { .. }));
    jobs.into_iter()
        .enumerate()
        .filter(|(i, job)| match job {
            Job::Summarize { .. } => Some(*i) == newest_summary,
            Job::Forward { .. } => Some(*i) == newest_forward,
            _ => true,
        })
        .map(|(_, job)| job)
        .collect()
}

/// Runs one job, sending progress and the result to `reply` (tests call this directly).
pub fn execute(job: Job, reply: &mut dyn FnMut(Reply)) {
    match job {
        Job::Summarize { tensors } => {
            for (key, tensor) in tensors {
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
        Job::Forward {
            model,
            input,
            generation,
        } => {
            let result = forward(&model, &input, &mut |done, all| {
                reply(Reply::ForwardProgress(generation, done, all));
            });
            reply(Reply::Forward(generation, result));
        }
        Job::Init {
            label,
            mut model,
            path,
            plan,
        } => {
            let result = plan
                .apply(&mut model, &path)
                .map_err(|e| e.to_string())
                .and_then(|report| {
                    if report.written.is_empty() {
                        let under = if path.is_empty() { "the model" } else { &path };
                        return Err(format!(
                            "no Linear layer under {under}: nothing to initialize"
                        ));
                    }
                    Ok(report
                        .written
                        .into_iter()
                        .map(|(_, id)| (id, model.store.get(id).clone()))
                        .collect())
                });
            reply(Reply::Init(label, result));
        }
        Job::Save {
            model,
            path,
            overwrite,
        } => {
            if !overwrite && path.exists() {
                reply(Reply::SaveExists(path));
                return;
            }
            let result = model_file::save_model(&model, &path)
                .map(|()| path)
                .map_err(|e| e.to_string());
            reply(Reply::Saved(result));
        }
        Job::Load { spec } => {
            let result = checkpoint::load(&spec, &LoadOptions::default())
                .map(Box::new)
                .map_err(|e| e.to_string());
            reply(Reply::Loaded(spec, result));
        }
    }
}

/// Statistics then histogram of `tensor`: two streaming passes, `progress` from 0 to 1 over both.
pub fn summarize(tensor: &Tensor, progress: &mut dyn FnMut(f64)) -> Result<Summary, String> {
    let (dtype, bytes, numel) = (tensor.dtype(), tensor.bytes(), tensor.numel());
    let whole = 2.0 * numel.max(1) as f64;
    let stats = tensor
        .stats_with_progress(&mut |fraction| progress(fraction / 2.0))
        .map_err(|e| e.to_string())?;
    let range = if stats.finite == 0 {
        (0.0, 0.0)
    } else {
        (stats.min, stats.max)
    };
    // About √n bins: enough to show a shape, few enough that small tensors do not look sparse.
    let bins = ((numel as f64).sqrt().ceil() as usize).clamp(8, MAX_BINS);
    let histogram = histogram(dtype, bytes, numel, range, bins, |done| {
        progress((numel + done) as f64 / whole);
    })
    .map_err(|e| e.to_string())?;
    Ok(Summary { stats, histogram })
}

/// Runs the model on `input`, reporting layers done; the error is one line.
fn forward(
    model: &Model,
    input: &Input,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ForwardResult, String> {
    let plan = ForwardPlan::new(model).map_err(|e| e.to_string())?;
    let x = match input {
        Input::Random { batch, seed } => plan
            .random_input(*batch, *seed)
            .map_err(|e| e.to_string())?,
        Input::File { array, .. } => array.clone(),
    };
    let activations = plan
        .run_with_progress(&x, progress)
        .map_err(|e| e.to_string())?;
    let layers = activations
        .iter()
        .map(|a| {
            let s = a.stats();
            LayerStats {
                path: a.path.clone(),
                repr: a.repr.clone(),
                shape: a.output.shape().to_vec(),
                mean: s.mean,
                std: s.std,
                zeros: s.zero_fraction,
            }
        })
        .collect();
    let output = activations
        .into_iter()
        .next_back()
        .expect("run yields at least one activation")
        .output;
    Ok(ForwardResult {
        input_shape: x.shape().to_vec(),
        output,
        layers,
    })
}
