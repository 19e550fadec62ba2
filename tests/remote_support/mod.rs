//! A loopback Hub for the remote tests: the two API routes (`/api/models/{repo}/revision/{rev}` and
//! `/{repo}/resolve/{rev}/{path}`), LFS files redirected to a second loopback origin (the "CDN"), small
//! files served directly, HEAD with `X-Repo-Commit`/`ETag`/`X-Linked-Size`, Range answered with 206 and
//! `Content-Range`, and faults injected on demand. It counts requests and bytes, and records any
//! `Authorization` header the CDN receives (a test fails on it). It listens on 127.0.0.1 only, serves
//! each connection on a thread (at most `MAX_CONNECTIONS` at once: more than the 32 readers of one run
//! keep open to both origins, so that no figure pays for a connection it refused) and stops when
//! dropped.

#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a part of the fake"
)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub mod cli;
mod repos;
mod s3;
mod wire;

use wire::{Request, parse_range, read_request, respond, status_line};

pub use repos::{FakeFile, FakeRepo, llama_shaped, safetensors_bytes};

const MAX_CONNECTIONS: usize = 256;

/// A one-shot or lasting misbehaviour.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 429 with `Retry-After: secs`.
    TooMany(u64),
    /// 503.
    Unavailable,
    /// The body stops after half its bytes and the connection closes (Content-Length promised more).
    DropMidBody,
    /// A 200 with the whole file to a Range request.
    IgnoreRange,
    /// A 200 claiming this Content-Length to a Range request, then nothing.
    IgnoreRangeHuge(u64),
    /// A 302 back to the same URL.
    RedirectLoop,
    /// Half the body, then silence for this long, then the connection closes.
    Stall(Duration),
    /// The body a byte at a time, this long apart.
    Drip(Duration),
    /// The whole body but its last byte, then the connection closes (Content-Length promised it).
    ShortByOne,
    /// A `Content-Range` giving this as the file's length, whatever the listing said.
    ClaimTotal(u64),
    /// This status, with no body (403: a signed CDN URL that expired).
    Refuse(u16),
}

/// Which of the two origins a fault or count is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Hub,
    Cdn,
}

#[derive(Default)]
pub struct Stats {
    pub hub_requests: AtomicU64,
    pub cdn_requests: AtomicU64,
    pub bytes: AtomicU64,
    pub cdn_saw_authorization: AtomicBool,
    /// Every request line, in order.
    pub log: Mutex<Vec<String>>,
}

struct Shared {
    repos: Vec<FakeRepo>,
    token: Option<String>,
    cdn: String,
    stats: Stats,
    once: Mutex<VecDeque<(Origin, Fault)>>,
    always: Mutex<Option<(Origin, Fault)>>,
    latency: Mutex<Duration>,
    stop: AtomicBool,
    active: AtomicUsize,
    /// Serve as an S3 store (path-style: `/{bucket}/{key}`, `ListObjectsV2`) instead of as the Hub.
    s3: bool,
}

/// The two running origins.
pub struct FakeHub {
    shared: Arc<Shared>,
    pub endpoint: String,
    hub_addr: String,
    cdn_addr: String,
}

impl FakeHub {
    pub fn start(repos: Vec<FakeRepo>, token: Option<&str>) -> FakeHub {
        Self::serve(repos, token, false)
    }

    /// An S3 store on loopback, path-style: each repo is a bucket (`gated` answers AccessDenied), its
    /// files the objects; listings come in pages of two keys so paging is exercised.
    pub fn start_s3(buckets: Vec<FakeRepo>) -> FakeHub {
        Self::serve(buckets, None, true)
    }

