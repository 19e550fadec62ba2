//! What a `tokenizer.json` is checked for before the `tokenizers` crate reads it: the inputs on
//! which that crate aborts the process (too deep a nesting for the stack, an allocation sized by
//! a length prefix) or panics later while encoding (a `Precompiled` charsmap whose trie or
//! normalized strings are indexed out of bounds). Panics nothing here foresees are caught by the
//! caller; an abort cannot be, which is why these are refused first.

use serde_json::Value;
use thiserror::Error;

/// The deepest nesting of arrays and objects accepted: real files nest 5 or 6 deep (a `Sequence`
/// of normalizers inside the tokenizer object), far below what would exhaust a thread's stack.
pub const MAX_DEPTH: usize = 32;

/// The largest charsmap trie accepted, in units: real ones (T5's, XLM-R's) hold about 60,000;
/// the cap keeps the walk below, which looks at 255 units per node, within a second.
const MAX_TRIE_UNITS: usize = 1 << 22;

/// How many bytes of a key the `tokenizers` crate looks up in the trie: a grapheme shorter than
/// 6 bytes, else one character at a time (at most 4).
const MAX_KEY_BYTES: usize = 5;

/// Why a `tokenizer.json` is refused before the `tokenizers` crate reads it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Unsafe {
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error("arrays and objects nest more than {MAX_DEPTH} deep")]
    Depth,
    /// The text is not JSON (the crate would say so too; said here with the place).
    #[error("not JSON: {0}")]
    Json(String),
    /// A `precompiled_charsmap` that is not base64.
    #[error("precompiled_charsmap is not base64")]
    Base64,
    /// A `precompiled_charsmap` whose layout the crate would trip on.
    #[error("precompiled_charsmap: {0}")]
    Charsmap(Charsmap),
}

/// What is wrong with a charsmap's layout: a little-endian u32 byte length of the trie, the trie's
/// u32 units, then the normalized strings, each ended by a NUL.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Charsmap {
    /// Fewer than the 4 bytes of the length prefix.
    #[error("{0} bytes is shorter than its 4-byte length prefix")]
    NoPrefix(usize),
    /// The prefix claims more trie bytes than follow it.
    #[error("the trie claims {claimed} bytes, but {present} follow the length prefix")]
    TriePastEnd {
        /// The prefix's value.
        claimed: u32,
        /// The bytes after the prefix.
        present: usize,
    },
    /// More trie units than [`MAX_TRIE_UNITS`].
    #[error("the trie's {0} units are over the cap of {MAX_TRIE_UNITS}")]
    TrieTooLong(usize),
    /// No trie unit at all: the first lookup would read past it.
    #[error("the trie is empty")]
    EmptyTrie,
    /// The normalized strings are not UTF-8.
    #[error("the normalized strings are not UTF-8")]
    NotUtf8,
    /// A node, or the units it looks up, past the trie's end.
    #[error("trie node {node} reads units past the trie's {units}")]
    NodePastEnd {
        /// The node's position.
        node: usize,
        /// The trie's units.
        units: usize,
    },
    /// A match whose replacement starts outside the normalized strings or inside a character.
    #[error(
        "a replacement starts at byte {start} of the {len}-byte normalized strings, past their end or inside a character"
    )]
    BadReplacement {
        /// The start the trie gives.
        start: usize,
        /// The normalized strings' length.
        len: usize,
    },
}

/// Checks `bytes`, a whole `tokenizer.json`, for what would abort or panic inside the crate.
pub fn check(bytes: &[u8]) -> Result<(), Unsafe> {
    if depth(bytes) > MAX_DEPTH {
        return Err(Unsafe::Depth);
    }
    let json: Value = serde_json::from_slice(bytes).map_err(|e| Unsafe::Json(e.to_string()))?;
    charsmaps(&json)
}

/// The deepest nesting of `[` and `{` outside strings. Counted on the bytes, before any parser
/// recurses into them.
fn depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Checks every `precompiled_charsmap` string, wherever it is (normalizers nest in sequences).
fn charsmaps(value: &Value) -> Result<(), Unsafe> {
    match value {
        Value::Array(items) => items.iter().try_for_each(charsmaps),
        Value::Object(map) => map.iter().try_for_each(|(key, v)| match v {
            Value::String(text) if key == "precompiled_charsmap" => {
                let bytes = base64(text).ok_or(Unsafe::Base64)?;
                charsmap(&bytes).map_err(Unsafe::Charsmap)
            }
            _ => charsmaps(v),
        }),
        _ => Ok(()),
    }
}

