//! Comparing and diagnosing checkpoints: the diff of two models ([`diff`]), the health findings of
//! one ([`health`]), the spectral figures of its 2-D weights ([`spectral`]), and a run's
//! checkpoints as a [`trajectory`]. The passes over
//! values ([`pass`] for two tensors at once, [`scan`] for one) decode a chunk at a time, so no
//! tensor is ever copied whole. A LoRA adapter's updates against its base weights are in
//! [`adapter`], two adapters' updates against each other in [`lora_diff`].

pub mod adapter;
pub mod diff;
pub mod health;
pub mod lora_diff;
pub mod pass;
pub mod scan;
pub mod spectral;
pub mod trajectory;