    fn serve(repos: Vec<FakeRepo>, token: Option<&str>, s3: bool) -> FakeHub {
        let hub = TcpListener::bind("127.0.0.1:0").unwrap();
        let cdn = TcpListener::bind("127.0.0.1:0").unwrap();
        let hub_addr = hub.local_addr().unwrap().to_string();
        let cdn_addr = cdn.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            repos,
            token: token.map(str::to_owned),
            cdn: format!("http://{cdn_addr}"),
            stats: Stats::default(),
            once: Mutex::new(VecDeque::new()),
            always: Mutex::new(None),
            latency: Mutex::new(Duration::ZERO),
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            s3,
        });
        for (listener, origin) in [(hub, Origin::Hub), (cdn, Origin::Cdn)] {
            let shared = shared.clone();
            thread::spawn(move || accept(listener, origin, shared));
        }
        FakeHub {
            shared,
            endpoint: format!("http://{hub_addr}"),
            hub_addr,
            cdn_addr,
        }
    }

    /// The second origin (`http://127.0.0.1:PORT`), which serves LFS files by `/{repo}/{sha256}` paths.
    pub fn cdn(&self) -> &str {
        &self.shared.cdn
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn requests(&self) -> u64 {
        self.stats().hub_requests.load(Ordering::SeqCst)
    }

    pub fn cdn_requests(&self) -> u64 {
        self.stats().cdn_requests.load(Ordering::SeqCst)
    }

    pub fn inject(&self, origin: Origin, fault: Fault) {
        self.shared.once.lock().unwrap().push_back((origin, fault));
    }

    pub fn always(&self, origin: Origin, fault: Option<Fault>) {
        *self.shared.always.lock().unwrap() = fault.map(|f| (origin, f));
    }

    pub fn set_latency(&self, latency: Duration) {
        *self.shared.latency.lock().unwrap() = latency;
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake both accept loops so they see the flag.
        for addr in [&self.hub_addr, &self.cdn_addr] {
            let _ = TcpStream::connect(addr);
        }
        assert!(
            !self
                .shared
                .stats
                .cdn_saw_authorization
                .load(Ordering::SeqCst),
            "the CDN origin received an Authorization header"
        );
    }
}

