//! A pickle reader that never imports or calls anything: it runs the opcodes `torch.save` emits
//! (protocols 2 to 5, and the text opcodes of 0 and 1) over values of its own, builds objects only
//! for the globals torch's `weights_only` unpickler allows, keeps every other global as an
//! opaque, named node, and records every global outside that allow-list the pickle names.
//!
//! Written here rather than taken from a crate: paramscope needs the storage keys and views only
//! (the bytes stay mapped), every global the file names (to show it, and to warn about the ones
//! torch's `weights_only` would refuse), and hard bounds on a hostile file. `serde-pickle` has no persistent ids, which
//! torch's tensors are; candle-core's reader copies each tensor's bytes out of the archive, and
//! reads a state dict one key deep (no optimizer states, plain values or opaque objects).
//!
//! Bounded: the stack, the memo and the object count are capped, every length is checked against the
//! bytes left, and nothing recurses on the file's nesting (see [`flatten`]).

mod dtype;
mod globals;
pub(crate) mod reader;
mod value;
mod vm;

pub mod flatten;

#[cfg(test)]
mod tests;

pub use dtype::TorchDtype;
pub use flatten::{Leaf, Scalar, flatten};
pub use value::{Dict, Heap, Object, Storage, TensorRef, Value};
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
    /// The foreign globals (outside torch's allow-list) the pickle named before the error, raw:
    /// the caller says them, since torch would have imported them before failing.
    pub foreign: Vec<String>,
}
