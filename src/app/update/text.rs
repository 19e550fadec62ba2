//! Typing the text a family checkpoint runs on: Enter runs it, Esc keeps the last one.

use super::{Effects, report, run_forward};
use crate::app::action::Action;
use crate::app::error::AppError;
use crate::app::field::Field;
use crate::app::state::{App, Mode};

pub(super) fn text(app: &mut App, mut field: Field, action: Action, fx: &mut Effects) {
    match action {
        Action::Submit => {
            if field.value().trim().is_empty() {
                report(app, &AppError::NoText);
                app.mode = Mode::Text(field);
                return;
            }
            app.mode = Mode::Browse;
            app.message = None;
            field.value().clone_into(&mut app.forward.text);
            run_forward(app, fx);
        }
        Action::Cancel => app.mode = Mode::Browse,
        other => {
            if let Some(edit) = other.edit() {
                field.edit(edit);
            }
            app.mode = Mode::Text(field);
        }
    }
}
