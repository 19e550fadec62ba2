//! The worker's replies taken into the state: statistics, forward passes, re-inits, writes, loads.

use super::{Effects, browse, compare, load, parts, report, training};
use crate::app::error::AppError;
use crate::app::job::{Opened, Reply};
use crate::app::picker::{self, Picker};
use crate::app::state::{App, InitRecord, Message, Mode, Question};

/// Takes in a message from the worker.
pub fn receive(app: &mut App, reply: Reply) -> Effects {
    let mut fx = Effects::default();
    match reply {
        Reply::SummaryProgress(key, done) => {
            if let Some((pending, progress)) = &mut app.cache.pending
                && *pending == key
            {
                *progress = done;
            }
        }
        Reply::Summary(key, summary) => {
            if app.cache.pending.is_some_and(|(k, _)| k == key) {
                app.cache.pending = None;
            }
            app.cache.summaries.insert(key, summary);
        }
        Reply::ForwardProgress(generation, done, all) => {
            if generation == app.forward.generation {
                app.forward.running = Some((done, all));
            }
        }
        Reply::Forward(generation, result) => {
            if generation == app.forward.generation {
                app.forward.running = None;
                app.forward.result = Some(result);
                // A model with fewer layers, or the progress line gone: the page changed.
                browse::clamp_forward(app);
            }
        }
        Reply::Init(label, result) => {
            app.busy = None;
            match result {
                Ok(written) => {
                    let store = &mut app.doc.model.store;
                    let changes = written
                        .into_iter()
                        .map(|(id, tensor)| {
                            let before = store.version(id);
                            let old = store.get(id).clone();
                            store.set(id, tensor);
                            (id, before, store.version(id), old)
                        })
                        .collect::<Vec<_>>();
                    app.message = Some(Message::Info(format!(
                        "{label} · {} tensor(s) · u undoes",
                        changes.len(),
                    )));
                    // A written state deeper on the stack than this one is gone for good.
                    if app.doc.saved_at.is_some_and(|at| at > app.doc.undo.len()) {
                        app.doc.saved_at = None;
                    }
                    app.doc.undo.push(InitRecord { label, changes });
                    browse::after_change(app, &mut fx);
                }
                // The dialog comes back with the message, its choices as they were.
                Err(e) => match app.last_init.clone() {
                    Some(mut dialog) if app.mode == Mode::Browse => {
                        dialog.error = Some(e.to_string());
                        app.mode = Mode::Init(dialog);
                    }
                    _ => report(app, &e),
                },
            }
        }
        Reply::SaveExists(path) => {
            app.busy = None;
            app.mode = Mode::Ask(Question::Overwrite(path));
        }
        Reply::Saved(result) => {
            app.busy = None;
            match result {
                Ok(path) => {
                    app.doc.saved_at = Some(app.doc.undo.len());
                    app.message = Some(Message::Info(format!("wrote {}", path.display())));
                }
                Err(e) => report(app, &e),
            }
        }
        Reply::Compared(generation, result) => {
            compare::received(app, generation, result, &mut fx);
        }
        Reply::Detail(key, detail) => compare::received_detail(app, key, *detail),
        Reply::Part(key, detail) => parts::received(app, key, *detail),
        Reply::Unread(e) => report(app, &e),
        Reply::Panicked(message) => panicked(app, message),
        Reply::Loaded(spec, result) => loaded(app, spec, result, &mut fx),
        Reply::Optimizer(key, result) => training::received_optimizer(app, key, result),
        Reply::TrajectoryProgress(done, all) => training::progress(app, done, all),
        Reply::Trajectory(result) => training::received_run(app, result),
        Reply::Checkpoint(key, result) => training::received_version(app, key, result),
    }
    fx
}

/// A model opened on the worker, or why not: a folder of several checkpoints offers them in the
/// picker.
fn loaded(app: &mut App, spec: String, result: Result<Box<Opened>, AppError>, fx: &mut Effects) {
    app.busy = None;
    match result {
        Ok(opened) => {
            let mut opened = *opened;
            opened.notices.insert(0, format!("opened {spec}"));
            load(app, opened, spec, fx);
        }
        Err(e) => match picker::several(&e) {
            Some(choices) if app.mode == Mode::Browse => {
                let said = format!("the folder holds {} checkpoints: pick one", choices.len());
                let first = choices[0].clone();
                app.mode = Mode::Open(Picker::new(choices, &first));
                app.message = Some(Message::Info(said));
            }
            _ => report(app, &e),
        },
    }
}

/// A job panicked on the worker: nothing waits for it any more, whatever it was.
fn panicked(app: &mut App, message: String) {
    app.busy = None;
    app.cache.pending = None;
    if app.forward.running.take().is_some() {
        app.forward.result = Some(Err(AppError::WorkerPanicked(message.clone())));
    }
    report(app, &AppError::WorkerPanicked(message));
}
