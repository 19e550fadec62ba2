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
    if app.trajectory.is_some() {
        headings.push("drift");
    }
    if one_dtype {
        headings.remove(2);
        for c in &mut cells {
            c.remove(2);
        }
    }
    let name_room = make_room(&mut headings, &mut cells, table_area.width);
    let numbers = headings
        .iter()
        .take_while(|h| **h != "numel" && **h != "mean" && **h != "std")
        .count();
    let fixed: Vec<u16> = (1..headings.len())
        .map(|i| widest(&cells, headings[i], i))
        .collect();
    for c in &mut cells {
        c[0] = shorten(&c[0], name_room);
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

/// The columns' width: the widest of its `cells` and its `heading`, at most 14.
fn widest(cells: &[Vec<String>], heading: &str, i: usize) -> u16 {
    cells
        .iter()
        .map(|c| Span::raw(c[i].as_str()).width())
        .chain([heading.len()])
        .max()
        .unwrap_or(0)
        .min(14) as u16
}

/// The room left for the names in `width` columns, after dropping columns until the names get
/// at least two fifths of it (or all of the longest name, if less): a table of shapes without
/// names says nothing. Columns give way the least telling first.
fn make_room(headings: &mut Vec<&str>, cells: &mut [Vec<String>], width: u16) -> usize {
    let longest = cells
        .iter()
        .map(|c| Span::raw(c[0].as_str()).width())
        .max()
        .unwrap_or(0);
    let wanted = longest.min((usize::from(width) * 2 / 5).max(16));
    loop {
        let fixed: u16 = (1..headings.len())
            .map(|i| widest(cells, headings[i], i) + 1)
            .sum();
        let room = usize::from(width.saturating_sub(fixed));
        let Some(drop) = ["dtype", "numel", "std", "mean"]
            .iter()
            .find_map(|h| headings.iter().position(|x| x == h))
            .filter(|_| room < wanted)
        else {
            return room;
        };
        headings.remove(drop);
        for c in cells.iter_mut() {
            c.remove(drop);
        }
    }
}

/// A dotted tensor name in at most `room` columns: whole when it fits, else its last part, its
/// indices (`0` in `layer.0.`) and as many parts before the last as fit, each run left out
/// shown as `…`; the rows of a table then differ where their names do.
fn shorten(name: &str, room: usize) -> String {
    if name.chars().count() <= room {
        return name.to_owned();
    }
    let parts: Vec<&str> = name.split('.').collect();
    let last = parts.len() - 1;
    let index = |i: &usize| parts[*i].bytes().all(|b| b.is_ascii_digit());
    let mut keep = vec![false; parts.len()];
    keep[last] = true;
    let indices = (0..last).rev().filter(index);
    let rest = (0..last).rev().filter(|i| !index(i));
    for i in indices.chain(rest) {
        keep[i] = true;
        if joined(&parts, &keep).chars().count() > room {
            keep[i] = false;
        }
    }
    let short = joined(&parts, &keep);
    if short.chars().count() <= room {
        return short;
    }
    // Even the last part is too long: its end, cut at the left.
    let chars: Vec<char> = short.chars().collect();
    if room == 0 {
        return String::new();
    }
    std::iter::once('…')
        .chain(chars[chars.len() - (room - 1)..].iter().copied())
        .collect()
}

/// The `keep` parts of a dotted name, joined by `.`, each run of parts left out as one `…`.
fn joined(parts: &[&str], keep: &[bool]) -> String {
    let mut out = String::new();
    let mut gap = false;
    for (part, &kept) in parts.iter().zip(keep) {
        if !kept {
            if !gap {
                out.push('…');
            }
            gap = true;
            continue;
        }
        if !out.is_empty() && !gap {
            out.push('.');
        }
        out.push_str(part);
        gap = false;
    }
    out
}

/// The table's text: name, shape, dtype, count, mean, std (`·` until computed), and the drift
/// across a followed run's checkpoints.
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
            let mut row = vec![
                escape(local).into_owned(),
                format!("{:?}", tensor.shape()),
                tensor.dtype().to_string(),
                count(tensor.numel()),
                mean,
                std,
            ];
            if let Some(t) = &app.trajectory {
                row.push(super::trajectory::drift_cell(t, *id));
            }
            row
        })
        .collect()
}

/// A right-aligned cell, for numbers.
fn right(text: String) -> Cell<'static> {
    Cell::from(Line::raw(text).right_aligned())
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn long_names_keep_their_end_and_their_indices() {
        assert_eq!(shorten("bias", 9), "bias");
        assert_eq!(shorten("0.block3.2.weight", 11), "0…2.weight");
        assert_eq!(
            shorten("encoder.layer.11.attention.self.query.weight", 22),
            "…11…self.query.weight"
        );
        assert_eq!(shorten("blk.10.ffn_down.weight", 16), "blk.10…weight");
        assert_eq!(shorten("embeddings.word_embeddings.weight", 4), "…ght");
        assert_eq!(shorten("bias", 0), "");
    }
}
