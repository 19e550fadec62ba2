//! The fake's S3 side, as answers to a path-style request: the object a `GET /{bucket}/{key}` names, or
//! the XML of a `ListObjectsV2` page (two keys a page, so paging is exercised) or of an error
//! (`NoSuchBucket`, `NoSuchKey`, `AccessDenied` for a bucket marked gated). Signatures are not checked:
//! the store stands in for the protocol's shape, not its authentication.

use std::fmt::Write as _;

use super::repos::{FakeFile, FakeRepo};

/// Keys in one listing page.
const PAGE: usize = 2;

/// What the store answers.
pub enum Answer<'a> {
    /// The object's bytes (ranged as asked).
    Object(&'a FakeFile),
    /// A status and an XML body.
    Xml(u16, String),
}

/// The answer to `GET path` (with its query).
pub fn answer<'a>(path: &str, buckets: &'a [FakeRepo]) -> Answer<'a> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let path = path.trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let key = decode(key);
    let Some(found) = buckets.iter().find(|r| r.repo == bucket) else {
        return error(404, "NoSuchBucket");
    };
    if found.gated {
        return error(403, "AccessDenied");
    }
    if key.is_empty() && query.split('&').any(|p| p == "list-type=2") {
        return Answer::Xml(200, list(found, query));
    }
    match found.files.iter().find(|f| f.path == key) {
        Some(file) => Answer::Object(file),
        None => error(404, "NoSuchKey"),
    }
}

fn list(bucket: &FakeRepo, query: &str) -> String {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(decode)
    };
    let prefix = param("prefix").unwrap_or_default();
    let start: usize = param("continuation-token")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut keys: Vec<_> = bucket
        .files
        .iter()
        .filter(|f| f.path.starts_with(&prefix))
        .collect();
    keys.sort_by(|a, b| a.path.cmp(&b.path));
    let page = keys.iter().skip(start).take(PAGE);
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{prefix}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{PAGE}</MaxKeys><EncodingType>url</EncodingType>",
        bucket.repo,
        page.clone().count()
    );
    for f in page {
        let _ = write!(
            xml,
            "<Contents><Key>{}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"{}\"</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            f.path,
            &f.sha256()[..32],
            f.bytes.len()
        );
    }
    let truncated = start + PAGE < keys.len();
    let _ = write!(xml, "<IsTruncated>{truncated}</IsTruncated>");
    if truncated {
        let _ = write!(
            xml,
            "<NextContinuationToken>{}</NextContinuationToken>",
            start + PAGE
        );
    }
    xml.push_str("</ListBucketResult>");
    xml
}

fn error(status: u16, code: &str) -> Answer<'static> {
    Answer::Xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"
        ),
    )
}

/// Percent-decoding of a URL path or query part (the keys here are ASCII).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
