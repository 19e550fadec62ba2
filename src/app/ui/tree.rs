//! The module tree pane: only the rows on screen are built, so a model of 10,000 tensors draws as
//! fast as one of ten. Shared tensors carry a marker; the other paths of the selection stand out.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::compare::{self, MARK_COLS};
use super::{has_focus, pane};
use crate::app::compare::Mark;
use crate::app::format::count;
use crate::app::layout::BORDER;
use crate::app::outline::NodeKind;
use crate::app::scroll::follow;
use crate::app::state::{App, Focus};
use crate::app::theme::Role;
use crate::text::escape;

/// Marks every path of a tensor that has more than one (so a tie is visible without colour).
pub const SHARED_MARK: &str = "⇄";

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let filter = app.tree.filter();
    let changed = if app.tree.changed_only() {
        " · changed"
    } else {
        ""
    };
    let title = if filter.is_empty() {
        format!(" model{changed} ")
    } else {
        format!(" model{changed} · filter {:?} ", escape(filter))
    };
    pane(app, title, has_focus(app, Focus::Tree)).render(area, buf);
    let body = area.inner(BORDER);
    if body.is_empty() {
        return;
    }
    let visible = app.tree.visible();
    let page = usize::from(body.height);
    let offset =
        follow(app.tree.offset(), app.tree.row(), page).min(visible.len().saturating_sub(1));
    let selected_id = app.selected_param();
    for (y, &node) in (body.y..body.bottom()).zip(visible.iter().skip(offset)) {
        let line = row_line(app, node, selected_id, usize::from(body.width));
        let r = Rect {
            y,
            height: 1,
            ..body
        };
        line.render(r, buf);
        if node == app.tree.selected() {
            buf.set_style(r, app.screen.theme.style(Role::Selected));
        }
    }
}

/// One row: indent, fold glyph, label, and the shape; a module's parameter count sits at the
/// right edge, and its label is the full PyTorch repr where it fits, else the compact one
/// (`Linear(4→8)`), cut with `…` only when even that does not fit.
fn row_line(
    app: &App,
    index: usize,
    selected_id: Option<crate::model::ParamId>,
    width: usize,
) -> Line<'static> {
    let t = app.screen.theme;
    let node = &app.doc.outline.nodes[index];
    let glyph = if !node.has_children(index) {
        "  "
    } else if app.tree.is_open(index) {
        "▾ "
    } else {
        "▸ "
    };
    let indent = format!("{}{glyph}", "  ".repeat(node.depth));
    if let Some(mark) = app.compare.loaded.as_ref().and_then(|c| c.mark(index)) {
        return compared_row(app, index, indent, mark, width);
    }
    let mut spans = vec![Span::raw(indent.clone()), Span::raw(String::new())];
    match &node.kind {
        NodeKind::Module { params } => {
            let params = *params;
            let tail = if params > 0 {
                format!(" {}", count(params))
            } else {
                String::new()
            };
            let room = width.saturating_sub(cols(&indent) + cols(&tail));
            let label = fit_label(&escape(&node.label), &escape(node.short()), room);
            let gap = room.saturating_sub(cols(&label));
            spans[1] = Span::raw(label);
            if !tail.is_empty() {
                spans.push(Span::styled(
                    format!("{}{tail}", " ".repeat(gap)),
                    t.style(Role::Dim),
                ));
            }
        }
        NodeKind::Param { id } => {
            let id = *id;
            spans[1] = Span::raw(escape(&node.label).into_owned());
            let shared = app
                .doc
                .outline
                .aliases
                .get(&id)
                .is_some_and(|a| a.len() > 1);
            let alias = if shared && selected_id == Some(id) && index != app.tree.selected() {
                spans[1].style = t.style(Role::Alias);
                Some(format!(" {SHARED_MARK} alias"))
            } else {
                shared.then(|| format!(" {SHARED_MARK}"))
            };
            // The shape says more than the dtype: where both do not fit, the dtype goes first.
            let tensor = app.doc.model.store.get(id);
            let room = width.saturating_sub(
                cols(&indent) + cols(&spans[1].content) + alias.as_deref().map_or(0, cols),
            );
            let with_dtype = format!(" {:?} {}", tensor.shape(), tensor.dtype());
            let tail = if cols(&with_dtype) <= room {
                with_dtype
            } else {
                format!(" {:?}", tensor.shape())
            };
            spans.push(Span::styled(tail, t.style(Role::Dim)));
            if let Some(alias) = alias {
                spans.push(Span::styled(alias, t.style(Role::Alias)));
            }
        }
        NodeKind::Info { value } => {
            spans[1] = Span::raw(escape(&node.label).into_owned());
            // A value can be a 64 MiB chat template: only what fits is escaped.
            let shown: String = value.chars().take(width).collect();
            spans.push(Span::styled(
                escape(&shown).into_owned(),
                t.style(Role::Dim),
            ));
        }
    }
    Line::from(spans)
}

