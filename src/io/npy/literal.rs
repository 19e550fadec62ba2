//! The Python literals a `.npy` header is made of: dicts, tuples, lists, strings, integers,
//! `True`, `False` and `None`. Nesting is capped, so hostile input cannot recurse deep.

use super::NpyError;

/// A parsed literal.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    /// `{'key': value, ...}` (keys are strings in every header numpy writes).
    Dict(Vec<(String, Value)>),
    /// `(a, b)`, `(a,)` or `()`.
    Tuple(Vec<Value>),
    /// `[a, b]`.
    List(Vec<Value>),
    /// `'text'` or `"text"`.
    Str(String),
    /// An integer (Python 2's `3L` included).
    Int(i128),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
}

/// Containers nested deeper than this are refused (a structured dtype nests three or four).
const MAX_DEPTH: usize = 16;

/// Parses `text` as one literal followed only by whitespace.
pub(super) fn parse(text: &str) -> Result<Value, NpyError> {
    let mut p = Parser { text, at: 0 };
    let value = p.value(0)?;
    p.skip_space();
    if p.at != text.len() {
        return Err(p.error("the end of the header"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn error(&self, why: &'static str) -> NpyError {
        NpyError::Literal { why, at: self.at }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, NpyError> {
        self.skip_space();
        match self.peek() {
            Some(open @ (b'{' | b'(' | b'[')) => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("less nesting"));
                }
                self.at += 1;
                match open {
                    b'{' => self.dict(depth + 1),
                    b'(' => self.sequence(b')', depth + 1).map(Value::Tuple),
                    _ => self.sequence(b']', depth + 1).map(Value::List),
                }
            }
            Some(b'\'' | b'"') => self.string().map(Value::Str),
            Some(b'-' | b'0'..=b'9') => self.int(),
            _ => self.word(),
        }
    }

    /// The items of a tuple or list up to `close`, the opening bracket already read. numpy writes
    /// a one-item shape `(a,)`; `(a)`, which Python reads as plain `a`, is read as that same
    /// one-item tuple here, the only meaning it can have in a header.
    fn sequence(&mut self, close: u8, depth: usize) -> Result<Vec<Value>, NpyError> {
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok(items);
            }
            items.push(self.value(depth)?);
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(c) if c == close => {}
                _ => return Err(self.error("',' or a closing bracket")),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Value, NpyError> {
        let mut entries = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Ok(Value::Dict(entries));
            }
            if !matches!(self.peek(), Some(b'\'' | b'"')) {
                return Err(self.error("a string key"));
            }
            let key = self.string()?;
            self.skip_space();
            if self.peek() != Some(b':') {
                return Err(self.error("':'"));
            }
            self.at += 1;
            let value = self.value(depth)?;
            entries.push((key, value));
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {}
                _ => return Err(self.error("'}' or ','")),
            }
        }
    }

    /// A quoted string with Python's simple escapes (numpy writes none, but `repr` may).
    fn string(&mut self) -> Result<String, NpyError> {
        let quote = self.text[self.at..]
            .chars()
            .next()
            .expect("a quote was peeked");
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.text[self.at..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.at += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        other => other,
                    });
                }
                '\n' => break,
                c => out.push(c),
            }
        }
        self.at = self.text.len();
        Err(self.error("a closing quote"))
    }

    fn int(&mut self) -> Result<Value, NpyError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let value = self.text[start..self.at]
            .parse()
            .map_err(|_| NpyError::Literal {
                why: "an integer",
                at: start,
            })?;
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.at += 1;
        }
        Ok(Value::Int(value))
    }

    fn word(&mut self) -> Result<Value, NpyError> {
        for (word, value) in [
            ("True", Value::Bool(true)),
            ("False", Value::Bool(false)),
            ("None", Value::None),
        ] {
            if self.text[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(value);
            }
        }
        Err(self.error("a value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_parse_as_python_reads_them() {
        assert_eq!(
            parse(" (3L, -4,) ").unwrap(),
            Value::Tuple(vec![Value::Int(3), Value::Int(-4)])
        );
        assert_eq!(parse("(7)").unwrap(), Value::Tuple(vec![Value::Int(7)]));
        assert_eq!(parse(r"'it\'s'").unwrap(), Value::Str("it's".into()));
        assert_eq!(
            parse("[('a', '<f4'), None]").unwrap(),
            Value::List(vec![
                Value::Tuple(vec![Value::Str("a".into()), Value::Str("<f4".into())]),
                Value::None
            ])
        );
        assert!(parse("{'a': 1} x").is_err());
        assert!(parse("{1: 2}").is_err());
        assert!(
            parse(&"(".repeat(10_000)).is_err(),
            "deep nesting is refused, not recursed"
        );
        assert!(parse("99999999999999999999999999999999999999999").is_err());
    }
}
