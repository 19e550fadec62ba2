//! The tensor pane: the selected parameter's facts and statistics (before and after a re-init),
//! then its values, histogram or heatmap; or, for a module, its summary.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::layout::{grid_dims, inner, tensor_split};
use super::theme::Role;
use super::tree::SHARED_MARK;
use super::{bytes, count, gauge, has_focus, num, pane};
use crate::app::outline::NodeKind;
use crate::app::state::{App, Focus, View};
use crate::app::update::SUMMARY_ROWS;
use crate::app::worker::Summary;
use crate::model::ParamId;
use crate::tensor::stats::Stats;
use crate::text::escape;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let node = &app.outline.nodes[app.selected];
    let focused = has_focus(app, Focus::Tensor);
    match node.kind {
        NodeKind::Param { id } => {
            let title = if summaries(app, id).1.is_some() {
                format!(" {} · before → after re-init ", app.view.title())
            } else {
                format!(" {} ", app.view.title())
            };
            pane(app, title, focused).render(area, buf);
            let (header, body) = tensor_split(inner(area));
            header_lines(app, id).render(header, buf);
            let summary = app
                .summaries
                .get(&(id, app.model.store.version(id)))
                .and_then(|s| s.as_ref().ok());
            match app.view {
                View::Values => super::values::render(app, id, body, buf),
                View::Histogram => super::histogram::render(app, summary, body, buf),
                View::Heatmap => super::heatmap::render(app, id, summary, body, buf),
            }
        }
        NodeKind::Module { params } => {
            pane(app, " module ", focused).render(area, buf);
            let body = inner(area);
            module_summary(app, params, usize::from(body.width)).render(body, buf);
        }
    }
}

/// The summary of `id` at its current version, and before the last re-init if it touched `id`.
fn summaries(app: &App, id: ParamId) -> (Option<&Result<Summary, String>>, Option<&Summary>) {
    let now = app.summaries.get(&(id, app.model.store.version(id)));
    let before = app.undo.last().and_then(|record| {
        record
            .changes
            .iter()
            .find(|(changed, _, after, _)| *changed == id && *after == app.model.store.version(id))
            .and_then(|(_, before, ..)| app.summaries.get(&(id, *before)))
            .and_then(|s| s.as_ref().ok())
    });
    (now, before)
}

fn header_lines(app: &App, id: ParamId) -> Paragraph<'static> {
    let t = app.theme;
    let node = &app.outline.nodes[app.selected];
    let tensor = app.model.store.get(id);
    let mut name = vec![Span::styled(
        escape(&node.path).into_owned(),
        t.style(Role::Heading),
    )];
    let others: Vec<String> = app
        .outline
        .other_aliases(app.selected)
        .iter()
        .map(|&i| app.outline.nodes[i].path.clone())
        .collect();
    if !others.is_empty() {
        name.push(Span::styled(
            format!("  {SHARED_MARK} shared with {}", escape(&others.join(", "))),
            t.style(Role::Alias),
        ));
    }
    let mut lines = vec![
        Line::from(name),
        Line::styled(
            format!(
                "{:?} {} · numel {} · {}",
                tensor.shape(),
                tensor.dtype(),
                count(tensor.numel()),
                bytes(tensor.bytes().len())
            ),
            t.style(Role::Dim),
        ),
    ];
    let (now, before) = summaries(app, id);
    match now {
        Some(Ok(s)) => lines.extend(stat_lines(app, &s.stats, before.map(|b| &b.stats))),
        Some(Err(e)) => lines.push(Line::styled(e.clone(), t.style(Role::Bad))),
        None => {
            let done = app.pending.map_or(0.0, |(_, d)| d);
            lines.push(Line::from(vec![
                Span::styled("computing stats ", t.style(Role::Dim)),
                Span::styled(gauge(done, 12), t.style(Role::Bar)),
                Span::styled(format!(" {:>3.0}%", done * 100.0), t.style(Role::Dim)),
            ]));
        }
    }
    while lines.len() < 5 {
        lines.push(Line::raw(""));
    }
    lines.push(tabs(app, tensor.shape()));
    Paragraph::new(lines)
}

/// min/max, mean/std, zeros/NaN/Inf; with `before`, each as `before → now`.
fn stat_lines(app: &App, now: &Stats, before: Option<&Stats>) -> Vec<Line<'static>> {
    let t = app.theme;
    let value = |f: fn(&Stats) -> f64| match before {
        Some(b) => format!("{} → {}", num(f(b)), num(f(now))),
        None => num(f(now)),
    };
    let label = |text: &'static str| Span::styled(text, t.style(Role::Dim));
    let bad = |n: usize| {
        if n > 0 {
            t.style(Role::Bad)
        } else {
            t.style(Role::Text)
        }
    };
    vec![
        Line::from(vec![
            label("min "),
            Span::raw(value(|s| s.min)),
            label("  max "),
            Span::raw(value(|s| s.max)),
        ]),
        Line::from(vec![
            label("mean "),
            Span::raw(value(|s| s.mean)),
            label("  zeros "),
            Span::raw(value(|s| s.zeros as f64)),
        ]),
        Line::from(vec![
            label("std (unbiased) "),
            Span::raw(value(|s| s.std)),
            label("  NaN "),
            Span::styled(now.nan.to_string(), bad(now.nan)),
            label("  Inf "),
            Span::styled(now.inf.to_string(), bad(now.inf)),
        ]),
    ]
}

