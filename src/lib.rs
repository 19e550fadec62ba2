//! paramscope: explore, re-initialize and run the parameters of neural networks.
//!
//! The crate map:
//! - [`kernel`]: the cache-blocked matrix multiply every forward pass goes through.

pub mod kernel;
