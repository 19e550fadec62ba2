//! The values grid: decodes only the cells on screen, straight from the tensor's (maybe mapped)
//! bytes, so a 128k x 4k tensor scrolls as fast as a 4 x 8 one.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::has_focus;
use crate::app::format::num;
use crate::app::layout::{CELL_WIDTH, grid_dims, grid_page};
use crate::app::scroll::follow;
use crate::app::state::{App, Focus};
use crate::app::theme::Role;
use crate::tensor::Tensor;
use crate::tensor::decode::decode_f64;

pub(super) fn render(app: &App, tensor: &Tensor, body: Rect, buf: &mut Buffer) {
    if body.is_empty() {
        return;
    }
    let t = app.screen.theme;
    let (slices, rows, cols) = grid_dims(tensor.shape());
    // No element at all (a zero-length dimension, leading ones included).
    if slices == 0 || rows == 0 || cols == 0 {
        buf.set_stringn(
            body.x,
            body.y,
            "(empty)",
            usize::from(body.width),
            t.style(Role::Dim),
        );
        return;
    }
    let (label, page_rows, page_cols) = grid_page(body, rows);
    let g = app.tensor.grid;
    let (row, col) = (g.rows.cursor.min(rows - 1), g.cols.cursor.min(cols - 1));
    let row0 = follow(g.rows.offset, row, page_rows);
    let col0 = follow(g.cols.offset, col, page_cols);
    let shown_cols = page_cols.min(cols - col0);
    let base = g.slice.min(slices - 1) * rows * cols;
    let width = usize::from(body.width);
    let dim = t.style(Role::Dim);
    // Column indices.
    for j in 0..shown_cols {
        let x = body.x + label + (j as u16) * CELL_WIDTH;
        let text = format!("{:>9}", col0 + j);
        let room = usize::from(body.right().saturating_sub(x));
        buf.set_stringn(x, body.y, text, room, dim);
    }
    let mut values = Vec::with_capacity(shown_cols);
    for (i, y) in (row0..rows).zip(body.y + 1..body.bottom()) {
        buf.set_stringn(
            body.x,
            y,
            format!("{i:>w$}", w = usize::from(label) - 1),
            width,
            dim,
        );
        if let Err(e) = decode_f64(
            tensor.dtype(),
            tensor.bytes(),
            base + i * cols + col0,
            shown_cols,
            &mut values,
        ) {
            let room = usize::from(body.width.saturating_sub(label));
            buf.set_stringn(body.x + label, y, e.to_string(), room, t.style(Role::Bad));
            return;
        }
        for (j, v) in values.iter().enumerate() {
            let x = body.x + label + (j as u16) * CELL_WIDTH;
            let room = usize::from(body.right().saturating_sub(x));
            let is_cursor = i == row && col0 + j == col;
            let style = if is_cursor && has_focus(app, Focus::Tensor) {
                t.style(Role::Selected)
            } else if is_cursor {
                t.style(Role::Heading)
            } else if v.is_finite() {
                t.style(Role::Text)
            } else {
                t.style(Role::Bad)
            };
            buf.set_stringn(x, y, format!("{:>9}", num(*v)), room, style);
        }
    }
}
