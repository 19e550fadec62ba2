//! The one HTTP client every remote source goes through: blocking (no async runtime), with timeouts,
//! retries with backoff and jitter, redirects followed by hand so that a token is sent only to the origin
//! it belongs to, bodies cut short resumed with a new Range, bodies that stall or drip retried as
//! failures, and a `200` answered to a Range request read only as far as needed. It counts requests and
//! bytes, for progress lines and tests.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::http::{Response, StatusCode};

use super::{Secret, SourceError};
pub use answer::origin;
use answer::{
    content_length, header, is_timeout, parse_content_range, retry_after, transport_reason,
};

mod answer;

/// A file larger than this is never read whole from a server that ignores Range.
pub const NO_RANGE_LIMIT: u64 = 64 << 20;
/// Redirects followed for one request (the Hub's resolve makes one, to its CDN).
const MAX_REDIRECTS: usize = 10;
/// How many times a body may be resumed after making progress, on top of the retries without progress.
const MAX_RESUMES: u32 = 100;
/// How much of an error body is kept (enough for an S3 error's XML or the Hub's JSON message).
const ERROR_BODY_CAP: u64 = 8 << 10;
/// The slowest body kept reading once the read timeout has passed, in bytes a second: a server that
/// drips slower is dropped and retried as one that went silent, so that it cannot hold a read forever
/// by sending a byte just inside each timeout.
const MIN_RATE: f64 = 1024.0;

/// Timeouts and retry pacing.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for or reading an answer.
    pub read_timeout: Duration,
    /// Retries after a failure that made no progress (429, 5xx, a dropped connection).
    pub max_retries: u32,
    /// The first pause before a retry; doubled at each one, with jitter.
    pub backoff: Duration,
    /// The longest pause, whatever `Retry-After` asks.
    pub max_pause: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_retries: 5,
            backoff: Duration::from_millis(500),
            max_pause: Duration::from_secs(30),
        }
    }
}

impl HttpSettings {
    /// The defaults, with `PARAMSCOPE_HTTP_TIMEOUT` (seconds) as the read timeout when it is set.
    #[must_use]
    pub fn from_env() -> HttpSettings {
        let mut settings = HttpSettings::default();
        if let Some(secs) = std::env::var("PARAMSCOPE_HTTP_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
        {
            settings.read_timeout = Duration::from_secs_f64(secs.min(86_400.0));
        }
        settings
    }
}

/// What to fetch: a URL made afresh for each attempt (S3 presigns it then), the name messages use, and
/// the token that may go to the first URL's origin only.
#[derive(Clone)]
pub struct Target {
    url: Arc<dyn Fn() -> String + Send + Sync>,
    name: String,
    bearer: Option<Secret>,
}

impl Target {
    /// A fixed URL.
    #[must_use]
    pub fn new(url: String, name: String) -> Target {
        Target {
            url: Arc::new(move || url.clone()),
            name,
            bearer: None,
        }
    }

    /// A URL signed anew for each attempt, so that a long session never uses an expired one.
    #[must_use]
    pub fn signed(url: impl Fn() -> String + Send + Sync + 'static, name: String) -> Target {
        Target {
            url: Arc::new(url),
            name,
            bearer: None,
        }
    }

    /// The same target with a bearer token for its own origin.
    #[must_use]
    pub fn with_bearer(mut self, bearer: Option<Secret>) -> Target {
        self.bearer = bearer;
        self
    }

