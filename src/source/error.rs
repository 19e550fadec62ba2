//! The ways reading a remote or local source fails, each one line that says what to do. Names, URLs and
//! server text travel raw (escaped where they meet a terminal); no error ever holds a token or a signed URL.

use thiserror::Error;

/// A MODEL argument that names no source paramscope can read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LocationError {
    /// `hf://datasets/...` or `hf://spaces/...`.
    #[error("{arg}: only model repos can be opened (hf://ORG/NAME), not datasets or spaces")]
    NotAModelRepo {
        /// The argument as given.
        arg: String,
    },
    /// An `hf://`, `s3://` or `http(s)://` argument that does not parse.
    #[error("{arg}: {why}")]
    Malformed {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `http://` to a public address: the token and the data would cross the internet in the clear.
    #[error("{arg}: plain http:// is only for loopback and private networks; use https://")]
    PlainHttp {
        /// The argument as given.
        arg: String,
    },
}

/// What an S3 server said was wrong, from the `Code` of its XML error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Problem {
    /// `AccessDenied` (or a 401/403 without a code).
    AccessDenied,
    /// `NoSuchKey`.
    NoSuchKey,
    /// `NoSuchBucket`.
    NoSuchBucket,
}

/// Why bytes could not be read.
#[derive(Debug, Error)]
pub enum SourceError {
    /// 401/403 from the Hub: a gated or private repo.
    #[error("{repo} is gated: accept its terms on its Hub page and set HF_TOKEN")]
    Gated {
        /// ORG/NAME.
        repo: String,
    },
    /// 404 for the repo itself.
    #[error("{repo}: no such model repo on the Hub (or it is private: set HF_TOKEN)")]
    RepoNotFound {
        /// ORG/NAME.
        repo: String,
    },
    /// 404 for the revision.
    #[error("{repo}: no revision {revision} (a branch, tag or commit sha)")]
    RevisionNotFound {
        /// ORG/NAME.
        repo: String,
        /// The branch, tag or sha asked for.
        revision: String,
    },
    /// A path that is neither a file nor a folder of the repo at that revision.
    #[error("{repo}@{revision}: no file or folder {path}")]
    FileNotFound {
        /// ORG/NAME.
        repo: String,
        /// The revision looked in.
        revision: String,
        /// The path inside the repo.
        path: String,
    },
    /// `HF_HUB_OFFLINE=1` and the caches lack what is needed.
    #[error(
        "HF_HUB_OFFLINE is set and {what} is not in the cache: unset HF_HUB_OFFLINE to fetch it"
    )]
    Offline {
        /// What was looked for (a repo's revision, a file's range).
        what: String,
    },
    /// No connection could be made, or it kept failing.
    #[error("cannot reach {name}: {reason}")]
    Network {
        /// The file or repo being read.
        name: String,
        /// The transport's reason, without any URL query (a signature) in it.
        reason: String,
    },
    /// An answer the caller cannot use, after the retries.
    #[error("{name}: the server answered HTTP {status}")]
    Status {
        /// The file or repo being read.
        name: String,
        /// The HTTP status.
        status: u16,
    },
    /// A server that answers a Range request with the whole of a large file.
    #[error(
        "{name}: the server does not answer Range requests, and the file is {size} bytes (over 64 MiB): download it, then open the local copy"
    )]
    NoRange {
        /// The file being read.
        name: String,
        /// Its length, as the server gave it.
        size: u64,
    },
    /// A body that kept ending early.
    #[error(
        "{name}: the server kept cutting the answer short (bytes {start}..{end} still missing after the retries)"
    )]
    CutShort {
        /// The file being read.
        name: String,
        /// First missing byte.
        start: u64,
        /// One past the last byte wanted.
        end: u64,
    },
    /// A reply that breaks the protocol (a wrong Content-Range, unparsable JSON, a path leaving the repo).
    #[error("{name}: unexpected answer from the server: {what}")]
    BadReply {
        /// The file or repo being read.
        name: String,
        /// What was wrong.
        what: String,
    },
    /// A range outside the file.
    #[error("{name}: bytes {start}..{end} lie outside the file ({len} bytes)")]
    OutOfBounds {
        /// The file being read.
        name: String,
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// A range too large to hold in memory on this machine.
    #[error("{name}: {size} bytes is too large to read at once")]
    TooLarge {
        /// The file being read.
        name: String,
        /// The size asked for.
        size: u64,
    },
    /// An S3 error with a code paramscope explains.
    #[error("{}", s3_message(*.problem, bucket, key))]
    S3 {
        /// What the server said.
        problem: S3Problem,
        /// The bucket.
        bucket: String,
        /// The key or prefix.
        key: String,
    },
    /// A local read failed.
    #[error("{name}: {source}")]
    Io {
        /// The path.
        name: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The argument itself is wrong.
    #[error(transparent)]
    Location(#[from] LocationError),
}

fn s3_message(problem: S3Problem, bucket: &str, key: &str) -> String {
    match problem {
        S3Problem::AccessDenied => format!(
            "s3://{bucket}/{key}: access denied: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) for an identity that may read it"
        ),
        S3Problem::NoSuchKey => format!("s3://{bucket}/{key}: no such key in the bucket"),
        S3Problem::NoSuchBucket => {
            format!(
                "s3://{bucket}: no such bucket (check the name, AWS_REGION and AWS_ENDPOINT_URL)"
            )
        }
    }
}
