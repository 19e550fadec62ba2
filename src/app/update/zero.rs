//! `z` on the values grid (or the heatmap, whose cursor it shares): the element under the cursor set to 0 on the worker, applied as an
//! undoable edit like a re-init (marked unsaved, `u` takes it back), after which an open forward
//! panel runs again so the next token shows the change.

use super::{Effects, refused_while_busy};
use crate::app::job::Job;
use crate::app::layout::grid_dims;
use crate::app::state::{App, Busy, Message, View};

pub(super) fn zero_cell(app: &mut App, fx: &mut Effects) {
    let Some(id) = app.selected_param() else {
        return;
    };
    // The heatmap's cursor is the values grid's: the cell is the same in both.
    if !matches!(app.tensor.view, View::Values | View::Heatmap) {
        app.message = Some(Message::Info(
            "z zeroes the element under the values or heatmap cursor: v shows them".to_owned(),
        ));
        return;
    }
    if refused_while_busy(app) {
        return;
    }
    let shape = app.doc.model.store.get(id).shape().to_vec();
    let (slices, rows, cols) = grid_dims(&shape);
    let g = &app.tensor.grid;
    let (slice, row, col) = (g.slice, g.rows.cursor, g.cols.cursor);
    if slice >= slices || row >= rows || col >= cols {
        return;
    }
    let flat = (slice * rows + row) * cols + col;
    let index = match shape.len() {
        0 => String::new(),
        1 => format!("[{row}]"),
        2 => format!("[{row},{col}]"),
        _ => format!("[slice {slice}][{row},{col}]"),
    };
    let label = format!("zero {}{index}", app.selected_path());
    if let Some(Ok(result)) = &app.forward.result {
        app.forward.before = result.next.first().map(|t| (t.text.clone(), t.prob));
    }
    app.message = None;
    app.busy = Some(Busy {
        what: label.clone(),
    });
    fx.jobs.push(Job::Zero {
        model: app.doc.model.clone(),
        id,
        flat,
        label,
    });
}
