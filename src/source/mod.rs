//! Where a checkpoint's bytes come from: a local file, an HTTP(S) URL, a Hugging Face Hub repo or an S3
//! bucket, all read through one trait, [`ByteSource`], that reads a byte range. Codecs ask for the ranges
//! they need (a header, one tensor) and only those cross the network, through a content-keyed cache.
//!
//! The layer's parts: [`location`] parses a MODEL argument; [`http`] is the one HTTP client (timeouts,
//! retries, redirects that never carry a token off its origin); [`remote`] is a file read by ranged GETs;
//! [`hub`] and [`s3`] find files and folders on the Hub and in buckets; [`hf_cache`] reads the Hugging
//! Face cache in place; [`cache`] is paramscope's own cache; [`open`] turns a location into a file or a
//! folder; [`fetch`] reads files' heads, many in parallel.

pub mod cache;
pub mod error;
pub mod fetch;
pub mod hf_cache;
pub mod http;
pub mod hub;
pub mod local;
pub mod location;
pub mod open;
pub mod remote;
pub mod s3;
mod secret;

use std::ops::Range;
use std::sync::Arc;

use crate::tensor::{FetchError, Ranged};

pub use error::{LocationError, SourceError};
pub use location::Location;
pub use open::{Folder, FolderFile, Opened, Sources};
pub use secret::Secret;

/// Bytes that can be read by range: a local file, or a file on a server that answers Range requests.
pub trait ByteSource: Send + Sync {
    /// The file's length in bytes.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes starting at `offset`; the whole of `buf` or an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;

    /// What the file is called in messages (a path, `hf://ORG/NAME/PATH`, `s3://BUCKET/KEY`), raw.
    fn name(&self) -> &str;

    /// What identifies the file's content, when a server said (`sha256:HEX` for an LFS file, a git blob
    /// id, an ETag with its URL): two files with the same one hold the same bytes.
    fn content_key(&self) -> Option<&str> {
        None
    }
}

/// Reads `range` of `source` into a new buffer, after checking that the range lies inside the file, so
/// that no allocation is sized by a number the file's length does not back.
pub fn read_range(source: &dyn ByteSource, range: Range<u64>) -> Result<Vec<u8>, SourceError> {
    let len = source.len();
    if range.start > range.end || range.end > len {
        return Err(SourceError::OutOfBounds {
            name: source.name().to_owned(),
            start: range.start,
            end: range.end,
            len,
        });
    }
    let size = usize::try_from(range.end - range.start).map_err(|_| SourceError::TooLarge {
        name: source.name().to_owned(),
        size: range.end - range.start,
    })?;
    let mut buf = vec![0; size];
    source.read_at(range.start, &mut buf)?;
    Ok(buf)
}

/// A source as tensors read it (`Bytes::Remote`): a tensor's range is fetched when first read.
pub struct TensorSource(pub Arc<dyn ByteSource>);

impl Ranged for TensorSource {
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, FetchError> {
        read_range(&*self.0, range).map_err(|e| FetchError(Box::new(e)))
    }

    fn content(&self) -> Option<String> {
        self.0.content_key().map(str::to_owned)
    }
}
