//! The screen, drawn from the state alone: `impl Widget for &App` lays out the title bar, the tree
//! pane, the tensor pane (or the forward panel), the status bar, and any dialog on top.

mod attention_view;
mod compare;
mod dialogs;
mod family;
pub mod family_view;
mod forward;
pub mod forward_view;
mod heatmap;
mod histogram;
mod info;
mod lens_view;
mod module;
mod optimizer;
mod outliers_view;
mod quantized;
mod shards;
mod tensor;
mod trajectory;
mod tree;
mod values;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Widget};

use super::format::{count, middle_ellipsis};
use super::keymap;
use super::layout;
use super::state::{App, Focus, Message, Mode};
use super::theme::Role;
use crate::text::escape;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let areas = layout::areas(area, self.focus);
        title_bar(self, areas.title, buf);
        if let Some(r) = areas.tree {
            tree::render(self, r, buf);
        }
        if let Some(r) = areas.right {
            if self.forward.open {
                match self.doc.runs.family() {
                    Some(checkpoint) => family::render(self, checkpoint, r, buf),
                    None => forward::render(self, r, buf),
                }
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
    let t = app.screen.theme;
    let style = if focused {
        t.style(Role::Focused)
    } else {
        t.style(Role::Dim)
    };
    Block::bordered().border_style(style).title(title)
}

/// Whether the pane showing `focus` has the focus.
fn has_focus(app: &App, focus: Focus) -> bool {
    app.focus == focus && matches!(app.mode, Mode::Browse | Mode::Filter(_))
}

/// The title: the source path, shortened in the middle when the row is short, so that the
/// counts and the unsaved marker always show.
fn title_bar(app: &App, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let counts = format!(
        "  {} params · {} tensors",
        count(app.doc.total_params()),
        app.doc.model.store.len()
    );
    let unsaved = if app.doc.unsaved() {
        "  ● unsaved"
    } else {
        ""
    };
    let name = " paramscope ";
    let fixed = name.len() + Span::raw(counts.as_str()).width() + Span::raw(unsaved).width();
    let room = usize::from(area.width).saturating_sub(fixed);
    let source = middle_ellipsis(&escape(&app.doc.source), room);
    Line::from(vec![
        Span::styled(name, t.style(Role::Title)),
        Span::raw(source),
        Span::styled(counts, t.style(Role::Dim)),
        Span::styled(unsaved, t.style(Role::Bad)),
    ])
    .render(area, buf);
}

fn status_bar(app: &App, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let line = if let Mode::Filter(field) = &app.mode {
        let mut spans = vec![Span::styled(" /", t.style(Role::Key))];
        spans.extend(field_spans(app, field));
        let changed = match (&app.compare.loaded, app.tree.changed_only()) {
            (None, _) => "",
            (Some(_), false) => " · Tab changed only",
            (Some(_), true) => " · changed only (Tab: all)",
        };
        spans.push(Span::styled(
            format!(
                "  {} rows{changed} · * and ? are wild · Enter keep · Esc clear",
                app.tree.visible().len()
            ),
            t.style(Role::Dim),
        ));
        Line::from(spans)
    } else if let Some(busy) = &app.busy {
        let mut spans = vec![
            Span::styled(format!(" {} ", escape(&busy.what)), t.style(Role::Bar)),
            Span::styled("… working", t.style(Role::Dim)),
        ];
        // Said while the job runs: why a key was refused.
        if let Some(Message::Error(text)) = &app.message {
            spans.push(Span::styled(
                format!("  ✗ {}", escape(text)),
                t.style(Role::Bad),
            ));
        }
        Line::from(spans)
    } else if let Some(message) = &app.message {
        match message {
            Message::Info(text) => Line::styled(format!(" {}", escape(text)), t.style(Role::Good)),
            Message::Error(text) => {
                Line::styled(format!(" ✗ {}", escape(text)), t.style(Role::Bad))
            }
        }
    } else {
        hint_line(app)
    };
    line.render(area, buf);
}

/// The hinted keys of the current contexts, from the keymap table.
fn hint_line(app: &App) -> Line<'static> {
    let t = app.screen.theme;
    let mut spans = vec![Span::raw(" ")];
    for (key, word) in keymap::hints(app) {
        spans.push(Span::styled(key, t.style(Role::Key)));
        spans.push(Span::styled(format!(" {word}  "), t.style(Role::Dim)));
    }
    Line::from(spans)
}

/// A text field with its cursor as a reversed cell (a visible cursor without colour).
fn field_spans(app: &App, field: &super::field::Field) -> Vec<Span<'static>> {
    let (before, at, after) = field.split();
    vec![
        Span::raw(escape(&before).into_owned()),
        Span::styled(
            escape(&at).into_owned(),
            app.screen.theme.style(Role::Selected),
        ),
        Span::raw(escape(&after).into_owned()),
    ]
}

/// The app on a demo at 80×24 in truecolor, for the panes' own tests.
#[cfg(test)]
fn demo_app(name: &str) -> App {
    use crate::app::job::Runs;
    use crate::app::theme::{ColorLevel, Theme};
    use crate::app::update::Options;
    let options = Options {
        source: format!("demo:{name}"),
        select: None,
        input: None,
        seed: 0,
        theme: Theme {
            level: ColorLevel::TrueColor,
        },
        size: (80, 24),
        notices: Vec::new(),
        runs: Runs::Chain,
        extras: crate::app::extras::Extras::default(),
    };
    let model = crate::model::demos::build(name, 0).expect("a demo");
    App::new(model, options).expect("the demo opens").0
}
