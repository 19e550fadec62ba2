//! Hugging Face Hub model repos: a revision's commit and files from `GET {endpoint}/api/models/{repo}/
//! revision/{rev}?blobs=true`, each file read by ranged `GET {endpoint}/{repo}/resolve/{sha}/{path}`. The
//! conventions are `huggingface_hub`'s: `HF_ENDPOINT`, `HF_TOKEN` (else `HF_TOKEN_PATH`, else
//! `$HF_HOME/token`), `HF_HUB_OFFLINE`, and its cache, read in place. A revision's file list is kept in
//! paramscope's cache by commit, so `@SHA` and offline runs list a repo without a request.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::cache::Cache;
use super::hf_cache::{HfCache, is_sha};
use super::http::{Http, HttpError, Target};
use super::local::LocalFile;
use super::location::is_repo_path;
use super::remote::{Explain, RemoteFile, RemoteParts};
use super::{ByteSource, Secret, SourceError};

/// A revision's file list is refused past this many bytes of JSON.
const LISTING_CAP: u64 = 64 << 20;

/// Where the Hub is and who is asking.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// `HF_ENDPOINT`, without a trailing `/`.
    pub endpoint: String,
    /// The token, sent to the endpoint's origin only.
    pub token: Option<Secret>,
    /// `HF_HUB_OFFLINE`: caches only, no request.
    pub offline: bool,
    /// The Hugging Face cache, read in place.
    pub hf_cache: Option<HfCache>,
}

impl HubSettings {
    /// The settings `huggingface_hub` would use in this environment.
    #[must_use]
    pub fn from_env() -> HubSettings {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let hf_home = var("HF_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface")));
        let token = var("HF_TOKEN").and_then(|t| Secret::new(&t)).or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .or_else(|| hf_home.as_ref().map(|h| h.join("token")))?;
            // A token file is a line; anything longer is not one.
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(std::fs::File::open(path).ok()?, 4096),
                &mut text,
            )
            .ok()?;
            Secret::new(&text)
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        HubSettings {
            endpoint: var("HF_ENDPOINT")
                .unwrap_or_else(|| "https://huggingface.co".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            token,
            offline,
            hf_cache: HfCache::from_env(),
        }
    }
}

/// One file of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Its path in the repo.
    pub path: String,
    /// Its length.
    pub size: u64,
    /// What its content is: `sha256:HEX` for an LFS file, `git:OID` otherwise (the cache key).
    pub key: Option<String>,
}

/// A revision resolved to its commit, with its files.
#[derive(Debug, Clone)]
pub struct Revision {
    /// `ORG/NAME`.
    pub repo: String,
    /// The revision as asked (`main`, a tag, a sha).
    pub revision: String,
    /// The commit.
    pub sha: String,
    /// Its files, in the Hub's order.
    pub files: Vec<RepoFile>,
}

/// The Hub, as this run sees it.
pub struct Hub {
    settings: HubSettings,
    http: Arc<Http>,
    cache: Option<Arc<Cache>>,
}

impl Hub {
    /// A Hub client sharing `http` and `cache`.
    #[must_use]
    pub fn new(settings: HubSettings, http: Arc<Http>, cache: Option<Arc<Cache>>) -> Hub {
        Hub {
            settings,
            http,
            cache,
        }
    }