fn accept(listener: TcpListener, origin: Origin, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue; // dropped: the client retries
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        thread::spawn(move || {
            let _ = serve(stream, origin, &shared);
            shared.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Serves requests on one connection until the client closes it (keep-alive, as the Hub does).
fn serve(stream: TcpStream, origin: Origin, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    for _ in 0..1000 {
        let Some(request) = read_request(&mut reader)? else {
            return Ok(());
        };
        let counter = match origin {
            Origin::Hub => &shared.stats.hub_requests,
            Origin::Cdn => &shared.stats.cdn_requests,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        shared.stats.log.lock().unwrap().push(format!(
            "{origin:?} {} {} {}",
            request.method,
            request.path,
            request.header("range").unwrap_or("-")
        ));
        if origin == Origin::Cdn && request.header("authorization").is_some() {
            shared
                .stats
                .cdn_saw_authorization
                .store(true, Ordering::SeqCst);
        }
        let latency = *shared.latency.lock().unwrap();
        if !latency.is_zero() {
            thread::sleep(latency);
        }
        let fault = {
            let mut once = shared.once.lock().unwrap();
            match once.front() {
                Some((o, _)) if *o == origin => once.pop_front().map(|f| f.1),
                _ => None,
            }
        }
        .or_else(|| {
            let always = shared.always.lock().unwrap();
            always
                .as_ref()
                .filter(|(o, _)| *o == origin)
                .map(|f| f.1.clone())
        });
        let keep = route(&request, origin, shared, fault, &mut out)?;
        if !keep {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}

/// Answers one request; returns whether the connection stays open.
fn route(
    request: &Request,
    origin: Origin,
    shared: &Shared,
    fault: Option<Fault>,
    out: &mut TcpStream,
) -> std::io::Result<bool> {
    match fault {
        Some(Fault::TooMany(secs)) => {
            return respond(out, 429, &[("Retry-After", secs.to_string())], b"", shared);
        }
        Some(Fault::Unavailable) => return respond(out, 503, &[], b"", shared),
        Some(Fault::Refuse(status)) => return respond(out, status, &[], b"", shared),
        Some(Fault::RedirectLoop) => {
            let back = [("Location", request.path.clone())];
            return respond(out, 302, &back, b"", shared);
        }
        _ => {}
    }
    if shared.s3 {
        return s3_route(request, shared, fault, out);
    }
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if origin == Origin::Cdn {
        let file = segments.get(1).and_then(|sha| {
            shared
                .repos
                .iter()
                .flat_map(|r| &r.files)
                .find(|f| f.lfs && f.sha256() == *sha)
        });
        return match file {
            Some(f) => send_file(request, f, &f.sha256(), &[], fault, out, shared),
            None => respond(out, 404, &[], b"no such blob", shared),
        };
    }
    if segments.len() >= 5
        && segments[0] == "api"
        && segments[1] == "models"
        && segments[4] == "revision"
    {
        return api(&segments, query, shared, out);
    }
    if segments.len() >= 5 && segments[2] == "resolve" {
        return resolve(request, &segments, shared, fault, out);
    }
    respond(out, 404, &[], b"not found", shared)
}

/// The repo `repo` at `rev`: the one of that name whose commit it is, or the first by `main`.
fn at_revision<'a>(shared: &'a Shared, repo: &str, rev: &str) -> Option<&'a FakeRepo> {
    let mut named = shared.repos.iter().filter(|r| r.repo == repo);
    named
        .clone()
        .find(|r| r.sha == rev)
        .or_else(|| named.next().filter(|_| rev == "main"))
}

/// `GET /api/models/{org}/{name}/revision/{rev}[?blobs=true]`.
fn api(
    segments: &[&str],
    query: &str,
    shared: &Shared,
    out: &mut TcpStream,
) -> std::io::Result<bool> {
    let repo = format!("{}/{}", segments[2], segments[3]);
    let rev = segments[5..].join("/");
    if !shared.repos.iter().any(|r| r.repo == repo) {
        return respond(
            out,
            401,
            &[("X-Error-Code", "RepoNotFound".into())],
            b"{\"error\":\"Repository not found\"}",
            shared,
        );
    }
    let Some(r) = at_revision(shared, &repo, &rev) else {
        return respond(
            out,
            404,
            &[("X-Error-Code", "RevisionNotFound".into())],
            b"{\"error\":\"Invalid rev id\"}",
            shared,
        );
    };
    let blobs = query.contains("blobs=true");
    let siblings: Vec<serde_json::Value> = r
        .files
        .iter()
        .map(|f| {
            let mut s = serde_json::json!({ "rfilename": f.path });
            if blobs {
                s["size"] = f.listed_size().into();
                s["blobId"] = f.blob_id().into();
                if f.lfs {
                    s["lfs"] = serde_json::json!({"sha256": f.sha256(), "size": f.bytes.len(), "pointerSize": 134});
                }
            }
            s
        })
        .collect();
    let body =
        serde_json::json!({ "id": r.repo, "modelId": r.repo, "sha": r.sha, "siblings": siblings });
    respond(
        out,
        200,
        &[("Content-Type", "application/json".into())],
        body.to_string().as_bytes(),
        shared,
    )
}

/// `GET|HEAD /{org}/{name}/resolve/{rev}/{path}`: a 302 to the CDN for LFS files, the bytes for others.
fn resolve(
    request: &Request,
    segments: &[&str],
    shared: &Shared,
    fault: Option<Fault>,
    out: &mut TcpStream,
) -> std::io::Result<bool> {
    let repo = format!("{}/{}", segments[0], segments[1]);
    let Some(named) = shared.repos.iter().find(|r| r.repo == repo) else {
        return respond(
            out,
            401,
            &[("X-Error-Code", "RepoNotFound".into())],
            b"",
            shared,
        );
    };
    if named.gated {
        let expected = shared.token.as_ref().map(|t| format!("Bearer {t}"));
        if request.header("authorization").map(str::to_owned) != expected || expected.is_none() {
            return respond(
                out,
                401,
                &[("X-Error-Code", "GatedRepo".into())],
                b"{\"error\":\"gated\"}",
                shared,
            );
        }
    }
    let Some(r) = at_revision(shared, &repo, segments[3]) else {
        return respond(
            out,
            404,
            &[("X-Error-Code", "RevisionNotFound".into())],
            b"",
            shared,
        );
    };
    let file_path = segments[4..].join("/");
    let Some(f) = r.files.iter().find(|f| f.path == file_path) else {
        return respond(
            out,
            404,
            &[("X-Error-Code", "EntryNotFound".into())],
            b"",
            shared,
        );
    };
    let commit = ("X-Repo-Commit", r.sha.clone());
    if f.lfs {
        let location = format!("{}/blobs/{}?sig=x", shared.cdn, f.sha256());
        let headers = [
            ("Location", location),
            commit,
            ("ETag", format!("\"{}\"", f.sha256())),
            ("X-Linked-Size", f.listed_size().to_string()),
            ("X-Linked-Etag", format!("\"{}\"", f.sha256())),
        ];
        return respond(out, 302, &headers, b"", shared);
    }
    send_file(request, f, &f.blob_id(), &[commit], fault, out, shared)
}

/// `GET /{bucket}/{key}` with Range, or `GET /{bucket}?list-type=2`: S3's answers, path-style.
fn s3_route(
    request: &Request,
    shared: &Shared,
    fault: Option<Fault>,
    out: &mut TcpStream,
) -> std::io::Result<bool> {
    let xml = [("Content-Type", "application/xml".to_owned())];
    match s3::answer(&request.path, &shared.repos) {
        s3::Answer::Object(file) => {
            send_file(request, file, &file.sha256(), &[], fault, out, shared)
        }
        s3::Answer::Xml(status, body) => respond(out, status, &xml, body.as_bytes(), shared),
    }
}

fn send_file(
    request: &Request,
    file: &FakeFile,
    etag: &str,
    extra: &[(&'static str, String)],
    fault: Option<Fault>,
    out: &mut TcpStream,
    shared: &Shared,
) -> std::io::Result<bool> {
    let len = file.bytes.len() as u64;
    // What the server says the file's length is: its listing's (a lie, for a claiming file), unless a
    // fault says otherwise. The bytes served stop at the true end.
    let total = match fault {
        Some(Fault::ClaimTotal(total)) => total,
        _ => file.listed_size(),
    };
    let mut headers: Vec<(&str, String)> = extra.to_vec();
    headers.push(("ETag", format!("\"{etag}\"")));
    headers.push(("Accept-Ranges", "bytes".into()));
    let range = request.header("range").and_then(parse_range);
    if let Some(Fault::IgnoreRangeHuge(size)) = fault {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
        out.write_all(head.as_bytes())?;
        return Ok(false);
    }
    let (status, start, end) = match range {
        Some(_) if matches!(fault, Some(Fault::IgnoreRange)) => (200, 0, len),
        Some((a, _)) if a >= len => {
            headers.push(("Content-Range", format!("bytes */{total}")));
            return respond(out, 416, &headers, b"", shared);
        }
        Some((a, b)) => (206, a, b.map_or(len, |b| (b + 1).min(len))),
        None => (200, 0, len),
    };
    if status == 206 {
        headers.push((
            "Content-Range",
            format!("bytes {start}-{}/{total}", end - 1),
        ));
    }
    let body = &file.bytes[start as usize..end as usize];
    if request.method == "HEAD" {
        let mut head = status_line(status, &headers);
        let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
        out.write_all(head.as_bytes())?;
        return Ok(true);
    }
    let sent = match fault {
        Some(Fault::DropMidBody | Fault::Stall(_)) => body.len() / 2,
        Some(Fault::ShortByOne) => body.len().saturating_sub(1),
        Some(Fault::Drip(_)) => 0,
        _ => return respond(out, status, &headers, body, shared),
    };
    let mut head = status_line(status, &headers);
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    out.write_all(head.as_bytes())?;
    out.write_all(&body[..sent])?;
    shared.stats.bytes.fetch_add(sent as u64, Ordering::SeqCst);
    match fault {
        Some(Fault::Stall(silence)) => thread::sleep(silence),
        // Bounded: a drip test's body is a few hundred bytes at most before the client gives up.
        Some(Fault::Drip(gap)) => {
            for byte in body.iter().take(10_000) {
                thread::sleep(gap);
                if out.write_all(&[*byte]).is_err() {
                    break;
                }
                shared.stats.bytes.fetch_add(1, Ordering::SeqCst);
            }
        }
        _ => {}
    }
    Ok(false)
}
