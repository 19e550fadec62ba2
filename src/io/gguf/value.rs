//! GGUF metadata values: the thirteen value types, read with every length checked against the
//! bytes left, and shown as `tree` prints them (arrays summarized: `[32000 strings]`).

use std::fmt;

use super::cursor::{Cursor, GgufError};

/// A metadata value type, by its GGUF number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// 0: unsigned 8-bit integer.
    U8,
    /// 1: signed 8-bit integer.
    I8,
    /// 2: unsigned 16-bit integer.
    U16,
    /// 3: signed 16-bit integer.
    I16,
    /// 4: unsigned 32-bit integer.
    U32,
    /// 5: signed 32-bit integer.
    I32,
    /// 6: 32-bit float.
    F32,
    /// 7: boolean byte.
    Bool,
    /// 8: a length-prefixed UTF-8 string.
    String,
    /// 9: a typed, counted array.
    Array,
    /// 10: unsigned 64-bit integer.
    U64,
    /// 11: signed 64-bit integer.
    I64,
    /// 12: 64-bit float.
    F64,
}

impl ValueType {
    fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// The type's name as `tree` prints it (`u32`, `str`, `arr`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "str",
            ValueType::Array => "arr",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }

    /// The plural used in an array summary (`[32000 strings]`).
    fn plural(self) -> &'static str {
        match self {
            ValueType::String => "strings",
            ValueType::Array => "arrays",
            ValueType::Bool => "bools",
            ValueType::F32 | ValueType::F64 => "floats",
            _ => "ints",
        }
    }

    /// The fewest bytes one element of this type takes: what a count is checked against.
    fn min_size(self) -> usize {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 12,
        }
    }
}

/// One metadata value. Arrays keep their element type, their length and their first few items
/// (the rest is checked and skipped), so a 256k-token vocabulary costs nothing to hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer type, widened.
    Uint(ValueType, u64),
    /// Any signed integer type, widened.
    Int(ValueType, i64),
    /// F32 or F64, widened exactly.
    Float(ValueType, f64),
    /// A boolean.
    Bool(bool),
    /// A string (invalid UTF-8 replaced, as names are only shown).
    String(String),
    /// An array.
    Array(Array),
}

/// A metadata array: what it holds and how many, with its first items (as many as the reader
/// was asked to keep: [`PREVIEW`] for text and JSON, more for the app's expanded rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The element type.
    pub item: ValueType,
    /// The number of elements.
    pub len: u64,
    /// The first elements (at most the count the reader kept).
    pub head: Vec<Value>,
}

/// Array items kept for `tree`'s text and JSON.
pub const PREVIEW: usize = 8;

/// Arrays nested deeper than this are refused (GGUF writers nest at most once in practice).
const MAX_DEPTH: usize = 3;

/// The longest metadata string read (a chat template is a few KiB; 64 MiB is no real file's).
const MAX_STRING: u64 = 64 << 20;

impl Value {
    /// The value's type.
    #[must_use]
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Uint(t, _) | Value::Int(t, _) | Value::Float(t, _) => *t,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
        }
    }

    /// The value as a JSON value: arrays as `{"type", "len", "head"}`.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Uint(_, v) => (*v).into(),
            Value::Int(_, v) => (*v).into(),
            Value::Float(_, v) => serde_json::Number::from_f64(*v)
                .map_or_else(|| v.to_string().into(), serde_json::Value::Number),
            Value::Bool(b) => (*b).into(),
            Value::String(s) => s.as_str().into(),
            Value::Array(a) => serde_json::json!({
                "type": a.item.name(),
                "len": a.len,
                "head": a.head.iter().map(Value::to_json).collect::<Vec<_>>(),
            }),
        }
    }

    /// The unsigned integer this value holds, if it holds one (of any integer type).
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(_, v) => Some(*v),
            Value::Int(_, v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Uint(_, v) => write!(f, "{v}"),
            Value::Int(_, v) => write!(f, "{v}"),
            Value::Float(_, v) => write!(f, "{v}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Array(a) => write!(f, "[{} {}]", a.len, a.item.plural()),
        }
    }
}

