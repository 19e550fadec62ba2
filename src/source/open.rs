//! A [`Location`] opened: a local path (left to the mapped route), one remote file, or a remote folder (a
//! Hub repo or subfolder, an S3 prefix) that lists its files and opens them by relative path, as a local
//! folder holding the same files would.

use std::path::PathBuf;
use std::sync::Arc;

use super::cache::Cache;
use super::http::{Http, HttpSettings, Target};
use super::hub::{Hub, HubSettings, RepoFile, Revision};
use super::location::HubRef;
use super::remote::{Explain, RemoteFile, RemoteParts};
use super::s3::{S3, S3Object, S3Settings};
use super::{ByteSource, Location, SourceError};

/// Everything a run needs to reach remote files: one client, one cache, the Hub's and S3's settings.
pub struct Sources {
    http: Arc<Http>,
    cache: Option<Arc<Cache>>,
    hub: Arc<Hub>,
    s3: Arc<S3>,
}

/// One file of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderFile {
    /// Its path relative to the folder, `/`-separated.
    pub path: String,
    /// Its length.
    pub size: u64,
}

/// A remote folder: its files, each opened on demand.
pub trait Folder: Send + Sync {
    /// What messages call it (`hf://ORG/NAME@REV/PATH`, `s3://BUCKET/PREFIX/`).
    fn name(&self) -> &str;
    /// Its files (every depth), in a stable order.
    fn files(&self) -> &[FolderFile];
    /// Opens the file at `path` (as [`FolderFile::path`] gives it).
    fn open(&self, path: &str) -> Result<Arc<dyn ByteSource>, SourceError>;
}

/// What a MODEL argument turned out to be.
pub enum Opened {
    /// A path on this machine (the Hugging Face cache's copy of a remote file or folder included): read it
    /// by the mapped route.
    Local(PathBuf),
    /// One remote file.
    File(Arc<dyn ByteSource>),
    /// A remote folder.
    Folder(Arc<dyn Folder>),
}

impl Sources {
    /// Sources from explicit settings (tests point them at loopback servers).
    #[must_use]
    pub fn new(
        http: HttpSettings,
        cache: Option<Cache>,
        hub: HubSettings,
        s3: S3Settings,
    ) -> Sources {
        let http = Arc::new(Http::new(http));
        let cache = cache.map(Arc::new);
        Sources {
            hub: Arc::new(Hub::new(hub, http.clone(), cache.clone())),
            s3: Arc::new(S3::new(s3, http.clone(), cache.clone())),
            http,
            cache,
        }
    }

    /// Sources as the environment sets them up.
    #[must_use]
    pub fn from_env() -> Sources {
        Sources::new(
            HttpSettings::from_env(),
            Cache::from_env(),
            HubSettings::from_env(),
            S3Settings::from_env(),
        )
    }

    /// The shared client (its counters tell requests and bytes).
    #[must_use]
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// Opens `location`.
    pub fn open(&self, location: &Location) -> Result<Opened, SourceError> {
        match location {
            Location::Local(path) => Ok(Opened::Local(path.clone())),
            Location::Http(url) => {
                let explain: Explain = {
                    let url = url.clone();
                    Arc::new(move |e| e.into_source(&url))
                };
                let parts = RemoteParts {
                    http: self.http.clone(),
                    cache: self.cache.clone(),
                    explain,
                    offline: false,
                };
                let target = Target::new(url.clone(), url.clone());
                let file = RemoteFile::probe(parts, target, &format!("url {url}"))?;
                Ok(Opened::File(Arc::new(file)))
            }
            Location::Hub(hub_ref) => self.open_hub(hub_ref),
            Location::S3 { bucket, key } => self.open_s3(bucket, key),
        }
    }

