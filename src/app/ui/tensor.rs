//! The tensor pane: the selected parameter's facts and statistics (before and after a re-init),
//! then its values, histogram or heatmap; or, for a module, its summary.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::tree::SHARED_MARK;
use super::{compare, has_focus, pane, quantized};
use crate::app::compare::Side;
use crate::app::format::{bytes, count, gauge, num, short, significant};
use crate::app::job::{Part, PartDetail, QUANTILES, Summary};
use crate::app::layout::{BORDER, HEADER_ROWS, grid_dims, tensor_split};
use crate::app::outline::NodeKind;
use crate::app::state::{App, Focus, View};
use crate::app::theme::Role;
use crate::model::ParamId;
use crate::tensor::Tensor;
use crate::tensor::stats::Stats;
use crate::text::escape;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let node = &app.doc.outline.nodes[app.tree.selected()];
    let focused = has_focus(app, Focus::Tensor);
    match &node.kind {
        &NodeKind::Param { id } => {
            pane(app, title(app, id), focused).render(area, buf);
            let (header, body) = tensor_split(area.inner(BORDER));
            let shown = shown(app, id);
            header_lines(app, id, &shown, usize::from(header.width)).render(header, buf);
            let (tensor, summary) = match shown {
                Ok(pair) => pair,
                Err(why) => {
                    Line::styled(why, app.screen.theme.style(Role::Dim)).render(body, buf);
                    return;
                }
            };
            match app.view_of(id) {
                View::Values => super::values::render(app, tensor, body, buf),
                View::Histogram => super::histogram::render(app, summary, body, buf),
                View::Heatmap => super::heatmap::render(app, tensor, summary, body, buf),
                View::Shards => super::shards::render(app, tensor, body, buf),
                View::Optimizer => super::optimizer::render(app, id, body, buf),
                View::Trajectory => super::trajectory::render(app, id, body, buf),
            }
        }
        &NodeKind::Module { params } => {
            pane(app, " module ", focused).render(area, buf);
            super::module::render(app, params, area.inner(BORDER), buf);
        }
        NodeKind::Info { value } => {
            pane(app, " value ", focused).render(area, buf);
            super::info::render(app, app.tree.selected(), value, area.inner(BORDER), buf);
        }
    }
}

/// The pane's title: the view, then what of the tensor it shows (the side compared, a quantized
/// weight's scheme and part, or the edit (re-init or zeroing) it compares with).
fn title(app: &App, id: ParamId) -> String {
    let mut words = vec![app.view_of(id).title().to_owned()];
    let side = app.compare.loaded.as_ref().map(|c| c.side);
    if let Some(side) = side {
        words.push(side.title().to_owned());
    }
    if let Some(q) = app.quantized(id) {
        let part = app.part_key(id).map_or(Part::Values, |(_, part)| part);
        words.push(quantized::title(q, part));
    }
    if let Some(at) = app.trajectory.as_ref().and_then(|t| t.at) {
        words.push(format!("checkpoint [{at}]"));
    }
    if side.is_none() && app.summary_before(id).is_some() {
        words.push("before → after edit".to_owned());
    }
    format!(" {} ", words.join(" · "))
}

/// A tensor the worker made for the view in place of `id`: the version of a checkpoint of the
/// followed run `[`/`]` stepped to, or a quantized weight's codes or scales (`Err` while the
/// worker reads or computes it).
fn made(app: &App, id: ParamId) -> Option<Result<&PartDetail, &'static str>> {
    let version = app
        .trajectory
        .as_ref()
        .and_then(|t| t.shown(app.selected_path()));
    version.or_else(|| app.part_shown(id))
}

/// The tensor the view draws and its summary (A's may still be on its way); for B, Δ, codes or
/// scales not come yet, why there is nothing to draw.
fn shown(app: &App, id: ParamId) -> Result<(&Tensor, Option<&Summary>), &'static str> {
    if let Some(part) = made(app, id) {
        return part.map(|p| (&p.tensor, p.summary.as_ref().ok()));
    }
    let a = (app.doc.model.store.get(id), app.summary(id));
    match &app.compare.loaded {
        Some(c) if c.side != Side::A => {
            let key = (app.tree.selected(), (id, app.doc.model.store.version(id)));
            compare::side_of(c, key).map(|(t, s)| (t, Some(s)))
        }
        _ => Ok(a),
    }
}

