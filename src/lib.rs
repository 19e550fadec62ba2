//! paramscope: explore, re-initialize and run the parameters of neural networks.
//!
//! The crate map:
//! - [`model`]: the module tree, parameter identity, the chapter's demos, init schemes, forward passes,
//!   and the `print(model)` architecture language.
//! - [`tensor`]: tensors as bytes of any safetensors dtype or ggml quantized type, their decoding
//!   (dequantization) and their statistics.
//! - [`app`]: the interactive terminal app (tree pane, tensor pane, forward, re-init, write).
//! - [`families`]: BERT, GPT-2 and Llama-family checkpoints run as code from their config.json.
//! - [`cli`]: the subcommands `tree`, `show`, `forward`, `init`, `export`, `diff`, `check`.
//! - [`compare`]: the diff of two models, the health findings and spectral figures of one.
//! - [`checkpoint`]: a `MODEL` argument (demo, checkpoint file or folder, architecture text) made
//!   into a [`model::Model`], its tree inferred from the tensor names.
//! - [`source`]: where bytes come from: local files, HTTP(S), the Hugging Face Hub, S3; ranged reads and their cache.
//! - [`io`]: pure codecs: safetensors, PyTorch, GGUF, `.npy`/`.npz` files, safe small-file reads.
//! - [`kernel`]: the cache-blocked matrix multiply every forward pass goes through.
//! - [`math`]: erf and QR, for the formulas.
//! - [`text`]: showing untrusted names safely on a terminal.

pub mod app;
pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod families;
pub mod io;
pub mod kernel;
pub mod math;
pub mod model;
pub mod source;
pub mod tensor;
pub mod text;
