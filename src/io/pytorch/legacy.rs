//! The legacy layout (`torch.save(..., _use_new_zipfile_serialization=False)`, and every file of
//! torch < 1.6): five pickles in a row — the magic number, the protocol version, the system info,
//! the object, the sorted storage keys — then each storage in key order as an 8-byte element
//! count followed by its bytes.

use std::collections::HashMap;
use std::fs::File;
use std::rc::Rc;
use std::sync::Arc;

use memmap2::Mmap;

use super::views::{Backing, swap_unit};
use super::{Contents, Error, LEGACY_MAGIC, assemble, read_at};
use crate::io::pickle::{self, Storage};

/// The protocol version torch writes after the magic number.
const PROTOCOL_VERSION: i64 = 1001;

/// Opens a legacy-layout file mapped as `map`; `shown` names it in warnings.
pub(super) fn open(map: &Arc<Mmap>, file: &File, shown: &str) -> Result<Contents, Error> {
    let next = |at: usize| pickle::unpickle(&map[at..], at);
    let magic = next(0)?;
    if !matches!(&magic.root, pickle::Value::BigInt(b) if **b == LEGACY_MAGIC) {
        return Err(Error::Layout(
            "the first pickle is not torch's magic number".into(),
        ));
    }
    let protocol = next(magic.end)?;
    if protocol.root.as_int() != Some(PROTOCOL_VERSION) {
        return Err(Error::Layout(format!(
            "the legacy protocol version is not {PROTOCOL_VERSION}"
        )));
    }
    let sys_info = next(protocol.end)?;
    let big_endian = little_endian_flag(&sys_info) == Some(false);
    let object = next(sys_info.end)?;
    let keys = next(object.end)?;
    let key_list: Vec<String> = keys
        .heap
        .sequence(&keys.root)
        .ok_or_else(|| Error::Layout("the storage key list is not a list".into()))?
        .iter()
        .map(|k| match k {
            pickle::Value::Str(s) => Ok(s.to_string()),
            _ => Err(Error::Layout("a storage key is not a string".into())),
        })
        .collect::<Result<_, _>>()?;

    // Every storage the object pickle names, by key: its dtype gives the size of its elements.
    let mut named: HashMap<&str, &Rc<Storage>> = HashMap::new();
    for o in object.heap.objects() {
        if let pickle::Object::Storage(s) = o {
            named.insert(&s.key, s);
        }
    }
    let mut spans: HashMap<String, std::ops::Range<usize>> = HashMap::new();
    let mut at = keys.end;
    for key in &key_list {
        let storage = named.get(key.as_str()).ok_or_else(|| {
            Error::Layout(format!(
                "storage {key} is in the key list but no tensor uses it"
            ))
        })?;
        let count = read_at::<8>(file, at)
            .filter(|_| at.checked_add(8).is_some_and(|end| end <= map.len()))
            .map(|b| {
                if big_endian {
                    u64::from_be_bytes(b)
                } else {
                    u64::from_le_bytes(b)
                }
            })
            .ok_or_else(|| truncated(key, at, map.len()))?;
        let start = at + 8;
        let end = count
            .checked_mul(storage.dtype.size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= map.len())
            .ok_or_else(|| truncated(key, start, map.len()))?;
        spans.insert(key.clone(), start..end);
        at = end;
    }

    let mut storage = |s: &Storage| -> Result<Backing, Error> {
        let span = spans.get(&s.key).cloned().ok_or_else(|| {
            Error::Layout(format!(
                "storage {} is missing from the file's storage list",
                s.key
            ))
        })?;
        let backing = Backing::Mapped(Arc::clone(map), span);
        Ok(if big_endian {
            backing.swapped(swap_unit(s))
        } else {
            backing
        })
    };
    assemble(&object, shown, &mut storage, map.len())
}

fn truncated(key: &str, at: usize, len: usize) -> Error {
    Error::Layout(format!(
        "storage {key}: its data at offset {at} runs past the end of the file ({len} bytes; truncated?)"
    ))
}

/// The `little_endian` entry of the system-info dict.
fn little_endian_flag(sys_info: &pickle::Unpickled) -> Option<bool> {
    let pickle::Value::Obj(id) = sys_info.root else {
        return None;
    };
    let pickle::Object::Dict(dict) = sys_info.heap.get(id) else {
        return None;
    };
    dict.entries.iter().find_map(|(k, v)| match (k, v) {
        (pickle::Value::Str(k), pickle::Value::Bool(b)) if &**k == "little_endian" => Some(*b),
        _ => None,
    })
}