fn header_lines(
    app: &App,
    id: ParamId,
    shown: &Result<(&Tensor, Option<&Summary>), &'static str>,
    width: usize,
) -> Paragraph<'static> {
    let t = app.screen.theme;
    let selected = app.tree.selected();
    let node = &app.doc.outline.nodes[selected];
    let tensor = match (made(app, id), shown) {
        (Some(_), Ok((made, _))) => made,
        _ => app.doc.model.store.get(id),
    };
    let mut name = vec![Span::styled(
        escape(&node.path).into_owned(),
        t.style(Role::Heading),
    )];
    let others: Vec<String> = app
        .doc
        .outline
        .other_aliases(selected)
        .iter()
        .map(|&i| app.doc.outline.nodes[i].path.clone())
        .collect();
    if app.doc.from_gguf {
        let ggml: Vec<String> = tensor.shape().iter().rev().map(usize::to_string).collect();
        name.push(Span::styled(
            format!("  (ggml: {}, innermost first)", ggml.join("×")),
            t.style(Role::Dim),
        ));
    }
    if !others.is_empty() {
        name.push(Span::styled(
            format!("  {SHARED_MARK} shared with {}", escape(&others.join(", "))),
            t.style(Role::Alias),
        ));
    }
    let part = app.part_key(id).map(|(_, part)| part);
    let described = match (app.quantized(id), shown) {
        (Some(q), Ok((shown, _))) => quantized::shape_line(q, part.unwrap_or(Part::Values), shown),
        _ => format!(
            "{:?} {} · numel {} · {}",
            tensor.shape(),
            tensor.dtype(),
            count(tensor.numel()),
            bytes(usize::try_from(tensor.byte_len()).unwrap_or(usize::MAX))
        ),
    };
    let mut lines = vec![
        Line::from(name),
        Line::styled(described, t.style(Role::Dim)),
    ];
    let now = app
        .cache
        .summaries
        .get(&(id, app.doc.model.store.version(id)));
    let comparing = app.compare.loaded.as_ref();
    // Codes, scales and other checkpoints' versions come with their own summary, and have no
    // "before" of a re-init.
    let now = match made(app, id) {
        Some(Ok(shown)) => Some(shown.summary.as_ref()),
        Some(Err(_)) => None,
        None => now.map(Result::as_ref),
    };
    match (now, shown) {
        (_, Err(why)) => lines.push(Line::styled(*why, t.style(Role::Dim))),
        (Some(Ok(_)), _) if tensor.numel() == 0 => {
            lines.push(Line::styled("(empty)", t.style(Role::Dim)));
        }
        (Some(Ok(s)), Ok((_, shown))) => {
            if let (Some(c), None) = (comparing, part) {
                // The figures of the side shown; the comparison's in place of the quantiles.
                let s = shown.unwrap_or(s);
                lines.extend(stat_lines(app, &s.stats, None, width));
                lines.extend(compare::figure_lines(app, c, selected));
            } else {
                let before = app
                    .summary_before(id)
                    .filter(|_| part.is_none())
                    .map(|b| &b.stats);
                lines.extend(stat_lines(app, &s.stats, before, width));
                // The quantiles get the rows left above the tabs.
                let rows = (usize::from(HEADER_ROWS) - 1).saturating_sub(lines.len());
                lines.extend(quantile_lines(app, s, width, rows));
            }
        }
        (Some(Err(e)), _) => lines.push(Line::styled(e.to_string(), t.style(Role::Bad))),
        (None, _) => {
            let done = app.cache.pending.map_or(0.0, |(_, d)| d);
            lines.push(Line::from(vec![
                Span::styled("computing stats ", t.style(Role::Dim)),
                Span::styled(gauge(done, 12), t.style(Role::Bar)),
                Span::styled(format!(" {:>3.0}%", done * 100.0), t.style(Role::Dim)),
            ]));
        }
    }
    while lines.len() < usize::from(HEADER_ROWS) - 1 {
        lines.push(Line::raw(""));
    }
    let shape = shown.as_ref().map_or(tensor.shape(), |(t, _)| t.shape());
    lines.push(tabs(app, id, shape));
    Paragraph::new(lines)
}

/// min/max, mean/std, zeros/NaN/Inf; with `before`, each as `before → now` in three significant
/// digits (the arrow closed up when a line would not fit `width`). With NaN or Inf present, the
/// figures say they are over the finite values only.
fn stat_lines(app: &App, now: &Stats, before: Option<&Stats>, width: usize) -> Vec<Line<'static>> {
    let t = app.screen.theme;
    let label = |text: &'static str| Span::styled(text, t.style(Role::Dim));
    let pair = |names: [&'static str; 2], f: [fn(&Stats) -> f64; 2]| {
        let Some(b) = before else {
            return Line::from(vec![
                label(names[0]),
                Span::raw(num(f[0](now))),
                label(names[1]),
                Span::raw(num(f[1](now))),
            ]);
        };
        let line = |arrow: &str, digits: usize| {
            let shown = |f: fn(&Stats) -> f64| {
                format!(
                    "{}{arrow}{}",
                    significant(f(b), digits),
                    significant(f(now), digits)
                )
            };
            Line::from(vec![
                label(names[0]),
                Span::raw(shown(f[0])),
                label(names[1]),
                Span::raw(shown(f[1])),
            ])
        };
        // The arrow closed up, then two significant digits: never a number cut.
        [(" → ", 3), ("→", 3)]
            .into_iter()
            .map(|(arrow, digits)| line(arrow, digits))
            .find(|l| l.width() <= width)
            .unwrap_or_else(|| line("→", 2))
    };
    let bad = |n: usize| {
        if n > 0 {
            t.style(Role::Bad)
        } else {
            t.style(Role::Text)
        }
    };
    let zeros = match before {
        Some(b) => format!("{} → {}", b.zeros, now.zeros),
        None => now.zeros.to_string(),
    };
    let mut last = vec![
        label("zeros "),
        Span::raw(zeros),
        label("  NaN "),
        Span::styled(now.nan.to_string(), bad(now.nan)),
        label("  Inf "),
        Span::styled(now.inf.to_string(), bad(now.inf)),
    ];
    if now.nan + now.inf > 0 {
        last.push(Span::styled("  (over finite values)", t.style(Role::Bad)));
    }
    vec![
        pair(["min ", "  max "], [|s| s.min, |s| s.max]),
        pair(["mean ", "  std "], [|s| s.mean, |s| s.std]),
        Line::from(last),
    ]
}

