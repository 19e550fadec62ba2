//! What a followed run adds to the screen: the module table's sparkline of each tensor's drift
//! across the checkpoints, and the trajectory view of the selected tensor: its drift as a
//! sparkline, which checkpoints the rows are, then a row per checkpoint (norm, drift from the
//! first, step change, cosine to the last, NaN/Inf count), the checkpoints flagged marked in words.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Row, Table, Widget};

use crate::app::format::{count, gauge, short, sparkline};
use crate::app::state::App;
use crate::app::theme::Role;
use crate::app::trajectory::Trajectory;
use crate::compare::trajectory::{FlagKind, Series};
use crate::model::ParamId;
use crate::text::escape;

/// Cells of a sparkline in the module table.
pub const SPARK_CELLS: usize = 12;

/// The module table's drift cell of tensor `id`: its sparkline, `!` when a checkpoint is
/// flagged; `·` while the run is followed or for a tensor it did not follow.
#[must_use]
pub fn drift_cell(t: &Trajectory, id: ParamId) -> String {
    let Some(series) = t.series(id) else {
        return "·".into();
    };
    let mark = if t.flags(&series.name).next().is_some() {
        "!"
    } else {
        ""
    };
    format!("{}{mark}", sparkline(&series.drift, SPARK_CELLS))
}

pub(super) fn render(app: &App, id: ParamId, body: Rect, buf: &mut Buffer) {
    let theme = app.screen.theme;
    let Some(t) = &app.trajectory else {
        return;
    };
    if let Some((done, all)) = t.progress {
        let fraction = if all == 0 {
            0.0
        } else {
            done as f64 / all as f64
        };
        Line::from(vec![
            Span::styled("following the run ", theme.style(Role::Dim)),
            Span::styled(gauge(fraction, 12), theme.style(Role::Bar)),
            Span::styled(format!(" {done} of {all} tensors"), theme.style(Role::Dim)),
        ])
        .render(body, buf);
        return;
    }
    let Some(series) = t.series(id) else {
        let why = if t.run.is_some() {
            "not followed: not in every checkpoint with one element count, or not numbers"
        } else {
            "the run could not be followed (the status bar said why)"
        };
        Line::styled(why, theme.style(Role::Dim)).render(body, buf);
        return;
    };
    Line::from(vec![
        Span::styled("drift ", theme.style(Role::Dim)),
        Span::raw(sparkline(
            &series.drift,
            usize::from(body.width).saturating_sub(6),
        )),
    ])
    .render(body, buf);
    // The line naming the first and last gives way to the table's last row when the pane is short.
    let named = usize::from(body.height) >= series.norm.len() + 3;
    if named {
        name_ends(app, t, body, buf);
    }
    let above = if named { 2 } else { 1 };
    let area = Rect {
        y: body.y + above,
        height: body.height.saturating_sub(above),
        ..body
    };
    table(app, t, series, area, buf);
}

/// Which checkpoints the first and last rows are, on the line below the sparkline: a run's
/// folders differ in their last part.
fn name_ends(app: &App, t: &Trajectory, body: Rect, buf: &mut Buffer) {
    let name = |spec: &str| {
        let path = std::path::Path::new(spec);
        let last = path
            .file_name()
            .map_or_else(|| spec.into(), |n| n.to_string_lossy());
        escape(&last).into_owned()
    };
    let (Some(first), Some(last)) = (t.checkpoints.first(), t.checkpoints.last()) else {
        return;
    };
    let line = format!(
        "[0] {} … [{}] {}",
        name(first),
        t.checkpoints.len() - 1,
        name(last)
    );
    Line::styled(line, app.screen.theme.style(Role::Dim)).render(
        Rect {
            y: body.y + 1,
            height: body.height.saturating_sub(1),
            ..body
        },
        buf,
    );
}

/// A row per checkpoint of `series` in `area`, a flagged one marked in words (and in the
/// theme's non-colour style).
fn table(app: &App, t: &Trajectory, series: &Series, area: Rect, buf: &mut Buffer) {
    let theme = app.screen.theme;
    let flags: Vec<_> = t.flags(&series.name).collect();
    let figure = |v: f64| if v.is_finite() { short(v) } else { "-".into() };
    let rows: Vec<Row> = (0..series.norm.len())
        .map(|k| {
            let flag = flags
                .iter()
                .find(|f| f.checkpoint == k)
                .map(|f| match f.kind {
                    FlagKind::Nonfinite => "nan",
                    FlagKind::StepJump => "jump",
                });
            let row = Row::new([
                format!("[{k}]"),
                figure(series.norm[k]),
                figure(series.drift[k]),
                series.step_change[k].map_or("-".into(), figure),
                figure(series.cosine_to_last[k]),
                count(series.nonfinite[k]),
                flag.unwrap_or_default().to_owned(),
            ]);
            if flag.is_some() {
                row.style(theme.style(Role::Bad))
            } else {
                row
            }
        })
        .collect();
    let widths = [4, 7, 7, 7, 6, 4, 4].map(Constraint::Length);
    Table::new(rows, widths)
        .header(
            Row::new(["ckpt", "norm", "drift", "step", "cos", "nan", "flag"])
                .style(theme.style(Role::Heading)),
        )
        .column_spacing(1)
        .render(area, buf);
}
