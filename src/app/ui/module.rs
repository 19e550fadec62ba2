//! The module pane: the module's repr and size, then an aligned, scrollable table of its tensors
//! (name, shape, dtype, count, and mean/std once computed).

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Scrollbar, ScrollbarOrientation, ScrollbarState};
use ratatui::widgets::{StatefulWidget, Table, TableState, Widget};

use super::has_focus;
use crate::app::format::{count, num};
use crate::app::layout::MODULE_ROWS_ABOVE;
use crate::app::state::{App, Focus};
use crate::app::theme::Role;
use crate::text::escape;

pub(super) fn render(app: &App, params: usize, body: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let node = &app.doc.outline.nodes[app.tree.selected()];
    let width = usize::from(body.width);
    let module_path = if node.path.is_empty() {
        "(the whole model)".to_owned()
    } else {
        escape(&node.path).into_owned()
    };
    let rows = app.module_rows();
    // The full repr where it fits, else the compact one (`(0): Linear(4→8)`).
    let full = escape(&node.label);
    let repr = if Span::raw(full.as_ref()).width() <= width {
        full.into_owned()
    } else {
        escape(&node.short).into_owned()
    };
    let head = vec![
        Line::styled(repr, t.style(Role::Heading)),
        Line::styled(
            format!(
                "{module_path} · {} parameters · {} tensor paths",
                count(params),
                rows.len()
            ),
            t.style(Role::Dim),
        ),
    ];
    Paragraph::new(head).render(body, buf);
    let table_area = Rect {
        y: body.y + (MODULE_ROWS_ABOVE - 1).min(body.height),
        height: body.height.saturating_sub(MODULE_ROWS_ABOVE - 1),
        ..body
    };
    let cells = cells(app, &rows);
    let widest = |i: usize, heading: &str| {
        cells
            .iter()
            .map(|c| Span::raw(c[i].as_str()).width())
            .chain([heading.len()])
            .max()
            .unwrap_or(0) as u16
    };
    let headings = ["tensor", "shape", "dtype", "numel", "mean", "std"];
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(widest(1, headings[1]).min(14)),
        Constraint::Length(widest(2, headings[2])),
        Constraint::Length(widest(3, headings[3])),
        Constraint::Length(widest(4, headings[4]).min(9)),
        Constraint::Length(widest(5, headings[5]).min(9)),
    ];
    let table = Table::new(
        cells.into_iter().map(|c| {
            Row::new(c.into_iter().enumerate().map(|(i, text)| {
                if i >= 3 {
                    right(text)
                } else {
                    Cell::from(text)
                }
            }))
        }),
        widths,
    )
    .header(
        Row::new(headings.iter().enumerate().map(|(i, h)| {
            if i >= 3 {
                right((*h).to_owned())
            } else {
                Cell::from(*h)
            }
        }))
        .style(t.style(Role::Heading)),
    )
    .column_spacing(1)
    .row_highlight_style(if has_focus(app, Focus::Tensor) {
        t.style(Role::Selected)
    } else {
        t.style(Role::Text)
    });
    let scroll = app.tensor.module;
    let mut state = TableState::new()
        .with_offset(scroll.offset)
        .with_selected(Some(scroll.cursor));
    StatefulWidget::render(table, table_area, buf, &mut state);
    let page = usize::from(table_area.height.saturating_sub(1));
    if rows.len() > page {
        let mut bar = ScrollbarState::new(rows.len().saturating_sub(page)).position(scroll.offset);
        Scrollbar::new(ScrollbarOrientation::VerticalRight).render(
            Rect {
                y: table_area.y + 1,
                height: table_area.height.saturating_sub(1),
                ..table_area
            },
            buf,
            &mut bar,
        );
    }
}

/// The table's text: name, shape, dtype, count, mean, std (`·` until computed).
fn cells(app: &App, rows: &[(String, crate::model::ParamId)]) -> Vec<[String; 6]> {
    let store = &app.doc.model.store;
    rows.iter()
        .map(|(local, id)| {
            let tensor = store.get(*id);
            let (mean, std) = app
                .summary(*id)
                .map_or(("·".to_owned(), "·".to_owned()), |s| {
                    if tensor.numel() == 0 {
                        ("(empty)".to_owned(), String::new())
                    } else {
                        (num(s.stats.mean), num(s.stats.std))
                    }
                });
            [
                escape(local).into_owned(),
                format!("{:?}", tensor.shape()),
                tensor.dtype().to_string(),
                count(tensor.numel()),
                mean,
                std,
            ]
        })
        .collect()
}

/// A right-aligned cell, for numbers.
fn right(text: String) -> Cell<'static> {
    Cell::from(Line::raw(text).right_aligned())
}
