//! A distributed checkpoint's `.metadata` pickle read into plain types: each entry's full shape and
//! dtype, its chunks (offsets and sizes within the whole tensor) and where each chunk's bytes are
//! (file, offset, length, stream transforms). A pickle laid out as torch's pickler writes it is
//! read straight through by [`super::fast`]; any other (or any the straight reading doubts) is run
//! by [`super::machine`], which keeps torch's DCP dataclasses as records of their fields. Both
//! give the same reading; nothing is constructed.

use std::collections::HashMap;

use smallvec::SmallVec;

use super::machine::{self, Class, Machine, Record, V};
use super::{DcpError, Problem};
use crate::io::pickle::TorchDtype;
pub use crate::tensor::Dims;

/// Where a chunk's (or a non-tensor entry's) bytes are: `_StorageInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location<'a> {
    /// The file, relative to the folder, as the metadata names it (raw, borrowed from it).
    pub file: &'a str,
    /// The first byte within the file.
    pub offset: u64,
    /// How many bytes.
    pub length: u64,
    /// Stream transforms (compression and other extensions) the bytes went through, outermost
    /// first; empty for plain bytes.
    pub transforms: Vec<String>,
}

/// One chunk of a tensor: `ChunkStorageMetadata` and its `_StorageInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Its first element's index in the whole tensor, per dimension.
    pub offsets: Dims,
    /// Its extent per dimension.
    pub sizes: Dims,
    /// Where its bytes are.
    pub location: Location<'a>,
}

/// A tensor entry: `TensorStorageMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry<'a> {
    /// Its element type.
    pub dtype: TorchDtype,
    /// The whole tensor's shape.
    pub size: Dims,
    /// Its chunks, in the metadata's order.
    pub chunks: Vec<Chunk<'a>>,
}

/// What one state-dict key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A tensor, maybe in many chunks.
    Tensor(TensorEntry<'a>),
    /// Any other object (`BytesStorageMetadata`): a `torch.save` of it, at this location.
    Bytes(Location<'a>),
}

/// A `.metadata` read.
#[derive(Debug, PartialEq, Eq)]
pub struct Metadata<'a> {
    /// The entries by fully qualified name, in the metadata's order.
    pub entries: Vec<(String, Entry<'a>)>,
    /// Every global outside the DCP classes the pickle names, `module.name`, in order.
    pub foreign: Vec<String>,
}

/// Each entry's `_StorageInfo`, by its name and (for a tensor's chunk) the chunk's offsets.
type Storages<'a> = HashMap<&'a str, Stored, foldhash::quality::RandomState>;

/// One name's `_StorageInfo`s by offsets (`None` for a non-tensor entry), sorted: a tensor's name
/// is looked up once, then each of its chunks by a binary search, which stays in the cache where
/// 16,000 lookups of name and offsets did not.
type Stored = Vec<(Option<Dims>, V)>;

/// The most chunks one tensor may have: each is compared with its neighbours for overlap.
pub(super) const MAX_CHUNKS: usize = 1 << 14;

/// The most dimensions a tensor may have.
pub(super) const MAX_DIMS: usize = 64;

/// Reads the `.metadata` pickle `bytes` by running it on the machine.
pub(super) fn read_by_machine(bytes: &[u8]) -> Result<Metadata<'_>, DcpError> {
    let (root, m) = machine::run(bytes)?;
    let root = Fields::of(&m, root, Record::Metadata)?;
    let storage = storage_data(&m, root.field("storage_data")?)?;
    let none = Stored::new();
    let locate = |fqn: &str, stored: &Stored, offsets: Option<Dims>| {
        let Ok(i) = stored.binary_search_by(|(o, _)| o.cmp(&offsets)) else {
            let offsets = offsets.as_deref().unwrap_or_default().to_vec();
            return Err(at(fqn, Problem::NoStorage(offsets)));
        };
        location(&m, stored[i].1)
    };
    let listed = m
        .pairs(root.field("state_dict_metadata")?)
        .ok_or_else(|| layout("state_dict_metadata is not a dict"))?;
    // A name listed twice keeps its first place and its last value, as a Python dict does.
    let mut place: HashMap<&str, usize> = HashMap::new();
    let mut order: Vec<(&str, V)> = Vec::new();
    for (key, value) in listed {
        let fqn =
            string(&m, key).map_err(|_| layout("a state_dict_metadata key is not a string"))?;
        if let Some(&i) = place.get(fqn) {
            order[i].1 = value;
        } else {
            place.insert(fqn, order.len());
            order.push((fqn, value));
        }
    }
    let mut entries = Vec::with_capacity(order.len());
    for (fqn, value) in order {
        let stored = storage.get(fqn).unwrap_or(&none);
        let entry = if record_class(&m, value) == Some(Record::BytesStorage) {
            Entry::Bytes(locate(fqn, stored, None)?)
        } else {
            let locate = |offsets| locate(fqn, stored, offsets);
            Entry::Tensor(tensor_entry(&m, value, fqn, &locate)?)
        };
        entries.push((fqn.to_owned(), entry));
    }
    Ok(Metadata {
        entries,
        foreign: m.foreign,
    })
}

