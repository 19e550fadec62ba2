//! The forward panel of a family checkpoint: the text, the progress per block, the most likely
//! next tokens and the greedy continuation under them (or the sentence embedding's norm), a
//! mixture's experts for the last token, and each block's activation statistics with a
//! bar of its largest magnitude, scaled to the largest of all, so that a spike stands out.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::family_view::{FamilyLine, bar, columns, head, row, scale};
use super::{has_focus, pane};
use crate::app::job::FamilyCheckpoint;
use crate::app::layout::BORDER;
use crate::app::probe_view::ProbeMode;
use crate::app::state::{App, Focus};
use crate::app::theme::Role;

pub(super) fn render(app: &App, checkpoint: &FamilyCheckpoint, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    pane(app, " forward pass ", has_focus(app, Focus::Tensor)).render(area, buf);
    let body = area.inner(BORDER);
    let width = usize::from(body.width);
    let dim = t.style(Role::Dim);
    let mut lines: Vec<Line> = head(&app.forward, checkpoint, width)
        .into_iter()
        .map(|line| match line {
            FamilyLine::Text(text) => Line::from(vec![Span::styled("text ", dim), Span::raw(text)]),
            FamilyLine::About(text) | FamilyLine::Experts(text) => Line::styled(text, dim),
            FamilyLine::Running(done, all) => {
                super::forward::running(app, done, all, format!(" block {done}/{all}"))
            }
            FamilyLine::Error(text) | FamilyLine::Edited(text) => {
                Line::styled(text, t.style(Role::Bad))
            }
            FamilyLine::Next(text) | FamilyLine::Then(text) => Line::raw(text),
            FamilyLine::Norm(norm) => Line::from(vec![
                Span::styled("embedding norm ", dim),
                Span::raw(format!("{norm:.4}")),
            ]),
            FamilyLine::Heading(text) => Line::styled(text, t.style(Role::Heading)),
        })
        .collect();
    if let Some(Ok(result)) = &app.forward.result
        && let Some(probes) = &result.probes
        && app.forward.probe.mode != ProbeMode::Blocks
    {
        // The heading line names the block table's columns: the probe views have their own.
        lines.pop();
        let used = u16::try_from(lines.len())
            .unwrap_or(u16::MAX)
            .min(body.height);
        Paragraph::new(lines).render(body, buf);
        let rest = Rect {
            y: body.y + used,
            height: body.height - used,
            ..body
        };
        let cursor = app.forward.probe;
        match cursor.mode {
            ProbeMode::Lens => super::lens_view::render(app, probes, cursor, rest, buf),
            ProbeMode::Outliers => super::outliers_view::render(app, probes, cursor, rest, buf),
            _ => super::attention_view::render(app, probes, cursor, rest, buf),
        }
        return;
    }
    if let Some(Ok(result)) = &app.forward.result {
        let (path, cells) = columns(result, width);
        let top = scale(result);
        let room = usize::from(body.height).saturating_sub(lines.len());
        for layer in result
            .layers
            .iter()
            .skip(app.forward.scroll.offset)
            .take(room)
        {
            let fraction = if top > 0.0 { layer.absmax / top } else { 0.0 };
            lines.push(Line::from(vec![
                Span::raw(row(layer, path)),
                Span::styled(bar(fraction, cells), t.style(Role::Bar)),
            ]));
        }
    }
    Paragraph::new(lines).render(body, buf);
}
