//! Why a safetensors header was refused, in one line that names the tensor at fault.
//!
//! The reference crate decides validity; this module only turns its verdict into words a user can
//! act on, re-reading the (already bounded) header to find the culprit.

use std::collections::HashSet;
use std::fmt;

use safetensors::SafeTensorError;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::tensor::DType;
use crate::text::escape;

/// The sentence for a header the reference crate refused. `file` is the whole mapped file.
#[must_use]
pub fn explain(file: &[u8], error: &SafeTensorError) -> String {
    use SafeTensorError as E;
    let header = header_text(file);
    match error {
        E::HeaderTooSmall => "the file is shorter than the 8-byte header length".into(),
        E::HeaderTooLarge => "the header length is over the 100 MB limit".into(),
        E::InvalidHeaderLength => {
            "the header length points past the end of the file (truncated?)".into()
        }
        E::InvalidHeader(_) => "the header is not valid UTF-8".into(),
        E::InvalidHeaderDeserialization(e) => header
            .and_then(|h| shape_problem(h).err().or_else(|| field_problem(h)))
            .unwrap_or_else(|| format!("the header is not a valid safetensors header: {e}")),
        E::InvalidOffset(_)
        | E::TensorInvalidInfo
        | E::ValidationOverflow
        | E::MisalignedSlice
        | E::MetadataIncompleteBuffer => header
            .and_then(|h| layout_problem(h, file.len()))
            .unwrap_or_else(|| format!("the tensor layout is invalid: {error}")),
        other => other.to_string(),
    }
}

/// The header's text when its length is sane and it is UTF-8.
fn header_text(file: &[u8]) -> Option<&str> {
    let length = usize::try_from(u64::from_le_bytes(file.get(..8)?.try_into().ok()?)).ok()?;
    std::str::from_utf8(file.get(8..8usize.checked_add(length)?)?).ok()
}

/// Checks what JSON parsers let pass silently: the header must be one object with unique keys.
pub fn shape_problem(header: &str) -> Result<(), String> {
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
        return Err("the header is not a JSON object".into());
    }
    match serde_json::Deserializer::from_str(header).deserialize_map(Keys) {
        Ok(None) => Ok(()),
        Ok(Some(name)) => Err(format!("the header names tensor {} twice", escape(&name))),
        Err(e) => Err(format!("the header is not valid JSON: {e}")),
    }
}

/// A field of one entry that the format does not allow, with the entry's name.
fn field_problem(header: &str) -> Option<String> {
    let Value::Object(entries) = serde_json::from_str(header).ok()? else {
        return None;
    };
    for (name, entry) in &entries {
        if name == "__metadata__" {
            let Value::Object(metadata) = entry else {
                return Some("__metadata__ is not a map of strings".into());
            };
            if let Some((key, _)) = metadata.iter().find(|(_, v)| !v.is_string()) {
                return Some(format!("__metadata__[{}] is not a string", escape(key)));
            }
            continue;
        }
        let tensor = escape(name);
        let dtype = entry.get("dtype").and_then(Value::as_str);
        match dtype {
            None => return Some(format!("tensor {tensor}: no dtype")),
            Some(d) if DType::from_name(d).is_none() => {
                return Some(format!("tensor {tensor}: unknown dtype {:?}", escape(d)));
            }
            Some(_) => {}
        }
        let dims = entry.get("shape").and_then(Value::as_array);
        if dims.is_none_or(|dims| dims.iter().any(|d| d.as_u64().is_none())) {
            return Some(format!(
                "tensor {tensor}: the shape is not a list of whole numbers"
            ));
        }
        let offsets = entry.get("data_offsets").and_then(Value::as_array);
        if offsets.is_none_or(|o| o.len() != 2 || o.iter().any(|v| v.as_u64().is_none())) {
            return Some(format!(
                "tensor {tensor}: data_offsets is not a pair of whole numbers"
            ));
        }
    }
    None
}

/// Where the tensors' byte ranges go wrong: a size that does not match the shape, a hole, an
/// overlap, or data that ends before or after the file does.
fn layout_problem(header: &str, file_len: usize) -> Option<String> {
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
        let name = escape(name);
        if end < begin {
            return Some(format!(
                "tensor {name}: data_offsets [{begin}, {end}] end before they begin"
            ));
        }
        let numel = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let Some(bytes) = numel
            .and_then(|n| n.checked_mul(dtype.bits() as u64))
            .map(|bits| bits.div_ceil(8))
        else {
            return Some(format!(
                "tensor {name}: shape {shape:?} overflows when multiplied out"
            ));
        };
        if end - begin != bytes {
            return Some(format!(
                "tensor {name}: shape {shape:?} of {dtype} needs {bytes} bytes, data_offsets [{begin}, {end}] hold {}",
                end - begin
            ));
        }
        if *begin > expected_start {
            return Some(format!(
                "tensor {name}: bytes {expected_start}..{begin} before it belong to no tensor (a hole)"
            ));
        }
        if *begin < expected_start {
            return Some(format!(
                "tensor {name}: its bytes from {begin} overlap the tensor before it (which ends at {expected_start})"
            ));
        }
        expected_start = *end;
    }
    if expected_start > data_len {
        let name = tensors
            .last()
            .map_or(String::new(), |t| format!("tensor {}: ", escape(t.0)));
        return Some(format!(
            "{name}the data ends at byte {data_len} but the header needs {expected_start} (a truncated file?)"
        ));
    }
    if expected_start < data_len {
        return Some(format!(
            "{} bytes follow the last tensor's data (the header accounts for {expected_start} of {data_len})",
            data_len - expected_start
        ));
    }
    None
}
