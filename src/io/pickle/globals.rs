//! The allow-list: which globals paramscope builds an object for, and which globals are foreign:
//! outside the allow-list of torch's `weights_only` unpickler (torch/_weights_only_unpickler.py,
//! `_get_allowed_globals`), so that `torch.load(weights_only=False)` would import them and could
//! run them. Judging by an allow-list rather than a list of known-dangerous names means a global
//! nobody thought of (a dotted name, a gadget passed as an argument) is still named.

use std::rc::Rc;

use super::dtype::TorchDtype;

/// A global named by the pickle. Naming one imports nothing here.
#[derive(Debug)]
pub struct Global {
    /// `module.name`, as the pickle spells it (shared by every object of this class).
    pub path: Rc<str>,
    /// What calling it does in paramscope.
    pub kind: Kind,
    /// Whether torch's `weights_only` unpickler allows it.
    pub allowed: bool,
}

/// What paramscope does when a pickle calls a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `collections.OrderedDict`, `dict`, `defaultdict`, `Counter`: an empty dict to fill.
    Dict,
    /// `list(iterable)`, and TorchScript's `torch.jit._pickle.build_*list(list)`.
    List,
    /// `tuple(iterable)`, and `torch.Size(tuple)`.
    Tuple,
    /// `set(iterable)`, `frozenset(iterable)`.
    Set,
    /// `bytearray(bytes)`.
    ByteArray,
    /// `_codecs.encode(str, encoding)`: how protocol 2 stores bytes.
    Encode,
    /// `torch.device(str)`.
    Device,
    /// `torch._utils._rebuild_tensor` and `_rebuild_tensor_v2`: `(storage, offset, size, stride, …)`.
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v3`: `(storage, offset, size, stride, requires_grad, hooks, dtype, …)`.
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter(_with_state)`, and TorchScript's
    /// `torch.jit._pickle.restore_type_tag(value, type)`: the value is the first argument.
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: `func(*args)`.
    RebuildFromType,
    /// A storage class: `torch.FloatStorage`… and `torch.UntypedStorage` (bytes).
    StorageClass(TorchDtype),
    /// A dtype such as `torch.float32`, used as a value.
    Dtype(TorchDtype),
    /// Anything else: never called, its objects are opaque.
    Opaque,
}

impl Global {
    /// Classifies `module.name`.
    #[must_use]
    pub fn new(module: &str, name: &str) -> Global {
        // Python 3 reads a protocol-2 pickle's Python 2 module names through `_compat_pickle`,
        // and so does torch's allow-list check.
        let module = match module {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            other => other,
        };
        let kind = classify(module, name);
        Global {
            path: format!("{module}.{name}").into(),
            allowed: is_allowed(module, name, kind),
            kind,
        }
    }
}

fn classify(module: &str, name: &str) -> Kind {
    match (module, name) {
        ("collections", "OrderedDict" | "defaultdict" | "Counter") | ("builtins", "dict") => {
            Kind::Dict
        }
        // A TorchScript data.pkl's typed lists: their contents are its tensors.
        ("builtins", "list")
        | (
            "torch.jit._pickle",
            "build_intlist" | "build_tensorlist" | "build_doublelist" | "build_boollist",
        ) => Kind::List,
        ("builtins", "tuple") | ("torch", "Size") => Kind::Tuple,
        ("builtins", "set" | "frozenset") => Kind::Set,
        ("builtins", "bytearray") => Kind::ByteArray,
        ("_codecs", "encode") => Kind::Encode,
        ("torch", "device") => Kind::Device,
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => Kind::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v3") => Kind::RebuildTensorV3,
        // TorchScript's typed dicts are `restore_type_tag(dict, type)`.
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state")
        | ("torch.jit._pickle", "restore_type_tag") => Kind::RebuildParameter,
        ("torch._tensor", "_rebuild_from_type_v2") => Kind::RebuildFromType,

        ("torch" | "torch.storage", "UntypedStorage") => Kind::StorageClass(TorchDtype::UINT8),
        ("torch", _) => TorchDtype::from_storage_class(name)
            .map(Kind::StorageClass)
            .or_else(|| TorchDtype::from_torch_name(name).map(Kind::Dtype))
            .unwrap_or(Kind::Opaque),
        _ => Kind::Opaque,
    }
}