fn at(fqn: &str, problem: Problem) -> DcpError {
    DcpError::Tensor {
        tensor: fqn.to_owned(),
        problem,
    }
}

/// `storage_data`: `{MetadataIndex(fqn, offset): _StorageInfo}`, the infos read when asked for.
fn storage_data<'a>(m: &Machine<'a>, value: V) -> Result<Storages<'a>, DcpError> {
    let pairs = m
        .pairs(value)
        .ok_or_else(|| layout("storage_data is not a dict"))?;
    let mut out = Storages::default();
    for (key, info) in pairs {
        // [fqn, None] or [fqn, n, offsets...]: see `machine::build`.
        let index = Fields::of(m, key, Record::MetadataIndex)?.scalars();
        let [fqn, count, ref offsets @ ..] = index[..] else {
            return Err(layout("a MetadataIndex without its fields"));
        };
        let offsets = match count {
            V::None => None,
            _ => Some(offsets.iter().map(|&v| int(v)).collect::<Result<_, _>>()?),
        };
        let fqn = string(m, fqn)?;
        out.entry(fqn).or_default().push((offsets, info));
    }
    // An index set twice keeps its last info, as a Python dict does: reversed, then a stable
    // sort puts the last first among equals, and `dedup_by` keeps the first.
    for stored in out.values_mut() {
        stored.reverse();
        stored.sort_by(|a, b| a.0.cmp(&b.0));
        stored.dedup_by(|later, kept| later.0 == kept.0);
    }
    Ok(out)
}

/// A `_StorageInfo`: [file, offset, length, transforms...] (see `machine::build`).
fn location<'a>(m: &Machine<'a>, info: V) -> Result<Location<'a>, DcpError> {
    let info = Fields::of(m, info, Record::StorageInfo)?.scalars();
    let [file, offset, length, ref transforms @ ..] = info[..] else {
        return Err(layout("a _StorageInfo without its fields"));
    };
    Ok(Location {
        file: string(m, file)?,
        offset: int(offset)?,
        length: int(length)?,
        transforms: transforms
            .iter()
            .map(|&t| string(m, t).map(str::to_owned))
            .collect::<Result<_, _>>()?,
    })
}

