//! The attention map of a family run: the selected layer's selected head as a heatmap of shades,
//! queries down and keys across (their tokens on both axes), and a cursor that reads
//! "query 'fox' -> key 'The' 0.41". A text longer than the pane pages with the cursor.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::lens_view::{fit, page};
use crate::app::probe_view::{ProbeCursor, ProbeMode, Probes};
use crate::app::state::App;
use crate::app::theme::Role;
use crate::text::escape;

/// Columns of the query tokens.
const LABEL: usize = 8;
/// Columns of one key.
const CELL: usize = 2;
/// The shades from no weight to all of it: plain characters, so they show without colour.
const SHADES: [&str; 5] = ["  ", "░░", "▒▒", "▓▓", "██"];

/// The shade of a weight in `0..=1`.
fn shade(w: f32) -> &'static str {
    let i = (w.clamp(0.0, 1.0) * 4.0).round() as usize;
    SHADES[i.min(4)]
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
    let mut lines = vec![Line::styled(
        format!(
            "layer {}/{} head {}/{} · < > layer · {{ }} head",
            cursor.layer,
            probes.layers,
            cursor.head,
            probes.heads()
        ),
        heading,
    )];
    let Some((layer, map)) = &probes.attention else {
        lines.push(Line::styled("no attention kept for this layer yet", dim));
        Paragraph::new(lines).render(area, buf);
        return;
    };
    if *layer != cursor.layer {
        lines.push(Line::styled(
            format!("recomputing layer {}…", cursor.layer),
            dim,
        ));
        Paragraph::new(lines).render(area, buf);
        return;
    }
    let (n, _) = probes.grid(ProbeMode::Attention);
    let head = cursor.head.min(map.heads.len().saturating_sub(1));
    let cols = (usize::from(area.width).saturating_sub(LABEL) / CELL).max(1);
    let rows = usize::from(area.height).saturating_sub(4).max(1);
    let (r0, c0) = (page(cursor.row, rows), page(cursor.col, cols));
    let keys = c0..(c0 + cols).min(n);
    let mut axis = vec![Span::styled(format!("{:<LABEL$}", "q \\ k"), dim)];
    for k in keys.clone() {
        let short: String = fit(&probes.tokens[k], CELL + 1)
            .chars()
            .take(CELL)
            .collect();
        axis.push(Span::styled(short, dim));
    }
    lines.push(Line::from(axis));
    for q in r0..(r0 + rows).min(n) {
        let mut spans = vec![Span::styled(fit(&probes.tokens[q], LABEL), dim)];
        for k in keys.clone() {
            let w = probes.weight(head, q, k).unwrap_or(0.0);
            let style = if (q, k) == (cursor.row, cursor.col) {
                t.style(Role::Selected)
            } else {
                t.style(Role::Bar)
            };
            spans.push(Span::styled(shade(w), style));
        }
        lines.push(Line::from(spans));
    }
    let (q, k) = (
        cursor.row.min(n.saturating_sub(1)),
        cursor.col.min(n.saturating_sub(1)),
    );
    let token = |i: usize| escape(probes.tokens.get(i).map_or("", String::as_str)).into_owned();
    let figures = map.heads.get(head).map_or(String::new(), |h| {
        format!(
            "entropy {:.3} nats · sink {:.2}",
            h.entropy.get(q).copied().unwrap_or(0.0),
            h.sink.get(q).copied().unwrap_or(0.0)
        )
    });
    lines.push(Line::raw(format!(
        "query '{}' -> key '{}' {:.2}",
        token(q),
        token(k),
        probes.weight(head, q, k).unwrap_or(0.0)
    )));
    // The query's own figures on a line of their own: at 80 columns they would be cut off.
    lines.push(Line::styled(figures, dim));
    Paragraph::new(lines).render(area, buf);
}
