//! What opens on top of the panes: the re-initialize dialog, the write prompt, questions, the
//! model list, and the help screen generated from the keymap table.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget};

use super::layout::{centered, help_box, inner};
use super::theme::Role;
use crate::app::keymap::{self, HELP_CONTEXTS, KEYMAP};
use crate::app::state::{App, InitDialog, InitField, Mode, Question, SCHEMES};
use crate::text::escape;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    match &app.mode {
        Mode::Browse | Mode::Filter => {}
        Mode::Init(dialog) => init(app, dialog, area, buf),
        Mode::Write(path) => {
            let lines = vec![
                Line::raw("Write the model, with its re-inits, to:"),
                Line::from(vec![
                    Span::raw(escape(path).into_owned()),
                    Span::styled("█", app.theme.style(Role::Dim)),
                ]),
                Line::styled(
                    "(a temp file, then renamed; an existing file is asked about)",
                    app.theme.style(Role::Dim),
                ),
            ];
            boxed(app, " write ", lines, area, buf);
        }
        Mode::Ask(question) => {
            let text = match question {
                Question::Overwrite(path) => {
                    let source = app.source_path.as_deref() == Some(path.as_path());
                    format!(
                        "{} exists{}. Overwrite it?",
                        escape(&path.display().to_string()),
                        if source {
                            " and is the model's source"
                        } else {
                            ""
                        }
                    )
                }
                Question::QuitUnsaved => "The re-inits are not written. Quit anyway?".to_owned(),
            };
            boxed(app, " confirm ", vec![Line::raw(text)], area, buf);
        }
        Mode::Models(index) => {
            let lines = app
                .choices
                .iter()
                .enumerate()
                .map(|(i, choice)| {
                    let marker = if *choice == app.source { " (open)" } else { "" };
                    let line = Line::raw(format!("{}{marker}", escape(choice)));
                    if i == *index {
                        line.style(app.theme.style(Role::Selected))
                    } else {
                        line
                    }
                })
                .collect();
            boxed(app, " open a model ", lines, area, buf);
        }
        Mode::Help(offset) => help(app, *offset, area, buf),
    }
}

/// A centred bordered box sized to `lines`, with the hints of the current context at the bottom.
fn boxed(app: &App, title: &str, mut lines: Vec<Line<'static>>, area: Rect, buf: &mut Buffer) {
    let t = app.theme;
    lines.push(Line::raw(""));
    let mut hints = Vec::new();
    for (key, word) in keymap::hints(app) {
        hints.push(Span::styled(key, t.style(Role::Key)));
        hints.push(Span::styled(format!(" {word}  "), t.style(Role::Dim)));
    }
    lines.push(Line::from(hints));
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
    let height = lines.len() as u16 + 2;
    let r = centered(area, width.max(30), height);
    Clear.render(r, buf);
    Block::bordered()
        .title(title.to_owned())
        .border_style(t.style(Role::Focused))
        .render(r, buf);
    Paragraph::new(lines).render(inner(r).inner(ratatui::layout::Margin::new(1, 0)), buf);
}

fn init(app: &App, d: &InitDialog, area: Rect, buf: &mut Buffer) {
    let t = app.theme;
    let current = d.current();
    let check = |on: bool| if on { "[x]" } else { "[ ]" };
    let heading = if d.layer && d.weights != d.biases {
        format!("writes {}", escape(&d.target()))
    } else {
        let module = if d.path.is_empty() {
            "the whole model".to_owned()
        } else {
            escape(&d.path).into_owned()
        };
        format!("every Linear under {module}, as net.apply(fn)")
    };
    let mut lines = vec![Line::styled(heading, t.style(Role::Dim))];
    for field in d.fields() {
        let (name, value) = match field {
            InitField::Scheme => ("scheme".to_owned(), format!("◀ {} ▶", SCHEMES[d.scheme])),
            InitField::Arg(i) => (format!("  {}", d.args[i].0), d.args[i].1.clone()),
            InitField::Weights => ("weights".to_owned(), check(d.weights).to_owned()),
            InitField::Biases => ("biases".to_owned(), check(d.biases).to_owned()),
            InitField::Seed => ("seed".to_owned(), d.seed.clone()),
        };
        let marker = if field == current { "›" } else { " " };
        let line = Line::raw(format!("{marker} {name:<14} {}", escape(&value)));
        lines.push(if field == current {
            line.style(t.style(Role::Selected))
        } else {
            line
        });
    }
    if let Some(e) = &d.error {
        lines.push(Line::styled(format!("✗ {e}"), t.style(Role::Bad)));
    }
    boxed(
        app,
        &format!(" re-initialize {} ", escape(&d.target())),
        lines,
        area,
        buf,
    );
}

fn help(app: &App, offset: usize, area: Rect, buf: &mut Buffer) {
    let t = app.theme;
    let mut lines = Vec::new();
    for context in HELP_CONTEXTS {
        lines.push(Line::styled(context.title(), t.style(Role::Heading)));
        for b in KEYMAP.iter().filter(|b| b.context == context) {
            let keys: Vec<String> = b.keys.iter().map(|k| keymap::label(*k)).collect();
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<16}", keys.join(" ")), t.style(Role::Key)),
                Span::raw(b.help),
            ]));
        }
    }
    let r = help_box(area);
    Clear.render(r, buf);
    Block::bordered()
        .title(" help · ↑↓ scroll · Esc close ")
        .border_style(t.style(Role::Focused))
        .render(r, buf);
    let body = inner(r);
    let offset = offset.min(lines.len().saturating_sub(usize::from(body.height)));
    Paragraph::new(lines.into_iter().skip(offset).collect::<Vec<_>>()).render(body, buf);
}
