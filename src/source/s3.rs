//! S3 and S3-compatible stores: objects read by ranged GETs on URLs presigned with SigV4 (`rusty-s3`, a
//! sans-IO crate: no AWS SDK runtime), unsigned when no credentials are set (public buckets); prefixes
//! listed with `ListObjectsV2`, page by page. The environment is the AWS CLI's: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, and
//! `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL` (path-style addressing when an endpoint is given).

use std::sync::Arc;
use std::time::Duration;

use rusty_s3::actions::{GetObject, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::cache::Cache;
use super::error::S3Problem;
use super::http::{Http, HttpError, Target};
use super::remote::{Explain, RemoteFile, RemoteParts};
use super::{ByteSource, SourceError};

/// How long a presigned URL stays valid; each request signs a new one.
const SIGNED_FOR: Duration = Duration::from_mins(15);
/// One page of a listing is refused past this many bytes of XML (a page holds 1,000 keys).
const PAGE_CAP: u64 = 16 << 20;
/// Keys listed under one prefix, at most: a checkpoint folder holds far fewer.
const MAX_KEYS: usize = 1_000_000;

/// Where the store is and who is asking.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// An S3-compatible endpoint (MinIO, R2...), addressed path-style; `None` for AWS.
    pub endpoint: Option<String>,
    /// The region signed for.
    pub region: String,
    /// Keys, or `None` for unsigned requests.
    pub credentials: Option<Credentials>,
}

