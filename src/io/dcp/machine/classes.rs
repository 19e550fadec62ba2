//! The globals a `.metadata` names, by what the machine does with them: the DCP dataclasses
//! (records), `torch.Size`, dtypes, the dicts and helpers torch pickles beside them; any other is
//! foreign, named in a warning and never called.

use crate::io::pickle::TorchDtype;

/// The globals a `.metadata` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A DCP dataclass: an object, then its BUILD state.
    Record(Record),
    /// `torch.Size(tuple)`: the tuple.
    Size,
    /// A dtype, as `TensorProperties` holds it.
    Dtype(TorchDtype),
    /// `collections.OrderedDict()`: an empty dict.
    Dict,
    /// An allowed helper whose result is never read: `torch.serialization._get_layout`, the
    /// memory-format enum, the `pathlib` path torch stores as the checkpoint id.
    Inert,
    /// Anything else (recorded in [`Machine::foreign`]): never called, its result opaque.
    Foreign,
}

/// The DCP dataclasses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// `Metadata`.
    Metadata,
    /// `TensorStorageMetadata`.
    TensorStorage,
    /// `BytesStorageMetadata`.
    BytesStorage,
    /// `ChunkStorageMetadata`.
    ChunkStorage,
    /// `TensorProperties`.
    TensorProperties,
    /// `MetadataIndex`.
    MetadataIndex,
    /// `StorageMeta`.
    StorageMeta,
    /// `_StorageInfo`.
    StorageInfo,
}

impl Record {
    /// The class's name, for errors.
    pub fn name(self) -> &'static str {
        match self {
            Record::Metadata => "Metadata",
            Record::TensorStorage => "TensorStorageMetadata",
            Record::BytesStorage => "BytesStorageMetadata",
            Record::ChunkStorage => "ChunkStorageMetadata",
            Record::TensorProperties => "TensorProperties",
            Record::MetadataIndex => "MetadataIndex",
            Record::StorageMeta => "StorageMeta",
            Record::StorageInfo => "_StorageInfo",
        }
    }
}

/// What `module.name` is in a `.metadata`.
pub(in crate::io::dcp) fn classify(module: &str, name: &str) -> Class {
    const METADATA: &str = "torch.distributed.checkpoint.metadata";
    let record = match (module, name) {
        (METADATA, "Metadata") => Record::Metadata,
        (METADATA, "TensorStorageMetadata") => Record::TensorStorage,
        (METADATA, "BytesStorageMetadata") => Record::BytesStorage,
        (METADATA, "ChunkStorageMetadata") => Record::ChunkStorage,
        (METADATA, "TensorProperties") => Record::TensorProperties,
        (METADATA, "MetadataIndex") => Record::MetadataIndex,
        (METADATA, "StorageMeta") => Record::StorageMeta,
        ("torch.distributed.checkpoint.filesystem", "_StorageInfo") => Record::StorageInfo,
        ("torch", "Size") => return Class::Size,
        ("collections", "OrderedDict") | ("builtins", "dict") => return Class::Dict,
        ("torch.serialization", "_get_layout")
        | (METADATA, "_MEM_FORMAT_ENCODING")
        | ("pathlib", "PosixPath" | "WindowsPath") => return Class::Inert,
        ("torch", _) => {
            return TorchDtype::from_torch_name(name).map_or(Class::Foreign, Class::Dtype);
        }
        _ => return Class::Foreign,
    };
    Class::Record(record)
}
