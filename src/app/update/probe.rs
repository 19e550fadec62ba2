//! Keys of the family panel's probe views: `p` cycles blocks, lens and attention; the arrows move
//! the grid cursor; `<` `>` change the attention layer (a re-run, since only the layer shown is
//! kept whole) and `{` `}` the head.

use super::{Effects, run_forward};
use crate::app::action::Action;
use crate::app::probe_view::{ProbeMode, Probes};
use crate::app::state::App;

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
    let grid = probes.grid(mode);
    let cursor = &mut app.forward.probe;
    match action {
        Action::CycleProbe => {
            cursor.mode = mode.next();
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
