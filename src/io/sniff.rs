//! What a file is, from its first bytes (and its name, for safetensors): the checkpoint format to
//! open it with, an architecture text, or something else, named in a sentence (a Git LFS pointer, a
//! web page…).

use std::path::Path;

use super::{gguf, npz, pytorch};

/// The bytes a caller reads from a file's start for [`format`] to judge it.
pub const HEAD: u64 = 512;

/// A file that is recognisably no checkpoint (a [`FileError`](super::FileError)'s kind): the
/// sentence of [`identify`] says what it is and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Foreign(pub &'static str);

/// What a file is, for opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A shard index (`model.safetensors.index.json`, `pytorch_model.bin.index.json`), by its name.
    ShardIndex,
    /// A safetensors file (by its name, or a length followed by a JSON object).
    Safetensors,
    /// A PyTorch zip archive (`torch.save` since 1.6, and TorchScript archives).
    PytorchZip,
    /// A legacy `torch.save` file: a pickled magic number first.
    PytorchLegacy,
    /// A GGUF file (llama.cpp).
    Gguf,
    /// A NumPy `.npz` archive: a zip whose members are all `.npy` files.
    Npz,
    /// A NumPy `.npy` array.
    Npy,
    /// None of the above and nothing else recognisable: read as a `print(model)` text.
    ArchitectureText,
    /// Recognisably no checkpoint (a Git LFS pointer, an HTML page, a raw pickle…).
    NotCheckpoint(Foreign),
}

/// The format of the file at `path`, whose first bytes (up to [`HEAD`]) are `head`. A shard index is
/// known by its name; only an `.npz` is told from a PyTorch zip by reading more (the zip's central
/// directory).
#[must_use]
pub fn format(path: &Path, head: &[u8]) -> Format {
    // Formats with a magic number first: a GGUF tensor count can look like safetensors' '{'.
    if is_index(path) {
        Format::ShardIndex
    } else if head.starts_with(b"\x93NUMPY") {
        Format::Npy
    } else if head.starts_with(b"PK\x03\x04") && npz::is_npz(path) {
        Format::Npz
    } else if gguf::sniff(head) {
        Format::Gguf
    } else if looks_like_safetensors(path, head) {
        Format::Safetensors
    } else if let Some(layout) = pytorch::layout(head) {
        match layout {
            pytorch::Layout::Zip => Format::PytorchZip,
            pytorch::Layout::Legacy => Format::PytorchLegacy,
        }
    } else {
        identify(head).map_or(Format::ArchitectureText, Format::NotCheckpoint)
    }
}

/// Whether `path` names a shard index (`*.safetensors.index.json`, or any `*.index.json`).
#[must_use]
pub fn is_index(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".index.json"))
}

/// A `.safetensors` name, or bytes that start as safetensors do: a length, then a JSON object.
fn looks_like_safetensors(path: &Path, head: &[u8]) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
        || head.get(8) == Some(&b'{')
}

/// A sentence naming what `head` (the first bytes of a file) looks like, when it is recognisably
/// something other than a safetensors file.
#[must_use]
pub fn identify(head: &[u8]) -> Option<Foreign> {
    // A plausible header length (under 4 GiB) followed by '{' is a safetensors file gone wrong
    // inside, not a file of another kind, even when the length's first byte happens to be '{'.
    if head.len() > 8 && head[4..8] == [0; 4] && head[8] == b'{' {
        return None;
    }
    let text_start = head.trim_ascii_start();
    let lower: Vec<u8> = text_start
        .iter()
        .take(16)
        .map(u8::to_ascii_lowercase)
        .collect();
    let checks: [(bool, &str); 9] = [
        (
            head.starts_with(b"version https://git-lfs.github.com/spec/v1"),
            "this is a Git LFS pointer, not the file itself: fetch the real file (git lfs pull)",
        ),
        (
            lower.starts_with(b"<!doctype html")
                || lower.starts_with(b"<html")
                || lower.starts_with(b"<head"),
            "this is an HTML page, not a checkpoint: the download probably failed (a login or error page)",
        ),
        (
            head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06"),
            "this is a zip archive (a PyTorch .pt/.bin from torch.save, or a numpy .npz), not safetensors: convert it with safetensors.torch.save_file",
        ),
        (
            head.starts_with(b"GGUF"),
            "this is a GGUF file (llama.cpp), not safetensors",
        ),
        (
            head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]),
            "this is a raw Python pickle (an old-style torch.save), not safetensors: never unpickle untrusted files; convert it with safetensors.torch.save_file",
        ),
        (
            head.starts_with(b"\x93NUMPY"),
            "this is a numpy .npy array, not a safetensors checkpoint",
        ),
        (
            head.starts_with(b"\x1f\x8b"),
            "this is a gzip file: decompress it first",
        ),
        (
            head.starts_with(b"\x89HDF"),
            "this is an HDF5 file (Keras .h5), not safetensors",
        ),
        (
            lower.starts_with(b"{"),
            "this is a JSON file, not a safetensors checkpoint (a sharded model is opened through its model.safetensors.index.json or its folder)",
        ),
    ];
    checks
        .into_iter()
        .find_map(|(hit, what)| hit.then_some(Foreign(what)))
}

#[cfg(test)]
mod tests {
    use super::identify;

    #[test]
    fn recognises_common_impostors() {
        let says =
            |head: &[u8], word: &str| assert!(identify(head).unwrap().0.contains(word), "{word}");
        says(
            b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n",
            "Git LFS pointer",
        );
        says(b"\n  <!DOCTYPE html><html>", "HTML page");
        says(b"PK\x03\x04\x14\x00", "zip archive");
        says(b"GGUF\x03\x00\x00\x00", "GGUF");
        says(b"\x80\x02}q\x00", "pickle");
        assert_eq!(identify(b"\x10\x00\x00\x00\x00\x00\x00\x00{}"), None);
    }
}
