//! Comparing with a second model: `c` (or `--compare`) has the worker open and diff it, and its
//! reply is laid over the tree; a change to A diffs again against the B kept; `d` cycles what the
//! tensor pane shows (A, B, Δ), whose B and Δ the worker computes per selected tensor; Tab in the
//! filter keeps the changed tensors only.

use super::{Effects, report};
use crate::app::compare::{Comparison, Side};
use crate::app::error::AppError;
use crate::app::job::{Compared, Detail, DetailKey, Second};
use crate::app::job::{Job, OpenSpec};
use crate::app::layout;
use crate::app::picker::{self, Picker};
use crate::app::state::{App, Busy, Message, Mode};
use crate::compare::diff::Rename;

/// Compares the open model with `spec`, opened on the worker.
pub fn compare_with(app: &mut App, spec: String) -> Effects {
    let mut fx = Effects::default();
    app.message = None;
    let second = Second::Open(OpenSpec {
        model: spec.clone(),
        arch: None,
        seed: app.seed,
    });
    ask(app, &spec, second, &mut fx);
    fx
}

/// Queues a comparison; a newer one makes older replies stale.
fn ask(app: &mut App, source: &str, second: Second, fx: &mut Effects) {
    app.compare.generation += 1;
    app.busy = Some(Busy {
        what: format!("comparing with {source}"),
    });
    fx.jobs.push(Job::Compare {
        a: app.doc.model.clone(),
        b: second,
        generation: app.compare.generation,
    });
}

/// After A's tensors changed (a re-init, an undo): the figures again, against the same B.
pub(super) fn rediff(app: &mut App, fx: &mut Effects) {
    if let Some(c) = &app.compare.loaded {
        let (source, b) = (c.source.clone(), Box::new(c.b.clone()));
        ask(app, &source, Second::Model(source.clone(), b), fx);
    }
}

/// After another A was loaded: its tree is new, so the old rows go now; then the diff again.
pub(super) fn reload(app: &mut App, fx: &mut Effects) {
    if let Some(c) = app.compare.loaded.take() {
        let source = c.source;
        ask(
            app,
            &source.clone(),
            Second::Model(source, Box::new(c.b)),
            fx,
        );
    }
}

/// The worker's comparison, laid over the tree.
pub(super) fn received(
    app: &mut App,
    generation: u64,
    result: Result<Box<Compared>, AppError>,
    fx: &mut Effects,
) {
    if generation != app.compare.generation {
        return;
    }
    app.busy = None;
    let compared = match result {
        Ok(compared) => compared,
        Err(e) => return report(app, &e),
    };
    let mut c = Comparison::new(*compared, &app.doc.outline);
    c.side = app.compare.loaded.as_ref().map_or(Side::A, |old| old.side);
    let [same, changed, only_a, only_b, mismatched] = c.summary;
    let renamed = match c.renames.as_slice() {
        [Rename { from, .. }] => format!(" · names matched without {from:?}"),
        _ => String::new(),
    };
    app.message = Some(Message::Info(format!(
        "{changed} changed · {same} same · {only_a} only A · {only_b} only B · {mismatched} differ · vs {}{renamed}",
        c.source
    )));
    let only = app.tree.changed_only().then(|| c.changed());
    app.compare.loaded = Some(c);
    if only.is_some() {
        let page = layout::tree_page(app);
        let selected = app.tree.selected();
        app.tree.set_only(&app.doc.outline, only, page);
        if app.tree.selected() != selected {
            super::after_select(app, fx);
        }
    }
    request_detail(app, fx);
}

/// The B and Δ of a selected tensor, kept when it is still the one asked for.
pub(super) fn received_detail(app: &mut App, key: DetailKey, detail: Detail) {
    if let Some(c) = &mut app.compare.loaded
        && let Some((asked, slot)) = &mut c.detail
        && *asked == key
    {
        *slot = Some(detail);
    }
}

/// `d`: the tensor pane shows A, then B, then Δ = B − A.
pub(super) fn cycle_side(app: &mut App, fx: &mut Effects) {
    let Some(c) = &mut app.compare.loaded else {
        app.message = Some(Message::Info(
            "c compares with a second model; then d shows its side and the difference".into(),
        ));
        return;
    };
    c.side = c.side.next();
    request_detail(app, fx);
    // Back on A, a quantized weight's codes or scales show again.
    super::parts::request(app, fx);
}

/// Tab in the filter: only the tensors that differ in B (with their modules), or all again.
pub(super) fn toggle_changed(app: &mut App, page: usize) {
    let Some(c) = &app.compare.loaded else {
        return;
    };
    let only = (!app.tree.changed_only()).then(|| c.changed());
    app.tree.set_only(&app.doc.outline, only, page);
}

/// Asks the worker for the selected tensor's B and Δ, when the pane shows one of them.
pub(super) fn request_detail(app: &mut App, fx: &mut Effects) {
    let node = app.tree.selected();
    let Some(id) = app.selected_param() else {
        return;
    };
    let store = &app.doc.model.store;
    let key = (node, (id, store.version(id)));
    let Some(c) = &mut app.compare.loaded else {
        return;
    };
    if c.side == Side::A || c.detail.as_ref().is_some_and(|(k, _)| *k == key) {
        return;
    }
    let Some(b) = c.b_tensor(node).cloned() else {
        c.detail = None;
        return;
    };
    c.detail = Some((key, None));
    fx.jobs.push(Job::Detail {
        key,
        a: store.get(id).clone(),
        b,
    });
}

/// `c`: the model picker, choosing the model B to compare with (the current B offered).
pub(super) fn open_picker(app: &mut App) {
    let current = app
        .compare
        .loaded
        .as_ref()
        .map_or("", |c| c.source.as_str());
    let mut p = Picker::new(picker::scan(), current);
    p.compare = true;
    app.mode = Mode::Open(p);
}
