//! Keys while something other than the panes has the keyboard: the filter, the re-init dialog,
//! the write prompt, a question, the model picker, the help screen and the error popup.

use std::path::PathBuf;

use super::{
    Effects, after_select, browse, compare, open_model, refused_while_busy, report, step_of,
};
use crate::app::action::Action;
use crate::app::error::AppError;
use crate::app::field::Field;
use crate::app::init_dialog::InitDialog;
use crate::app::job::Job;
use crate::app::layout;
use crate::app::picker::Picker;
use crate::app::scroll::Scroll;
use crate::app::state::{App, Busy, Mode, Popup, Question};

pub(super) fn filter(app: &mut App, mut field: Field, action: Action, fx: &mut Effects) {
    let page = layout::tree_page(app);
    let selected = app.tree.selected();
    if let Some(edit) = action.edit() {
        field.edit(edit);
        app.tree.set_filter(&app.doc.outline, field.value(), page);
        app.mode = Mode::Filter(field);
    } else {
        filter_keys(app, action, page);
    }
    if app.tree.selected() != selected {
        after_select(app, fx);
    }
}

fn filter_keys(app: &mut App, action: Action, page: usize) {
    match action {
        Action::Submit => app.mode = Mode::Browse,
        Action::Cancel => {
            // The row found stays selected, its folded ancestors opened.
            let found = app.tree.selected();
            app.tree.set_filter(&app.doc.outline, "", page);
            app.tree.set_only(&app.doc.outline, None, page);
            app.tree.reveal(&app.doc.outline, found, page);
            app.mode = Mode::Browse;
        }
        Action::ToggleChanged => compare::toggle_changed(app, page),
        Action::Up | Action::Down => {
            if let Some(step) = step_of(action) {
                app.tree.step(step, page);
            }
        }
        _ => {}
    }
}

pub(super) fn init(app: &mut App, mut d: InitDialog, action: Action, fx: &mut Effects) {
    let count = d.fields().len();
    match action {
        Action::Cancel => {
            app.mode = Mode::Browse;
            return;
        }
        Action::Submit if refused_while_busy(app) => {}
        Action::Submit => match d.plan() {
            Ok(plan) => {
                let label = d.label();
                // The status bar shows the job now, and what is said about it while it runs.
                app.message = None;
                app.busy = Some(Busy {
                    what: format!("re-initializing: {label}"),
                });
                fx.jobs.push(Job::Init {
                    label,
                    model: app.doc.model.clone(),
                    path: d.path.clone(),
                    plan,
                });
                app.last_init = Some(d);
                app.mode = Mode::Browse;
                return;
            }
            Err(e) => {
                d.error = Some(e.to_string());
                app.mode = Mode::Init(d);
                return;
            }
        },
        Action::Up => d.field = (d.field + count - 1) % count,
        Action::Down => d.field = (d.field + 1) % count,
        Action::Left | Action::Right => d.cycle(action == Action::Right),
        other => {
            if let Some(edit) = other.edit() {
                d.edit(edit);
            }
        }
    }
    app.mode = Mode::Init(d);
}

pub(super) fn write(app: &mut App, mut field: Field, action: Action, fx: &mut Effects) {
    match action {
        Action::Cancel => app.mode = Mode::Browse,
        Action::Submit => {
            let typed = field.value().trim();
            let target = PathBuf::from(typed);
            if typed.is_empty() {
                report(app, &AppError::NoPath);
                app.mode = Mode::Write(field);
            } else if is_link(&target) {
                // Writing through a planted link would replace a file the user never named.
                report(app, &AppError::IsLink(target));
                app.mode = Mode::Write(field);
            } else if app.doc.source_path.as_deref() == Some(target.as_path()) {
                app.mode = Mode::Ask(Question::Overwrite(target));
            } else {
                app.mode = Mode::Browse;
                save(app, target, false, fx);
            }
        }
        other => {
            if let Some(edit) = other.edit() {
                field.edit(edit);
            }
            app.mode = Mode::Write(field);
        }
    }
}

/// Whether `path` is a symbolic link (a dangling one included).
fn is_link(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

pub(super) fn save(app: &mut App, path: PathBuf, overwrite: bool, fx: &mut Effects) {
    if refused_while_busy(app) {
        return;
    }
    app.message = None;
    app.busy = Some(Busy {
        what: format!("writing {}", path.display()),
    });
    fx.jobs.push(Job::Save {
        model: app.doc.model.clone(),
        path,
        overwrite,
    });
}

pub(super) fn ask(app: &mut App, question: &Question, action: Action, fx: &mut Effects) {
    app.mode = Mode::Browse;
    match (question, action) {
        // A link may have been put there since the question was asked.
        (Question::Overwrite(path), Action::Yes) if is_link(path) => {
            report(app, &AppError::IsLink(path.clone()));
            app.mode = Mode::Write(Field::new(&path.display().to_string()));
        }
        (Question::Overwrite(path), Action::Yes) => save(app, path.clone(), true, fx),
        (Question::QuitUnsaved, Action::Yes) if app.busy.is_some() => browse::refuse_quit(app),
        (Question::QuitUnsaved, Action::Yes) => fx.quit = true,
        (Question::OpenUnsaved(spec), Action::Yes) => {
            if !refused_while_busy(app) {
                open_model(app, spec.clone(), fx);
            }
        }
        (_, Action::No | Action::Cancel) => {}
        _ => app.mode = Mode::Ask(question.clone()),
    }
}

pub(super) fn picker(app: &mut App, mut p: Picker, action: Action, fx: &mut Effects) {
    match action {
        Action::Up | Action::Down => p.step(action == Action::Down),
        Action::Complete => p.complete(),
        Action::Cancel => {
            app.mode = Mode::Browse;
            return;
        }
        Action::Submit => {
            app.mode = Mode::Browse;
            let Some(spec) = p.chosen() else {
                return;
            };
            if refused_while_busy(app) {
                return;
            }
            if p.compare {
                fx.absorb(compare::compare_with(app, spec));
            } else if app.doc.unsaved() {
                app.mode = Mode::Ask(Question::OpenUnsaved(spec));
            } else {
                open_model(app, spec, fx);
            }
            return;
        }
        other => {
            if let Some(edit) = other.edit() {
                p.edit(edit);
            }
        }
    }
    app.mode = Mode::Open(p);
}

pub(super) fn help(app: &mut App, offset: usize, action: Action) {
    app.mode = match action {
        Action::Cancel | Action::ToggleHelp => Mode::Browse,
        other => {
            let (page, max) = layout::help_page(app);
            let mut scroll = Scroll {
                cursor: offset,
                offset,
            };
            if let Some(step) = step_of(other) {
                scroll.scroll(step, max + page, page);
            }
            Mode::Help(scroll.offset)
        }
    };
}

pub(super) fn popup(app: &mut App, mut popup: Popup, action: Action) {
    if action == Action::Cancel {
        app.mode = Mode::Browse;
        return;
    }
    let (lines, page) = layout::popup_lines(layout::screen(app), &popup.text);
    let mut scroll = Scroll {
        cursor: popup.offset,
        offset: popup.offset,
    };
    if let Some(step) = step_of(action) {
        scroll.scroll(step, lines.len(), page);
    }
    popup.offset = scroll.offset;
    app.mode = Mode::Popup(popup);
}