/// Standard base64 with padding, as the crate decodes it; `None` when it is not.
fn base64(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (i, quad) in text.chunks_exact(4).enumerate() {
        let last = i + 1 == text.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | u32::from(sextet(c)?);
        }
        n <<= 6 * pad;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// Checks a decoded charsmap as `spm_precompiled` parses and walks it.
fn charsmap(bytes: &[u8]) -> Result<(), Charsmap> {
    let Some((prefix, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(Charsmap::NoPrefix(bytes.len()));
    };
    let claimed = u32::from_le_bytes(*prefix);
    // The crate reads `claimed / 4` units, having reserved room for all of them first.
    let units = claimed as usize / 4;
    if units.saturating_mul(4) > rest.len() {
        return Err(Charsmap::TriePastEnd {
            claimed,
            present: rest.len(),
        });
    }
    if units > MAX_TRIE_UNITS {
        return Err(Charsmap::TrieTooLong(units));
    }
    let (trie, normalized) = rest.split_at(units * 4);
    let trie: Vec<usize> = trie
        .chunks_exact(4)
        .map(|u| u32::from_le_bytes(u.try_into().expect("4 bytes")) as usize)
        .collect();
    let normalized = std::str::from_utf8(normalized).map_err(|_| Charsmap::NotUtf8)?;
    walk(&trie, normalized)
}

/// A unit's fields, as darts-clone packs them (and the crate reads them).
fn has_leaf(unit: usize) -> bool {
    (unit >> 8) & 1 == 1
}

fn label(unit: usize) -> usize {
    unit & ((1 << 31) | 0xFF)
}

fn offset(unit: usize) -> usize {
    (unit >> 10) << ((unit & (1 << 9)) >> 6)
}

fn value(unit: usize) -> usize {
    unit & ((1 << 31) - 1)
}

/// Visits every node a key of up to [`MAX_KEY_BYTES`] bytes reaches, checking that each lookup
/// the crate makes stays inside the trie and each replacement it slices starts on a character
/// boundary of `normalized`.
fn walk(trie: &[usize], normalized: &str) -> Result<(), Charsmap> {
    let units = trie.len();
    let root = *trie.first().ok_or(Charsmap::EmptyTrie)?;
    let mut seen = vec![false; units];
    let mut level = vec![offset(root)];
    for _ in 0..MAX_KEY_BYTES {
        let mut next = Vec::new();
        for node in level {
            // The crate looks up `node ^ byte` for any byte 1..=255 of the key: the node's whole
            // block of 256 must lie inside the trie.
            if node | 0xFF >= units {
                return Err(Charsmap::NodePastEnd { node, units });
            }
            if std::mem::replace(&mut seen[node], true) {
                continue;
            }
            for byte in 1..=0xFF {
                let child = node ^ byte;
                let unit = trie[child];
                if label(unit) != byte {
                    continue;
                }
                let below = child ^ offset(unit);
                if below >= units {
                    return Err(Charsmap::NodePastEnd { node: below, units });
                }
                if has_leaf(unit) {
                    let start = value(trie[below]);
                    if start > normalized.len() || !normalized.is_char_boundary(start) {
                        return Err(Charsmap::BadReplacement {
                            start,
                            len: normalized.len(),
                        });
                    }
                }
                next.push(below);
            }
        }
        level = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_decoded_strictly() {
        assert_eq!(base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64("aGVsbG8h"), Some(b"hello!".to_vec()));
        assert_eq!(base64("aGk"), None);
        assert_eq!(base64("aG=k"), None);
        assert_eq!(base64("a\nk="), None);
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(depth(br#"{"a": [1, {"b": "[[[\"{{"}]}"#), 3);
        assert_eq!(depth(b"[]"), 1);
    }

    #[test]
    fn short_and_overlong_charsmaps_are_named() {
        assert_eq!(charsmap(&[1, 0]), Err(Charsmap::NoPrefix(2)));
        assert_eq!(
            charsmap(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
            Err(Charsmap::TriePastEnd {
                claimed: u32::MAX,
                present: 2
            })
        );
        assert_eq!(charsmap(&[0, 0, 0, 0]), Err(Charsmap::EmptyTrie));
    }
}
