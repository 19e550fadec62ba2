//! Keys of the family panel's probe views: `p` cycles blocks, lens, attention and outliers; the
//! arrows move the grid cursor; `<` `>` change the attention layer (a re-run, since only the layer
//! shown is kept whole) and `{` `}` the head; `J` selects a super weight's cell.

use super::{Effects, after_select, find_node, grid, report, run_forward};
use crate::app::action::Action;
use crate::app::layout;
use crate::app::probe_view::{ProbeMode, Probes};
use crate::app::state::{App, Focus, Message, View};

/// Rows a page key moves the cursor.
const PAGE: isize = 10;

/// The last run's probes, if it had any.
fn probes(app: &App) -> Option<&Probes> {
    match &app.forward.result {
        Some(Ok(result)) => result.probes.as_deref(),
        _ => None,
    }
}

/// Whether a lens or attention grid is on screen, so the arrows move its cursor.
pub(super) fn grid_shown(app: &App) -> bool {
    app.forward.open && app.forward.probe.mode != ProbeMode::Blocks && probes(app).is_some()
}

pub(super) fn key(app: &mut App, action: Action, fx: &mut Effects) {
    if !app.forward.open {
        return;
    }
    let Some(probes) = probes(app) else {
        return;
    };
    let mode = app.forward.probe.mode;
    let (next, layers, heads) = (probes.grid(mode.next()), probes.layers, probes.heads());
    // The outliers view opens on the super weight `J` would take without a cursor: the largest.
    let largest = probes
        .super_weight(app.forward.probe)
        .and_then(|w| probes.super_weights.iter().position(|s| s == w));
    let grid = probes.grid(mode);
    let cursor = &mut app.forward.probe;
    match action {
        Action::CycleProbe => {
            cursor.mode = mode.next();
            if cursor.mode == ProbeMode::Lens {
                // The last layer at the last position is the model's own next token: the lens
                // opens on it, and Up walks back to where that token first comes out on top.
                (cursor.row, cursor.col) = (next.0.saturating_sub(1), next.1.saturating_sub(1));
            }
            if cursor.mode == ProbeMode::Outliers {
                cursor.row = largest.unwrap_or(0);
            }
            cursor.step(next, 0, 0);
        }
        Action::ProbeLayer(by) => {
            let last = layers.saturating_sub(1);
            let layer = cursor
                .layer
                .saturating_add_signed(isize::from(by))
                .min(last);
            if layer != cursor.layer {
                cursor.layer = layer;
                run_forward(app, fx);
            }
        }
        Action::ProbeHead(by) => {
            cursor.head = cursor
                .head
                .saturating_add_signed(isize::from(by))
                .min(heads.saturating_sub(1));
        }
        Action::Up => cursor.step(grid, -1, 0),
        Action::Down => cursor.step(grid, 1, 0),
        Action::Left => cursor.step(grid, 0, -1),
        Action::Right => cursor.step(grid, 0, 1),
        Action::PageUp => cursor.step(grid, -PAGE, 0),
        Action::PageDown => cursor.step(grid, PAGE, 0),
        _ => {}
    }
}

/// `J`: the super weight the outliers view points at (else the largest) selected in the tree,
/// the values grid (or heatmap) cursor on its cell and the panel hidden to show it, so that `z`
/// zeroes it and the run that follows shows what it did.
pub(super) fn jump(app: &mut App, fx: &mut Effects) {
    let found = probes(app).and_then(|p| p.super_weight(app.forward.probe).cloned());
    let Some(found) = found else {
        app.message = Some(Message::Info(
            "no super weight in the last run (a down_proj output above 50)".to_owned(),
        ));
        return;
    };
    let node = match find_node(app, &found.path) {
        Ok(node) => node,
        Err(e) => return report(app, &e),
    };
    let page = layout::tree_page(app);
    app.tree.reveal(&app.doc.outline, node, page);
    after_select(app, fx);
    if !matches!(app.tensor.view, View::Values | View::Heatmap) {
        app.tensor.view = View::Values;
    }
    app.forward.open = false;
    app.focus = Focus::Tensor;
    let grid = &mut app.tensor.grid;
    grid.slice = found.expert.unwrap_or(0);
    grid.rows.cursor = found.row;
    grid.cols.cursor = found.col;
    grid::follow_grid(app);
    app.message = Some(Message::Info(format!(
        "layer {}'s super weight [{},{}] = {:.4} · z zeroes it",
        found.layer, found.row, found.col, found.value
    )));
}
