//! The logit lens grid of a family run: a row per `hidden_states` boundary (embeddings first), a
//! column per position, each cell the token that layer would predict there; the largest
//! activation of each boundary in the last column (flagged when massive), and the selected
//! cell's top-k below with the first layer at which the model's own token there comes out on top.
//! A grid wider or taller than the pane pages with the cursor.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::family_view::short;
use crate::app::probe_view::{ProbeCursor, Probes};
use crate::app::state::App;
use crate::app::theme::Role;
use crate::text::escape;

/// Columns of the layer number.
const LABEL: usize = 4;
/// Columns of one cell.
const CELL: usize = 8;
/// Columns of the massive-activation column.
const MASSIVE: usize = 10;

/// The first index of the page of `room` items that holds `cursor`.
pub(super) fn page(cursor: usize, room: usize) -> usize {
    cursor / room.max(1) * room.max(1)
}

/// `text` escaped, cut to `width - 1` characters and padded to `width`.
pub(super) fn fit(text: &str, width: usize) -> String {
    let shown: String = escape(text).chars().take(width.saturating_sub(1)).collect();
    format!("{shown:<width$}")
}

pub(super) fn render(
    app: &App,
    probes: &Probes,
    cursor: ProbeCursor,
    area: Rect,
    buf: &mut Buffer,
) {
    let t = app.screen.theme;
    let (dim, heading) = (t.style(Role::Dim), t.style(Role::Heading));
    if probes.lens.is_empty() {
        let why = "no logit lens: the model has no LM head (p: next view)";
        Paragraph::new(Line::styled(why, dim)).render(area, buf);
        return;
    }
    let (layers, positions) = probes.grid(crate::app::probe_view::ProbeMode::Lens);
    let cols = (usize::from(area.width).saturating_sub(LABEL + MASSIVE) / CELL).max(1);
    let rows = usize::from(area.height).saturating_sub(4).max(1);
    let (r0, c0) = (page(cursor.row, rows), page(cursor.col, cols));
    let shown_cols = c0..(c0 + cols).min(positions);
    let mut head = vec![Span::styled(format!("{:<LABEL$}", "l"), heading)];
    for p in shown_cols.clone() {
        head.push(Span::styled(fit(&probes.tokens[p], CELL), heading));
    }
    head.push(Span::styled(format!("{:>MASSIVE$}", "max|h|"), heading));
    let mut lines = vec![Line::from(head)];
    for l in r0..(r0 + rows).min(layers) {
        let mut spans = vec![Span::styled(format!("{l:<LABEL$}"), dim)];
        for p in shown_cols.clone() {
            let top = probes.lens[l].positions[p].first();
            let text = fit(top.map_or("", |c| c.text.as_str()), CELL);
            let style = if (l, p) == (cursor.row, cursor.col) {
                t.style(Role::Selected)
            } else {
                t.style(Role::Text)
            };
            spans.push(Span::styled(text, style));
        }
        if let Some(m) = probes.massive.get(l) {
            let mark = if m.flagged { "!" } else { " " };
            let role = if m.flagged { Role::Bad } else { Role::Dim };
            let value = format!("{}{mark}", short(f64::from(m.top.0)));
            spans.push(Span::styled(format!("{value:>MASSIVE$}"), t.style(role)));
        }
        lines.push(Line::from(spans));
    }
    let (l, p) = (
        cursor.row.min(layers - 1),
        cursor.col.min(positions.saturating_sub(1)),
    );
    let row = &probes.lens[l];
    lines.push(Line::styled(
        format!(
            "layer {l} {} · position {p} '{}'",
            escape(&row.path),
            escape(probes.tokens.get(p).map_or("", String::as_str))
        ),
        dim,
    ));
    let top: Vec<String> = row.positions.get(p).map_or_else(Vec::new, |cells| {
        cells
            .iter()
            .map(|c| format!("'{}' {:.1}%", escape(&c.text), 100.0 * c.prob))
            .collect()
    });
    lines.push(Line::raw(format!("→ {}", top.join("  "))));
    if let (Some(first), Some(last)) = (
        probes.first_layer_predicting(p),
        probes.lens.last().and_then(|l| l.positions.get(p)?.first()),
    ) {
        lines.push(Line::styled(
            format!(
                "'{}' first on top at layer {first} of {}",
                escape(&last.text),
                layers - 1
            ),
            dim,
        ));
    }
    Paragraph::new(lines).render(area, buf);
}