/// Whether torch's `weights_only` unpickler allows `module.name`: the containers and codecs it
/// lists, torch's dtypes, tensor and storage classes, quantization schemes, and rebuild functions.
/// Only exact names count: `torch` with a dotted name (`os.system`) is not `torch.<dtype>`.
fn is_allowed(module: &str, name: &str, kind: Kind) -> bool {
    let listed = match module {
        "collections" => matches!(name, "OrderedDict" | "Counter"),
        "torch.nn.parameter" => name == "Parameter",
        "torch.serialization" => name == "_get_layout",
        "_codecs" => name == "encode",
        "builtins" => matches!(name, "bytearray" | "set" | "complex"),
        "torch.storage" => matches!(name, "TypedStorage" | "UntypedStorage"),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch" => matches!(
            name,
            "Size"
                | "Tensor"
                | "device"
                | "per_tensor_affine"
                | "per_tensor_symmetric"
                | "per_channel_affine"
                | "per_channel_symmetric"
                | "per_channel_affine_float_qparams"
                | "uint1"
                | "uint2"
                | "uint3"
                | "uint4"
                | "uint5"
                | "uint6"
                | "uint7"
                | "int1"
                | "int2"
                | "int3"
                | "int4"
                | "int5"
                | "int6"
                | "int7"
                | "bits1x8"
                | "bits2x4"
                | "bits4x2"
                | "bits8"
                | "bits16"
                | "complex32"
                | "bcomplex32"
                | "float4_e2m1fn_x2"
        ),
        "torch._utils" => matches!(
            name,
            "_rebuild_parameter"
                | "_rebuild_parameter_with_state"
                | "_rebuild_qtensor"
                | "_rebuild_tensor"
                | "_rebuild_tensor_v2"
                | "_rebuild_tensor_v3"
                | "_rebuild_sparse_tensor"
                | "_rebuild_meta_tensor_no_storage"
                | "_rebuild_wrapper_subclass"
                | "_rebuild_device_tensor_from_numpy"
                | "_rebuild_device_tensor_from_cpu_tensor"
        ),
        _ => false,
    };
    // torch's own storage and dtype names, and its tensor classes (`torch.FloatTensor`,
    // `torch.cuda.HalfTensor`, `torch.sparse.LongTensor`…), and the storage classes under `torch.cuda`.
    let torch_class = match module {
        "torch" => matches!(kind, Kind::StorageClass(_) | Kind::Dtype(_)) || is_tensor_class(name),
        "torch.cuda" => TorchDtype::from_storage_class(name).is_some() || is_tensor_class(name),
        "torch.sparse" | "torch.cuda.sparse" => is_tensor_class(name),
        _ => false,
    };
    listed || torch_class
}

/// `ByteTensor`, `FloatTensor`… : torch's legacy tensor classes.
fn is_tensor_class(name: &str) -> bool {
    name.strip_suffix("Tensor").is_some_and(|stem| {
        matches!(
            stem,
            "Byte"
                | "Char"
                | "Short"
                | "Int"
                | "Long"
                | "Half"
                | "Float"
                | "Double"
                | "BFloat16"
                | "Bool"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{Global, Kind};
    use crate::io::pickle::TorchDtype;

    #[test]
    fn torch_globals_are_classified() {
        let kind = |m: &str, n: &str| Global::new(m, n).kind;
        assert_eq!(kind("collections", "OrderedDict"), Kind::Dict);
        assert_eq!(
            kind("torch._utils", "_rebuild_tensor_v2"),
            Kind::RebuildTensor
        );
        assert_eq!(
            kind("torch", "FloatStorage"),
            Kind::StorageClass(TorchDtype::from_torch_name("float32").unwrap())
        );
        assert_eq!(
            kind("torch", "bfloat16"),
            Kind::Dtype(TorchDtype::from_torch_name("bfloat16").unwrap())
        );
        assert_eq!(kind("argparse", "Namespace"), Kind::Opaque);
    }

    #[test]
    fn only_torchs_allow_list_is_allowed() {
        let allowed = |m: &str, n: &str| Global::new(m, n).allowed;
        for (m, n) in [
            ("collections", "OrderedDict"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch", "FloatStorage"),
            ("torch", "bfloat16"),
            ("torch", "Size"),
            ("torch.cuda", "HalfStorage"),
            ("torch", "LongTensor"),
            ("__builtin__", "set"),
            ("_codecs", "encode"),
        ] {
            assert!(allowed(m, n), "{m}.{n}");
        }
        for (m, n) in [
            ("os", "system"),
            ("torch", "os.system"),
            ("torch", "load"),
            ("torch.storage", "_load_from_bytes"),
            ("torch.fx.graph_module", "_forward_from_src"),
            ("numpy.testing._private.utils", "runstring"),
            ("pydoc", "pipepager"),
            ("cPickle", "loads"),
            ("operator", "methodcaller"),
            ("operator", "call"),
            ("functools", "partial"),
            ("builtins", "map"),
            ("builtins", "getattr"),
            ("collections", "defaultdict"),
            ("argparse", "Namespace"),
            // A distributed checkpoint's `.metadata` has its own reader and allow-list.
            ("torch.distributed.checkpoint.metadata", "Metadata"),
            ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
            (
                "torch.distributed.checkpoint.filesystem",
                "FileSystemReader",
            ),
            ("pathlib", "PosixPath"),
        ] {
            assert!(!allowed(m, n), "{m}.{n}");
        }
    }
}
