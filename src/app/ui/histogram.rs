//! The histogram view: the value distribution as vertical bars in eighth-blocks. The fine bins are
//! grouped evenly into the columns (the same number of bins per bar), so flat data draws flat;
//! `L` switches to log counts. The range is under it, with the NaN/Inf counts that have no place
//! on the axis.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::app::format::num;
use crate::app::job::Summary;
use crate::app::state::App;
use crate::app::theme::Role;

/// Bar tops from one to eight eighths of a cell.
const EIGHTHS: [&str; 8] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

/// The bar heights for `width` columns: `counts` grouped evenly, `log` as ln(1 + count).
#[must_use]
pub fn bars(counts: &[usize], numel: usize, width: usize, log: bool) -> Vec<f64> {
    let columns = columns(counts.len(), numel, width);
    let per = counts.len() / columns;
    counts
        .chunks(per.max(1))
        .map(|group| {
            let n = group.iter().sum::<usize>() as f64;
            if log { n.ln_1p() } else { n }
        })
        .collect()
}

pub(super) fn render(app: &App, summary: Option<&Summary>, body: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let Some(summary) = summary else {
        Line::styled("waiting for the statistics…", t.style(Role::Dim)).render(body, buf);
        return;
    };
    let h = &summary.histogram;
    if h.finite() + h.nan + h.pos_inf + h.neg_inf == 0 {
        Line::styled("(empty)", t.style(Role::Dim)).render(body, buf);
        return;
    }
    if body.height < 3 || body.width < 4 {
        return;
    }
    let log = app.tensor.log_counts;
    let numel = summary.stats.finite;
    let heights = bars(&h.counts, numel, usize::from(body.width), log);
    let bars_h = usize::from(body.height - 2);
    let peak = heights.iter().copied().fold(0.0, f64::max);
    let peak = if peak > 0.0 { peak } else { 1.0 };
    // Few bars get wide ones, with a gap between them once they are wide enough to spare one.
    let bar_width = usize::from(body.width) / heights.len();
    let bar_cells = if bar_width >= 3 {
        bar_width - 1
    } else {
        bar_width
    };
    let bar = t.style(Role::Bar);
    for (j, &n) in heights.iter().enumerate() {
        // In eighths of a cell; any non-empty column shows at least one eighth.
        let eighths = if n <= 0.0 {
            0
        } else {
            ((n * (bars_h * 8) as f64 / peak) as usize).max(1)
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
    // The axis spans the bars, not the pane, so its ends sit under the first and last bar.
    let width = (bar_width * heights.len()).max(hi_len(h) + 1);
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
    let per = h.counts.len() / heights.len();
    let scale = if log {
        format!("log · {per} bins/bar · ")
    } else {
        format!("peak {} · {} bins/bar · ", peak as usize, per)
    };
    Line::from(vec![
        Span::styled(scale, t.style(Role::Dim)),
        Span::styled(format!("NaN {}", h.nan), bad(h.nan)),
        Span::styled(" ", t.style(Role::Dim)),
        Span::styled(format!("+Inf {}", h.pos_inf), bad(h.pos_inf)),
        Span::styled(" ", t.style(Role::Dim)),
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

/// Columns of the axis' right label.
fn hi_len(h: &crate::tensor::histogram::Histogram) -> usize {
    num(h.hi).chars().count()
}

/// How many screen columns the histogram takes at most `width` columns: the most that divides
/// the bins evenly, and for a small tensor no more than about twice √n, so that a few values do
/// not look like a sparse comb.
#[must_use]
pub fn columns(bins: usize, numel: usize, width: usize) -> usize {
    let cap = width.min(((numel as f64).sqrt() * 2.0).ceil().max(8.0) as usize);
    (1..=cap.max(1))
        .rev()
        .find(|&c| bins.is_multiple_of(c))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::{bars, columns};
    use crate::app::summary::FINE_BINS;

    #[test]
    fn flat_counts_draw_flat_bars_at_any_width() {
        let counts = vec![3; FINE_BINS];
        for width in [20, 33, 45, 61, 78] {
            let heights = bars(&counts, 1 << 20, width, false);
            assert!(heights.len() <= width);
            assert!(
                heights.iter().all(|&h| h == heights[0]),
                "width {width}: {heights:?}"
            );
        }
        let log = bars(&counts, 1 << 20, 45, true);
        assert!((log[0] - (3.0 * 56.0f64).ln_1p()).abs() < 1e-12);
    }

    #[test]
    fn columns_divide_the_bins_evenly() {
        assert_eq!(columns(FINE_BINS, 1 << 20, 45), 45);
        assert_eq!(columns(FINE_BINS, 1 << 20, 78), 72);
        assert_eq!(
            columns(FINE_BINS, 32, 45),
            12,
            "2·√32 = 11.3, then 12 divides 2520"
        );
        assert_eq!(columns(FINE_BINS, 1 << 20, 0), 1);
    }
}
