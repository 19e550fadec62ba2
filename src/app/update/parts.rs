//! `p` on a quantized weight: the tensor pane shows its dequantized values, then its stored codes,
//! then its scales, then its zero points where it has them, each with the views of a tensor
//! (values, histogram, heatmap); the parts are unpacked on the worker, for the selected weight only.

use super::Effects;
use crate::app::compare::Side;
use crate::app::job::{Job, PartDetail, PartKey};
use crate::app::state::{App, Grid, Message};
use crate::tensor::quantized::Quantized;

/// `p`: the next part of the selected quantized weight.
pub(super) fn cycle(app: &mut App, fx: &mut Effects) {
    if app
        .selected_param()
        .is_none_or(|id| app.quantized(id).is_none())
    {
        app.message = Some(Message::Info(
            "p shows a quantized weight's codes and scales; this tensor is stored as it is".into(),
        ));
        return;
    }
    let comparing = app.compare.loaded.as_ref();
    if comparing.is_some_and(|c| c.side != Side::A) {
        app.message = Some(Message::Info(
            "the codes and scales are A's: d shows A first".into(),
        ));
        return;
    }
    let zeros = app
        .selected_param()
        .and_then(|id| app.quantized(id))
        .is_some_and(Quantized::has_zeros);
    app.parts.shown = app.parts.shown.next(zeros);
    // The codes have the weight's shape, the scales their own: the cursor starts over.
    app.tensor.grid = Grid::default();
    request(app, fx);
}

/// Asks the worker for the selected weight's codes or scales, when the pane shows them and they
/// are not there or on their way.
pub(super) fn request(app: &mut App, fx: &mut Effects) {
    let Some(id) = app.selected_param() else {
        return;
    };
    let Some(key) = app.part_key(id) else {
        return;
    };
    if app.parts.detail.as_ref().is_some_and(|(k, _)| *k == key) {
        return;
    }
    app.parts.detail = Some((key, None));
    fx.jobs.push(Job::Part {
        key,
        weight: app.doc.model.store.get(id).clone(),
    });
}

/// The worker's codes or scales, kept when they are still the ones asked for.
pub(super) fn received(app: &mut App, key: PartKey, detail: PartDetail) {
    if let Some((asked, slot)) = &mut app.parts.detail
        && *asked == key
    {
        *slot = Some(detail);
    }
}
