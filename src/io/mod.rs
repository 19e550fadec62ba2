//! Files: safetensors checkpoints read through a map and written by rename, and `.npy` arrays.

pub mod atomic;
pub mod diagnose;
pub mod model_file;
pub mod npy;
pub mod pickle;
pub mod pytorch;
pub mod safetensors;
pub mod sharded;
pub mod small_file;
pub mod sniff;
