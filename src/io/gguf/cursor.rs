//! Reading a GGUF file's bytes with every length checked against what is left, and why a file is
//! refused: shared by the header's reader and the metadata values' reader, which import this and
//! not each other.

use thiserror::Error;

/// Why a file is not a GGUF file paramscope can read. Offsets are bytes from the file's start.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GgufError {
    /// No `GGUF` magic.
    #[error("not a GGUF file (no GGUF magic)")]
    Magic,
    /// A version other than 2 and 3.
    #[error("GGUF version {0} is not supported (2 and 3 are)")]
    Version(u32),
    /// The version reads right only byte-swapped: a big-endian file.
    #[error("a big-endian GGUF file is not supported")]
    BigEndian,
    /// The file ends inside a field.
    #[error("truncated at byte {offset}: the {what} needs {need} bytes, {left} are left")]
    Truncated {
        /// Where the field starts.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// Bytes it needs.
        need: u64,
        /// Bytes left in the file.
        left: usize,
    },
    /// A length or count the file cannot hold.
    #[error(
        "at byte {offset}: {} {what} of {len} is more than the file can hold",
        article(what)
    )]
    TooLong {
        /// Where the length is stored.
        offset: usize,
        /// What it counts.
        what: &'static str,
        /// The length read.
        len: u64,
    },
    /// A length over paramscope's cap for its kind, though the file might hold it.
    #[error("at byte {offset}: a {what} of {len} bytes is over paramscope's {} cap on GGUF {what}s", binary_size(*.cap))]
    OverCap {
        /// Where the length is stored.
        offset: usize,
        /// What it measures.
        what: &'static str,
        /// The length read.
        len: u64,
        /// The cap, in bytes.
        cap: u64,
    },
    /// Arrays nested too deep.
    #[error("at byte {offset}: metadata arrays are nested too deep")]
    TooDeep {
        /// Where the array starts.
        offset: usize,
    },
    /// A metadata value type number that GGUF does not have.
    #[error("at byte {offset}: unknown metadata value type {id}")]
    ValueType {
        /// Where the value starts.
        offset: usize,
        /// The type number read.
        id: u32,
    },
    /// A metadata key given twice.
    #[error("metadata key {0} is given twice")]
    DuplicateKey(String),
    /// A tensor name given twice.
    #[error("tensor {0} is given twice")]
    DuplicateTensor(String),
    /// `general.alignment` is not an unsigned integer, or not a power of two that fits.
    #[error(
        "general.alignment must be an unsigned integer, a power of two from 1 to 2^30; the file has {value} (of type {ty})"
    )]
    Alignment {
        /// The value found.
        value: String,
        /// Its GGUF type.
        ty: &'static str,
    },
    /// A tensor whose ggml type paramscope does not know.
    #[error("tensor {name}: ggml type {id} is not supported")]
    TensorType {
        /// The tensor's name.
        name: String,
        /// The type number.
        id: u32,
    },
    /// A tensor whose shape is not one (dimensions, overflow, partial blocks).
    #[error("tensor {name}: {why}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A tensor whose data is misplaced.
    #[error("tensor {name}: data at offset {offset} {why}")]
    Data {
        /// The tensor's name.
        name: String,
        /// Its offset in the data section.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
}

/// "an" before a vowel, else "a": the messages name what they count ("an array of 48900").
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// A cap in KiB or MiB, as its constant is written (`64 << 20`).
fn binary_size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// A checked reader over the file's bytes.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }

    pub(super) fn offset(&self) -> usize {
        self.at
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The next `len` bytes, or an error naming `what` when the file ends first.
    pub(super) fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        let truncated = GgufError::Truncated {
            offset: self.at,
            what,
            need: len,
            left: self.remaining(),
        };
        let len = usize::try_from(len).map_err(|_| truncated.clone())?;
        if len > self.remaining() {
            return Err(truncated);
        }
        let out = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(out)
    }

    pub(super) fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let slice = self.take(N as u64, "value")?;
        Ok(slice.try_into().expect("took N bytes"))
    }

    pub(super) fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
}

#[cfg(test)]
mod tests {
    use super::GgufError;

    #[test]
    fn a_count_too_long_reads_as_english() {
        let too_long = |what| GgufError::TooLong {
            offset: 7,
            what,
            len: 3,
        };
        assert_eq!(
            too_long("array").to_string(),
            "at byte 7: an array of 3 is more than the file can hold"
        );
        assert_eq!(
            too_long("tensor count").to_string(),
            "at byte 7: a tensor count of 3 is more than the file can hold"
        );
    }
}
