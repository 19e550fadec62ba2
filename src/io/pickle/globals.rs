//! The allow-list: which globals paramscope builds an object for (those torch's `weights_only`
//! unpickler allows, in torch/_weights_only_unpickler.py), and which can run code.

use super::dtype::TorchDtype;

/// A global named by the pickle. Naming one imports nothing here.
#[derive(Debug)]
pub struct Global {
    /// `module.name`.
    pub path: String,
    /// What calling it does in paramscope.
    pub kind: Kind,
}

/// What paramscope does when a pickle calls a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `collections.OrderedDict`, `dict`, `defaultdict`, `Counter`: an empty dict to fill.
    Dict,
    /// `list(iterable)`.
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
    /// `torch._utils._rebuild_parameter(_with_state)`: the tensor is the first argument.
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: `func(*args)`.
    RebuildFromType,
    /// A storage class: `torch.FloatStorage`… and `torch.UntypedStorage` (bytes).
    StorageClass(TorchDtype),
    /// A dtype such as `torch.float32`, used as a value.
    Dtype(TorchDtype),
    /// Anything else harmless-looking: never called, its objects are opaque.
    Opaque,
    /// A global that runs code when called: never called, and reported.
    Dangerous,
}

impl Global {
    /// Classifies `module.name`.
    #[must_use]
    pub fn new(module: &str, name: &str) -> Global {
        Global {
            path: format!("{module}.{name}"),
            kind: classify(module, name),
        }
    }
}

fn classify(module: &str, name: &str) -> Kind {
    if is_dangerous(module, name) {
        return Kind::Dangerous;
    }
    match (module, name) {
        ("collections", "OrderedDict" | "defaultdict" | "Counter")
        | ("builtins" | "__builtin__", "dict") => Kind::Dict,
        ("builtins" | "__builtin__", "list") => Kind::List,
        ("builtins" | "__builtin__", "tuple") | ("torch", "Size") => Kind::Tuple,
        ("builtins" | "__builtin__", "set" | "frozenset") => Kind::Set,
        ("builtins" | "__builtin__", "bytearray") => Kind::ByteArray,
        ("_codecs", "encode") => Kind::Encode,
        ("torch", "device") => Kind::Device,
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => Kind::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v3") => Kind::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Kind::RebuildParameter
        }
        ("torch._tensor", "_rebuild_from_type_v2") => Kind::RebuildFromType,
        ("torch" | "torch.storage", "UntypedStorage") => Kind::StorageClass(TorchDtype::UINT8),
        ("torch", _) => TorchDtype::from_storage_class(name)
            .map(Kind::StorageClass)
            .or_else(|| TorchDtype::from_torch_name(name).map(Kind::Dtype))
            .unwrap_or(Kind::Opaque),
        _ => Kind::Opaque,
    }
}

/// Whether calling `module.name` can run code, read or write files, or reach the network: what a
/// malicious pickle calls. (torch's `weights_only=False` would call it.)
#[must_use]
pub fn is_dangerous(module: &str, name: &str) -> bool {
    let top = module.split('.').next().unwrap_or(module);
    let whole_module = matches!(
        top,
        "os" | "posix"
            | "nt"
            | "subprocess"
            | "runpy"
            | "importlib"
            | "sys"
            | "pty"
            | "shutil"
            | "socket"
            | "ctypes"
            | "code"
            | "codeop"
            | "marshal"
            | "pickle"
            | "_pickle"
            | "dill"
            | "cloudpickle"
            | "webbrowser"
            | "multiprocessing"
            | "asyncio"
            | "commands"
            | "popen2"
            | "platform"
            | "signal"
            | "tempfile"
            | "urllib"
            | "requests"
            | "http"
            | "ftplib"
            | "smtplib"
            | "telnetlib"
            | "pdb"
            | "bdb"
            | "timeit"
            | "cProfile"
            | "profile"
            | "trace"
    );
    let builtin = matches!(module, "builtins" | "__builtin__")
        && matches!(
            name,
            "eval"
                | "exec"
                | "execfile"
                | "compile"
                | "__import__"
                | "getattr"
                | "setattr"
                | "delattr"
                | "open"
                | "input"
                | "breakpoint"
                | "globals"
                | "locals"
                | "vars"
                | "apply"
        );
    let gadget = matches!(
        (module, name),
        ("operator", "attrgetter" | "methodcaller")
            | ("functools", "partial" | "reduce")
            | ("torch" | "torch.serialization", "load" | "save")
            | ("numpy", "load" | "save" | "fromfile" | "loadtxt")
            | ("numpy.lib.npyio", _)
            | (
                "types",
                "FunctionType" | "CodeType" | "LambdaType" | "MethodType"
            )
    );
    whole_module || builtin || gadget
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
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("subprocess", "Popen"),
            ("builtins", "eval"),
            ("builtins", "getattr"),
            ("runpy", "run_path"),
            ("importlib", "import_module"),
        ] {
            assert_eq!(kind(m, n), Kind::Dangerous, "{m}.{n}");
        }
    }
}
