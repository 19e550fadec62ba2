//! A MODEL argument parsed into where it lives: a local path, a Hub repo (`hf://ORG/NAME[@REV][/PATH]`), an
//! HTTP(S) URL or an S3 object or prefix (`s3://BUCKET/KEY`).

use std::net::IpAddr;
use std::path::PathBuf;

use super::error::LocationError;

/// Where a checkpoint lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path on this machine.
    Local(PathBuf),
    /// A file or folder of a Hub model repo.
    Hub(HubRef),
    /// One file on a server that answers Range requests.
    Http(String),
    /// An object, or a folder when the key is empty or ends in `/`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key or prefix (no leading `/`).
        key: String,
    },
}

/// `hf://ORG/NAME[@REVISION][/PATH]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    /// `ORG/NAME`.
    pub repo: String,
    /// A branch, tag or commit sha (`main` when none is given).
    pub revision: String,
    /// A file or folder inside the repo, without leading or trailing `/`; empty for the root.
    pub path: String,
}

impl Location {
    /// Parses a MODEL argument; anything without a known scheme is a local path.
    pub fn parse(arg: &str) -> Result<Location, LocationError> {
        if let Some(rest) = arg.strip_prefix("hf://") {
            return parse_hub(arg, rest).map(Location::Hub);
        }
        if let Some(rest) = arg.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(malformed(arg, "no bucket after s3://"));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        if arg.starts_with("https://") || arg.starts_with("http://") {
            let url = url::Url::parse(arg).map_err(|_| malformed(arg, "not a valid URL"))?;
            if url.scheme() == "http" && !is_private(&url) {
                return Err(LocationError::PlainHttp {
                    arg: arg.to_owned(),
                });
            }
            return Ok(Location::Http(arg.to_owned()));
        }
        Ok(Location::Local(PathBuf::from(arg)))
    }

    /// Whether bytes come over the network (so reads are ranged and cached).
    #[must_use]
    pub fn is_remote(&self) -> bool {
        !matches!(self, Location::Local(_))
    }
}

fn malformed(arg: &str, why: &'static str) -> LocationError {
    LocationError::Malformed {
        arg: arg.to_owned(),
        why,
    }
}

fn parse_hub(arg: &str, rest: &str) -> Result<HubRef, LocationError> {
    let mut parts = rest.splitn(3, '/');
    let org = parts.next().unwrap_or_default();
    if matches!(org, "datasets" | "spaces") {
        return Err(LocationError::NotAModelRepo {
            arg: arg.to_owned(),
        });
    }
    let name_rev = parts
        .next()
        .ok_or_else(|| malformed(arg, "expected hf://ORG/NAME[@REVISION][/PATH]"))?;
    let (name, revision) = match name_rev.split_once('@') {
        // A revision with a slash (refs/pr/1) is written with %2F, as huggingface_hub's file system does.
        Some((name, rev)) => (name, rev.replace("%2F", "/").replace("%2f", "/")),
        None => (name_rev, "main".to_owned()),
    };
    if !is_repo_part(org) || !is_repo_part(name) {
        return Err(malformed(
            arg,
            "ORG and NAME may hold only letters, digits, '-', '_' and '.'",
        ));
    }
    if revision.is_empty() || revision.contains("..") {
        return Err(malformed(arg, "empty or invalid revision after '@'"));
    }
    let path = parts.next().unwrap_or_default().trim_matches('/');
    if !is_repo_path(path) {
        return Err(malformed(
            arg,
            "the path inside the repo may not hold '..' or '.'",
        ));
    }
    Ok(HubRef {
        repo: format!("{org}/{name}"),
        revision,
        path: path.to_owned(),
    })
}

fn is_repo_part(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A relative path that stays inside its root: no `..`, `.` or empty component, no backslash. Server
/// listings go through this too before a path meets the file system.
#[must_use]
pub fn is_repo_path(path: &str) -> bool {
    path.is_empty()
        || (!path.contains('\\')
            && !path.contains('\0')
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."))
}

/// Loopback, private and link-local addresses, and `localhost`: where plain HTTP stays off the internet.
fn is_private(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => {
            let ip = IpAddr::V6(ip);
            ip.is_loopback()
                || matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(arg: &str) -> HubRef {
        match Location::parse(arg) {
            Ok(Location::Hub(h)) => h,
            other => panic!("{arg}: {other:?}"),
        }
    }

    #[test]
    fn hub_arguments_split_into_repo_revision_and_path() {
        let h = hub("hf://meta-llama/Llama-3.1-8B");
        assert_eq!(
            (h.repo.as_str(), h.revision.as_str(), h.path.as_str()),
            ("meta-llama/Llama-3.1-8B", "main", "")
        );
        let h = hub("hf://org/name@v1.0/text_encoder/");
        assert_eq!(
            (h.revision.as_str(), h.path.as_str()),
            ("v1.0", "text_encoder")
        );
        let h = hub("hf://org/name@refs%2Fpr%2F3/a/b.gguf");
        assert_eq!(
            (h.revision.as_str(), h.path.as_str()),
            ("refs/pr/3", "a/b.gguf")
        );
    }

    #[test]
    fn datasets_traversal_and_public_http_are_refused() {
        assert!(matches!(
            Location::parse("hf://datasets/org/x"),
            Err(LocationError::NotAModelRepo { .. })
        ));
        assert!(Location::parse("hf://org/name/../../etc").is_err());
        assert!(Location::parse("hf://org").is_err());
        assert!(Location::parse("hf://org/na me").is_err());
        assert!(matches!(
            Location::parse("http://example.com/a.safetensors"),
            Err(LocationError::PlainHttp { .. })
        ));
        assert!(Location::parse("http://127.0.0.1:8080/a").is_ok());
        assert!(Location::parse("http://192.168.1.2/a").is_ok());
    }

    #[test]
    fn s3_and_local_arguments() {
        assert_eq!(
            Location::parse("s3://bkt/run/step-10/").unwrap(),
            Location::S3 {
                bucket: "bkt".into(),
                key: "run/step-10/".into()
            }
        );
        assert_eq!(
            Location::parse("model.safetensors").unwrap(),
            Location::Local("model.safetensors".into())
        );
    }
}