impl S3Settings {
    /// The settings the AWS CLI would use in this environment (its config files aside).
    #[must_use]
    pub fn from_env() -> S3Settings {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let credentials = var("AWS_ACCESS_KEY_ID")
            .zip(var("AWS_SECRET_ACCESS_KEY"))
            .map(|(key, secret)| match var("AWS_SESSION_TOKEN") {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            });
        S3Settings {
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            credentials,
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    /// Its full key.
    pub key: String,
    /// Its length.
    pub size: u64,
    /// Its ETag (a content hash for objects not uploaded in parts).
    pub etag: Option<String>,
}

/// A store, as this run sees it.
pub struct S3 {
    settings: S3Settings,
    http: Arc<Http>,
    cache: Option<Arc<Cache>>,
}

impl S3 {
    /// A client sharing `http` and `cache`.
    #[must_use]
    pub fn new(settings: S3Settings, http: Arc<Http>, cache: Option<Arc<Cache>>) -> S3 {
        S3 {
            settings,
            http,
            cache,
        }
    }

    fn bucket(&self, name: &str) -> Result<Bucket, SourceError> {
        let bad = |what: &str| SourceError::BadReply {
            name: format!("s3://{name}"),
            what: what.to_owned(),
        };
        let region = self.settings.region.clone();
        let (endpoint, style) = match &self.settings.endpoint {
            Some(e) => (e.clone(), UrlStyle::Path),
            None => (
                format!("https://s3.{region}.amazonaws.com"),
                UrlStyle::VirtualHost,
            ),
        };
        let endpoint: url::Url = endpoint
            .parse()
            .map_err(|_| bad("AWS_ENDPOINT_URL is not a valid URL"))?;
        Bucket::new(endpoint.clone(), style, name.to_owned(), region.clone())
            // A bucket name with dots cannot be a host name: path-style then.
            .or_else(|_| Bucket::new(endpoint, UrlStyle::Path, name.to_owned(), region))
            .map_err(|_| bad("the bucket name cannot make a URL"))
    }

    fn target(&self, bucket: &Bucket, key: &str) -> Target {
        let (bucket, key, credentials) = (
            bucket.clone(),
            key.to_owned(),
            self.settings.credentials.clone(),
        );
        let name = format!("s3://{}/{key}", bucket.name());
        Target::signed(
            move || {
                GetObject::new(&bucket, credentials.as_ref(), &key)
                    .sign(SIGNED_FOR)
                    .into()
            },
            name,
        )
    }

    fn parts(&self, bucket: &str, key: &str) -> RemoteParts {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let explain: Explain = Arc::new(move |e| explain(e, &bucket, &key));
        RemoteParts {
            http: self.http.clone(),
            cache: self.cache.clone(),
            explain,
            offline: false,
        }
    }

    fn key_prefix(&self, bucket: &str, key: &str) -> String {
        let place = self
            .settings
            .endpoint
            .as_deref()
            .unwrap_or(&self.settings.region);
        format!("s3 {place} {bucket}/{key}")
    }

    /// Opens an object by one ranged GET of its start (which gives its length and ETag).
    pub fn open(&self, bucket: &str, key: &str) -> Result<Arc<dyn ByteSource>, SourceError> {
        let b = self.bucket(bucket)?;
        let file = RemoteFile::probe(
            self.parts(bucket, key),
            self.target(&b, key),
            &self.key_prefix(bucket, key),
        )?;
        Ok(Arc::new(file))
    }

    /// Opens an object a listing described: nothing is fetched until a read.
    pub fn open_listed(
        &self,
        bucket: &str,
        object: &S3Object,
    ) -> Result<Arc<dyn ByteSource>, SourceError> {
        let b = self.bucket(bucket)?;
        let key = object.etag.as_ref().map(|e| {
            format!(
                "{}|{}|{e}",
                self.key_prefix(bucket, &object.key),
                object.size
            )
        });
        let target = self.target(&b, &object.key);
        Ok(Arc::new(RemoteFile::known(
            self.parts(bucket, &object.key),
            target,
            object.size,
            key,
        )))
    }

    /// Every object under `prefix`, by `ListObjectsV2` pages of 1,000.
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<S3Object>, SourceError> {
        let b = self.bucket(bucket)?;
        let name = format!("s3://{bucket}/{prefix}");
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (b2, credentials, prefix2, token2) = (
                b.clone(),
                self.settings.credentials.clone(),
                prefix.to_owned(),
                token.clone(),
            );
            let target = Target::signed(
                move || {
                    let mut action = ListObjectsV2::new(&b2, credentials.as_ref());
                    action.with_prefix(prefix2.as_str());
                    if let Some(t) = &token2 {
                        action.with_continuation_token(t.as_str());
                    }
                    action.sign(SIGNED_FOR).into()
                },
                name.clone(),
            );
            let body = self
                .http
                .get_small(&target, PAGE_CAP)
                .map_err(|e| explain(e, bucket, prefix))?;
            let text = String::from_utf8_lossy(&body);
            let page = ListObjectsV2::parse_response(&text).map_err(|_| SourceError::BadReply {
                name: name.clone(),
                what: "a listing that does not parse".to_owned(),
            })?;
            objects.extend(page.contents.into_iter().map(|c| S3Object {
                size: c.size.unwrap_or(0),
                etag: c.etag,
                key: c.key,
            }));
            if objects.len() > MAX_KEYS {
                return Err(SourceError::TooLarge {
                    name,
                    size: objects.len() as u64,
                });
            }
            match page.next_continuation_token {
                // A server that hands back the same token would page forever.
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(objects),
            }
        }
    }
}

/// What an S3 refusal means, by the `Code` of its XML body first and its status second.
fn explain(error: HttpError, bucket: &str, key: &str) -> SourceError {
    let HttpError::Refused(refusal) = error else {
        return error.into_source(&format!("s3://{bucket}/{key}"));
    };
    let code = error_code(&refusal.body);
    let problem = match (code, refusal.status) {
        (Some("AccessDenied"), _) | (None, 401 | 403) => S3Problem::AccessDenied,
        (Some("NoSuchBucket"), _) => S3Problem::NoSuchBucket,
        (Some("NoSuchKey"), _) | (None, 404) => S3Problem::NoSuchKey,
        _ => {
            return SourceError::Status {
                name: format!("s3://{bucket}/{key}"),
                status: refusal.status,
            };
        }
    };
    SourceError::S3 {
        problem,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    }
}

/// The `<Code>` of an S3 XML error body.
fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    Some(body[start..start + len].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_the_xml() {
        let body =
            "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>x</Message></Error>";
        assert_eq!(error_code(body), Some("NoSuchBucket"));
        assert_eq!(error_code("<Error></Error>"), None);
        let refused = |status, body: &str| {
            explain(
                HttpError::Refused(super::super::http::Refusal {
                    status,
                    error_code: None,
                    body: body.to_owned(),
                }),
                "b",
                "k",
            )
            .to_string()
        };
        assert!(refused(404, body).contains("no such bucket"));
        assert!(refused(403, "").contains("access denied"));
        assert!(refused(404, "<Code>NoSuchKey</Code>").contains("no such key"));
    }
}