    /// The commit and files of `repo` at `revision`: from paramscope's cache when the revision is a sha
    /// (no request), from the caches only when offline, else by one request.
    pub fn revision(&self, repo: &str, revision: &str) -> Result<Revision, SourceError> {
        let hf = self.settings.hf_cache.as_ref();
        if self.settings.offline {
            let sha = if is_sha(revision) {
                Some(revision.to_owned())
            } else {
                self.cached_ref(repo, revision)
                    .or_else(|| hf.and_then(|h| h.commit(repo, revision)))
            };
            let found = sha.and_then(|sha| {
                self.cached_listing(repo, revision, &sha).or_else(|| {
                    let files = hf?.list(repo, &sha)?;
                    Some(Revision {
                        repo: repo.to_owned(),
                        revision: revision.to_owned(),
                        files: files
                            .into_iter()
                            .map(|(path, size)| RepoFile {
                                path,
                                size,
                                key: None,
                            })
                            .collect(),
                        sha,
                    })
                })
            });
            return found.ok_or_else(|| SourceError::Offline {
                what: format!("{repo}@{revision}"),
            });
        }
        if is_sha(revision)
            && let Some(listing) = self.cached_listing(repo, revision, revision)
        {
            return Ok(listing);
        }
        let mut url = self.url(&["api", "models"]);
        url.path_segments_mut()
            .expect("the endpoint is a base URL")
            .extend(repo.split('/'))
            .push("revision")
            .push(revision);
        url.set_query(Some("blobs=true"));
        let target = Target::new(url.into(), format!("hf://{repo}@{revision}"))
            .with_bearer(self.settings.token.clone());
        let body = self
            .http
            .get_small(&target, LISTING_CAP)
            .map_err(|e| explain(e, repo, revision, None))?;
        let listing = parse_revision(&body, repo, revision)?;
        if let Some(cache) = &self.cache {
            cache.put_doc(&self.listing_key(repo, &listing.sha), &body);
            cache.put_doc(&self.ref_key(repo, revision), listing.sha.as_bytes());
        }
        Ok(listing)
    }

    /// Opens `file` of `revision`: in place from the Hugging Face cache when it is there, else remote.
    pub fn open(
        &self,
        revision: &Revision,
        file: &RepoFile,
    ) -> Result<Arc<dyn ByteSource>, SourceError> {
        let name = format!("hf://{}@{}/{}", revision.repo, revision.revision, file.path);
        if let Some(path) = self.local(revision, &file.path) {
            return Ok(Arc::new(LocalFile::open(&path, &name)?));
        }
        let mut url = self.url(&[]);
        url.path_segments_mut()
            .expect("the endpoint is a base URL")
            .extend(revision.repo.split('/'))
            .push("resolve")
            .push(&revision.sha)
            .extend(file.path.split('/'));
        let target = Target::new(url.into(), name).with_bearer(self.settings.token.clone());
        let (repo, rev, path) = (
            revision.repo.clone(),
            revision.revision.clone(),
            file.path.clone(),
        );
        let explain: Explain = Arc::new(move |e| explain(e, &repo, &rev, Some(&path)));
        let parts = RemoteParts {
            http: self.http.clone(),
            cache: self.cache.clone(),
            explain,
            offline: self.settings.offline,
        };
        Ok(Arc::new(RemoteFile::known(
            parts,
            target,
            file.size,
            file.key.clone(),
        )))
    }

