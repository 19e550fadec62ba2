//! Showing untrusted text (tensor names, metadata) on a terminal without letting it drive the terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character written as an escape (`\x1b`, `\n`, `\u{9b}`), so that a
/// name holding `\x1b[2J` prints as those characters instead of clearing the screen.
#[must_use]
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(escape("0.weight"), "0.weight");
        assert_eq!(escape("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape("x\u{9b}y\n"), "x\\u{9b}y\\n");
        assert_eq!(escape("block 0.é"), "block 0.é");
    }
}
