//! The heatmap view: the matrix downsampled to the pane, two pixels per cell (the upper half block
//! takes the top pixel as its colour and the bottom one as its background), blue below zero, dark
//! at zero, red above; without colour, one pixel per cell in glyphs that differ by sign (`░▒▓█`
//! above zero, `-=≡■` below). A vector is a one-row strip. The cursor (shared with the values
//! grid) is marked, and its value read out under the map. Each pixel averages a few samples of
//! its block, so even a 1 GiB matrix draws in a frame.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::app::format::{num, short};
use crate::app::job::Summary;
use crate::app::layout::grid_dims;
use crate::app::state::App;
use crate::app::theme::{ColorLevel, Role};
use crate::tensor::Tensor;
use crate::tensor::decode::decode_f64;

/// Samples per pixel along each axis: enough to see a block's level, few enough for big matrices.
const SAMPLES: usize = 3;
/// Glyphs for magnitudes 1 to 4 quarters of the scale above zero, without colour.
const POSITIVE: [char; 4] = ['░', '▒', '▓', '█'];
/// The same below zero.
const NEGATIVE: [char; 4] = ['-', '=', '≡', '■'];

/// The glyph of `v` in [-1, 1] without colour: blank at zero (and for NaN).
#[must_use]
pub fn glyph(v: f64) -> char {
    if v.is_nan() {
        return ' ';
    }
    let level = ((v.abs() * 4.0).round() as usize).min(4);
    match level {
        0 => ' ',
        l if v > 0.0 => POSITIVE[l - 1],
        l => NEGATIVE[l - 1],
    }
}

pub(super) fn render(
    app: &App,
    tensor: &Tensor,
    summary: Option<&Summary>,
    body: Rect,
    buf: &mut Buffer,
) {
    let t = app.screen.theme;
    if body.height < 3 || body.width == 0 {
        return;
    }
    let strip = tensor.shape().len() == 1;
    // A vector reads better as one row than as a column.
    let (slices, rows, cols) = match grid_dims(tensor.shape()) {
        (1, n, 1) if strip => (1, 1, n),
        dims => dims,
    };
    let Some(summary) = summary else {
        Line::styled("waiting for the statistics…", t.style(Role::Dim)).render(body, buf);
        return;
    };
    // No element at all (a zero-length dimension, leading ones included): nothing to colour.
    if slices == 0 || rows == 0 || cols == 0 {
        Line::styled("(empty)", t.style(Role::Dim)).render(body, buf);
        return;
    }
    let scale = scale_of(summary, app.tensor.heat_absmax);
    let mono = t.level == ColorLevel::None;
    let per_cell = if mono { 1 } else { 2 };
    let map = Rect {
        height: if strip { 1 } else { body.height - 2 },
        ..body
    };
    // Pixels: one column per cell, two rows per cell (one without colour). A matrix smaller than
    // the pane is magnified by whole factors, so that every element gets equal room.
    let fit = |room: usize, n: usize| if n <= room { n * (room / n) } else { room };
    let px_w = fit(usize::from(map.width), cols);
    // Rows grow no more than columns do (a pixel is about square), so a short matrix stays short.
    let widened = (px_w / cols).max(1);
    let px_h = if strip {
        per_cell
    } else {
        fit(usize::from(map.height) * per_cell, rows).min(rows * widened)
    };
    let g = app.tensor.grid;
    let (row, col) = if strip {
        (0, g.rows.cursor.min(cols - 1))
    } else {
        (g.rows.cursor.min(rows - 1), g.cols.cursor.min(cols - 1))
    };
    let mut pixels = Pixels {
        tensor,
        base: g.slice.min(slices - 1) * rows * cols,
        rows,
        cols,
        px_h,
        px_w,
        scale: scale.end,
        scratch: Vec::with_capacity(1),
    };
    let cursor = (
        (col * px_w / cols) as u16,
        (row * px_h / rows / per_cell) as u16,
    );
    for cy in 0..map.height {
        for cx in 0..px_w as u16 {
            let Some(cell) = buf.cell_mut((map.x + cx, map.y + cy)) else {
                continue;
            };
            let px = usize::from(cx);
            let (top, bottom) = if strip {
                (0, 0)
            } else {
                (per_cell * usize::from(cy), per_cell * usize::from(cy) + 1)
            };
            if top >= px_h {
                break;
            }
            if mono {
                cell.set_char(glyph(pixels.value(top, px)));
            } else {
                let style = Style::new().fg(t.heat(pixels.value(top, px)).unwrap_or_default());
                let below = if bottom < px_h { bottom } else { top };
                let style = style.bg(t.heat(pixels.value(below, px)).unwrap_or_default());
                cell.set_char('▀').set_style(style);
            }
            if (cx, cy) == cursor {
                cell.modifier.insert(Modifier::REVERSED | Modifier::BOLD);
                if !mono {
                    cell.set_char('◆');
                }
            }
        }
    }
    let value = pixels.element(row * cols + col);
    let index = if strip { vec![col] } else { vec![row, col] };
    let under = map.bottom().min(body.bottom() - 2);
    readout(
        app,
        &format!("{index:?}"),
        value,
        scale,
        Rect {
            y: under,
            height: 2,
            ..body
        },
        buf,
    );
}

