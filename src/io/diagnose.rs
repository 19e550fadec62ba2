//! Why a safetensors header was refused, in one line that names the tensor at fault.
//!
//! The reference crate decides validity; this module only turns its verdict into words a user can
//! act on, re-reading the (already bounded) header to find the culprit.

use std::collections::HashSet;
use std::fmt;

use ::safetensors::SafeTensorError;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::tensor::DType;

/// What is wrong with a safetensors header, naming the tensor at fault. Names are kept raw; they
/// are escaped where the message is shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Fewer than 8 bytes.
    #[error("the file is shorter than the 8-byte header length")]
    TooSmall,
    /// The length field is over the reference crate's cap.
    #[error("the header length is over the 100 MB limit")]
    TooLarge,
    /// The length field points past the end.
    #[error("the header length points past the end of the file (truncated?)")]
    PastEnd,
    /// The header bytes are not UTF-8.
    #[error("the header is not valid UTF-8")]
    NotUtf8,
    /// The header is JSON of another shape.
    #[error("the header is not a JSON object")]
    NotObject,
    /// The header is not JSON.
    #[error("the header is not valid JSON: {0}")]
    NotJson(String),
    /// One name twice.
    #[error("the header names tensor {0} twice")]
    Duplicate(String),
    /// `__metadata__` is not a map.
    #[error("__metadata__ is not a map of strings")]
    MetadataNotMap,
    /// A metadata value is not a string.
    #[error("__metadata__[{0}] is not a string")]
    MetadataNotString(String),
    /// An entry without a dtype.
    #[error("tensor {0}: no dtype")]
    NoDtype(String),
    /// An entry with a dtype the format does not have.
    #[error("tensor {tensor}: unknown dtype {dtype:?}")]
    UnknownDtype {
        /// The tensor.
        tensor: String,
        /// Its dtype field.
        dtype: String,
    },
    /// A shape that is not a list of whole numbers.
    #[error("tensor {0}: the shape is not a list of whole numbers")]
    BadShape(String),
    /// Offsets that are not a pair of whole numbers.
    #[error("tensor {0}: data_offsets is not a pair of whole numbers")]
    BadOffsets(String),
    /// Offsets whose end comes before their start.
    #[error("tensor {tensor}: data_offsets [{begin}, {end}] end before they begin")]
    Backwards {
        /// The tensor.
        tensor: String,
        /// Its first offset.
        begin: u64,
        /// Its second offset.
        end: u64,
    },
    /// A shape whose element count overflows.
    #[error("tensor {tensor}: shape {shape:?} overflows when multiplied out")]
    Overflow {
        /// The tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<u64>,
    },
    /// A byte range whose length does not fit the shape.
    #[error(
        "tensor {tensor}: shape {shape:?} of {dtype} needs {needs} bytes, data_offsets [{begin}, {end}] hold {}",
        end - begin
    )]
    WrongSize {
        /// The tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<u64>,
        /// Its dtype.
        dtype: DType,
        /// The bytes the shape needs.
        needs: u64,
        /// Its first offset.
        begin: u64,
        /// Its second offset.
        end: u64,
    },
    /// Bytes between tensors that no tensor owns.
    #[error("tensor {tensor}: bytes {from}..{to} before it belong to no tensor (a hole)")]
    Hole {
        /// The tensor after the hole.
        tensor: String,
        /// Where the hole starts.
        from: u64,
        /// Where it ends.
        to: u64,
    },
    /// Two tensors sharing bytes.
    #[error(
        "tensor {tensor}: its bytes from {begin} overlap the tensor before it (which ends at {previous_end})"
    )]
    Overlap {
        /// The later tensor.
        tensor: String,
        /// Its first offset.
        begin: u64,
        /// Where the tensor before it ends.
        previous_end: u64,
    },
    /// Data that ends before the header says it does.
    #[error(
        "{}the data ends at byte {data_len} but the header needs {needs} (a truncated file?)",
        .tensor.as_ref().map_or(String::new(), |t| format!("tensor {t}: "))
    )]
    Truncated {
        /// The last tensor.
        tensor: Option<String>,
        /// The data's real length.
        data_len: u64,
        /// The length the header needs.
        needs: u64,
    },
    /// Bytes after the last tensor.
    #[error(
        "{} bytes follow the last tensor's data (the header accounts for {used} of {data_len})",
        data_len - used
    )]
    Trailing {
        /// The bytes the tensors use.
        used: u64,
        /// The data's real length.
        data_len: u64,
    },
    /// Anything else the reference crate refused, in its own words.
    #[error("{0}")]
    Refused(String),
}

/// The problem with a header the reference crate refused. `file` is the whole mapped file.
#[must_use]
pub fn explain(file: &[u8], error: &SafeTensorError) -> Problem {
    use SafeTensorError as E;
    let header = header_text(file);
    match error {
        E::HeaderTooSmall => Problem::TooSmall,
        E::HeaderTooLarge => Problem::TooLarge,
        E::InvalidHeaderLength => Problem::PastEnd,
        E::InvalidHeader(_) => Problem::NotUtf8,
        E::InvalidHeaderDeserialization(e) => header
            .and_then(|h| shape_problem(h).err().or_else(|| field_problem(h)))
            .unwrap_or_else(|| {
                Problem::Refused(format!("the header is not a valid safetensors header: {e}"))
            }),
        E::InvalidOffset(_)
        | E::TensorInvalidInfo
        | E::ValidationOverflow
        | E::MisalignedSlice
        | E::MetadataIncompleteBuffer => header
            .and_then(|h| layout_problem(h, file.len()))
            .unwrap_or_else(|| Problem::Refused(format!("the tensor layout is invalid: {error}"))),
        other => Problem::Refused(other.to_string()),
    }
}

