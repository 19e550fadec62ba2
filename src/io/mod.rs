//! Files: safetensors checkpoints read through a map and written by rename, PyTorch, GGUF and
//! NumPy (`.npy`, `.npz`) files read through a map.

pub mod aliases;
pub mod atomic;
pub mod diagnose;
pub mod fault;
pub mod gguf;
pub mod model_file;
pub mod npy;
pub mod npz;
pub mod pickle;
pub mod pytorch;
pub mod safetensors;
pub mod sharded;
pub mod small_file;
pub mod sniff;
