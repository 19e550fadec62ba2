//! The element types: safetensors' dtypes and ggml's block-quantized types, and their sizes.

use std::fmt;

use super::ggml::Quant;

/// Every dtype safetensors 0.8 names, spelled as the file spells it, and ggml's quantized types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[expect(non_camel_case_types, reason = "the names are the file format's own")]
pub enum DType {
    /// 1-bit boolean stored in a byte.
    BOOL,
    /// 4-bit float (e2m1), two per byte.
    F4,
    /// 6-bit float (e2m3), four per three bytes.
    F6_E2M3,
    /// 6-bit float (e3m2), four per three bytes.
    F6_E3M2,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// 8-bit float, 5 exponent and 2 mantissa bits (IEEE-like, with infinities).
    F8_E5M2,
    /// 8-bit float, 4 exponent and 3 mantissa bits (OCP e4m3fn: no infinities).
    F8_E4M3,
    /// 8-bit float e4m3, AMD's fnuz variant.
    F8_E4M3FNUZ,
    /// 8-bit float e5m2, AMD's fnuz variant.
    F8_E5M2FNUZ,
    /// 8-bit power-of-two scale (e8m0).
    F8_E8M0,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// IEEE single precision.
    F32,
    /// Complex of two f32.
    C64,
    /// IEEE double precision.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
    /// A ggml block-quantized type (from a GGUF file): whole blocks of values, never single ones.
    Ggml(Quant),
}

/// All safetensors dtypes, in the order the format lists them.
pub const ALL_DTYPES: [DType; 22] = [
    DType::BOOL,
    DType::F4,
    DType::F6_E2M3,
    DType::F6_E3M2,
    DType::U8,
    DType::I8,
    DType::F8_E5M2,
    DType::F8_E4M3,
    DType::F8_E4M3FNUZ,
    DType::F8_E5M2FNUZ,
    DType::F8_E8M0,
    DType::I16,
    DType::U16,
    DType::F16,
    DType::BF16,
    DType::I32,
    DType::U32,
    DType::F32,
    DType::C64,
    DType::F64,
    DType::I64,
    DType::U64,
];

impl DType {
    /// The name the safetensors header uses (ggml's for a quantized type).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            DType::Ggml(q) => q.name(),
            DType::BOOL => "BOOL",
            DType::F4 => "F4",
            DType::F6_E2M3 => "F6_E2M3",
            DType::F6_E3M2 => "F6_E3M2",
            DType::U8 => "U8",
            DType::I8 => "I8",
            DType::F8_E5M2 => "F8_E5M2",
            DType::F8_E4M3 => "F8_E4M3",
            DType::F8_E4M3FNUZ => "F8_E4M3FNUZ",
            DType::F8_E5M2FNUZ => "F8_E5M2FNUZ",
            DType::F8_E8M0 => "F8_E8M0",
            DType::I16 => "I16",
            DType::U16 => "U16",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I32 => "I32",
            DType::U32 => "U32",
            DType::F32 => "F32",
            DType::C64 => "C64",
            DType::F64 => "F64",
            DType::I64 => "I64",
            DType::U64 => "U64",
        }
    }

    /// Parses a safetensors header's dtype name; `None` for a name the format does not have.
    #[must_use]
    pub fn from_name(name: &str) -> Option<DType> {
        ALL_DTYPES.into_iter().find(|d| d.name() == name)
    }

    /// The size of one element in bits (sub-byte types pack several elements per byte). A
    /// quantized type's block overhead is rounded up (Q4_K: 5): sizes come from
    /// [`DType::byte_len`], the exact figure from [`DType::bits_per_weight`].
    #[must_use]
    pub fn bits(self) -> usize {
        match self {
            DType::Ggml(q) => (q.type_size() * 8).div_ceil(q.block_size()),
            DType::F4 => 4,
            DType::F6_E2M3 | DType::F6_E3M2 => 6,
            DType::BOOL
            | DType::U8
            | DType::I8
            | DType::F8_E5M2
            | DType::F8_E4M3
            | DType::F8_E4M3FNUZ
            | DType::F8_E5M2FNUZ
            | DType::F8_E8M0 => 8,
            DType::I16 | DType::U16 | DType::F16 | DType::BF16 => 16,
            DType::I32 | DType::U32 | DType::F32 => 32,
            DType::C64 | DType::F64 | DType::I64 | DType::U64 => 64,
        }
    }

    /// Storage bits per value, a quantized type's block overhead included (Q4_K: 4.5).
    #[must_use]
    pub fn bits_per_weight(self) -> f64 {
        match self {
            DType::Ggml(q) => q.bits_per_weight(),
            plain => plain.bits() as f64,
        }
    }

    /// The dtype as a person reads it: a quantized type with its bits per weight
    /// (`Q4_K (4.5 bpw)`), any other by its name.
    #[must_use]
    pub fn label(self) -> String {
        match self {
            DType::Ggml(q) => format!("{q} ({} bpw)", q.bits_per_weight()),
            plain => plain.name().to_owned(),
        }
    }

    /// Bytes taken by `numel` elements, or `None` when that overflows or does not fill whole bytes
    /// (or, for a quantized type, whole blocks).
    #[must_use]
    pub fn byte_len(self, numel: usize) -> Option<usize> {
        if let DType::Ggml(q) = self {
            return q.byte_len(numel);
        }
        let bits = numel.checked_mul(self.bits())?;
        (bits % 8 == 0).then_some(bits / 8)
    }

    /// Whether values of this type are floating point (so a re-init may write them).
    #[must_use]
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
