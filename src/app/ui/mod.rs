//! The screen, drawn from the state alone: `impl Widget for &App` lays out the title bar, the tree
//! pane, the tensor pane (or the forward panel), the status bar, and any dialog on top.

mod dialogs;
mod forward;
mod heatmap;
mod histogram;
pub mod layout;
mod tensor;
pub mod theme;
mod tree;
mod values;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Widget};

use super::keymap;
use super::state::{App, Focus, Message, Mode};
use theme::Role;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let areas = layout::areas(area, self.focus);
        title_bar(self, areas.title, buf);
        if let Some(r) = areas.tree {
            tree::render(self, r, buf);
        }
        if let Some(r) = areas.right {
            if self.forward.open {
                forward::render(self, r, buf);
            } else {
                tensor::render(self, r, buf);
            }
        }
        status_bar(self, areas.status, buf);
        dialogs::render(self, area, buf);
    }
}

/// A bordered pane, its border bold and coloured when it has the focus (and titled either way).
fn pane<'a>(app: &App, title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    let style = if focused {
        app.theme.style(Role::Focused)
    } else {
        app.theme.style(Role::Dim)
    };
    Block::bordered().border_style(style).title(title)
}

/// Whether the pane showing `focus` has the focus.
fn has_focus(app: &App, focus: Focus) -> bool {
    app.focus == focus && matches!(app.mode, Mode::Browse | Mode::Filter)
}

/// A count as people read it: 1234 -> 1,234; big ones shortened (1.2M).
fn count(n: usize) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// A value in at most 9 characters: whole numbers exactly, others in fixed point when readable,
/// else scientific.
fn num(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v == 0.0 {
        "0".into()
    } else if v.fract() == 0.0 && v.abs() < 1e8 {
        format!("{v:.0}")
    } else if (1e-3..1e3).contains(&v.abs()) {
        format!("{v:.4}")
    } else if (1e3..1e5).contains(&v.abs()) {
        format!("{v:.2}")
    } else {
        format!("{v:.2e}")
    }
}

/// Bytes as people read them.
fn bytes(n: usize) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", n as f64 / 1_073_741_824.0),
    }
}

/// A text progress bar of `width` cells.
fn gauge(done: f64, width: usize) -> String {
    let filled = ((done.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

fn title_bar(app: &App, area: Rect, buf: &mut Buffer) {
    let t = app.theme;
    let mut spans = vec![
        Span::styled(" paramscope ", t.style(Role::Title)),
        Span::raw(crate::text::escape(&app.source).into_owned()),
        Span::styled(
            format!(
                "  {} params · {} tensors",
                count(total_params(app)),
                app.model.store.len()
            ),
            t.style(Role::Dim),
        ),
    ];
    if app.unsaved() {
        spans.push(Span::styled("  ● unsaved re-init", t.style(Role::Bad)));
    }
    Line::from(spans).render(area, buf);
}

/// The model's parameter count, as the outline computed it once (a re-init keeps every shape).
fn total_params(app: &App) -> usize {
    match app.outline.nodes.first().map(|n| &n.kind) {
        Some(super::outline::NodeKind::Module { params }) => *params,
        _ => 0,
    }
}

fn status_bar(app: &App, area: Rect, buf: &mut Buffer) {
    let t = app.theme;
    let line = if let Mode::Filter = app.mode {
        Line::from(vec![
            Span::styled(" /", t.style(Role::Key)),
            Span::raw(crate::text::escape(&app.filter).into_owned()),
            Span::styled("█", t.style(Role::Dim)),
            Span::styled(
                format!("  {} rows · Enter keep · Esc clear", app.visible.len()),
                t.style(Role::Dim),
            ),
        ])
    } else if let Some(busy) = &app.busy {
        let mut spans = vec![
            Span::styled(format!(" {} ", busy.what), t.style(Role::Bar)),
            Span::styled("… working", t.style(Role::Dim)),
        ];
        // Said while the job runs: why a key was refused.
        if let Some(Message::Error(text)) = &app.message {
            spans.push(Span::styled(
                format!("  ✗ {}", crate::text::escape(text)),
                t.style(Role::Bad),
            ));
        }
        Line::from(spans)
    } else if let Some(message) = &app.message {
        match message {
            // Messages carry names and errors from files: escaped here, where they are shown.
            Message::Info(text) => Line::styled(
                format!(" {}", crate::text::escape(text)),
                t.style(Role::Good),
            ),
            Message::Error(text) => Line::styled(
                format!(" ✗ {}", crate::text::escape(text)),
                t.style(Role::Bad),
            ),
        }
    } else {
        hint_line(app)
    };
    line.render(area, buf);
}

/// The hinted keys of the current contexts, from the keymap table.
fn hint_line(app: &App) -> Line<'static> {
    let t = app.theme;
    let mut spans = vec![Span::raw(" ")];
    for (key, word) in keymap::hints(app) {
        spans.push(Span::styled(key, t.style(Role::Key)));
        spans.push(Span::styled(format!(" {word}  "), t.style(Role::Dim)));
    }
    Line::from(spans)
}
