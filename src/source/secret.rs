//! A token that cannot be printed: no `Display`, and a `Debug` that hides it, so that it never reaches an
//! error message, a log or JSON by accident.

use std::fmt;

/// A bearer token (the Hub's `HF_TOKEN`) or an S3 secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`, trimmed of the surrounding whitespace a token file ends with; `None` when empty.
    #[must_use]
    pub fn new(value: &str) -> Option<Secret> {
        let value = value.trim();
        (!value.is_empty()).then(|| Secret(value.to_owned()))
    }

    /// The value, for the one place that sends it: a request header.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}
