//! The common case of a safetensors header, read in one pass straight from the mapped bytes.
//!
//! Why not the reference crate's `read_metadata` here: it deserializes through serde's `flatten`,
//! which buffers the whole header as an owned value tree (a `String` for every key of every entry),
//! then copies it into a `HashMap<String, TensorInfo>`, and its `tensors()` clones every name again
//! into a second map. For a million tensors that is tens of millions of allocations and most of
//! the time `tree` took. This reader borrows names from the map where the JSON has no escapes and
//! allocates one name and one shape per tensor.
//!
//! It accepts only what the crate accepts, by the crate's own rules (offsets contiguous from 0,
//! checked element and bit counts, sizes matching shapes, data ending at the file's end), and only
//! headers of the plain shape every writer produces. For anything else it answers `None`, and the
//! caller asks the crate, whose verdict (and [`super::diagnose`]'s words for it) then stand: so a
//! refusal always reads as it did, and an odd but valid header still opens.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher as _, RandomState};

use serde::de::{self, Deserializer as _, MapAccess, SeqAccess, Visitor};

use super::{Header, HeaderEntry};
use crate::tensor::DType;

/// The reference crate's cap on the header length (its `MAX_HEADER_SIZE`).
const MAX_HEADER: usize = 100_000_000;

/// The validated header of a file of `file_len` bytes whose first bytes are `file` (the whole header at
/// least), or `None` when the file is not a plain, valid one.
pub(super) fn read(file: &[u8], file_len: u64) -> Option<Header> {
    let length = usize::try_from(u64::from_le_bytes(file.get(..8)?.try_into().ok()?)).ok()?;
    if length > MAX_HEADER {
        return None;
    }
    let data_start = length.checked_add(8)?;
    let text = std::str::from_utf8(file.get(8..data_start)?).ok()?;
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let mut json = serde_json::Deserializer::from_str(text);
    let Top {
        mut entries,
        metadata,
    } = json.deserialize_map(TopVisitor).ok()?;
    json.end().ok()?;
    // JSON parsers keep one of two equal keys silently; a checkpoint must not.
    if has_equal_names(&entries) {
        return None;
    }
    // The crate's order: by data offsets (a stable sort, so equal ranges keep the header's order).
    entries.sort_by_key(|e| e.offsets);
    let mut end = 0usize;
    for entry in &entries {
        let (begin, stop) = entry.offsets;
        if begin != end || stop < begin {
            return None;
        }
        end = stop;
        let numel = entry
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        let bits = numel.checked_mul(entry.dtype.bits())?;
        if bits % 8 != 0 || bits / 8 != stop - begin {
            return None;
        }
    }
    if (data_start.checked_add(end)? as u64) != file_len {
        return None;
    }
    let tensors = entries
        .into_iter()
        .map(|e| HeaderEntry {
            name: e.name.into_owned(),
            dtype: e.dtype,
            shape: e.shape,
            offsets: e.offsets,
        })
        .collect();
    Some(Header {
        data_start,
        tensors,
        metadata: metadata.unwrap_or_default(),
    })
}

/// Whether two entries share a name. The names' keyed hashes are sorted and only equal hashes
/// compare names: a million names are read in order once, where a hash set would probe a table
/// ten times their size at random. The key is the process's random one, so a file cannot choose
/// names whose hashes collide.
fn has_equal_names(entries: &[Entry]) -> bool {
    let state = RandomState::new();
    let mut hashes: Vec<(u64, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (state.hash_one(&*e.name), i))
        .collect();
    hashes.sort_unstable();
    hashes.chunk_by(|a, b| a.0 == b.0).any(|same_hash| {
        same_hash.iter().enumerate().any(|(k, &(_, i))| {
            same_hash[k + 1..]
                .iter()
                .any(|&(_, j)| entries[i].name == entries[j].name)
        })
    })
}

/// One tensor entry, its name borrowed from the header when it holds no escape.
struct Entry<'a> {
    name: Cow<'a, str>,
    dtype: DType,
    shape: Vec<usize>,
    offsets: (usize, usize),
}