    fn open_hub(&self, at: &HubRef) -> Result<Opened, SourceError> {
        let revision = Arc::new(self.hub.revision(&at.repo, &at.revision)?);
        if let Some(file) = revision.files.iter().find(|f| f.path == at.path) {
            if let Some(path) = self.hub.local(&revision, &file.path) {
                return Ok(Opened::Local(path));
            }
            return self.hub.open(&revision, file).map(Opened::File);
        }
        let prefix = if at.path.is_empty() {
            String::new()
        } else {
            format!("{}/", at.path)
        };
        let files: Vec<(FolderFile, RepoFile)> = revision
            .files
            .iter()
            .filter_map(|f| {
                let rel = f.path.strip_prefix(&prefix)?;
                Some((
                    FolderFile {
                        path: rel.to_owned(),
                        size: f.size,
                    },
                    f.clone(),
                ))
            })
            .collect();
        if files.is_empty() {
            return Err(SourceError::FileNotFound {
                repo: at.repo.clone(),
                revision: at.revision.clone(),
                path: at.path.clone(),
            });
        }
        // A folder whose every file is in the Hugging Face cache opens there, like any local folder.
        if files
            .iter()
            .all(|(_, f)| self.hub.local(&revision, &f.path).is_some())
            && let Some(first) = self.hub.local(&revision, &files[0].1.path)
        {
            let depth = files[0].0.path.split('/').count();
            let folder = first.ancestors().nth(depth).map(PathBuf::from);
            if let Some(folder) = folder {
                return Ok(Opened::Local(folder));
            }
        }
        let name = format!("hf://{}@{}/{}", at.repo, at.revision, at.path);
        let (listed, repo_files) = files.into_iter().unzip();
        Ok(Opened::Folder(Arc::new(HubFolder {
            hub: self.hub.clone(),
            revision,
            name: name.trim_end_matches('/').to_owned(),
            listed,
            repo_files,
        })))
    }

    fn open_s3(&self, bucket: &str, key: &str) -> Result<Opened, SourceError> {
        if !key.is_empty() && !key.ends_with('/') {
            return self.s3.open(bucket, key).map(Opened::File);
        }
        let objects: Vec<S3Object> = self
            .s3
            .list(bucket, key)?
            .into_iter()
            // Folder markers (a key ending in '/') are not files.
            .filter(|o| !o.key.ends_with('/') && o.key.len() > key.len())
            .collect();
        if objects.is_empty() {
            return Err(SourceError::S3 {
                problem: super::error::S3Problem::NoSuchKey,
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        let listed = objects
            .iter()
            .map(|o| FolderFile {
                path: o.key[key.len()..].to_owned(),
                size: o.size,
            })
            .collect();
        Ok(Opened::Folder(Arc::new(S3Folder {
            s3: self.s3.clone(),
            bucket: bucket.to_owned(),
            prefix: key.to_owned(),
            name: format!("s3://{bucket}/{key}"),
            listed,
            objects,
        })))
    }
}

struct HubFolder {
    hub: Arc<Hub>,
    revision: Arc<Revision>,
    name: String,
    listed: Vec<FolderFile>,
    repo_files: Vec<RepoFile>,
}

impl Folder for HubFolder {
    fn name(&self) -> &str {
        &self.name
    }

    fn files(&self) -> &[FolderFile] {
        &self.listed
    }

    fn open(&self, path: &str) -> Result<Arc<dyn ByteSource>, SourceError> {
        let index = self.listed.iter().position(|f| f.path == path);
        match index {
            Some(i) => self.hub.open(&self.revision, &self.repo_files[i]),
            None => Err(SourceError::FileNotFound {
                repo: self.revision.repo.clone(),
                revision: self.revision.revision.clone(),
                path: path.to_owned(),
            }),
        }
    }
}

struct S3Folder {
    s3: Arc<S3>,
    bucket: String,
    prefix: String,
    name: String,
    listed: Vec<FolderFile>,
    objects: Vec<S3Object>,
}

impl Folder for S3Folder {
    fn name(&self) -> &str {
        &self.name
    }

    fn files(&self) -> &[FolderFile] {
        &self.listed
    }

    fn open(&self, path: &str) -> Result<Arc<dyn ByteSource>, SourceError> {
        match self.listed.iter().position(|f| f.path == path) {
            Some(i) => self.s3.open_listed(&self.bucket, &self.objects[i]),
            None => Err(SourceError::S3 {
                problem: super::error::S3Problem::NoSuchKey,
                bucket: self.bucket.clone(),
                key: format!("{}{path}", self.prefix),
            }),
        }
    }
}