    /// What messages call it.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A final answer the client does not handle itself: the caller knows what a 401 or a 404 means there.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The Hub's `X-Error-Code` header (`GatedRepo`, `RepoNotFound`, `RevisionNotFound`, `EntryNotFound`).
    pub error_code: Option<String>,
    /// The start of the body (an S3 error's XML), lossily decoded.
    pub body: String,
}

/// A request that did not give the bytes.
#[derive(Debug)]
pub enum HttpError {
    /// The server answered with a status the caller interprets.
    Refused(Refusal),
    /// Anything else, already a user-facing error.
    Failed(SourceError),
}

impl HttpError {
    /// The error with a refusal turned into a plain status line for `name`.
    #[must_use]
    pub fn into_source(self, name: &str) -> SourceError {
        match self {
            HttpError::Refused(r) => SourceError::Status {
                name: name.to_owned(),
                status: r.status,
            },
            HttpError::Failed(e) => e,
        }
    }
}

/// What a ranged answer said about the whole file.
#[derive(Debug, Default, Clone)]
pub struct RangeMeta {
    /// The file's length (from `Content-Range`, or `Content-Length` of a 200).
    pub total: Option<u64>,
    /// Its `ETag`.
    pub etag: Option<String>,
    /// Bytes written into the buffer: all of it, unless the file ended first (then `total` says so).
    pub filled: usize,
}

/// Requests and bytes so far, for tests and progress lines.
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    redirects: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    /// Requests sent, not counting the redirects they were answered with.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Redirects followed.
    pub fn redirects(&self) -> u64 {
        self.redirects.load(Ordering::Relaxed)
    }

    /// Body bytes received.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The shared client: one connection pool for every file of a run.
pub struct Http {
    agent: ureq::Agent,
    settings: HttpSettings,
    counters: Counters,
    /// Where a file's URL last led, through redirects, to another origin (the Hub's CDN): its next
    /// reads go there at once, one round trip instead of two, until it refuses (a signed URL expired).
    landed: Mutex<HashMap<String, String>>,
}

enum Attempt {
    /// Worth trying again: a dropped connection, a timeout, 429 or 5xx (with the pause the server asked).
    Retry(SourceError, Option<Duration>),
    /// Final.
    Fail(HttpError),
}

impl Http {
    /// A client with `settings`; proxies come from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`.
    #[must_use]
    pub fn new(settings: HttpSettings) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Redirects are followed by hand, so that the token never leaves its origin.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_recv_response(Some(settings.read_timeout))
            .timeout_per_read(Some(settings.read_timeout))
            // Headers of all shards are fetched 32 at a time.
            .max_idle_connections(64)
            .max_idle_connections_per_host(32)
            .user_agent(concat!("paramscope/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Http {
            agent,
            settings,
            counters: Counters::default(),
            landed: Mutex::default(),
        }
    }

    /// Requests and bytes so far.
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A whole small body (JSON, XML), refused past `cap` bytes before any allocation.
    pub fn get_small(&self, target: &Target, cap: u64) -> Result<Vec<u8>, HttpError> {
        let mut failures = 0;
        loop {
            let attempt = self.send(target, None).and_then(|response| {
                let length = content_length(&response);
                if length.is_some_and(|n| n > cap) {
                    return Err(Attempt::Fail(HttpError::Failed(too_large(target, cap))));
                }
                let mut body = Vec::new();
                let mut reader = response.into_body().into_reader().take(cap + 1);
                let read = reader.read_to_end(&mut body);
                self.counters
                    .bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                read.map_err(|e| Attempt::Retry(network(target, &e.to_string()), None))?;
                if body.len() as u64 > cap {
                    return Err(Attempt::Fail(HttpError::Failed(too_large(target, cap))));
                }
                if length.is_some_and(|n| n != body.len() as u64) {
                    return Err(Attempt::Retry(cut_short(target, 0, cap), None));
                }
                Ok(body)
            });
            match attempt {
                Ok(body) => return Ok(body),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry(e, pause)) => {
                    failures += 1;
                    if failures > self.settings.max_retries {
                        return Err(HttpError::Failed(e));
                    }
                    self.pause(failures, pause);
                }
            }
        }
    }

