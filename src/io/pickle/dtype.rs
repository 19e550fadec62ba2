//! torch's element types as a pickle names them (`torch.float32`, a legacy `FloatStorage`), with
//! their sizes and paramscope's dtype: read by the globals' table and held by storages and tensors.

use crate::tensor::DType;

/// A torch element type, as an index into [`DTYPES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TorchDtype(u8);

/// One torch dtype: its name, its legacy storage class, paramscope's dtype, and its size.
struct DtypeInfo {
    torch: &'static str,
    storage: Option<&'static str>,
    dtype: Option<DType>,
    size: usize,
}

const fn info(
    torch: &'static str,
    storage: Option<&'static str>,
    dtype: Option<DType>,
    size: usize,
) -> DtypeInfo {
    DtypeInfo {
        torch,
        storage,
        dtype,
        size,
    }
}

/// Every torch dtype a checkpoint can hold (torch/storage.py `_dtype_to_storage_type_map` and
/// `_new_dtypes`); the first is uint8, which an untyped storage counts in.
const DTYPES: [DtypeInfo; 25] = [
    info("uint8", Some("ByteStorage"), Some(DType::U8), 1),
    info("float32", Some("FloatStorage"), Some(DType::F32), 4),
    info("float64", Some("DoubleStorage"), Some(DType::F64), 8),
    info("float16", Some("HalfStorage"), Some(DType::F16), 2),
    info("bfloat16", Some("BFloat16Storage"), Some(DType::BF16), 2),
    info("int64", Some("LongStorage"), Some(DType::I64), 8),
    info("int32", Some("IntStorage"), Some(DType::I32), 4),
    info("int16", Some("ShortStorage"), Some(DType::I16), 2),
    info("int8", Some("CharStorage"), Some(DType::I8), 1),
    info("bool", Some("BoolStorage"), Some(DType::BOOL), 1),
    info(
        "complex64",
        Some("ComplexFloatStorage"),
        Some(DType::C64),
        8,
    ),
    info("complex128", Some("ComplexDoubleStorage"), None, 16),
    info("qint8", Some("QInt8Storage"), None, 1),
    info("qint32", Some("QInt32Storage"), None, 4),
    info("quint8", Some("QUInt8Storage"), None, 1),
    info("quint4x2", Some("QUInt4x2Storage"), None, 1),
    info("quint2x4", Some("QUInt2x4Storage"), None, 1),
    info("float8_e5m2", None, Some(DType::F8_E5M2), 1),
    info("float8_e4m3fn", None, Some(DType::F8_E4M3), 1),
    info("float8_e5m2fnuz", None, Some(DType::F8_E5M2FNUZ), 1),
    info("float8_e4m3fnuz", None, Some(DType::F8_E4M3FNUZ), 1),
    info("float8_e8m0fnu", None, Some(DType::F8_E8M0), 1),
    info("uint16", None, Some(DType::U16), 2),
    info("uint32", None, Some(DType::U32), 4),
    info("uint64", None, Some(DType::U64), 8),
];

impl TorchDtype {
    /// uint8, the unit of an untyped storage.
    pub const UINT8: TorchDtype = TorchDtype(0);

    /// The dtype `torch.NAME` (with torch's aliases `float`, `long`, `half`…).
    #[must_use]
    pub fn from_torch_name(name: &str) -> Option<TorchDtype> {
        let name = match name {
            "float" => "float32",
            "double" => "float64",
            "half" => "float16",
            "long" => "int64",
            "int" => "int32",
            "short" => "int16",
            "cfloat" => "complex64",
            "cdouble" => "complex128",
            other => other,
        };
        Self::find(|d| d.torch == name)
    }

    /// The dtype of the legacy storage class `torch.NAME` (`FloatStorage`…).
    #[must_use]
    pub fn from_storage_class(name: &str) -> Option<TorchDtype> {
        Self::find(|d| d.storage == Some(name))
    }

    fn find(test: impl Fn(&DtypeInfo) -> bool) -> Option<TorchDtype> {
        DTYPES.iter().position(test).map(|i| TorchDtype(i as u8))
    }

    fn info(self) -> &'static DtypeInfo {
        &DTYPES[usize::from(self.0)]
    }

    /// torch's name (`float32`).
    #[must_use]
    pub fn name(self) -> &'static str {
        self.info().torch
    }

    /// paramscope's dtype, when it has this one.
    #[must_use]
    pub fn dtype(self) -> Option<DType> {
        self.info().dtype
    }

    /// Bytes per element.
    #[must_use]
    pub fn size(self) -> usize {
        self.info().size
    }
}
