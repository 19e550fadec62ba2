//! The forward panel: the input, the output's first rows, and each layer's activation statistics
//! (mean, std, and the fraction of zeros a ReLU leaves), with progress while the worker runs.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::layout::{FORWARD_OUTPUT_ROWS as OUTPUT_ROWS, inner};
use super::theme::Role;
use super::{gauge, has_focus, num, pane};
use crate::app::state::{App, Focus, Input};
use crate::text::escape;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = app.theme;
    pane(app, " forward pass ", has_focus(app, Focus::Tensor)).render(area, buf);
    let body = inner(area);
    let dim = t.style(Role::Dim);
    let input = match &app.forward.input {
        Input::Random { batch, seed } => format!("torch.rand({batch}, in) · seed {seed}"),
        Input::File { name, array } => format!("{} {:?}", escape(name), array.shape()),
    };
    let mut lines = vec![Line::from(vec![
        Span::styled("input ", dim),
        Span::raw(input),
    ])];
    if let Some((done, all)) = app.forward.running {
        let fraction = if all == 0 {
            0.0
        } else {
            done as f64 / all as f64
        };
        lines.push(Line::from(vec![
            Span::styled("running ", dim),
            Span::styled(gauge(fraction, 12), t.style(Role::Bar)),
            Span::styled(format!(" {done}/{all} layers"), dim),
        ]));
    }
    match &app.forward.result {
        None => {}
        Some(Err(e)) => lines.push(Line::styled(e.clone(), t.style(Role::Bad))),
        Some(Ok(result)) => {
            let output = &result.output;
            lines.push(Line::from(vec![
                Span::styled("output ", dim),
                Span::raw(format!("{:?}", output.shape())),
            ]));
            let width = output.shape().last().copied().unwrap_or(1).max(1);
            let rows = output.len() / width;
            // Only the rows shown are copied, however big the batch.
            let values: Vec<f32> = output.iter().take(OUTPUT_ROWS * width).copied().collect();
            let per_line = (usize::from(body.width) / 10).max(1);
            for row in values.chunks(width).take(OUTPUT_ROWS) {
                let cells: Vec<String> = row
                    .iter()
                    .take(per_line)
                    .map(|v| format!("{:>9}", num(f64::from(*v))))
                    .collect();
                let more = if row.len() > per_line { " …" } else { "" };
                lines.push(Line::raw(format!("{}{more}", cells.join(" "))));
            }
            if rows > OUTPUT_ROWS {
                lines.push(Line::styled(format!("… {rows} rows in all"), dim));
            }
            let path_width = result
                .layers
                .iter()
                .map(|l| l.path.len())
                .max()
                .unwrap_or(0)
                .clamp(5, 20);
            lines.push(Line::styled(
                format!(
                    "{:<path_width$} {:>9} {:>9} {:>6}  layer",
                    "path", "mean", "std", "zeros"
                ),
                t.style(Role::Heading),
            ));
            // Only the rows on screen: each may look its layer up in the outline.
            let room = usize::from(body.height).saturating_sub(lines.len());
            for layer in result.layers.iter().skip(app.forward.scroll).take(room) {
                let numbers = format!(
                    "{:<path_width$} {:>9} {:>9} {:>5.1}%  ",
                    escape(&layer.path),
                    num(layer.mean),
                    num(layer.std),
                    100.0 * layer.zeros
                );
                // The full repr where it fits, else the tree's compact one (`Linear(4→8)`).
                let room = usize::from(body.width).saturating_sub(numbers.chars().count());
                let mut repr = escape(&layer.repr).into_owned();
                if Span::raw(repr.as_str()).width() > room
                    && let Some(node) = app.outline.find(&layer.path, false)
                {
                    let short = &app.outline.nodes[node].short;
                    repr = escape(short.split_once("): ").map_or(short, |(_, r)| r)).into_owned();
                }
                lines.push(Line::from(vec![
                    Span::raw(numbers),
                    Span::styled(repr, dim),
                ]));
            }
        }
    }
    Paragraph::new(lines).render(body, buf);
}
