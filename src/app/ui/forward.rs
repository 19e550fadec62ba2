//! The forward panel: the input, the output's first rows, and each layer's activation statistics
//! (mean, std, and the fraction of zeros a ReLU leaves), with progress while the worker runs.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{has_focus, pane};
use crate::app::format::{gauge, num};
use crate::app::forward_view::{ForwardLine, forward_head};
use crate::app::job::Runs;
use crate::app::layout::BORDER;
use crate::app::state::{App, Focus};
use crate::app::theme::Role;
use crate::text::escape;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    pane(app, " forward pass ", has_focus(app, Focus::Tensor)).render(area, buf);
    let body = area.inner(BORDER);
    let dim = t.style(Role::Dim);
    // A family paramscope does not run has no input to speak of: its one line says why.
    let refused = matches!(app.doc.runs, Runs::Refused(_));
    let mut lines: Vec<Line> = forward_head(&app.forward, usize::from(body.width))
        .into_iter()
        .filter(|line| !(refused && matches!(line, ForwardLine::Input(_))))
        .map(|line| match line {
            ForwardLine::Input(text) => {
                Line::from(vec![Span::styled("input ", dim), Span::raw(text)])
            }
            ForwardLine::Running(done, all) => {
                running(app, done, all, format!(" {done}/{all} layers"))
            }
            ForwardLine::Error(text) => Line::styled(text, t.style(Role::Bad)),
            ForwardLine::Output(shape) => Line::from(vec![
                Span::styled("output ", dim),
                Span::raw(format!("{shape:?}")),
            ]),
            ForwardLine::Values(text) => Line::raw(text),
            ForwardLine::More(rows) => Line::styled(format!("… {rows} rows in all"), dim),
            ForwardLine::Heading => Line::raw(""),
        })
        .collect();
    let Some(Ok(result)) = &app.forward.result else {
        Paragraph::new(lines).render(body, buf);
        return;
    };
    let path_width = result
        .layers
        .iter()
        .map(|l| l.path.len())
        .max()
        .unwrap_or(0)
        .clamp(5, 20);
    if let Some(heading) = lines.last_mut() {
        *heading = Line::styled(
            format!(
                "{:<path_width$} {:>9} {:>9} {:>6}  layer",
                "path", "mean", "std", "zeros"
            ),
            t.style(Role::Heading),
        );
    }
    // Only the rows on screen: each may look its layer up in the outline.
    let room = usize::from(body.height).saturating_sub(lines.len());
    let outline = &app.doc.outline;
    for layer in result
        .layers
        .iter()
        .skip(app.forward.scroll.offset)
        .take(room)
    {
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
            && let Some(node) = outline.find(&layer.path, false)
        {
            let short = outline.nodes[node].short();
            repr = escape(short.split_once("): ").map_or(short, |(_, r)| r)).into_owned();
        }
        lines.push(Line::from(vec![
            Span::raw(numbers),
            Span::styled(repr, dim),
        ]));
    }
    Paragraph::new(lines).render(body, buf);
}

/// `running ████▌ LABEL`: a run on the worker, `done` of `all` steps.
pub(super) fn running(app: &App, done: usize, all: usize, label: String) -> Line<'static> {
    let t = app.screen.theme;
    let fraction = if all == 0 {
        0.0
    } else {
        done as f64 / all as f64
    };
    Line::from(vec![
        Span::styled("running ", t.style(Role::Dim)),
        Span::styled(gauge(fraction, 12), t.style(Role::Bar)),
        Span::styled(label, t.style(Role::Dim)),
    ])
}
