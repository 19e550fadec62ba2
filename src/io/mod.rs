//! Pure codecs, no Model: safetensors read through a map and written atomically, PyTorch, GGUF and
//! NumPy files, safe small-file reads.

pub mod aliases;
pub mod atomic;
pub mod diagnose;
pub mod fault;
pub mod gguf;
pub mod mapped;
pub mod npy;
pub mod npz;
pub mod pickle;
pub mod pytorch;
pub mod safetensors;
pub mod sharded;
pub mod small_file;
pub mod sniff;
