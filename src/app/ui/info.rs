//! The right pane for a metadata key, a plain value or an array item: its name and its whole
//! value, wrapped (only as much of it as the pane can hold is escaped and laid out).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::app::outline::Node;
use crate::app::state::App;
use crate::app::theme::Role;
use crate::text::escape;

pub(super) fn render(app: &App, index: usize, value: &str, body: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let node: &Node = &app.doc.outline.nodes[index];
    let name = if node.path.is_empty() {
        &node.label
    } else {
        &node.path
    };
    let room = usize::from(body.width) * usize::from(body.height);
    // The row's ` = ` or `: ` joins the value to its name there; here the name is a heading.
    let value = value.trim_start_matches([' ', '=', ':']);
    let shown: String = value.chars().take(room).collect();
    let mut lines = vec![
        Line::styled(escape(name).into_owned(), t.style(Role::Heading)),
        Line::raw(escape(&shown).into_owned()),
    ];
    if node.has_children(index) {
        lines.push(Line::raw(""));
        lines.push(Line::from(Span::styled(
            format!("→ lists its {} rows", node.end - index - 1),
            t.style(Role::Dim),
        )));
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(body, buf);
}