/// The header's text when its length is sane and it is UTF-8.
fn header_text(file: &[u8]) -> Option<&str> {
    let length = usize::try_from(u64::from_le_bytes(file.get(..8)?.try_into().ok()?)).ok()?;
    std::str::from_utf8(file.get(8..8usize.checked_add(length)?)?).ok()
}

/// Checks what JSON parsers let pass silently: the header must be one object with unique keys.
pub fn shape_problem(header: &str) -> Result<(), Problem> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if !seen.insert(key.clone()) {
                    return Ok(Some(key));
                }
            }
            Ok(None)
        }
    }
    if !header.trim_start().starts_with('{') {
        return Err(Problem::NotObject);
    }
    match serde_json::Deserializer::from_str(header).deserialize_map(Keys) {
        Ok(None) => Ok(()),
        Ok(Some(name)) => Err(Problem::Duplicate(name)),
        Err(e) => Err(Problem::NotJson(e.to_string())),
    }
}

/// A field of one entry that the format does not allow, with the entry's name.
fn field_problem(header: &str) -> Option<Problem> {
    let Value::Object(entries) = serde_json::from_str(header).ok()? else {
        return None;
    };
    for (name, entry) in &entries {
        if name == "__metadata__" {
            let Value::Object(metadata) = entry else {
                return Some(Problem::MetadataNotMap);
            };
            if let Some((key, _)) = metadata.iter().find(|(_, v)| !v.is_string()) {
                return Some(Problem::MetadataNotString(key.clone()));
            }
            continue;
        }
        let tensor = name.clone();
        let dtype = entry.get("dtype").and_then(Value::as_str);
        match dtype {
            None => return Some(Problem::NoDtype(tensor)),
            Some(d) if DType::from_name(d).is_none() => {
                return Some(Problem::UnknownDtype {
                    tensor,
                    dtype: d.to_owned(),
                });
            }
            Some(_) => {}
        }
        let dims = entry.get("shape").and_then(Value::as_array);
        if dims.is_none_or(|dims| dims.iter().any(|d| d.as_u64().is_none())) {
            return Some(Problem::BadShape(tensor));
        }
        let offsets = entry.get("data_offsets").and_then(Value::as_array);
        if offsets.is_none_or(|o| o.len() != 2 || o.iter().any(|v| v.as_u64().is_none())) {
            return Some(Problem::BadOffsets(tensor));
        }
    }
    None
}

/// Where the tensors' byte ranges go wrong: a size that does not match the shape, a hole, an
/// overlap, or data that ends before or after the file does.
fn layout_problem(header: &str, file_len: usize) -> Option<Problem> {
    let Value::Object(entries) = serde_json::from_str(header).ok()? else {
        return None;
    };
    let mut tensors: Vec<(&str, DType, Vec<u64>, u64, u64)> = Vec::new();
    for (name, entry) in entries.iter().filter(|(n, _)| *n != "__metadata__") {
        let dtype = DType::from_name(entry.get("dtype")?.as_str()?)?;
        let shape = entry
            .get("shape")?
            .as_array()?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<Vec<_>>>()?;
        let offsets = entry.get("data_offsets")?.as_array()?;
        tensors.push((
            name,
            dtype,
            shape,
            offsets.first()?.as_u64()?,
            offsets.get(1)?.as_u64()?,
        ));
    }
    tensors.sort_by_key(|t| (t.3, t.4));
    let data_len = (file_len - 8 - header.len()) as u64;
    let mut expected_start = 0;
    for (name, dtype, shape, begin, end) in &tensors {
        let (tensor, begin, end) = ((*name).to_owned(), *begin, *end);
        if end < begin {
            return Some(Problem::Backwards { tensor, begin, end });
        }
        let numel = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let Some(needs) = numel
            .and_then(|n| n.checked_mul(dtype.bits() as u64))
            .map(|bits| bits.div_ceil(8))
        else {
            let shape = shape.clone();
            return Some(Problem::Overflow { tensor, shape });
        };
        if end - begin != needs {
            return Some(Problem::WrongSize {
                tensor,
                shape: shape.clone(),
                dtype: *dtype,
                needs,
                begin,
                end,
            });
        }
        if begin > expected_start {
            return Some(Problem::Hole {
                tensor,
                from: expected_start,
                to: begin,
            });
        }
        if begin < expected_start {
            return Some(Problem::Overlap {
                tensor,
                begin,
                previous_end: expected_start,
            });
        }
        expected_start = end;
    }
    if expected_start > data_len {
        return Some(Problem::Truncated {
            tensor: tensors.last().map(|t| t.0.to_owned()),
            data_len,
            needs: expected_start,
        });
    }
    if expected_start < data_len {
        return Some(Problem::Trailing {
            used: expected_start,
            data_len,
        });
    }
    None
}
