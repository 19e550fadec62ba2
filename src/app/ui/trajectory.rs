//! What a followed run adds to the screen: the module table's sparkline of each tensor's drift
//! across the checkpoints, and the trajectory view of the selected tensor: its drift and step
//! change over the checkpoints as a line chart (a Braille line and dots, told apart without
//! colour; a sparkline when the pane is too short), then a row per checkpoint (norm, drift from
//! the first, step change, cosine to the last, NaN/Inf count), the checkpoints flagged marked in
//! words and the one `[`/`]` stepped to marked `<`.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Row, Table, Widget};

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
    let rows = u16::try_from(series.norm.len() + 1).unwrap_or(u16::MAX);
    // The chart takes what the table leaves, when that is enough to draw a line on.
    let chart_rows = body.height.saturating_sub(rows);
    let above = if chart_rows >= 5 {
        chart(
            app,
            t,
            series,
            Rect {
                height: chart_rows,
                ..body
            },
            buf,
        );
        chart_rows
    } else {
        Line::from(vec![
            Span::styled("drift ", theme.style(Role::Dim)),
            Span::raw(sparkline(
                &series.drift,
                usize::from(body.width).saturating_sub(6),
            )),
        ])
        .render(body, buf);
        // The line naming the first and last gives way to the table's last row when short.
        let named = body.height > rows + 1;
        if named {
            name_ends(
                app,
                t,
                Rect {
                    y: body.y + 1,
                    height: 1,
                    ..body
                },
                buf,
            );
        }
        1 + u16::from(named)
    };
    let area = Rect {
        y: body.y + above,
        height: body.height.saturating_sub(above),
        ..body
    };
    table(app, t, series, area, buf);
}

/// Drift (a Braille line) and step change (dots) over the checkpoints in `area`: its first line
/// says which is which, the x axis names the first and last checkpoints. A figure that is not
/// finite is left out (the table says `-`).
fn chart(app: &App, t: &Trajectory, series: &Series, area: Rect, buf: &mut Buffer) {
    let dim = app.screen.theme.style(Role::Dim);
    Line::styled("drift ⠤⠒ line   step change • dots", dim).render(area, buf);
    let points = |values: &mut dyn Iterator<Item = Option<f64>>| -> Vec<(f64, f64)> {
        (values.enumerate())
            .filter_map(|(k, v)| v.filter(|v| v.is_finite()).map(|v| (k as f64, v)))
            .collect()
    };
    let drift = points(&mut series.drift.iter().map(|&v| Some(v)));
    let step = points(&mut series.step_change.iter().copied());
    let (lo, hi) = (drift.iter().chain(&step))
        .fold((0.0f64, 0.0f64), |(lo, hi), &(_, v)| (lo.min(v), hi.max(v)));
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let last = series.norm.len().saturating_sub(1);
    let (first_name, last_name) = (checkpoint_name(t, 0), checkpoint_name(t, last));
    let datasets = vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .data(&drift),
        Dataset::default()
            .marker(Marker::Dot)
            .graph_type(GraphType::Scatter)
            .style(app.screen.theme.style(Role::Bar))
            .data(&step),
    ];
    Chart::new(datasets)
        .x_axis(
            Axis::default()
                .bounds([0.0, last.max(1) as f64])
                .labels([format!("[0] {first_name}"), format!("[{last}] {last_name}")])
                .labels_alignment(Alignment::Right)
                .style(dim),
        )
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .labels([short(lo), short(hi)])
                .style(dim),
        )
        .render(
            Rect {
                y: area.y + 1,
                height: area.height.saturating_sub(1),
                ..area
            },
            buf,
        );
}

/// The last part of checkpoint `k`'s name, escaped: a run's folders differ in it.
fn checkpoint_name(t: &Trajectory, k: usize) -> String {
    let spec = t.checkpoints.get(k).map_or("", String::as_str);
    let path = std::path::Path::new(spec);
    let last = path
        .file_name()
        .map_or_else(|| spec.into(), |n| n.to_string_lossy());
    escape(&last).into_owned()
}

/// Which checkpoints the first and last rows are, in `area` (one line).
fn name_ends(app: &App, t: &Trajectory, area: Rect, buf: &mut Buffer) {
    let last = t.checkpoints.len().saturating_sub(1);
    let line = format!(
        "[0] {} … [{last}] {}",
        checkpoint_name(t, 0),
        checkpoint_name(t, last)
    );
    Line::styled(line, app.screen.theme.style(Role::Dim)).render(area, buf);
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
            // The checkpoint `[`/`]` stepped to, whose tensor the other views show.
            let here = if t.at == Some(k) { "<" } else { "" };
            let row = Row::new([
                format!("[{k}]{here}"),
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