/// The header's entries in file order, and `__metadata__` when present.
struct Top<'a> {
    entries: Vec<Entry<'a>>,
    metadata: Option<BTreeMap<String, String>>,
}

/// Any refusal: the caller falls back to the reference crate, so no reason is kept.
fn unsure<E: de::Error>() -> E {
    E::custom("not a plain header")
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a safetensors header")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut top = Top {
            entries: Vec::with_capacity(map.size_hint().unwrap_or(0)),
            metadata: None,
        };
        let mut dtypes = Dtypes::default();
        while let Some(Text(name)) = map.next_key()? {
            if name == "__metadata__" {
                if top.metadata.is_some() {
                    return Err(unsure());
                }
                top.metadata = Some(map.next_value()?);
                continue;
            }
            let Info {
                dtype,
                shape,
                offsets,
            } = map.next_value()?;
            let dtype = dtypes.get(&dtype).ok_or_else(unsure)?;
            top.entries.push(Entry {
                name,
                dtype,
                shape,
                offsets,
            });
        }
        Ok(top)
    }
}

/// A JSON string, borrowed from the input unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// One entry's fields: exactly `dtype`, `shape` and `data_offsets`, each once.
struct Info<'a> {
    dtype: Cow<'a, str>,
    shape: Vec<usize>,
    offsets: (usize, usize),
}

impl<'de> de::Deserialize<'de> for Info<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(InfoVisitor)
    }
}

struct InfoVisitor;

impl<'de> Visitor<'de> for InfoVisitor {
    type Value = Info<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tensor entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Info<'de>, A::Error> {
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        while let Some(Text(field)) = map.next_key()? {
            match &*field {
                "dtype" if dtype.is_none() => dtype = Some(map.next_value::<Text>()?.0),
                "shape" if shape.is_none() => shape = Some(map.next_value::<Shape>()?.0),
                "data_offsets" if offsets.is_none() => offsets = Some(map.next_value()?),
                _ => return Err(unsure()),
            }
        }
        match (dtype, shape, offsets) {
            (Some(dtype), Some(shape), Some(offsets)) => Ok(Info {
                dtype,
                shape,
                offsets,
            }),
            _ => Err(unsure()),
        }
    }
}

/// A shape: a list of whole numbers, read without serde's size hint (the count comes from the file).
struct Shape(Vec<usize>);

impl<'de> de::Deserialize<'de> for Shape {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShapeVisitor;
        impl<'de> Visitor<'de> for ShapeVisitor {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of whole numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut dims = Vec::new();
                while let Some(dim) = seq.next_element()? {
                    dims.push(dim);
                }
                Ok(Shape(dims))
            }
        }
        deserializer.deserialize_seq(ShapeVisitor)
    }
}

/// The dtype names met so far, each checked once against ours and the reference crate's list:
/// a header names a handful of dtypes over and over.
#[derive(Default)]
struct Dtypes {
    known: Vec<(String, DType)>,
}

impl Dtypes {
    fn get(&mut self, name: &str) -> Option<DType> {
        if let Some((_, dtype)) = self.known.iter().find(|(n, _)| n == name) {
            return Some(*dtype);
        }
        let dtype = DType::from_name(name).filter(|d| super::format_order(*d).is_some())?;
        self.known.push((name.to_owned(), dtype));
        Some(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::{Entry, has_equal_names};
    use crate::tensor::DType;

    fn entries(names: &[&'static str]) -> Vec<Entry<'static>> {
        names
            .iter()
            .map(|&name| Entry {
                name: name.into(),
                dtype: DType::F32,
                shape: Vec::new(),
                offsets: (0, 0),
            })
            .collect()
    }

    #[test]
    fn a_name_given_twice_is_found_wherever_it_stands() {
        assert!(!has_equal_names(&entries(&["a", "b", "c", "ab"])));
        assert!(has_equal_names(&entries(&["a", "b", "c", "a"])));
        assert!(has_equal_names(&entries(&["x", "y", "y"])));
        assert!(!has_equal_names(&entries(&[])));
    }
}