/// One `TensorStorageMetadata`, its chunks checked: inside the tensor, not overlapping, covering
/// it, each found by `locate` from its offsets.
fn tensor_entry<'a>(
    m: &Machine<'a>,
    value: V,
    fqn: &'a str,
    locate: &dyn Fn(Option<Dims>) -> Result<Location<'a>, DcpError>,
) -> Result<TensorEntry<'a>, DcpError> {
    let record = Fields::of(m, value, Record::TensorStorage)?;
    let properties = Fields::of(m, record.field("properties")?, Record::TensorProperties)?;
    // TensorProperties pickles its fields as a tuple, (dtype, layout, requires_grad, ...).
    let dtype = match m.seq(properties.state) {
        Some(mut items) => items.next(),
        None => properties.get("dtype"),
    };
    let Some(V::Class(Class::Dtype(dtype))) = dtype else {
        return Err(at(fqn, Problem::Dtype));
    };
    let size = ints(m, record.field("size")?)?;
    let items: SmallVec<[V; 16]> = m
        .seq(record.field("chunks")?)
        .ok_or_else(|| layout("chunks is not a list"))?
        .take(MAX_CHUNKS + 1)
        .collect();
    if items.len() > MAX_CHUNKS {
        return Err(at(fqn, Problem::TooManyChunks(items.len())));
    }
    let mut extents = Vec::with_capacity(items.len());
    for item in items {
        // [n, offsets (n), sizes]: see `machine::build`.
        let chunk = Fields::of(m, item, Record::ChunkStorage)?.scalars();
        let Some((&n, dims)) = chunk.split_first() else {
            return Err(layout("a ChunkStorageMetadata without its fields"));
        };
        let (offsets, sizes) = dims.split_at((int(n)? as usize).min(dims.len()));
        let ints = |v: &[V]| v.iter().map(|&v| int(v)).collect::<Result<Dims, _>>();
        let (offsets, sizes) = (ints(offsets)?, ints(sizes)?);
        inside(&size, &offsets, &sizes).map_err(|p| at(fqn, p))?;
        extents.push((offsets, sizes));
    }
    check_cover(&size, extents.len(), |i| (&extents[i].0, &extents[i].1))
        .map_err(|p| at(fqn, p))?;
    let chunks = extents
        .into_iter()
        .map(|(offsets, sizes)| {
            let location = locate(Some(offsets.clone()))?;
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

/// A chunk at `offsets` of `sizes`, checked to lie inside a tensor of `size`.
pub(super) fn inside(size: &[u64], offsets: &[u64], sizes: &[u64]) -> Result<(), Problem> {
    if fits(size, offsets, sizes) {
        return Ok(());
    }
    Err(Problem::Outside {
        offsets: offsets.to_vec(),
        sizes: sizes.to_vec(),
        size: size.to_vec(),
    })
}

/// Whether a chunk at `offsets` of `sizes` lies inside a tensor of `size` ([`inside`] without the
/// error, for the straight reading, which only gives up: no `Problem` made and dropped per chunk).
pub(super) fn fits(size: &[u64], offsets: &[u64], sizes: &[u64]) -> bool {
    offsets.len() == size.len()
        && sizes.len() == size.len()
        && (0..size.len()).all(|d| {
            offsets[d]
                .checked_add(sizes[d])
                .is_some_and(|e| e <= size[d])
        })
}

/// The `n` chunks of a tensor of `size`, each `extent(i)` (its offsets and sizes, inside the
/// tensor), checked: chunks that do not overlap and whose volumes add up to the tensor's cover it
/// exactly.
pub(super) fn check_cover<'c>(
    size: &[u64],
    n: usize,
    extent: impl Fn(usize) -> (&'c [u64], &'c [u64]),
) -> Result<(), Problem> {
    let volume = |sizes: &[u64]| sizes.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let total = volume(size).ok_or(Problem::Absurd)?;
    // Inline for a tensor's usual handful of chunks: no allocation per tensor.
    let mut order: SmallVec<[usize; 16]> = (0..n).collect();
    let first = |i: usize| extent(i).0.first().copied().unwrap_or(0);
    order.sort_unstable_by_key(|&i| first(i));
    let mut covered = 0u64;
    for (k, &i) in order.iter().enumerate() {
        let (a_offsets, a_sizes) = extent(i);
        // No `ok_or(Problem::Absurd)` here: it would make and drop a `Problem` per chunk.
        let Some(sum) = volume(a_sizes).and_then(|v| covered.checked_add(v)) else {
            return Err(Problem::Absurd);
        };
        covered = sum;
        let end = a_offsets.first().map_or(1, |o| o + a_sizes[0]);
        // Sorted by the first dimension's offset: only the chunks starting before this one ends
        // can meet it.
        for &j in order[k + 1..].iter().take_while(|&&j| first(j) < end) {
            let (b_offsets, b_sizes) = extent(j);
            let meet = (0..size.len()).all(|d| {
                a_offsets[d] < b_offsets[d] + b_sizes[d] && b_offsets[d] < a_offsets[d] + a_sizes[d]
            });
            let empty = a_sizes.contains(&0) || b_sizes.contains(&0);
            if meet && !empty {
                return Err(Problem::Overlap(a_offsets.to_vec(), b_offsets.to_vec()));
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

/// An object of one of the DCP dataclasses, and its BUILD state.
struct Fields<'m, 'a> {
    m: &'m Machine<'a>,
    class: Record,
    state: V,
}

impl<'m, 'a> Fields<'m, 'a> {
    fn of(m: &'m Machine<'a>, value: V, class: Record) -> Result<Self, DcpError> {
        match value {
            V::Obj(id) if m.objects[id as usize].class == class => Ok(Fields {
                m,
                class,
                state: m.objects[id as usize].state,
            }),
            _ => Err(DcpError::Layout(format!("expected a {}", class.name()))),
        }
    }

    fn get(&self, name: &str) -> Option<V> {
        self.m.field(self.state, name)
    }

    /// A per-chunk record's scalars, as BUILD left them.
    fn scalars(&self) -> &'m [V] {
        self.m.tuple(self.state).unwrap_or_default()
    }

    fn field(&self, name: &str) -> Result<V, DcpError> {
        self.get(name)
            .ok_or_else(|| DcpError::Layout(format!("a {} without {name}", self.class.name())))
    }
}

fn record_class(m: &Machine<'_>, value: V) -> Option<Record> {
    match value {
        V::Obj(id) => Some(m.objects[id as usize].class),
        _ => None,
    }
}

fn string<'a>(m: &Machine<'a>, value: V) -> Result<&'a str, DcpError> {
    let bytes = m.bytes(value).ok_or_else(|| layout("expected a string"))?;
    std::str::from_utf8(bytes).map_err(|_| layout("a string that is not UTF-8"))
}

fn int(value: V) -> Result<u64, DcpError> {
    match value {
        V::Int(i) => u64::try_from(i).map_err(|_| layout("expected a non-negative int")),
        _ => Err(layout("expected a non-negative int")),
    }
}

fn ints(m: &Machine<'_>, value: V) -> Result<Dims, DcpError> {
    let items = m
        .seq(value)
        .ok_or_else(|| layout("expected a torch.Size"))?;
    let mut out = Dims::new();
    for item in items {
        if out.len() == MAX_DIMS {
            return Err(layout("a shape of more than 64 dimensions"));
        }
        out.push(int(item)?);
    }
    Ok(out)
}
