//! What opens on top of the panes: the re-initialize dialog, the write prompt, questions, the
//! model list, and the help screen generated from the keymap table.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget};

use super::field_spans;
use crate::app::init_dialog::{ArgValue, InitDialog, InitField, fan_based};
use crate::app::keymap::{self, HelpLine, help_lines};
use crate::app::layout::{BORDER, centered, help_box, popup_box, popup_lines};
use crate::app::picker::Picker;
use crate::app::state::{App, Mode, Popup, Question};
use crate::app::theme::Role;
use crate::text::escape;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    match &app.mode {
        Mode::Browse | Mode::Filter(_) => {}
        Mode::Init(dialog) => init(app, dialog, area, buf),
        Mode::Write(field) => {
            let lines = vec![
                Line::raw("Write the model, with its re-inits, to:"),
                Line::from(field_spans(app, field)),
                Line::styled(
                    "(a temp file, then renamed; an existing file is asked about)",
                    t.style(Role::Dim),
                ),
            ];
            boxed(app, " write ", lines, area, buf);
        }
        Mode::Text(field) => {
            // A GGUF file carries its own tokenizer: naming a tokenizer.json there misleads.
            let from_gguf = app.doc.runs.family().is_some_and(|c| c.gguf.is_some());
            let tokenizer = if from_gguf {
                "(tokenized with the GGUF file's own tokenizer)"
            } else {
                "(tokenized with the folder's tokenizer.json)"
            };
            let mut lines = vec![
                Line::raw("Run the model on the text:"),
                Line::from(field_spans(app, field)),
                Line::styled(tokenizer, t.style(Role::Dim)),
            ];
            if field.is_default() {
                // Without colour nothing shows that typing replaces the text: say it.
                lines.push(Line::styled(
                    "(typing replaces it; a cursor key edits it)",
                    t.style(Role::Dim),
                ));
            }
            boxed(app, " forward text ", lines, area, buf);
        }
        Mode::Ask(question) => {
            let text = match question {
                Question::Overwrite(path) => {
                    let source = app.doc.source_path.as_deref() == Some(path.as_path());
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
                Question::OpenUnsaved(spec) => format!(
                    "The re-inits are not written. Open {} anyway?",
                    escape(spec)
                ),
            };
            boxed(app, " confirm ", vec![Line::raw(text)], area, buf);
        }
        Mode::Open(picker) => open(app, picker, area, buf),
        Mode::Help(offset) => help(app, *offset, area, buf),
        Mode::Popup(popup) => message(app, popup, area, buf),
    }
}

/// A centred bordered box sized to `lines`, with the hints of the current context at the bottom.
fn boxed(app: &App, title: &str, mut lines: Vec<Line<'static>>, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
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
    Paragraph::new(lines).render(
        r.inner(BORDER).inner(ratatui::layout::Margin::new(1, 0)),
        buf,
    );
}

/// The model picker: the typed text, then the entries that hold it.
fn open(app: &App, p: &Picker, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let shown = p.shown();
    let mut lines = vec![Line::from(
        [Span::styled(
            if p.compare {
                "compare with: "
            } else {
                "open: "
            },
            t.style(Role::Dim),
        )]
        .into_iter()
        .chain(field_spans(app, &p.field))
        .collect::<Vec<_>>(),
    )];
    let room = usize::from(area.height.saturating_sub(8)).max(1);
    let first = p.index.saturating_sub(room - 1);
    for (i, choice) in shown.iter().enumerate().skip(first).take(room) {
        let marker = if *choice == app.doc.source {
            " (open)"
        } else {
            ""
        };
        let line = Line::raw(format!("{}{marker}", escape(choice)));
        lines.push(if i == p.index {
            line.style(t.style(Role::Selected))
        } else {
            line
        });
    }
    if shown.is_empty() {
        let hint = if p.field.value().is_empty() {
            "no models here: type a path"
        } else {
            "Enter opens the typed path; Tab completes it"
        };
        lines.push(Line::styled(hint, t.style(Role::Dim)));
    }
    let title = if p.compare {
        " compare with a model (B) "
    } else {
        " open a model "
    };
    boxed(app, title, lines, area, buf);
}