/// The quantiles in three significant digits, exponent kept, packed into at most `rows` lines of
/// `width` columns: all seven when they fit, else fewer (the median and the tails kept). Read
/// from the fine histogram (a large tensor), they end with their error bound, one bin's width.
fn quantile_lines(app: &App, summary: &Summary, width: usize, rows: usize) -> Vec<Line<'static>> {
    /// The quantiles shown, by index into `QUANTILES`, widest set first.
    const SETS: [&[usize]; 3] = [&[0, 1, 2, 3, 4, 5, 6], &[0, 2, 3, 4, 6], &[0, 3, 6]];
    let t = app.screen.theme;
    let Some(q) = &summary.quantiles else {
        return Vec::new();
    };
    let items = |set: &[usize]| {
        let mut items: Vec<(String, String)> = set
            .iter()
            .map(|&i| (format!("{}% ", QUANTILES[i]), short(q.values[i])))
            .collect();
        if !q.exact() {
            items.push(("±".into(), short(q.bound)));
        }
        items
    };
    let mut packed = Vec::new();
    for set in SETS {
        packed = pack(&items(set), width);
        if packed.len() <= rows.max(1) {
            break;
        }
    }
    packed
        .into_iter()
        .map(|row| {
            let mut spans = Vec::new();
            for (label, value) in row {
                let gap = if spans.is_empty() { "" } else { "  " };
                spans.push(Span::styled(format!("{gap}{label}"), t.style(Role::Dim)));
                spans.push(Span::raw(value));
            }
            Line::from(spans)
        })
        .collect()
}

/// `items` (label, value) in order, as many on a line as fit `width` with two spaces between;
/// never an item split.
fn pack(items: &[(String, String)], width: usize) -> Vec<Vec<(String, String)>> {
    let mut rows: Vec<Vec<(String, String)>> = Vec::new();
    let mut used = 0;
    for item in items {
        let w = item.0.chars().count() + item.1.chars().count();
        match rows.last_mut() {
            Some(row) if used + 2 + w <= width => {
                row.push(item.clone());
                used += 2 + w;
            }
            _ => {
                rows.push(vec![item.clone()]);
                used = w;
            }
        }
    }
    rows
}

/// The view tabs the tensor offers, and where the cursor is in an N-D tensor.
fn tabs(app: &App, id: ParamId, shape: &[usize]) -> Line<'static> {
    let t = app.screen.theme;
    let mut spans = Vec::new();
    let shown = app.view_of(id);
    for view in app.views(id) {
        let style = if view == shown {
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
    let g = app.tensor.grid;
    // The cursor's full index: the slice's leading indices, then row and column.
    let mut index = if slices > 1 {
        unravel(g.slice.min(slices - 1), &shape[..shape.len() - 2])
    } else {
        Vec::new()
    };
    index.push(g.rows.cursor.min(rows.saturating_sub(1)));
    if shape.len() != 1 {
        index.push(g.cols.cursor.min(cols.saturating_sub(1)));
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

#[cfg(test)]
mod tests {
    use super::stat_lines;
    use crate::tensor::stats::Stats;

    #[test]
    fn a_before_after_line_of_nine_character_numbers_fits_45_columns_whole() {
        let app = super::super::demo_app("mlp");
        let stats = |scale: f64| Stats {
            finite: 4,
            min: -1.234e-10 * scale,
            max: -1.111e-11 * scale,
            mean: -1.111e-10 * scale,
            std: 2.222e-10 * scale,
            zeros: 0,
            nan: 0,
            inf: 0,
        };
        let (before, now) = (stats(1.0), stats(3.0));
        let lines = stat_lines(&app, &now, Some(&before), 45);
        let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
        assert!(lines.iter().all(|l| l.width() <= 45), "{text:?}");
        assert_eq!(text[0], "min -1.2e-10→-3.7e-10  max -1.1e-11→-3.3e-11");
        assert_eq!(text[1], "mean -1.1e-10→-3.3e-10  std 2.2e-10→6.7e-10");
        // Where the three digits fit, they stay.
        let wide = stat_lines(&app, &now, Some(&before), 80);
        assert_eq!(
            wide[0].to_string(),
            "min -1.23e-10 → -3.70e-10  max -1.11e-11 → -3.33e-11"
        );
    }
}
