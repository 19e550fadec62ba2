//! A one-line text field (the filter, paths, numbers): `tui-input` does the editing, with Ctrl-U,
//! Ctrl-W, Home/End and the cursor keys; this type adds equality (for tests and `Mode`) and our
//! [`Edit`] vocabulary, so that actions stay free of the crate's types.

use tui_input::{Input, InputRequest};

/// An edit of a text field, as the keymap names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Type this character at the cursor.
    Insert(char),
    /// Delete the character before the cursor (Backspace).
    DeleteBack,
    /// Delete the character under the cursor (Delete).
    DeleteForward,
    /// Delete the word before the cursor (Ctrl-W).
    DeleteWord,
    /// Delete everything before the cursor (Ctrl-U).
    DeleteToStart,
    /// Cursor one character left.
    Left,
    /// Cursor one character right.
    Right,
    /// Cursor to the start (Home, Ctrl-A).
    Start,
    /// Cursor to the end (End, Ctrl-E).
    End,
}

/// A text being typed, with its cursor, and whether it still holds a default that the first
/// character typed replaces (as a selected field does), so that typing `0.02` over `1.0` gives
/// `0.02`, not `1.00.02`.
#[derive(Debug, Clone, Default)]
pub struct Field {
    input: Input,
    default: bool,
}

impl PartialEq for Field {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
            && self.cursor() == other.cursor()
            && self.default == other.default
    }
}

impl Field {
    /// A field holding `text`, the cursor at its end.
    #[must_use]
    pub fn new(text: &str) -> Field {
        Field {
            input: Input::new(text.to_owned()),
            default: false,
        }
    }

    /// A field holding a default `text`: the first character typed replaces it, Backspace or
    /// Delete clears it, a cursor key keeps it for editing.
    #[must_use]
    pub fn with_default(text: &str) -> Field {
        Field {
            default: true,
            ..Field::new(text)
        }
    }

    /// Whether the field still holds its default, untouched.
    #[must_use]
    pub fn is_default(&self) -> bool {
        self.default
    }

    /// The same text, marked as a default again (a remembered value offered in a new dialog).
    #[must_use]
    pub fn as_default(&self) -> Field {
        Field::with_default(self.value())
    }

    /// The text.
    #[must_use]
    pub fn value(&self) -> &str {
        self.input.value()
    }

    /// The cursor, in characters from the start.
    #[must_use]
    pub fn cursor(&self) -> usize {
        self.input.cursor()
    }

    /// Applies an edit; whether the text changed.
    pub fn edit(&mut self, edit: Edit) -> bool {
        if std::mem::take(&mut self.default) {
            let keep = self.value().is_empty();
            match edit {
                Edit::Insert(ch) => {
                    self.set(&ch.to_string());
                    return true;
                }
                Edit::DeleteBack | Edit::DeleteForward | Edit::DeleteWord | Edit::DeleteToStart
                    if !keep =>
                {
                    self.set("");
                    return true;
                }
                _ => {}
            }
        }
        let request = match edit {
            Edit::Insert(ch) => InputRequest::InsertChar(ch),
            Edit::DeleteBack => InputRequest::DeletePrevChar,
            Edit::DeleteForward => InputRequest::DeleteNextChar,
            Edit::DeleteWord => InputRequest::DeletePrevWord,
            Edit::DeleteToStart => InputRequest::DeleteFromStart,
            Edit::Left => InputRequest::GoToPrevChar,
            Edit::Right => InputRequest::GoToNextChar,
            Edit::Start => InputRequest::GoToStart,
            Edit::End => InputRequest::GoToEnd,
        };
        self.input
            .handle(request)
            .is_some_and(|changed| changed.value)
    }

    /// Replaces the text, the cursor at its end.
    pub fn set(&mut self, text: &str) {
        *self = Field::new(text);
    }

    /// The text split at the cursor, for drawing it: before, the character under it, after.
    #[must_use]
    pub fn split(&self) -> (String, String, String) {
        let mut chars = self.value().chars();
        let before: String = chars.by_ref().take(self.cursor()).collect();
        let at = chars.next().map_or_else(|| " ".to_owned(), String::from);
        (before, at, chars.collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{Edit, Field};

    #[test]
    fn ctrl_w_ctrl_u_home_and_end() {
        let mut f = Field::new("out/model.reinit");
        assert!(f.edit(Edit::DeleteWord));
        assert_eq!(f.value(), "out/", "a path loses its last part");
        assert!(!f.edit(Edit::Start));
        assert!(f.edit(Edit::Insert('x')));
        assert_eq!((f.value(), f.cursor()), ("xout/", 1));
        assert_eq!(
            f.split(),
            ("x".to_owned(), "o".to_owned(), "ut/".to_owned())
        );
        f.edit(Edit::End);
        assert!(f.edit(Edit::DeleteToStart));
        assert_eq!(f.value(), "");
    }

    #[test]
    fn a_default_is_replaced_by_what_is_typed_and_kept_by_a_cursor_key() {
        let mut f = Field::with_default("1.0");
        for ch in "0.02".chars() {
            f.edit(Edit::Insert(ch));
        }
        assert_eq!(f.value(), "0.02", "not 1.00.02");
        assert!(!f.is_default());
        let mut f = Field::with_default("1.0");
        f.edit(Edit::Left);
        f.edit(Edit::Insert('5'));
        assert_eq!(
            f.value(),
            "1.50",
            "a cursor key keeps the default to edit it"
        );
        let mut f = Field::with_default("1.0");
        f.edit(Edit::DeleteBack);
        assert_eq!(f.value(), "", "Backspace clears a default");
    }
}
