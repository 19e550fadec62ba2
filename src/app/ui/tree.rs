//! The module tree pane: only the rows on screen are built, so a model of 10,000 tensors draws as
//! fast as one of ten. Shared tensors carry a marker; the other paths of the selection stand out.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::layout::{follow, inner};
use super::theme::Role;
use super::{count, has_focus, pane};
use crate::app::outline::NodeKind;
use crate::app::state::{App, Focus};
use crate::text::escape;

/// Marks every path of a tensor that has more than one (so a tie is visible without colour).
pub const SHARED_MARK: &str = "⇄";

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let title = if app.filter.is_empty() {
        " model ".to_owned()
    } else {
        format!(" model · filter {:?} ", escape(&app.filter))
    };
    pane(app, title, has_focus(app, Focus::Tree)).render(area, buf);
    let body = inner(area);
    if body.is_empty() {
        return;
    }
    let row = app
        .visible
        .iter()
        .position(|&n| n == app.selected)
        .unwrap_or(0);
    let page = usize::from(body.height);
    let offset = follow(app.tree_offset, row, page).min(app.visible.len().saturating_sub(1));
    let selected_id = app.outline.nodes[app.selected].param();
    for (y, &node) in (body.y..body.bottom()).zip(app.visible.iter().skip(offset)) {
        let line = row_line(app, node, selected_id);
        let r = Rect {
            y,
            height: 1,
            ..body
        };
        line.render(r, buf);
        if node == app.selected {
            buf.set_style(r, app.theme.style(Role::Selected));
        }
    }
}

/// One row: indent, fold glyph, label, and the shape or count.
fn row_line(app: &App, index: usize, selected_id: Option<crate::model::ParamId>) -> Line<'static> {
    let t = app.theme;
    let node = &app.outline.nodes[index];
    let glyph = if !node.has_children(index) {
        "  "
    } else if app.opened[index] || !app.filter.is_empty() {
        "▾ "
    } else {
        "▸ "
    };
    let mut spans = vec![
        Span::raw(format!("{}{glyph}", "  ".repeat(node.depth))),
        Span::raw(escape(&node.label).into_owned()),
    ];
    match node.kind {
        NodeKind::Module { params } => {
            if params > 0 {
                spans.push(Span::styled(
                    format!(" · {}", count(params)),
                    t.style(Role::Dim),
                ));
            }
        }
        NodeKind::Param { id } => {
            let tensor = app.model.store.get(id);
            spans.push(Span::styled(
                format!(" {:?} {}", tensor.shape(), tensor.dtype()),
                t.style(Role::Dim),
            ));
            let shared = app.outline.aliases.get(&id).is_some_and(|a| a.len() > 1);
            if shared && selected_id == Some(id) && index != app.selected {
                spans[1].style = t.style(Role::Alias);
                spans.push(Span::styled(
                    format!(" {SHARED_MARK} alias"),
                    t.style(Role::Alias),
                ));
            } else if shared {
                spans.push(Span::styled(
                    format!(" {SHARED_MARK}"),
                    t.style(Role::Alias),
                ));
            }
        }
    }
    Line::from(spans)
}