fn init(app: &App, d: &InitDialog, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let current = d.current();
    let heading = if d.layer && (d.weights != (d.biases != crate::app::init_dialog::Biases::Keep)) {
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
        let here = field == current;
        let (name, value): (String, Vec<Span<'static>>) = match field {
            InitField::Scheme => {
                let mut spans = if here || !d.query.value().is_empty() {
                    let mut s = vec![Span::raw("[")];
                    s.extend(field_spans(app, &d.query));
                    s.push(Span::raw("] "));
                    s
                } else {
                    Vec::new()
                };
                spans.push(Span::raw(format!("◀ {} ▶", d.scheme)));
                ("scheme".to_owned(), spans)
            }
            InitField::Arg(i) => {
                let (arg, value) = &d.args[i];
                let spans = match value {
                    ArgValue::Text(f) if here => field_spans(app, f),
                    ArgValue::Text(f) => vec![Span::raw(escape(f.value()).into_owned())],
                    ArgValue::Choice { options, index } => {
                        vec![Span::raw(format!("◀ {} ▶", options[*index]))]
                    }
                };
                (format!("  {arg}"), spans)
            }
            InitField::Weights => (
                "weights".to_owned(),
                vec![Span::raw(if d.weights { "[x]" } else { "[ ]" })],
            ),
            InitField::Biases => (
                "biases".to_owned(),
                vec![Span::raw(format!("◀ {} ▶", d.biases.label()))],
            ),
            InitField::Seed if here => ("seed".to_owned(), field_spans(app, &d.seed)),
            InitField::Seed => (
                "seed".to_owned(),
                vec![Span::raw(d.seed.value().to_owned())],
            ),
        };
        let marker = if here { "›" } else { " " };
        let mut spans = vec![Span::raw(format!("{marker} {name:<14} "))];
        spans.extend(value);
        let line = Line::from(spans);
        lines.push(if here {
            line.style(t.style(Role::Heading))
        } else {
            line
        });
    }
    if current == InitField::Scheme {
        let candidates = d.candidates();
        let text = match d.typed_scheme() {
            Some(Ok(scheme)) => format!("reads as {}", escape(&scheme.to_string())),
            Some(Err(e)) => escape(&e.to_string()).into_owned(),
            None if candidates.is_empty() => "no scheme has that in its name".to_owned(),
            None => format!("type to narrow: {}", candidates.join(" ")),
        };
        lines.push(Line::styled(text, t.style(Role::Dim)));
    } else if fan_based(d.scheme) && d.biases == crate::app::init_dialog::Biases::Same {
        lines.push(Line::styled(
            "a 1-D bias has no fan: this scheme fails on biases",
            t.style(Role::Dim),
        ));
    }
    if let Some(e) = &d.error {
        let width = usize::from(area.width.saturating_sub(8)).max(20);
        for part in crate::app::format::wrap(&format!("✗ {}", escape(e)), width) {
            lines.push(Line::styled(part, t.style(Role::Bad)));
        }
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
    let t = app.screen.theme;
    let lines: Vec<Line> = help_lines()
        .into_iter()
        .map(|line| match line {
            HelpLine::Heading(title) => Line::styled(title, t.style(Role::Heading)),
            HelpLine::Binding(keys, help) => Line::from(vec![
                Span::styled(format!("  {keys:<16}"), t.style(Role::Key)),
                Span::raw(help),
            ]),
        })
        .collect();
    let r = help_box(area);
    Clear.render(r, buf);
    Block::bordered()
        .title(" help · ↑↓ scroll · Esc close ")
        .border_style(t.style(Role::Focused))
        .render(r, buf);
    let body = r.inner(BORDER);
    let offset = offset.min(lines.len().saturating_sub(usize::from(body.height)));
    Paragraph::new(lines.into_iter().skip(offset).collect::<Vec<_>>()).render(body, buf);
}

/// A long message, wrapped, scrolled by `offset` lines.
fn message(app: &App, popup: &Popup, area: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let (lines, page) = popup_lines(area, &popup.text);
    let r = popup_box(area, lines.len());
    Clear.render(r, buf);
    let more = if lines.len() > page {
        format!(" {}/{} ", popup.offset + page.min(lines.len()), lines.len())
    } else {
        String::new()
    };
    Block::bordered()
        .title(if popup.error { " error " } else { " notice " })
        .title_bottom(format!(" Esc close{more}"))
        .border_style(t.style(if popup.error { Role::Bad } else { Role::Good }))
        .render(r, buf);
    let body = r.inner(BORDER).inner(ratatui::layout::Margin::new(1, 0));
    let shown: Vec<Line> = lines
        .into_iter()
        .skip(popup.offset)
        .take(page)
        .map(Line::raw)
        .collect();
    Paragraph::new(shown).render(body, buf);
}