/// The view tabs, and where the cursor is in an N-D tensor.
fn tabs(app: &App, shape: &[usize]) -> Line<'static> {
    let t = app.theme;
    let mut spans = Vec::new();
    for view in [View::Values, View::Histogram, View::Heatmap] {
        let style = if view == app.view {
            t.style(Role::Selected)
        } else {
            t.style(Role::Dim)
        };
        spans.push(Span::styled(format!(" {} ", view.title()), style));
    }
    let (slices, rows, cols) = grid_dims(shape);
    if slices == 0 || rows == 0 || cols == 0 {
        // No element, so no cursor to locate.
        return Line::from(spans);
    }
    // The cursor's full index: the slice's leading indices, then row and column.
    let mut index = if slices > 1 {
        unravel(app.grid.slice.min(slices - 1), &shape[..shape.len() - 2])
    } else {
        Vec::new()
    };
    index.push(app.grid.row.min(rows.saturating_sub(1)));
    if shape.len() != 1 {
        index.push(app.grid.col.min(cols.saturating_sub(1)));
    }
    let at = format!("  {index:?}");
    spans.push(Span::styled(at, t.style(Role::Dim)));
    Line::from(spans)
}

/// The multi-index of flat index `i` over `dims` (C order).
pub(super) fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut index = vec![0; dims.len()];
    for (slot, &d) in index.iter_mut().zip(dims).rev() {
        *slot = i % d.max(1);
        i /= d.max(1);
    }
    index
}

/// A module's full repr (wrapped after its commas when the pane is narrow), its parameter count,
/// and a table of its parameters' statistics, with narrower columns when the pane is narrow.
fn module_summary(app: &App, params: usize, pane_width: usize) -> Paragraph<'static> {
    let t = app.theme;
    let node = &app.outline.nodes[app.selected];
    let module_path = if node.path.is_empty() {
        "(the whole model)".to_owned()
    } else {
        escape(&node.path).into_owned()
    };
    let rows: Vec<(&str, ParamId)> = app.outline.nodes[app.selected..node.end]
        .iter()
        .filter_map(|n| n.param().map(|id| (local_path(&n.path, &node.path), id)))
        .take(SUMMARY_ROWS)
        .collect();
    let width = rows
        .iter()
        .map(|(p, _)| p.len())
        .max()
        .unwrap_or(0)
        .clamp(9, 24);
    // Four numbers of up to 9 characters; 8 columns each still fit the usual -0.1234 at 80 wide.
    let c = if width + 40 <= pane_width { 9 } else { 8 };
    let mut lines: Vec<Line<'static>> = wrap_after_commas(&escape(&node.label), pane_width)
        .into_iter()
        .map(|part| Line::styled(part, t.style(Role::Heading)))
        .collect();
    lines.extend([
        Line::styled(
            format!("{module_path} · {} parameters", count(params)),
            t.style(Role::Dim),
        ),
        Line::raw(""),
        Line::styled(
            format!(
                "{:<width$} {:>c$} {:>c$} {:>c$} {:>c$}",
                "parameter", "mean", "std", "min", "max"
            ),
            t.style(Role::Heading),
        ),
    ]);
    for (local, id) in rows {
        let stats = match app.summaries.get(&(id, app.model.store.version(id))) {
            Some(Ok(s)) => format!(
                "{:>c$} {:>c$} {:>c$} {:>c$}",
                num(s.stats.mean),
                num(s.stats.std),
                num(s.stats.min),
                num(s.stats.max)
            ),
            Some(Err(e)) => e.clone(),
            None => "  (select it to compute)".to_owned(),
        };
        lines.push(Line::raw(format!("{:<width$} {stats}", escape(local))));
    }
    Paragraph::new(lines)
}

/// `text` in lines of at most `width` columns, broken after `, ` where it is too long (a line
/// with no comma to break at is left long).
fn wrap_after_commas(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for piece in text.split_inclusive(", ") {
        let line = lines.last_mut().expect("never empty");
        let cols = |s: &str| Span::raw(s).width();
        if !line.is_empty() && cols(line) + cols(piece.trim_end()) > width {
            let done = line.trim_end().to_owned();
            *line = done;
            lines.push(format!("  {piece}"));
        } else {
            line.push_str(piece);
        }
    }
    lines
}

/// `path` relative to the module at `module` (`0.block1.0.bias` under `0.block1` is `0.bias`).
fn local_path<'a>(path: &'a str, module: &str) -> &'a str {
    path.strip_prefix(module)
        .map_or(path, |rest| rest.trim_start_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::wrap_after_commas;

    #[test]
    fn a_long_repr_wraps_after_its_commas() {
        let repr = "(0): Linear(in_features=4, out_features=8, bias=True)";
        assert_eq!(wrap_after_commas(repr, 80), [repr]);
        assert_eq!(
            wrap_after_commas(repr, 45),
            ["(0): Linear(in_features=4, out_features=8,", "  bias=True)"]
        );
        assert_eq!(wrap_after_commas("Sequential", 4), ["Sequential"]);
    }
}
