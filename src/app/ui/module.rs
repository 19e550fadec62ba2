//! The module pane: the module's repr and size, then an aligned, scrollable table of its tensors
//! (name, shape, dtype, count, and mean/std once computed).

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Scrollbar, ScrollbarOrientation, ScrollbarState};
use ratatui::widgets::{StatefulWidget, Table, TableState, Widget};

use super::has_focus;
use crate::app::format::{count, counted, num};
use crate::app::layout::MODULE_ROWS_ABOVE;
use crate::app::state::{App, Focus};
use crate::app::theme::Role;
use crate::model::ParamId;
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
    let table_area = Rect {
        y: body.y + (MODULE_ROWS_ABOVE - 1).min(body.height),
        height: body.height.saturating_sub(MODULE_ROWS_ABOVE - 1),
        ..body
    };
    // Only the rows on screen are made into text: a module can hold a million tensors.
    let scroll = app.tensor.module;
    let page = usize::from(table_area.height.saturating_sub(1));
    let shown: Vec<(&str, ParamId)> = app.module_rows(scroll.offset).take(page).collect();
    let len = app.module_row_count();
    // The full repr where it fits, else the compact one (`(0): Linear(4→8)`).
    let full = escape(&node.label);
    let repr = if Span::raw(full.as_ref()).width() <= width {
        full.into_owned()
    } else {
        escape(node.short()).into_owned()
    };
    let cells = cells(app, &shown);
    // One dtype for all: said once above the table instead of in a column.
    let dtype = app
        .doc
        .outline
        .one_dtype(app.tree.selected())
        .map(|d| d.to_string());
    let dtype_note = dtype
        .as_ref()
        .map_or(String::new(), |d| format!(" · all {d}"));
    let head = vec![
        Line::styled(repr, t.style(Role::Heading)),
        Line::styled(
            format!(
                "{module_path} · {} params · {}{dtype_note}",
                count(params),
                counted(len, "tensor")
            ),
            t.style(Role::Dim),
        ),
    ];
    Paragraph::new(head).render(body, buf);
    table(app, cells, dtype.is_some(), len, table_area, buf);
}

/// The table of the module's tensors in `area`: `cells` are the `len` rows' page on screen, from
/// the scroll offset; with a scrollbar when they do not all fit. `one_dtype` drops the dtype
/// column (said above instead). Column widths are those of the page shown.
fn table(
    app: &App,
    mut cells: Vec<Vec<String>>,
    one_dtype: bool,
    len: usize,
    table_area: Rect,
    buf: &mut Buffer,
) {
    let t = app.screen.theme;
    let page = usize::from(table_area.height.saturating_sub(1));
    let bar = len > page;
    // The scrollbar takes the last column.
    let table_area = Rect {
        width: table_area.width.saturating_sub(u16::from(bar)),
        ..table_area
    };
    let mut headings = vec!["tensor", "shape", "dtype", "numel", "mean", "std"];
    if one_dtype {
        headings.remove(2);
        for c in &mut cells {
            c.remove(2);
        }
    }
    let numbers = headings.len() - 3;
    let widest = |i: usize| {
        cells
            .iter()
            .map(|c| Span::raw(c[i].as_str()).width())
            .chain([headings[i].len()])
            .max()
            .unwrap_or(0)
            .min(14) as u16
    };
    let fixed: Vec<u16> = (1..headings.len()).map(widest).collect();
    let spacing = headings.len() as u16 - 1;
    let name_room = usize::from(
        table_area
            .width
            .saturating_sub(fixed.iter().sum::<u16>() + spacing),
    );
    for c in &mut cells {
        c[0] = cut_left(&c[0], name_room);
    }
    let widths: Vec<Constraint> = std::iter::once(Constraint::Fill(1))
        .chain(fixed.iter().map(|&w| Constraint::Length(w)))
        .collect();
    let cell = |i: usize, text: String| {
        if i >= numbers {
            right(text)
        } else {
            Cell::from(text)
        }
    };
    let table = Table::new(
        cells
            .into_iter()
            .map(|c| Row::new(c.into_iter().enumerate().map(|(i, text)| cell(i, text)))),
        widths,
    )
    .header(
        Row::new(
            headings
                .iter()
                .enumerate()
                .map(|(i, h)| cell(i, (*h).to_owned())),
        )
        .style(t.style(Role::Heading)),
    )
    .column_spacing(1)
    .row_highlight_style(if has_focus(app, Focus::Tensor) {
        t.style(Role::Selected)
    } else {
        t.style(Role::Text)
    });
    let scroll = app.tensor.module;
    let mut state =
        TableState::new().with_selected(Some(scroll.cursor.saturating_sub(scroll.offset)));
    StatefulWidget::render(table, table_area, buf, &mut state);
    if bar {
        let mut bar = ScrollbarState::new(len.saturating_sub(page)).position(scroll.offset);
        Scrollbar::new(ScrollbarOrientation::VerticalRight).render(
            Rect {
                x: table_area.x,
                y: table_area.y + 1,
                width: table_area.width + 1,
                height: table_area.height.saturating_sub(1),
            },
            buf,
            &mut bar,
        );
    }
}

/// `text` in at most `room` columns: its end kept (the tensor's own name), its start cut to `…`.
fn cut_left(text: &str, room: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= room {
        return text.to_owned();
    }
    if room == 0 {
        return String::new();
    }
    std::iter::once('…')
        .chain(chars[chars.len() - (room - 1)..].iter().copied())
        .collect()
}

/// The table's text: name, shape, dtype, count, mean, std (`·` until computed).
fn cells(app: &App, rows: &[(&str, ParamId)]) -> Vec<Vec<String>> {
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
            vec![
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

#[cfg(test)]
mod tests {
    use super::cut_left;

    #[test]
    fn long_names_keep_their_end() {
        assert_eq!(cut_left("0.block3.2.weight", 9), "…2.weight");
        assert_eq!(cut_left("bias", 9), "bias");
        assert_eq!(cut_left("bias", 0), "");
    }
}