/// Reads a value of type id `type_id` at the cursor, keeping the first `keep` items of an array.
pub(super) fn read_value(
    c: &mut Cursor<'_>,
    type_id: u32,
    keep: usize,
) -> Result<Value, GgufError> {
    read_typed(c, value_type(c, type_id)?, 0, keep)
}

fn value_type(c: &Cursor<'_>, id: u32) -> Result<ValueType, GgufError> {
    ValueType::from_id(id).ok_or(GgufError::ValueType {
        offset: c.offset(),
        id,
    })
}

/// A GGUF string: a u64 length checked against the bytes left, then the bytes.
pub(super) fn read_string(c: &mut Cursor<'_>, cap: u64) -> Result<String, GgufError> {
    let at = c.offset();
    let len = c.u64()?;
    if len > cap {
        return Err(GgufError::OverCap {
            offset: at,
            what: "string",
            len,
            cap,
        });
    }
    let bytes = c.take(len, "string")?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn read_typed(
    c: &mut Cursor<'_>,
    ty: ValueType,
    depth: usize,
    keep: usize,
) -> Result<Value, GgufError> {
    Ok(match ty {
        ValueType::U8 => Value::Uint(ty, u64::from(c.bytes::<1>()?[0])),
        ValueType::I8 => Value::Int(ty, i64::from(c.bytes::<1>()?[0] as i8)),
        ValueType::U16 => Value::Uint(ty, u64::from(u16::from_le_bytes(c.bytes()?))),
        ValueType::I16 => Value::Int(ty, i64::from(i16::from_le_bytes(c.bytes()?))),
        ValueType::U32 => Value::Uint(ty, u64::from(c.u32()?)),
        ValueType::I32 => Value::Int(ty, i64::from(i32::from_le_bytes(c.bytes()?))),
        ValueType::F32 => Value::Float(ty, f64::from(f32::from_le_bytes(c.bytes()?))),
        ValueType::Bool => Value::Bool(c.bytes::<1>()?[0] != 0),
        ValueType::String => Value::String(read_string(c, MAX_STRING)?),
        ValueType::U64 => Value::Uint(ty, c.u64()?),
        ValueType::I64 => Value::Int(ty, i64::from_le_bytes(c.bytes()?)),
        ValueType::F64 => Value::Float(ty, f64::from_le_bytes(c.bytes()?)),
        ValueType::Array => {
            let at = c.offset();
            if depth >= MAX_DEPTH {
                return Err(GgufError::TooDeep { offset: at });
            }
            let item = c.u32()?;
            let item = value_type(c, item)?;
            let len = c.u64()?;
            // Every element takes at least min_size bytes: a count the rest of the file cannot
            // hold is refused before anything is read or allocated.
            if len.saturating_mul(item.min_size() as u64) > c.remaining() as u64 {
                return Err(GgufError::TooLong {
                    offset: at,
                    what: "array",
                    len,
                });
            }
            let mut head = Vec::new();
            // Nested arrays keep only a preview each: the app expands one level.
            for _ in 0..len.min(keep as u64) {
                head.push(read_typed(c, item, depth + 1, keep.min(PREVIEW))?);
            }
            skip(c, item, len.saturating_sub(keep as u64), depth + 1)?;
            Value::Array(Array { item, len, head })
        }
    })
}

/// Steps over `count` elements of type `ty` (checked as they are read, but not kept).
fn skip(c: &mut Cursor<'_>, ty: ValueType, count: u64, depth: usize) -> Result<(), GgufError> {
    match ty {
        ValueType::String => {
            for _ in 0..count {
                let len = c.u64()?;
                c.take(len, "string")?;
            }
        }
        ValueType::Array => {
            for _ in 0..count {
                read_typed(c, ty, depth, 0)?;
            }
        }
        fixed => {
            c.take(count.saturating_mul(fixed.min_size() as u64), "array")?;
        }
    }
    Ok(())
}
