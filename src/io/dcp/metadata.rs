//! A distributed checkpoint's `.metadata` pickle read into plain types: each entry's full shape and
//! dtype, its chunks (offsets and sizes within the whole tensor) and where each chunk's bytes are
//! (file, offset, length, stream transforms). The pickle is run by [`crate::io::pickle`], whose
//! allow-list keeps torch's DCP dataclasses as records of their fields; nothing is constructed.

use std::collections::HashMap;
use std::rc::Rc;

use super::{DcpError, Problem};
use crate::io::pickle::{Heap, Object, TorchDtype, Unpickled, Value};

/// Where a chunk's (or a non-tensor entry's) bytes are: `_StorageInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, relative to the folder, as the metadata names it (raw; shared with the
    /// pickle's string, which the metadata names once per file).
    pub file: Rc<str>,
    /// The first byte within the file.
    pub offset: u64,
    /// How many bytes.
    pub length: u64,
    /// Stream transforms (compression and other extensions) the bytes went through, outermost
    /// first; empty for plain bytes.
    pub transforms: Vec<String>,
}

/// One chunk of a tensor: `ChunkStorageMetadata` and its `_StorageInfo`.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Its first element's index in the whole tensor, per dimension.
    pub offsets: Vec<u64>,
    /// Its extent per dimension.
    pub sizes: Vec<u64>,
    /// Where its bytes are.
    pub location: Location,
}

/// A tensor entry: `TensorStorageMetadata`.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    /// Its element type.
    pub dtype: TorchDtype,
    /// The whole tensor's shape.
    pub size: Vec<u64>,
    /// Its chunks, in the metadata's order.
    pub chunks: Vec<Chunk>,
}

/// What one state-dict key holds.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A tensor, maybe in many chunks.
    Tensor(TensorEntry),
    /// Any other object (`BytesStorageMetadata`): a `torch.save` of it, at this location.
    Bytes(Location),
}

/// Where an entry's bytes are, by its name: a non-tensor entry's, and each chunk's by its offsets.
type Storages = HashMap<Rc<str>, Stored>;

/// The `storage_data` entries of one name.
#[derive(Default)]
struct Stored {
    /// A non-tensor entry's (its index has no offset).
    whole: Option<Location>,
    /// A tensor's chunks, by offsets.
    chunks: HashMap<Vec<u64>, Location>,
}

/// The most chunks one tensor may have: each is compared with its neighbours for overlap.
const MAX_CHUNKS: usize = 1 << 14;

const METADATA: &str = "torch.distributed.checkpoint.metadata.";

/// The entries of an unpickled `.metadata`, by fully qualified name, in the metadata's order.
pub fn entries(unpickled: &Unpickled) -> Result<Vec<(String, Entry)>, DcpError> {
    let heap = &unpickled.heap;
    let root = Record::of(heap, &unpickled.root, "Metadata")?;
    let storage = storage_data(heap, root.field("storage_data")?)?;
    let mut out = Vec::new();
    for (key, value) in dict(heap, root.field("state_dict_metadata")?)? {
        let Value::Str(fqn) = key else {
            return Err(layout("a state_dict_metadata key is not a string"));
        };
        let fqn = fqn.to_string();
        let at = |problem| DcpError::Tensor {
            tensor: fqn.clone(),
            problem,
        };
        let class = record_class(heap, value).unwrap_or_default();
        let entry = if class == format!("{METADATA}BytesStorageMetadata") {
            let location = storage
                .get(fqn.as_str())
                .and_then(|s| s.whole.clone())
                .ok_or_else(|| at(Problem::NoStorage(Vec::new())))?;
            Entry::Bytes(location)
        } else {
            Entry::Tensor(tensor_entry(heap, value, &fqn, &storage)?)
        };
        out.push((fqn, entry));
    }
    Ok(out)
}

