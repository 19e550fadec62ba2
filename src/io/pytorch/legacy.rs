//! The legacy layout (`torch.save(..., _use_new_zipfile_serialization=False)`, and every file of
//! torch < 1.6): five pickles in a row — the magic number, the protocol version, the system info,
//! the object, the sorted storage keys — then each storage in key order as an 8-byte element
//! count followed by its bytes.

use std::collections::HashMap;
use std::rc::Rc;

use super::foreign::Foreign;
use super::record::{Header, Record};
use super::store::Store;
use super::{Contents, Error, LEGACY_MAGIC, assemble};
use crate::io::pickle::{self, Storage};

/// The protocol version torch writes after the magic number.
const PROTOCOL_VERSION: i64 = 1001;

/// A legacy file's pickles, parsed: what the storages that follow them need.
pub(super) struct Pickles {
    /// The object pickle.
    object: pickle::Unpickled,
    /// The storage keys, in the order their records follow.
    keys: Vec<String>,
    /// Where the first storage's record starts: just past the last pickle.
    end: usize,
    big_endian: bool,
}

/// Runs the five pickles at the start of `prefix` (a file's first bytes). All five are run for the
/// foreign globals they name: torch.load unpickles each of them, so a call hidden in the magic
/// number's pickle would run as surely as one in the object's.
pub(super) fn pickles(prefix: &[u8], foreign: &mut Foreign) -> Result<Pickles, Error> {
    let mut next = |at: usize| foreign.unpickle(prefix.get(at..).unwrap_or_default(), at);
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
    let key_list = next(object.end)?;
    let keys: Vec<String> = key_list
        .heap
        .sequence(&key_list.root)
        .ok_or_else(|| Error::Layout("the storage key list is not a list".into()))?
        .iter()
        .map(|k| match k {
            pickle::Value::Str(s) => Ok(s.to_string()),
            _ => Err(Error::Layout("a storage key is not a string".into())),
        })
        .collect::<Result<_, _>>()?;
    Ok(Pickles {
        object,
        keys,
        end: key_list.end,
        big_endian,
    })
}

/// Opens a legacy-layout file from `store`: its pickles from the bytes at hand, then each storage's
/// record where the ones before it end, each as long as its pickle says (its count checked against
/// that when its header is read).
pub(super) fn open(store: &Store, foreign: &mut Foreign) -> Result<Contents, Error> {
    let Pickles {
        object,
        keys,
        end,
        big_endian,
    } = pickles(store.prefix(), foreign)?;
    // Every storage the object pickle names, by key: its dtype gives the size of its elements.
    let mut named: HashMap<&str, &Rc<Storage>> = HashMap::new();
    for o in object.heap.objects() {
        if let pickle::Object::Storage(s) = o {
            named.insert(&s.key, s);
        }
    }
    let mut records: HashMap<String, Record> = HashMap::new();
    let mut at = end as u64;
    for key in &keys {
        let storage = named.get(key.as_str()).ok_or_else(|| {
            Error::Layout(format!(
                "storage {key} is in the key list but no tensor uses it"
            ))
        })?;
        let record = Record {
            at,
            header: Header::Count {
                numel: storage.numel,
                big_endian,
            },
            len: storage.numel.saturating_mul(storage.dtype.size() as u64),
            what: format!("storage {key}"),
        };
        // Past the file's end, the chain stops here: the storage is refused when a tensor uses it.
        at = at.saturating_add(8).saturating_add(record.len);
        records.insert(key.clone(), record);
    }

    let mut record = |s: &Storage| -> Result<Record, Error> {
        records.get(&s.key).cloned().ok_or_else(|| {
            Error::Layout(format!(
                "storage {} is missing from the file's storage list",
                s.key
            ))
        })
    };
    assemble(&object, store, &mut record, big_endian)
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
