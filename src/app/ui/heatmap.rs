//! The heatmap view: the matrix downsampled to the pane, two pixels per cell (the upper half block
//! takes the top pixel as its colour and the bottom one as its background), blue below zero, dark
//! at zero, red above; without colour, a shade per cell by magnitude. Each pixel averages a few
//! samples of its block, so even a 1 GiB matrix draws in a frame.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::layout::grid_dims;
use super::num;
use super::theme::{ColorLevel, Role};
use crate::app::state::App;
use crate::app::worker::Summary;
use crate::model::ParamId;
use crate::tensor::Tensor;
use crate::tensor::decode::decode_f64;

/// Samples per pixel along each axis: enough to see a block's level, few enough for big matrices.
const SAMPLES: usize = 3;
/// Shades from zero to the largest magnitude, for terminals without colour.
const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];

pub(super) fn render(
    app: &App,
    id: ParamId,
    summary: Option<&Summary>,
    body: Rect,
    buf: &mut Buffer,
) {
    let t = app.theme;
    if body.height < 2 || body.width == 0 {
        return;
    }
    let tensor = app.model.store.get(id);
    // A vector reads better as one row of colour than as a column.
    let (slices, rows, cols) = match grid_dims(tensor.shape()) {
        (1, n, 1) => (1, 1, n),
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
    let scale = summary.stats.min.abs().max(summary.stats.max.abs());
    let scale = if scale > 0.0 && scale.is_finite() {
        scale
    } else {
        1.0
    };
    let map = Rect {
        height: body.height - 1,
        ..body
    };
    let mono = t.level == ColorLevel::None;
    // Pixels: one column per cell, two rows per cell (one without colour). A matrix smaller than
    // the pane is magnified by whole factors, so that every element gets equal room.
    let fit = |room: usize, n: usize| if n <= room { n * (room / n) } else { room };
    let px_w = fit(usize::from(map.width), cols);
    let px_h = fit(usize::from(map.height) * if mono { 1 } else { 2 }, rows);
    let mut pixels = Pixels {
        tensor,
        base: app.grid.slice.min(slices - 1) * rows * cols,
        rows,
        cols,
        px_h,
        px_w,
        scale,
        scratch: Vec::with_capacity(1),
    };
    let mut pixel = |py, px| pixels.value(py, px);
    for cy in 0..map.height {
        for cx in 0..px_w as u16 {
            let Some(cell) = buf.cell_mut((map.x + cx, map.y + cy)) else {
                continue;
            };
            let px = usize::from(cx);
            if mono {
                let py = usize::from(cy);
                if py >= px_h {
                    break;
                }
                let v = pixel(py, px).abs();
                let shade = if v.is_nan() {
                    0
                } else {
                    ((v * 4.0).round() as usize).min(4)
                };
                cell.set_char(SHADES[shade]);
                continue;
            }
            let (top, bottom) = (2 * usize::from(cy), 2 * usize::from(cy) + 1);
            if top >= px_h {
                break;
            }
            let style = Style::new().fg(t.heat(pixel(top, px)).unwrap_or_default());
            let style = if bottom < px_h {
                style.bg(t.heat(pixel(bottom, px)).unwrap_or_default())
            } else {
                style
            };
            cell.set_char('▀').set_style(style);
        }
    }
    let legend_area = Rect {
        y: map.bottom(),
        height: 1,
        ..body
    };
    legend(app, scale).render(legend_area, buf);
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

/// The colour scale with its ends, so the colours can be read as numbers.
fn legend(app: &App, scale: f64) -> Line<'static> {
    let t = app.theme;
    let mut spans = vec![Span::styled(
        format!("{} ", num(-scale)),
        t.style(Role::Dim),
    )];
    for k in -4..=4 {
        let v = f64::from(k) / 4.0;
        let span = match t.heat(v) {
            Some(colour) => Span::styled("█", Style::new().fg(colour)),
            None => Span::raw(SHADES[(v.abs() * 4.0) as usize].to_string()),
        };
        spans.push(span);
    }
    spans.push(Span::styled(format!(" {}", num(scale)), t.style(Role::Dim)));
    Line::from(spans)
}
