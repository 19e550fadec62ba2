//! A file on a server, read by ranged GETs through [`Http`] and kept in the content-keyed [`Cache`]. A
//! file opened by URL alone is probed with one ranged GET of its first bytes, which gives its length and
//! ETag and serves the header read that follows.

use std::sync::Arc;

use super::cache::Cache;
use super::http::{Http, HttpError, RangeMeta, Target};
use super::{ByteSource, SourceError};

/// How much a probe reads: the first 256 KiB holds the header of almost every safetensors shard.
pub const PROBE: u64 = 256 << 10;

/// Maps a refusal (401, 404...) to the error that explains it for this file.
pub type Explain = Arc<dyn Fn(HttpError) -> SourceError + Send + Sync>;

/// A remote file of known length.
pub struct RemoteFile {
    http: Arc<Http>,
    target: Target,
    len: u64,
    /// What the content is (`sha256:...`, `git:...`, an ETag with the URL): the cache key, when known.
    key: Option<String>,
    cache: Option<Arc<Cache>>,
    /// The bytes a probe already fetched, from offset 0.
    head: Arc<[u8]>,
    explain: Explain,
    /// When the file is only in the caches: fail at once rather than touch the network.
    offline: bool,
}

/// What a [`RemoteFile`] needs besides its target.
pub struct RemoteParts {
    /// The shared client.
    pub http: Arc<Http>,
    /// The cache, when there is one.
    pub cache: Option<Arc<Cache>>,
    /// Turns refusals into errors.
    pub explain: Explain,
    /// No network.
    pub offline: bool,
}

impl RemoteFile {
    /// A file whose length and content key a listing gave: nothing is fetched until a read.
    #[must_use]
    pub fn known(parts: RemoteParts, target: Target, len: u64, key: Option<String>) -> RemoteFile {
        RemoteFile {
            http: parts.http,
            target,
            len,
            key,
            cache: parts.cache,
            head: Arc::from(Vec::new()),
            explain: parts.explain,
            offline: parts.offline,
        }
    }

    /// A file known only by its URL: one ranged GET of its first [`PROBE`] bytes gives its length, its
    /// ETag (the cache key, with `key_prefix`) and those bytes, kept for the first reads.
    pub fn probe(
        parts: RemoteParts,
        target: Target,
        key_prefix: &str,
    ) -> Result<RemoteFile, SourceError> {
        let mut head = vec![0; PROBE as usize];
        let meta = match parts.http.get_range(&target, 0, &mut head) {
            Ok(meta) => meta,
            // 416 to `bytes=0-...`: an empty file.
            Err(HttpError::Refused(r)) if r.status == 416 => RangeMeta {
                total: Some(0),
                ..RangeMeta::default()
            },
            Err(e) => return Err((parts.explain)(e)),
        };
        let len = meta.total.ok_or_else(|| SourceError::BadReply {
            name: target.name().to_owned(),
            what: "no file length in the answer".to_owned(),
        })?;
        if meta.filled as u64 != len.min(PROBE) {
            return Err(SourceError::CutShort {
                name: target.name().to_owned(),
                start: meta.filled as u64,
                end: len.min(PROBE),
            });
        }
        head.truncate(meta.filled);
        Ok(Self::from_probe(
            parts, target, key_prefix, meta.etag, len, head,
        ))
    }

    fn from_probe(
        parts: RemoteParts,
        target: Target,
        key_prefix: &str,
        etag: Option<String>,
        len: u64,
        head: Vec<u8>,
    ) -> RemoteFile {
        // A weak ETag (W/) does not promise identical bytes: such a file is not cached.
        let key = etag
            .filter(|e| !e.starts_with("W/"))
            .map(|e| format!("{key_prefix}|{len}|{e}"));
        RemoteFile {
            head: Arc::from(head),
            ..RemoteFile::known(parts, target, len, key)
        }
    }
}

impl ByteSource for RemoteFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| SourceError::OutOfBounds {
                name: self.name().to_owned(),
                start: offset,
                end: offset.saturating_add(buf.len() as u64),
                len: self.len,
            })?;
        if end <= self.head.len() as u64 {
            buf.copy_from_slice(&self.head[offset as usize..end as usize]);
            return Ok(());
        }
        let cached = self.key.as_deref().zip(self.cache.as_deref());
        if let Some((key, cache)) = cached
            && let Some(bytes) = cache.get_range(key, offset, buf.len())
        {
            buf.copy_from_slice(&bytes);
            return Ok(());
        }
        if self.offline {
            return Err(SourceError::Offline {
                what: format!("bytes {offset}..{end} of {}", self.name()),
            });
        }
        let meta = self
            .http
            .get_range(&self.target, offset, buf)
            .map_err(|e| (self.explain)(e))?;
        // A server whose file is not the length its listing gave serves other bytes than the listing
        // (and the header read through it) describe: refused rather than read as if it were.
        if let Some(total) = meta.total.filter(|&t| t != self.len) {
            return Err(SourceError::BadReply {
                name: self.name().to_owned(),
                what: format!(
                    "the server says the file is {total} bytes where its listing said {}",
                    self.len
                ),
            });
        }
        if meta.filled != buf.len() {
            return Err(SourceError::CutShort {
                name: self.name().to_owned(),
                start: offset + meta.filled as u64,
                end,
            });
        }
        if let Some((key, cache)) = cached {
            cache.put_range(key, offset, buf);
        }
        Ok(())
    }

    fn name(&self) -> &str {
        self.target.name()
    }

    fn content_key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}