    /// The file's path in the Hugging Face cache, when it is there.
    #[must_use]
    pub fn local(&self, revision: &Revision, path: &str) -> Option<PathBuf> {
        self.settings
            .hf_cache
            .as_ref()?
            .file(&revision.repo, &revision.sha, path)
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = url::Url::parse(&format!("{}/", self.settings.endpoint))
            .unwrap_or_else(|_| url::Url::parse("https://huggingface.co/").expect("a valid URL"));
        url.path_segments_mut()
            .expect("the endpoint is a base URL")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn listing_key(&self, repo: &str, sha: &str) -> String {
        format!("hub-listing {} {repo} {sha}", self.settings.endpoint)
    }

    fn ref_key(&self, repo: &str, revision: &str) -> String {
        format!("hub-ref {} {repo} {revision}", self.settings.endpoint)
    }

    fn cached_ref(&self, repo: &str, revision: &str) -> Option<String> {
        let text = self
            .cache
            .as_ref()?
            .get_doc(&self.ref_key(repo, revision))?;
        let sha = String::from_utf8(text).ok()?;
        is_sha(&sha).then_some(sha)
    }

    fn cached_listing(&self, repo: &str, revision: &str, sha: &str) -> Option<Revision> {
        let body = self.cache.as_ref()?.get_doc(&self.listing_key(repo, sha))?;
        parse_revision(&body, repo, revision)
            .ok()
            .filter(|r| r.sha == sha)
    }
}

/// Reads the API's answer: `sha`, and `siblings` with `rfilename`, `size`, `blobId` and `lfs.sha256`.
/// Paths that would leave the repo are dropped (they could never be opened safely).
fn parse_revision(body: &[u8], repo: &str, revision: &str) -> Result<Revision, SourceError> {
    let bad = |what: &str| SourceError::BadReply {
        name: format!("hf://{repo}@{revision}"),
        what: what.to_owned(),
    };
    let json: Value =
        serde_json::from_slice(body).map_err(|_| bad("the revision's JSON does not parse"))?;
    let sha = json["sha"]
        .as_str()
        .filter(|s| is_sha(s))
        .ok_or_else(|| bad("no commit sha in the revision's JSON"))?;
    let siblings = json["siblings"]
        .as_array()
        .ok_or_else(|| bad("no file list in the revision's JSON"))?;
    let files = siblings
        .iter()
        .filter_map(|s| {
            let path = s["rfilename"]
                .as_str()
                .filter(|p| is_repo_path(p) && !p.is_empty())?;
            let lfs = s["lfs"]["sha256"].as_str().filter(|h| h.len() == 64);
            let key = lfs
                .map(|h| format!("sha256:{}", h.to_ascii_lowercase()))
                .or_else(|| s["blobId"].as_str().map(|b| format!("git:{b}")));
            Some(RepoFile {
                path: path.to_owned(),
                size: s["size"].as_u64().or_else(|| s["lfs"]["size"].as_u64())?,
                key,
            })
        })
        .collect();
    Ok(Revision {
        repo: repo.to_owned(),
        revision: revision.to_owned(),
        sha: sha.to_owned(),
        files,
    })
}

/// What a refusal means on the Hub, by its `X-Error-Code` first and its status second.
fn explain(error: HttpError, repo: &str, revision: &str, path: Option<&str>) -> SourceError {
    let HttpError::Refused(refusal) = error else {
        return error.into_source(repo);
    };
    let repo = repo.to_owned();
    let revision = revision.to_owned();
    let not_found = |path: Option<&str>| match path {
        Some(path) => SourceError::FileNotFound {
            repo: repo.clone(),
            revision: revision.clone(),
            path: path.to_owned(),
        },
        None => SourceError::RepoNotFound { repo: repo.clone() },
    };
    match (refusal.error_code.as_deref(), refusal.status) {
        (Some("RepoNotFound"), _) => SourceError::RepoNotFound { repo },
        (Some("RevisionNotFound"), _) => SourceError::RevisionNotFound { repo, revision },
        (Some("EntryNotFound"), _) => not_found(path.or(Some(""))),
        (Some("GatedRepo"), _) | (_, 401 | 403) => SourceError::Gated { repo },
        (_, 404) => not_found(path),
        (_, status) => SourceError::Status {
            name: format!("hf://{repo}@{revision}"),
            status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_keep_sizes_and_content_keys_and_drop_escaping_paths() {
        let body = br#"{"sha":"0123456789abcdef0123456789abcdef01234567","siblings":[
            {"rfilename":"config.json","size":10,"blobId":"abc"},
            {"rfilename":"model.safetensors","size":99,"blobId":"def","lfs":{"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":99}},
            {"rfilename":"../evil","size":1}]}"#;
        let rev = parse_revision(body, "o/n", "main").unwrap();
        assert_eq!(rev.files.len(), 2);
        assert_eq!(rev.files[0].key.as_deref(), Some("git:abc"));
        assert_eq!(rev.files[1].size, 99);
        assert!(
            rev.files[1]
                .key
                .as_deref()
                .unwrap()
                .starts_with("sha256:aaaa")
        );
        assert!(parse_revision(b"{\"sha\":\"x\"}", "o/n", "main").is_err());
    }
}
