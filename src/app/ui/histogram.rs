//! The histogram view: the value distribution as vertical bars in eighth-blocks, the bins merged to
//! fit the width, with the range under it and the NaN/Inf counts that have no place on the axis.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::num;
use super::theme::Role;
use crate::app::state::App;
use crate::app::worker::Summary;

/// Bar tops from one to eight eighths of a cell.
const EIGHTHS: [&str; 8] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

pub(super) fn render(app: &App, summary: Option<&Summary>, body: Rect, buf: &mut Buffer) {
    let t = app.theme;
    let Some(summary) = summary else {
        Line::styled("waiting for the statistics…", t.style(Role::Dim)).render(body, buf);
        return;
    };
    let h = &summary.histogram;
    if body.height < 3 || body.width < 4 {
        return;
    }
    let bars_h = usize::from(body.height - 2);
    let columns = usize::from(body.width).min(h.counts.len());
    // Column j gathers bins [j·n/columns, (j+1)·n/columns): every bin lands in exactly one column.
    let heights: Vec<usize> = (0..columns)
        .map(|j| {
            let (a, b) = (
                j * h.counts.len() / columns,
                (j + 1) * h.counts.len() / columns,
            );
            h.counts[a..b].iter().sum()
        })
        .collect();
    let peak = heights.iter().copied().max().unwrap_or(0).max(1);
    // Few bins get wide bars, with a gap between them once they are wide enough to spare one.
    let bar_width = usize::from(body.width) / columns;
    let bar_cells = if bar_width >= 3 {
        bar_width - 1
    } else {
        bar_width
    };
    let bar = t.style(Role::Bar);
    for (j, &n) in heights.iter().enumerate() {
        // In eighths of a cell; any non-empty column shows at least one eighth.
        let eighths = if n == 0 {
            0
        } else {
            (n * bars_h * 8 / peak).max(1)
        };
        let x = body.x + (j * bar_width) as u16;
        for level in 0..bars_h {
            let filled = eighths.saturating_sub(level * 8).min(8);
            if filled > 0 {
                let y = body.y + (bars_h - 1 - level) as u16;
                buf.set_string(x, y, EIGHTHS[filled - 1].repeat(bar_cells), bar);
            }
        }
    }
    let width = usize::from(body.width);
    let (lo, hi) = (num(h.lo), num(h.hi));
    let axis = format!("{lo:<w$}", w = width.saturating_sub(hi.len()));
    Line::styled(format!("{axis}{hi}"), t.style(Role::Dim)).render(
        Rect {
            y: body.y + bars_h as u16,
            height: 1,
            ..body
        },
        buf,
    );
    let bad = |n: usize| {
        if n > 0 {
            t.style(Role::Bad)
        } else {
            t.style(Role::Dim)
        }
    };
    Line::from(vec![
        Span::styled(format!("peak {peak} per bar · "), t.style(Role::Dim)),
        Span::styled(format!("NaN {}", h.nan), bad(h.nan)),
        Span::styled(" · ", t.style(Role::Dim)),
        Span::styled(format!("+Inf {}", h.pos_inf), bad(h.pos_inf)),
        Span::styled(" · ", t.style(Role::Dim)),
        Span::styled(format!("-Inf {}", h.neg_inf), bad(h.neg_inf)),
    ])
    .render(
        Rect {
            y: body.y + bars_h as u16 + 1,
            height: 1,
            ..body
        },
        buf,
    );
}
