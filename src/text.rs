//! Showing untrusted text (tensor names, metadata, paths) on a terminal or in JSON without letting
//! it drive the terminal or reorder what is shown.
//!
//! One rule decides what is unsafe ([`is_unsafe`]): C0 and C1 controls and DEL (they move the
//! cursor, set titles, clear screens), the bidi controls U+202A..U+202E and U+2066..U+2069 (they
//! reverse what is shown, "Trojan Source"), the line and paragraph separators U+2028/U+2029, and
//! every other format character (Unicode category Cf: zero-width joiners, soft hyphens, tags),
//! which are invisible and so make two different names look the same or break column widths.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_width::UnicodeWidthStr as _;

/// Every character of Unicode's general category Cf (format), as of Unicode 16, by range. The
/// list is short and stable, so it is kept here rather than pulling in a full property table.
const FORMAT: [(u32, u32); 21] = [
    (0xAD, 0xAD),
    (0x600, 0x605),
    (0x61C, 0x61C),
    (0x6DD, 0x6DD),
    (0x70F, 0x70F),
    (0x890, 0x891),
    (0x8E2, 0x8E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` must not reach a terminal as it is (see the module's rule).
#[must_use]
pub fn is_unsafe(c: char) -> bool {
    let code = c as u32;
    // Printable ASCII, nearly every character of a name, is decided at once.
    if (0x20..0x7f).contains(&code) {
        return false;
    }
    c.is_control()
        || code == 0x2028
        || code == 0x2029
        || FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
}

/// `text` with every unsafe character written as an escape (`\x1b`, `\n`, `\u{202e}`), so that a
/// name holding `\x1b[2J` prints as those characters instead of clearing the screen.
#[must_use]
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_keeping(text, None)
}

/// [`escape`] for text of several lines (a command's whole output): newlines stay newlines.
#[must_use]
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_keeping(text, Some('\n'))
}

fn escape_keeping(text: &str, keep: Option<char>) -> Cow<'_, str> {
    let must = |c: char| is_unsafe(c) && Some(c) != keep;
    // A space stands for "no kept byte": it is printable anyway.
    let kept = keep.and_then(|k| u8::try_from(k).ok()).unwrap_or(b' ');
    if is_plain_ascii(text.as_bytes(), kept) || !text.chars().any(must) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !must(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Whether every byte is printable ASCII or `kept`: a million names, or a whole command's output,
/// pass without decoding a char. Checked in blocks without an early exit, which the compiler turns
/// into vector compares; a block that fails stops the scan.
fn is_plain_ascii(bytes: &[u8], kept: u8) -> bool {
    let plain = |b: u8| b.wrapping_sub(0x20) < 0x5f || b == kept;
    let mut blocks = bytes.chunks_exact(64);
    blocks.all(|block| block.iter().fold(true, |ok, &b| ok & plain(b)))
        && blocks.remainder().iter().all(|&b| plain(b))
}

/// JSON text made terminal-safe: every unsafe character becomes a `\uXXXX` escape (a surrogate
/// pair above U+FFFF), which any JSON reader turns back into the same string. serde_json escapes
/// only U+0000..U+001F itself. Outside strings JSON holds only ASCII punctuation, digits, spaces and
/// newlines, so the newlines kept here are the layout's own.
#[must_use]
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let must = |c: char| is_unsafe(c) && c != '\n';
    if is_plain_ascii(json.as_bytes(), b'\n') || !json.chars().any(must) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if must(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Terminal columns `text` takes (wide characters two, combining marks none); call it on escaped
/// text, whose every character has a width.
#[must_use]
pub fn width(text: &str) -> usize {
    if is_plain_ascii(text.as_bytes(), b' ') {
        return text.len();
    }
    text.width()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(escape("0.weight"), "0.weight");
        assert_eq!(escape("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape("x\u{9b}y\n"), "x\\u{9b}y\\n");
        assert_eq!(escape("block 0.é"), "block 0.é");
        assert_eq!(escape("del\x7f"), "del\\x7f");
    }

    #[test]
    fn bidi_separators_and_format_characters_are_made_visible() {
        assert_eq!(escape("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(escape("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(escape("a\u{2028}b\u{2029}"), "a\\u{2028}b\\u{2029}");
        assert_eq!(
            escape("z\u{200d}w\u{ad}\u{feff}"),
            "z\\u{200d}w\\u{ad}\\u{feff}"
        );
        assert_eq!(escape("tag\u{e0041}"), "tag\\u{e0041}");
        // Visible non-ASCII stays as it is.
        assert_eq!(escape("→⇄…日本"), "→⇄…日本");
    }

    #[test]
    fn escaping_twice_changes_nothing_more() {
        let once = escape("a\x1b\u{202e}\u{200d}b").into_owned();
        assert_eq!(escape(&once), once);
        assert_eq!(escape_lines("a\nb\x1b"), "a\nb\\x1b");
    }

    #[test]
    fn json_escapes_read_back_as_the_same_string() {
        let name = "a\u{202e}b\u{9b}c\u{7f}\u{e0041}\u{2028}";
        let raw = serde_json::to_string_pretty(&serde_json::json!({ "name": name })).unwrap();
        let safe = escape_json(&raw);
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'), "{safe}");
        assert!(
            safe.contains("\\u202e") && safe.contains("\\udb40\\udc41"),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], name);
    }

    #[test]
    fn width_counts_columns_of_the_escaped_text() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("日本"), 4);
        assert_eq!(width(&escape("a\u{200d}b")), "a\\u{200d}b".len());
    }

    #[test]
    fn plain_ascii_is_told_apart_in_blocks_and_in_the_tail() {
        let long = "a".repeat(200);
        assert!(is_plain_ascii(long.as_bytes(), b' '));
        for at in [0, 63, 64, 130, 199] {
            let mut bytes = long.clone().into_bytes();
            bytes[at] = b'\n';
            assert!(!is_plain_ascii(&bytes, b' '), "{at}");
            assert!(is_plain_ascii(&bytes, b'\n'), "{at}");
            bytes[at] = 0x7f;
            assert!(!is_plain_ascii(&bytes, b'\n'), "{at}");
        }
    }
}