/// `storage_data`: `{MetadataIndex(fqn, offset): _StorageInfo}`.
fn storage_data(heap: &Heap, value: &Value) -> Result<Storages, DcpError> {
    let mut out = HashMap::new();
    for (key, info) in dict(heap, value)? {
        let index = Record::of(heap, key, "MetadataIndex")?;
        let fqn = shared(index.field("fqn")?)?;
        let offset = match index.get("offset") {
            None | Some(Value::None) => None,
            Some(v) => Some(ints(heap, v)?),
        };
        let info = Record::with_class(
            heap,
            info,
            "torch.distributed.checkpoint.filesystem._StorageInfo",
        )?;
        let transforms = match info.get("transform_descriptors") {
            None | Some(Value::None) => Vec::new(),
            Some(v) => heap
                .sequence(v)
                .ok_or_else(|| layout("transform_descriptors is not a list"))?
                .iter()
                .map(string)
                .collect::<Result<_, _>>()?,
        };
        let location = Location {
            file: shared(info.field("relative_path")?)?,
            offset: int(info.field("offset")?)?,
            length: int(info.field("length")?)?,
            transforms,
        };
        let stored: &mut Stored = out.entry(fqn).or_default();
        match offset {
            Some(offsets) => {
                stored.chunks.insert(offsets, location);
            }
            None => stored.whole = Some(location),
        }
    }
    Ok(out)
}

/// One `TensorStorageMetadata`, its chunks checked: inside the tensor, not overlapping, covering it.
fn tensor_entry(
    heap: &Heap,
    value: &Value,
    fqn: &str,
    storage: &Storages,
) -> Result<TensorEntry, DcpError> {
    let at = |problem| DcpError::Tensor {
        tensor: fqn.to_owned(),
        problem,
    };
    let record = Record::of(heap, value, "TensorStorageMetadata")?;
    let properties = Record::of(heap, record.field("properties")?, "TensorProperties")?;
    // TensorProperties pickles its fields as a tuple: (dtype, layout, requires_grad, ...).
    let dtype = match properties.state.first() {
        Some(Value::Global(g)) => g
            .path
            .strip_prefix("torch.")
            .and_then(TorchDtype::from_torch_name),
        _ => None,
    }
    .ok_or_else(|| at(Problem::Dtype))?;
    let size = ints(heap, record.field("size")?)?;
    let items = heap
        .sequence(record.field("chunks")?)
        .ok_or_else(|| layout("chunks is not a list"))?;
    if items.len() > MAX_CHUNKS {
        return Err(at(Problem::TooManyChunks(items.len())));
    }
    let mut extents = Vec::with_capacity(items.len());
    for item in items {
        let chunk = Record::of(heap, item, "ChunkStorageMetadata")?;
        let offsets = ints(heap, chunk.field("offsets")?)?;
        let sizes = ints(heap, chunk.field("sizes")?)?;
        let inside = offsets.len() == size.len()
            && sizes.len() == size.len()
            && (0..size.len()).all(|d| {
                offsets[d]
                    .checked_add(sizes[d])
                    .is_some_and(|e| e <= size[d])
            });
        if !inside {
            return Err(at(Problem::Outside {
                offsets,
                sizes,
                size: size.clone(),
            }));
        }
        extents.push((offsets, sizes));
    }
    check_cover(&size, &extents).map_err(at)?;
    let stored = storage.get(fqn);
    let chunks = extents
        .into_iter()
        .map(|(offsets, sizes)| {
            let location = stored
                .and_then(|s| s.chunks.get(offsets.as_slice()))
                .ok_or_else(|| at(Problem::NoStorage(offsets.clone())))?
                .clone();
            Ok(Chunk {
                offsets,
                sizes,
                location,
            })
        })
        .collect::<Result<_, DcpError>>()?;
    Ok(TensorEntry {
        dtype,
        size,
        chunks,
    })
}