/// Where the colour scale ends: its magnitude and the share of the finite values beyond it
/// (clipped to the end colours). By default the 99th percentile of |x|, read from the
/// histogram, so a few outliers do not turn the rest grey; with `absmax`, the largest
/// magnitude. 1 when there is none.
fn scale_of(summary: &Summary, absmax: bool) -> Scale {
    let largest = summary.stats.min.abs().max(summary.stats.max.abs());
    let whole = Scale {
        end: if largest > 0.0 && largest.is_finite() {
            largest
        } else {
            1.0
        },
        clipped: 0.0,
        robust: false,
    };
    let h = &summary.histogram;
    let total: usize = h.counts.iter().sum();
    let width = (h.hi - h.lo) / h.counts.len().max(1) as f64;
    if absmax || total == 0 || width.is_nan() || width <= 0.0 {
        return whole;
    }
    // Each bin by the largest magnitude it holds, smallest first, until 99% of the values.
    let mut bins: Vec<(f64, usize)> = h
        .counts
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let (a, b) = (h.lo + i as f64 * width, h.lo + (i + 1) as f64 * width);
            (a.abs().max(b.abs()).min(largest), n)
        })
        .collect();
    bins.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut within = 0;
    for (end, n) in bins {
        within += n;
        if within as f64 >= 0.99 * total as f64 {
            if end <= 0.0 || end >= whole.end {
                return whole;
            }
            return Scale {
                end,
                clipped: 1.0 - within as f64 / total as f64,
                robust: true,
            };
        }
    }
    whole
}

/// The heatmap's colour scale: ±`end`, and the share of values beyond it.
#[derive(Clone, Copy)]
struct Scale {
    end: f64,
    clipped: f64,
    /// Whether `end` is the 99th percentile of |x| (else the largest magnitude).
    robust: bool,
}

/// The value under the cursor, then the scale.
fn readout(app: &App, index: &str, value: f64, scale: Scale, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let line = Line::from(vec![
        Span::styled(format!("{index} = "), t.style(Role::Dim)),
        Span::styled(num(value), t.style(Role::Heading)),
        Span::styled("  ←↑↓→ move", t.style(Role::Dim)),
    ]);
    line.render(Rect { height: 1, ..area }, buf);
    legend(app, scale).render(
        Rect {
            y: area.y + 1,
            height: 1,
            ..area
        },
        buf,
    );
}