/// A row while comparing: the label, then how far the tensor (or the module's tensors together)
/// moved at the right edge, in place of the shape or the count.
fn compared_row(
    app: &App,
    index: usize,
    indent: String,
    mark: Mark,
    width: usize,
) -> Line<'static> {
    let node = &app.doc.outline.nodes[index];
    let shared = node
        .param()
        .and_then(|id| app.doc.outline.aliases.get(&id))
        .is_some_and(|a| a.len() > 1);
    let tail = if shared {
        format!(" {SHARED_MARK}")
    } else {
        String::new()
    };
    let room = width.saturating_sub(cols(&indent) + cols(&tail) + MARK_COLS + 1);
    let label = fit_label(&escape(&node.label), &escape(node.short()), room);
    let gap = " ".repeat(room.saturating_sub(cols(&label)) + 1);
    let mut spans = vec![
        Span::raw(indent),
        Span::raw(label),
        Span::styled(tail, app.screen.theme.style(Role::Alias)),
        Span::raw(gap),
    ];
    spans.extend(compare::mark_spans(app, mark));
    Line::from(spans)
}

/// Terminal columns of `text` (wide characters count two).
fn cols(text: &str) -> usize {
    Span::raw(text).width()
}

/// The full label if it fits in `room` columns, else the short one, else the short one cut with `…`.
fn fit_label(full: &str, short: &str, room: usize) -> String {
    if cols(full) <= room {
        return full.to_owned();
    }
    if cols(short) <= room {
        return short.to_owned();
    }
    let mut cut = String::new();
    for ch in short.chars() {
        cut.push(ch);
        if cols(&cut) + 1 > room {
            cut.pop();
            break;
        }
    }
    if room > 0 {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::{fit_label, row_line};

    #[test]
    fn a_narrow_pane_drops_the_dtype_before_cutting_the_shape() {
        let app = super::super::demo_app("mlp");
        let nodes = &app.doc.outline.nodes;
        let index = (0..nodes.len())
            .find(|&i| nodes[i].label == "weight")
            .expect("a weight");
        let id = nodes[index].param().unwrap();
        let tensor = app.doc.model.store.get(id);
        let shape = format!("{:?}", tensor.shape());
        let whole = row_line(&app, index, None, 200).to_string();
        let wide = format!("weight {shape} {}", tensor.dtype());
        assert!(whole.ends_with(&wide), "{whole}");
        // One column short of the dtype: the shape is whole, the dtype gone.
        let narrow = row_line(&app, index, None, whole.trim_end().chars().count() - 1);
        assert!(
            narrow.to_string().ends_with(&format!("weight {shape}")),
            "{narrow}"
        );
    }

    #[test]
    fn labels_shorten_then_cut() {
        let full = "(0): Linear(in_features=4, out_features=8, bias=True)";
        let short = "(0): Linear(4→8)";
        assert_eq!(fit_label(full, short, 60), full);
        assert_eq!(fit_label(full, short, 20), short);
        assert_eq!(fit_label(full, short, 8), "(0): Li…");
        assert_eq!(fit_label(full, short, 0), "");
    }
}