/// Chunks (each inside the tensor) that do not overlap and whose volumes add up to the tensor's
/// cover it exactly.
fn check_cover(size: &[u64], chunks: &[(Vec<u64>, Vec<u64>)]) -> Result<(), Problem> {
    let volume = |sizes: &[u64]| sizes.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let total = volume(size).ok_or(Problem::Absurd)?;
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    let first = |i: usize| chunks[i].0.first().copied().unwrap_or(0);
    order.sort_unstable_by_key(|&i| first(i));
    let mut covered = 0u64;
    for (k, &i) in order.iter().enumerate() {
        let (a_offsets, a_sizes) = &chunks[i];
        covered = covered
            .checked_add(volume(a_sizes).ok_or(Problem::Absurd)?)
            .ok_or(Problem::Absurd)?;
        let end = a_offsets.first().map_or(1, |o| o + a_sizes[0]);
        // Sorted by the first dimension's offset: only the chunks starting before this one ends
        // can meet it.
        for &j in order[k + 1..].iter().take_while(|&&j| first(j) < end) {
            let (b_offsets, b_sizes) = &chunks[j];
            let meet = (0..size.len()).all(|d| {
                a_offsets[d] < b_offsets[d] + b_sizes[d] && b_offsets[d] < a_offsets[d] + a_sizes[d]
            });
            let empty = a_sizes.contains(&0) || b_sizes.contains(&0);
            if meet && !empty {
                return Err(Problem::Overlap(a_offsets.clone(), b_offsets.clone()));
            }
        }
    }
    if covered != total {
        return Err(Problem::Incomplete { covered, total });
    }
    Ok(())
}

fn layout(what: &str) -> DcpError {
    DcpError::Layout(what.to_owned())
}

/// A record: an object of one of the allowed DCP classes, with its BUILD state.
struct Record<'h> {
    class: &'h str,
    /// A dataclass's `__dict__` as `(name, value)`; for a tuple state, its items as values.
    fields: &'h [(Value, Value)],
    state: &'h [Value],
}

impl<'h> Record<'h> {
    fn of(heap: &'h Heap, value: &Value, class: &str) -> Result<Self, DcpError> {
        Record::with_class(heap, value, &format!("{METADATA}{class}"))
    }

    fn with_class(heap: &'h Heap, value: &Value, class: &str) -> Result<Self, DcpError> {
        let wrong = || DcpError::Layout(format!("expected a {class}"));
        let Value::Obj(id) = value else {
            return Err(wrong());
        };
        let Object::Opaque(o) = heap.get(*id) else {
            return Err(wrong());
        };
        if &*o.class != class {
            return Err(wrong());
        }
        let (fields, state): (&[(Value, Value)], &[Value]) = match &o.state {
            Some(Value::Obj(s)) => match heap.get(*s) {
                Object::Dict(d) => (&d.entries, &[]),
                Object::Tuple(items) => (&[], items),
                _ => (&[], &[]),
            },
            _ => (&[], &[]),
        };
        Ok(Record {
            class: &o.class,
            fields,
            state,
        })
    }

    fn get(&self, name: &str) -> Option<&'h Value> {
        self.fields
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if &**s == name))
            .map(|(_, v)| v)
    }

    fn field(&self, name: &str) -> Result<&'h Value, DcpError> {
        self.get(name)
            .ok_or_else(|| DcpError::Layout(format!("a {} without {name}", self.class)))
    }
}

fn record_class<'h>(heap: &'h Heap, value: &Value) -> Option<&'h str> {
    match value {
        Value::Obj(id) => match heap.get(*id) {
            Object::Opaque(o) => Some(&o.class),
            _ => None,
        },
        _ => None,
    }
}

fn dict<'h>(heap: &'h Heap, value: &Value) -> Result<&'h [(Value, Value)], DcpError> {
    match value {
        Value::Obj(id) => match heap.get(*id) {
            Object::Dict(d) => Ok(&d.entries),
            _ => Err(layout("expected a dict")),
        },
        _ => Err(layout("expected a dict")),
    }
}

/// A string of the pickle, shared rather than copied.
fn shared(value: &Value) -> Result<Rc<str>, DcpError> {
    match value {
        Value::Str(s) => Ok(Rc::clone(s)),
        _ => Err(layout("expected a string")),
    }
}

fn string(value: &Value) -> Result<String, DcpError> {
    match value {
        Value::Str(s) => Ok(s.to_string()),
        _ => Err(layout("expected a string")),
    }
}

fn int(value: &Value) -> Result<u64, DcpError> {
    value
        .as_int()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| layout("expected a non-negative int"))
}

fn ints(heap: &Heap, value: &Value) -> Result<Vec<u64>, DcpError> {
    let items = heap
        .sequence(value)
        .ok_or_else(|| layout("expected a torch.Size"))?;
    if items.len() > 64 {
        return Err(layout("a shape of more than 64 dimensions"));
    }
    items.iter().map(int).collect()
}
