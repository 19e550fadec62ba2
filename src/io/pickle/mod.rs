//! A pickle reader that never imports or calls anything: it runs the opcodes `torch.save` emits
//! (protocols 2 to 5, and the text opcodes of 0 and 1) over values of its own, builds objects only
//! for the globals torch's `weights_only` unpickler allows, and keeps every other global as an
//! opaque, named node.
//!
//! Written here rather than taken from a crate: `serde-pickle` calls no code but has no persistent
//! ids and copies every byte string; candle-core's reader copies tensors into memory and accepts any
//! global; `anamnesis` executes nothing but reads whole files. paramscope needs the storage keys and
//! views only (the bytes stay mapped), the dangerous globals named, and hard bounds on a hostile file.
//!
//! Bounded: the stack, the memo and the object count are capped, every length is checked against the
//! bytes left, and nothing recurses on the file's nesting (see [`flatten`]).

mod globals;
mod reader;
mod value;
mod vm;

pub mod flatten;

pub use flatten::{Leaf, Scalar, flatten};
pub use globals::is_dangerous;
pub use value::{Dict, Heap, Object, Storage, TensorRef, TorchDtype, Value};
pub use vm::{Unpickled, unpickle};

/// What went wrong in a pickle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// An opcode's argument runs past the end.
    #[error("wants {wanted} more bytes but only {left} are left (truncated?)")]
    Truncated {
        /// Bytes wanted.
        wanted: usize,
        /// Bytes left.
        left: usize,
    },
    /// A text opcode's line has no end.
    #[error("a text argument has no end of line within 4096 bytes")]
    NoNewline,
    /// A size from the file is beyond any real pickle.
    #[error("a length of {0} is absurd")]
    Absurd(u64),
    /// The opcode is not one a pickle may hold, or not one paramscope runs.
    #[error("unknown or unsupported opcode")]
    UnknownOpcode,
    /// More values were asked for than the stack holds.
    #[error("stack underflow")]
    StackUnderflow,
    /// A MARK was expected.
    #[error("no MARK to pop to")]
    NoMark,
    /// A memo entry was read before it was written.
    #[error("memo entry {0} was never stored (memo miss)")]
    MemoMiss(u64),
    /// A cap was reached.
    #[error("more than {limit} {what}; no checkpoint has that many")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// An operand had the wrong type.
    #[error("{0}")]
    Malformed(String),
    /// The pickle ended without STOP.
    #[error("the pickle ends without STOP (truncated?)")]
    NoStop,
}

/// A pickle error at a file offset: `pickle offset 1234 (opcode 0x71): memo miss`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pickle offset {offset} (opcode 0x{opcode:02x}): {problem}")]
pub struct Error {
    /// Where the opcode is in the file.
    pub offset: usize,
    /// The opcode byte.
    pub opcode: u8,
    /// What went wrong.
    pub problem: Problem,
}