    /// Fills `out` with the bytes from `start`, by as many ranged GETs as the server makes necessary.
    pub fn get_range(
        &self,
        target: &Target,
        start: u64,
        out: &mut [u8],
    ) -> Result<RangeMeta, HttpError> {
        let mut meta = RangeMeta::default();
        let mut done = 0;
        let (mut failures, mut resumes) = (0, 0);
        while done < out.len() {
            if meta.total.is_some_and(|t| start + done as u64 >= t) {
                break;
            }
            let from = start + done as u64;
            let to = start + out.len() as u64;
            let before = done;
            let result = self.send(target, Some((from, to))).and_then(|response| {
                self.read_ranged(target, response, from, &mut out[done..], &mut meta)
            });
            let (error, pause, stalled) = match result {
                Ok((n, stalled)) => {
                    done += n;
                    let ended = meta.total.is_some_and(|t| start + done as u64 >= t);
                    if done == out.len() || ended {
                        continue;
                    }
                    let error = if stalled {
                        network(
                            target,
                            "the answer stalled (silent past the read timeout, or slower than 1 KiB/s)",
                        )
                    } else {
                        cut_short(target, start + done as u64, to)
                    };
                    (error, None, stalled)
                }
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry(e, pause)) => (e, pause, false),
            };
            // A body cut short after some bytes is resumed at once; one that stalled counts as a
            // failure, bytes kept, so that a server dripping forever meets the retry limit.
            if done > before && !stalled {
                // Progress: resume at once, within a generous bound.
                failures = 0;
                resumes += 1;
                if resumes > MAX_RESUMES {
                    return Err(HttpError::Failed(error));
                }
                continue;
            }
            failures += 1;
            if failures > self.settings.max_retries {
                return Err(HttpError::Failed(error));
            }
            self.pause(failures, pause);
        }
        meta.filled = done;
        Ok(meta)
    }

    /// Reads one answer to a ranged GET of `from..` into `out`; returns how many bytes arrived, and
    /// whether the body stalled before its end (silent past the read timeout, or slower than
    /// [`MIN_RATE`] once that has passed).
    fn read_ranged(
        &self,
        target: &Target,
        response: Response<ureq::Body>,
        from: u64,
        out: &mut [u8],
        meta: &mut RangeMeta,
    ) -> Result<(usize, bool), Attempt> {
        meta.etag = header(&response, "etag").or(meta.etag.take());
        let mut reader = if response.status() == StatusCode::PARTIAL_CONTENT {
            let (first, last, total) = header(&response, "content-range")
                .as_deref()
                .and_then(parse_content_range)
                .ok_or_else(|| bad_reply(target, "a 206 answer without a valid Content-Range"))?;
            if first != from || last < first {
                return Err(bad_reply(
                    target,
                    "a 206 answer for another range than asked",
                ));
            }
            meta.total = total.or(meta.total);
            let wanted = (last - first + 1).min(out.len() as u64);
            response.into_body().into_reader().take(wanted)
        } else {
            // A 200: the whole file from its first byte. Read only as far as needed, then drop the
            // connection, and never for a file that would be too long to skip through.
            let total = content_length(&response);
            meta.total = total.or(meta.total);
            if total.is_none_or(|t| t > NO_RANGE_LIMIT) {
                return Err(Attempt::Fail(HttpError::Failed(SourceError::NoRange {
                    name: target.name.clone(),
                    size: total.unwrap_or(u64::MAX),
                })));
            }
            let mut reader = response.into_body().into_reader();
            let skipped = std::io::copy(&mut (&mut reader).take(from), &mut std::io::sink())
                .map_err(|e| Attempt::Retry(network(target, &e.to_string()), None))?;
            self.counters.bytes.fetch_add(skipped, Ordering::Relaxed);
            if skipped < from {
                return Err(Attempt::Retry(
                    cut_short(target, from, from + out.len() as u64),
                    None,
                ));
            }
            reader.take(out.len() as u64)
        };
        let started = Instant::now();
        let mut n = 0;
        let mut stalled = false;
        while n < out.len() {
            match reader.read(&mut out[n..]) {
                Ok(0) => break,
                Err(e) => {
                    stalled = is_timeout(&e);
                    break;
                }
                Ok(k) => n += k,
            }
            let elapsed = started.elapsed();
            if elapsed > self.settings.read_timeout && (n as f64) < MIN_RATE * elapsed.as_secs_f64()
            {
                stalled = true;
                break;
            }
        }
        self.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok((n, stalled))
    }

    /// Sends one GET (with a Range when given: `from..to`, `to` exclusive), following redirects by hand.
    /// The bearer token goes only to requests on the first URL's origin; a redirect from https to http is
    /// refused. Returns a 2xx answer, or the reason to retry or stop.
    fn send(
        &self,
        target: &Target,
        range: Option<(u64, u64)>,
    ) -> Result<Response<ureq::Body>, Attempt> {
        let first = (target.url)();
        let home = origin(&first).ok_or_else(|| bad_reply(target, "an invalid URL"))?;
        let mut landed = self.landed.lock().ok().and_then(|m| m.get(&first).cloned());
        let mut url = landed.clone().unwrap_or_else(|| first.clone());
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.agent.get(&url);
            if let Some((from, to)) = range {
                request = request.header("Range", format!("bytes={from}-{}", to - 1));
            }
            if let Some(bearer) = &target.bearer
                && origin(&url).as_ref() == Some(&home)
            {
                request = request.header("Authorization", format!("Bearer {}", bearer.expose()));
            }
            let response = request
                .call()
                .map_err(|e| Attempt::Retry(network(target, &transport_reason(&e)), None))?;
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let next = header(&response, "location")
                    .and_then(|location| url::Url::parse(&url).ok()?.join(&location).ok())
                    .ok_or_else(|| bad_reply(target, "a redirect without a valid Location"))?;
                if home.starts_with("https:") && next.scheme() != "https" {
                    return Err(bad_reply(target, "a redirect from https to plain http"));
                }
                self.counters.redirects.fetch_add(1, Ordering::Relaxed);
                url = next.into();
                continue;
            }
            if status.is_success() {
                if origin(&url).as_ref() != Some(&home)
                    && let Ok(mut places) = self.landed.lock()
                {
                    places.insert(first, url);
                }
                return Ok(response);
            }
            if landed.is_some()
                && status.is_client_error()
                && status != StatusCode::RANGE_NOT_SATISFIABLE
            {
                // The place remembered refuses now: forget it, and go by the file's own URL.
                if let Ok(mut places) = self.landed.lock() {
                    places.remove(&first);
                }
                landed = None;
                url.clone_from(&first);
                continue;
            }
            let pause = retry_after(&response);
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(Attempt::Retry(
                    SourceError::Status {
                        name: target.name.clone(),
                        status: status.as_u16(),
                    },
                    pause,
                ));
            }
            let error_code = header(&response, "x-error-code");
            let mut body = Vec::new();
            let _ = response
                .into_body()
                .into_reader()
                .take(ERROR_BODY_CAP)
                .read_to_end(&mut body);
            return Err(Attempt::Fail(HttpError::Refused(Refusal {
                status: status.as_u16(),
                error_code,
                body: String::from_utf8_lossy(&body).into_owned(),
            })));
        }
        Err(bad_reply(target, "too many redirects"))
    }

    /// Sleeps before retry number `failures` (from 1): the server's `Retry-After` when it gave one, else
    /// an exponential backoff; either capped, and with up to 50% jitter so parallel readers spread out.
    fn pause(&self, failures: u32, asked: Option<Duration>) {
        let backoff = self.settings.backoff * 2u32.saturating_pow(failures - 1);
        let base = asked.unwrap_or(backoff).min(self.settings.max_pause);
        let jitter = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            % 1000;
        std::thread::sleep(base + base * jitter as u32 / 2000);
    }
}

fn network(target: &Target, reason: &str) -> SourceError {
    SourceError::Network {
        name: target.name.clone(),
        reason: reason.to_owned(),
    }
}

fn cut_short(target: &Target, start: u64, end: u64) -> SourceError {
    SourceError::CutShort {
        name: target.name.clone(),
        start,
        end,
    }
}

fn too_large(target: &Target, cap: u64) -> SourceError {
    SourceError::TooLarge {
        name: target.name.clone(),
        size: cap,
    }
}

fn bad_reply(target: &Target, what: &str) -> Attempt {
    Attempt::Fail(HttpError::Failed(SourceError::BadReply {
        name: target.name.clone(),
        what: what.to_owned(),
    }))
}
