//! The values grid's (and heatmap's) cursor: the selected tensor's grid, the cursor's moves in
//! it, and keeping it on screen after a resize or a jump.

use crate::app::action::Action;
use crate::app::layout::{self, grid_dims};
use crate::app::scroll::Step;
use crate::app::state::{App, View};

/// `(slices, rows, columns)` of the selected tensor's grid.
pub(super) fn selected_dims(app: &App) -> Option<(usize, usize, usize)> {
    let id = app.selected_param()?;
    // The codes or scales shown have their own shape (the scales' is not the weight's).
    let shape = match app.part_shown(id) {
        Some(Ok(part)) => part.tensor.shape(),
        _ => app.doc.model.store.get(id).shape(),
    };
    Some(grid_dims(shape))
}

/// Moves the values or heatmap cursor; in the heatmap a vector is a strip, so ←/→ move along it.
pub(super) fn move_cursor(app: &mut App, action: Action, step: Step) {
    let Some((slices, rows, cols)) = selected_dims(app) else {
        return;
    };
    if slices == 0 || rows == 0 || cols == 0 {
        // An empty tensor has no cell to move to.
        return;
    }
    let (_, page_rows, page_cols) =
        layout::tensor_body(app).map_or((0, 1, 1), |b| layout::grid_page(b, rows));
    let strip = app.selected_param().map(|id| app.view_of(id)) == Some(View::Heatmap) && cols == 1;
    let g = &mut app.tensor.grid;
    if matches!(action, Action::Left | Action::Right) && !strip {
        g.cols.step(step, cols, page_cols);
    } else {
        g.rows.step(step, rows, page_rows);
    }
}

/// Keeps the values cursor on screen after a resize.
pub(super) fn follow_grid(app: &mut App) {
    let (Some((_, rows, _)), Some(body)) = (selected_dims(app), layout::tensor_body(app)) else {
        return;
    };
    let (_, page_rows, page_cols) = layout::grid_page(body, rows);
    let g = &mut app.tensor.grid;
    g.rows.follow(page_rows);
    g.cols.follow(page_cols);
}
