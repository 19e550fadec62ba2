//! Asking for the statistics the tensor pane will show: the selected tensor and its state before
//! the last re-init, or the tensors a module's table lists. Small ones are computed at once, the
//! rest go to the worker.

use super::Effects;
use crate::app::job::{Job, SummaryKey};
use crate::app::state::App;
use crate::app::summary::summarize;
use crate::model::ParamId;
use crate::tensor::Tensor;

/// Tensors up to this many bytes are summarized at once; bigger ones go to the worker.
pub const INLINE_BYTES: usize = 1 << 20;

/// Computes or queues the summaries the tensor pane will show.
pub(super) fn request(app: &mut App, fx: &mut Effects) {
    if let Some(id) = app.selected_param() {
        request_tensor(app, id, fx);
    } else {
        request_module(app, fx);
    }
}

fn request_tensor(app: &mut App, id: ParamId, fx: &mut Effects) {
    let store = &app.doc.model.store;
    let before = app.doc.undo.last().and_then(|record| {
        record
            .changes
            .iter()
            .find(|(changed, ..)| *changed == id)
            .map(|(_, old_version, _, old)| (*old_version, old.clone()))
    });
    let current = (store.version(id), store.get(id).clone());
    // The big ones go to the worker in one job, so that its newest-job-wins keeps both.
    let big: Vec<_> = before
        .into_iter()
        .chain([current])
        .filter_map(|(version, tensor)| summarize_small(app, (id, version), tensor, true))
        .collect();
    let Some(&(last, _)) = big.last() else {
        return;
    };
    // Already on its way (the user came back while it runs): not again.
    if big.len() == 1 && app.cache.pending.map(|(k, _)| k) == Some(last) {
        return;
    }
    app.cache.pending = Some((last, 0.0));
    fx.jobs.push(Job::Summarize { tensors: big });
}

/// The module table's rows on screen and below: at most [`INLINE_BYTES`] read on the key thread,
/// the other small tensors to the worker in one job (big ones only when selected).
fn request_module(app: &mut App, fx: &mut Effects) {
    let page = crate::app::layout::module_page(app);
    let first = app.tensor.module.offset;
    let ids: Vec<ParamId> = app
        .module_rows(first)
        .take(page * 4)
        .map(|(_, id)| id)
        .collect();
    let mut spent = 0;
    let mut rest = Vec::new();
    for id in ids {
        let key = (id, app.doc.model.store.version(id));
        let tensor = app.doc.model.store.get(id);
        // A remote tensor not fetched yet is never summarized in bulk (each would be a request):
        // only the one selected is. A distributed checkpoint's small sharded tensors are, by the
        // worker, which puts them together from the mapped files (the table showed `·` for every
        // one of them). (Its length, not its bytes: a quantized weight's bytes are its
        // dequantization.)
        let bytes = if tensor.is_pending() && tensor.is_remote() {
            usize::MAX
        } else {
            usize::try_from(tensor.byte_len()).unwrap_or(usize::MAX)
        };
        if app.cache.summaries.contains_key(&key) || bytes > INLINE_BYTES {
            continue;
        }
        if !tensor.is_pending() && spent + bytes <= INLINE_BYTES {
            spent += bytes;
            summarize_small(app, key, tensor.clone(), false);
        } else {
            rest.push((key, tensor.clone()));
        }
    }
    if !rest.is_empty() {
        fx.jobs.push(Job::Summarize { tensors: rest });
    }
}

/// A summary now when the tensor is small; else, with `big_too` (only for the selected tensor),
/// the tensor back for the worker.
fn summarize_small(
    app: &mut App,
    key: SummaryKey,
    tensor: Tensor,
    big_too: bool,
) -> Option<(SummaryKey, Tensor)> {
    if app.cache.summaries.contains_key(&key) {
        return None;
    }
    if !tensor.is_pending() && tensor.byte_len() <= INLINE_BYTES as u64 {
        let summary = summarize(&tensor, &mut |_| {});
        app.cache.summaries.insert(key, summary);
        None
    } else {
        big_too.then_some((key, tensor))
    }
}

/// After the module table scrolled: the rows that came on screen.
pub(super) fn request_more(app: &mut App, fx: &mut Effects) {
    if app.selected_param().is_none() {
        request_module(app, fx);
    }
}