/// The downsampling of one matrix to `px_h` x `px_w` pixels.
struct Pixels<'a> {
    tensor: &'a Tensor,
    base: usize,
    rows: usize,
    cols: usize,
    px_h: usize,
    px_w: usize,
    scale: f64,
    scratch: Vec<f64>,
}

impl Pixels<'_> {
    /// The element at flat index `at` of the slice; NaN when it cannot be read.
    fn element(&mut self, at: usize) -> f64 {
        let t = self.tensor;
        if decode_f64(t.dtype(), t.bytes(), self.base + at, 1, &mut self.scratch).is_ok() {
            self.scratch.first().copied().unwrap_or(f64::NAN)
        } else {
            f64::NAN
        }
    }

    /// The mean of a few samples of the block under pixel (`py`, `px`), over the scale, so in
    /// [-1, 1]; NaN when the block holds no finite value.
    fn value(&mut self, py: usize, px: usize) -> f64 {
        let span = |p: usize, n: usize, pixels: usize| {
            let start = p * n / pixels;
            (start, ((p + 1) * n / pixels).max(start + 1))
        };
        let (r0, r1) = span(py, self.rows, self.px_h);
        let (c0, c1) = span(px, self.cols, self.px_w);
        let (mut sum, mut n) = (0.0, 0usize);
        for r in sample(r0, r1) {
            for c in sample(c0, c1) {
                let at = self.base + r * self.cols + c;
                let t = self.tensor;
                if decode_f64(t.dtype(), t.bytes(), at, 1, &mut self.scratch).is_ok()
                    && let Some(&v) = self.scratch.first()
                    && v.is_finite()
                {
                    sum += v;
                    n += 1;
                }
            }
        }
        if n == 0 {
            f64::NAN
        } else {
            sum / n as f64 / self.scale
        }
    }
}

/// At most `SAMPLES` indices spread over `a..b`.
fn sample(a: usize, b: usize) -> impl Iterator<Item = usize> {
    let n = (b - a).min(SAMPLES);
    (0..n).map(move |k| a + k * (b - a) / n)
}

/// The colour (or glyph) scale with its ends, so the map can be read as numbers, and what the
/// ends are: the 99th percentile of |x| with the share clipped, or the largest magnitude.
fn legend(app: &App, scale: Scale) -> Line<'static> {
    let t = app.screen.theme;
    let mut spans = vec![Span::styled(
        format!("{} ", short(-scale.end)),
        t.style(Role::Dim),
    )];
    for k in -4..=4 {
        let v = f64::from(k) / 4.0;
        let span = match t.heat(v) {
            Some(colour) => Span::styled("█", Style::new().fg(colour)),
            None => Span::raw(glyph(v).to_string()),
        };
        spans.push(span);
    }
    let what = if scale.robust {
        format!(
            " {} p99, {} clipped",
            short(scale.end),
            percent(scale.clipped)
        )
    } else {
        format!(" {} absmax", short(scale.end))
    };
    spans.push(Span::styled(what, t.style(Role::Dim)));
    Line::from(spans)
}

/// A share as a percentage in at most two significant digits, `<0.1%` when small but not none.
fn percent(share: f64) -> String {
    match share * 100.0 {
        0.0 => "0%".into(),
        p if p < 0.1 => "<0.1%".into(),
        p if p < 10.0 => format!("{p:.1}%"),
        p => format!("{p:.0}%"),
    }
}

#[cfg(test)]
mod tests {
    use super::{glyph, percent};

    #[test]
    fn clipped_shares_read_as_percentages() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.000_2), "<0.1%");
        assert_eq!(percent(0.012_3), "1.2%");
        assert_eq!(percent(0.25), "25%");
    }

    #[test]
    fn glyphs_tell_the_sign_without_colour() {
        assert_eq!(glyph(0.0), ' ');
        assert_eq!(glyph(f64::NAN), ' ');
        assert_ne!(glyph(0.45), glyph(-0.48));
        assert_eq!((glyph(1.0), glyph(-1.0)), ('█', '■'));
    }
}
