//! The source layer against a loopback Hub: listings, ranged reads through the CDN redirect, the token kept
//! to its origin, the caches (paramscope's and the Hugging Face one), offline runs, failures and faults.

mod remote_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use paramscope::source::cache::Cache;
use paramscope::source::hf_cache::HfCache;
use paramscope::source::http::HttpSettings;
use paramscope::source::hub::HubSettings;
use paramscope::source::s3::S3Settings;
use paramscope::source::{ByteSource, Location, Opened, Secret, SourceError, Sources, read_range};
use remote_support::{FakeFile, FakeHub, FakeRepo, Fault, Origin, llama_shaped, safetensors_bytes};

const SHA: &str = "4f2c0f4ab1b2c3d4e5f60718293a4b5c6d7e8f90";
const TOKEN: &str = "hf_secret_token_value";

fn repo(gated: bool) -> FakeRepo {
    FakeRepo {
        repo: "org/tiny".into(),
        sha: SHA.into(),
        files: vec![
            FakeFile::new("config.json", br#"{"model_type":"llama"}"#.to_vec(), false),
            FakeFile::new(
                "model.safetensors",
                safetensors_bytes(&["a", "b"], 1000, 0.0),
                true,
            ),
            FakeFile::new(
                "sub/part.safetensors",
                safetensors_bytes(&["c"], 10, 5.0),
                true,
            ),
        ],
        gated,
    }
}

fn settings(
    hub: &FakeHub,
    token: Option<&str>,
    offline: bool,
    hf_cache: Option<HfCache>,
) -> HubSettings {
    HubSettings {
        endpoint: hub.endpoint.clone(),
        token: token.and_then(Secret::new),
        offline,
        hf_cache,
    }
}

fn fast() -> HttpSettings {
    HttpSettings {
        backoff: Duration::from_millis(5),
        max_pause: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        ..HttpSettings::default()
    }
}

fn sources(hub: HubSettings, cache: Option<&std::path::Path>) -> Sources {
    let cache = cache.map(|dir| Cache::new(dir.to_owned(), 1 << 30));
    let s3 = S3Settings {
        endpoint: None,
        region: "us-east-1".into(),
        credentials: None,
    };
    Sources::new(fast(), cache, hub, s3)
}

fn open(sources: &Sources, arg: &str) -> Result<Opened, SourceError> {
    sources.open(&Location::parse(arg).unwrap())
}

fn file(opened: Opened) -> Arc<dyn ByteSource> {
    match opened {
        Opened::File(f) => f,
        _ => panic!("expected a remote file"),
    }
}

#[test]
fn a_file_is_listed_by_one_request_and_read_by_ranges_through_the_cdn_without_the_token() {
    let fake = FakeHub::start(vec![repo(false)], Some(TOKEN));
    let s = sources(settings(&fake, Some(TOKEN), false, None), None);
    let f = file(open(&s, "hf://org/tiny/model.safetensors").unwrap());
    assert_eq!(fake.requests(), 1, "one request for the revision");
    let whole = &repo(false).files[1].bytes;
    assert_eq!(f.len(), whole.len() as u64);
    let bytes = read_range(&*f, 100..4100).unwrap();
    assert_eq!(bytes, whole[100..4100]);
    assert_eq!((fake.requests(), fake.cdn_requests()), (2, 1));
    // The redirect counts with the request that got it.
    assert_eq!(s.http().counters().requests(), 2);
    assert_eq!(s.http().counters().redirects(), 1);
    // The file's next read goes straight to where the first landed: one round trip, not two.
    assert_eq!(read_range(&*f, 5000..5100).unwrap(), whole[5000..5100]);
    assert_eq!((fake.requests(), fake.cdn_requests()), (2, 2));
    // Until the CDN refuses it (a signed URL expired): the Hub is asked again, once.
    fake.inject(Origin::Cdn, Fault::Refuse(403));
    assert_eq!(read_range(&*f, 6000..6100).unwrap(), whole[6000..6100]);
    assert_eq!((fake.requests(), fake.cdn_requests()), (3, 4));
    assert_eq!(s.http().counters().redirects(), 2);
    // Dropping the fake asserts the CDN never saw an Authorization header.
}

#[test]
fn small_files_are_served_directly_and_folders_list_relative_paths() {
    let fake = FakeHub::start(vec![repo(false)], None);
    let s = sources(settings(&fake, None, false, None), None);
    let config = file(open(&s, "hf://org/tiny/config.json").unwrap());
    assert_eq!(
        read_range(&*config, 0..config.len()).unwrap(),
        br#"{"model_type":"llama"}"#
    );
    assert_eq!(fake.cdn_requests(), 0);
    let Opened::Folder(root) = open(&s, "hf://org/tiny").unwrap() else {
        panic!("the repo root is a folder")
    };
    let paths: Vec<&str> = root.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["config.json", "model.safetensors", "sub/part.safetensors"]
    );
    let Opened::Folder(sub) = open(&s, &format!("hf://org/tiny@{SHA}/sub")).unwrap() else {
        panic!("sub is a folder")
    };
    assert_eq!(sub.files()[0].path, "part.safetensors");
    let part = sub.open("part.safetensors").unwrap();
    assert_eq!(
        read_range(&*part, 0..8).unwrap(),
        repo(false).files[2].bytes[..8]
    );
}

#[test]
fn the_cache_makes_a_second_run_at_a_sha_or_offline_request_nothing() {
    let fake = FakeHub::start(vec![repo(false)], None);
    let dir = tempfile::tempdir().unwrap();
    let first = sources(settings(&fake, None, false, None), Some(dir.path()));
    let f = file(open(&first, "hf://org/tiny/model.safetensors").unwrap());
    let head = read_range(&*f, 0..4096).unwrap();
    let before = (fake.requests(), fake.cdn_requests());
    assert_eq!(before, (2, 1));

    // At the commit sha: the listing and the range come from the cache.
    let second = sources(settings(&fake, None, false, None), Some(dir.path()));
    let f = file(open(&second, &format!("hf://org/tiny@{SHA}/model.safetensors")).unwrap());
    assert_eq!(read_range(&*f, 8..4096).unwrap(), head[8..]);
    assert_eq!((fake.requests(), fake.cdn_requests()), before);

    // Offline by branch name: the same, and a range never fetched fails at once, naming what is missing.
    let offline = sources(settings(&fake, None, true, None), Some(dir.path()));
    let f = file(open(&offline, "hf://org/tiny/model.safetensors").unwrap());
    assert_eq!(read_range(&*f, 0..10).unwrap(), head[..10]);
    let err = read_range(&*f, 5000..6000).unwrap_err();
    assert!(matches!(err, SourceError::Offline { .. }), "{err}");
    assert_eq!((fake.requests(), fake.cdn_requests()), before);

    // A corrupted entry is refetched, never shown.
    for dir in std::fs::read_dir(dir.path().join("ranges")).unwrap() {
        for entry in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[9] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let third = sources(settings(&fake, None, false, None), Some(dir.path()));
    let f = file(open(&third, &format!("hf://org/tiny@{SHA}/model.safetensors")).unwrap());
    assert_eq!(read_range(&*f, 0..4096).unwrap(), head);
    assert_eq!(fake.cdn_requests(), before.1 + 1);
}

#[test]
fn offline_with_nothing_cached_fails_without_a_request() {
    let fake = FakeHub::start(vec![repo(false)], None);
    let dir = tempfile::tempdir().unwrap();
    let s = sources(settings(&fake, None, true, None), Some(dir.path()));
    let err = open(&s, "hf://org/tiny").err().unwrap();
    assert_eq!(
        err.to_string(),
        "HF_HUB_OFFLINE is set and org/tiny@main is not in the cache: unset HF_HUB_OFFLINE to fetch it"
    );
    assert_eq!(fake.requests(), 0);
}

#[test]
fn files_in_the_hugging_face_cache_open_in_place() {
    let fake = FakeHub::start(vec![repo(false)], None);
    let hf = tempfile::tempdir().unwrap();
    let snapshot = hf.path().join("models--org--tiny/snapshots").join(SHA);
    std::fs::create_dir_all(snapshot.join("sub")).unwrap();
    std::fs::create_dir_all(hf.path().join("models--org--tiny/refs")).unwrap();
    std::fs::write(hf.path().join("models--org--tiny/refs/main"), SHA).unwrap();
    for f in &repo(false).files {
        std::fs::write(snapshot.join(&f.path), &*f.bytes).unwrap();
    }
    let cache = || Some(HfCache::new(hf.path().to_owned()));
    // Offline: zero requests, the folder opens as the local snapshot.
    let offline = sources(settings(&fake, None, true, cache()), None);
    match open(&offline, "hf://org/tiny").unwrap() {
        Opened::Local(path) => assert_eq!(path, snapshot),
        _ => panic!("expected the local snapshot"),
    }
    assert_eq!(fake.requests(), 0);
    // Online at a branch: one request (the commit), then the file is local.
    let online = sources(settings(&fake, None, false, cache()), None);
    match open(&online, "hf://org/tiny/sub/part.safetensors").unwrap() {
        Opened::Local(path) => assert_eq!(path, snapshot.join("sub/part.safetensors")),
        _ => panic!("expected the local file"),
    }
    assert_eq!((fake.requests(), fake.cdn_requests()), (1, 0));
}

#[test]
fn failures_get_their_one_line_and_never_show_the_token() {
    let fake = FakeHub::start(vec![repo(true)], Some(TOKEN));
    let anonymous = sources(settings(&fake, None, false, None), None);
    let f = file(open(&anonymous, "hf://org/tiny/model.safetensors").unwrap());
    let err = read_range(&*f, 0..8).unwrap_err();
    assert_eq!(
        err.to_string(),
        "org/tiny is gated: accept its terms on its Hub page and set HF_TOKEN"
    );
    let wrong = sources(settings(&fake, Some("hf_wrong"), false, None), None);
    let f = file(open(&wrong, "hf://org/tiny/model.safetensors").unwrap());
    assert!(matches!(
        read_range(&*f, 0..8),
        Err(SourceError::Gated { .. })
    ));
    let right = sources(settings(&fake, Some(TOKEN), false, None), None);
    let f = file(open(&right, "hf://org/tiny/model.safetensors").unwrap());
    assert_eq!(read_range(&*f, 0..8).unwrap().len(), 8);

    let messages = [
        open(&right, "hf://org/missing").err().unwrap().to_string(),
        open(&right, "hf://org/tiny@v9").err().unwrap().to_string(),
        open(&right, "hf://org/tiny/nope.bin")
            .err()
            .unwrap()
            .to_string(),
    ];
    assert_eq!(
        messages,
        [
            "org/missing: no such model repo on the Hub (or it is private: set HF_TOKEN)",
            "org/tiny: no revision v9 (a branch, tag or commit sha)",
            "org/tiny@main: no file or folder nope.bin",
        ]
    );
    for m in &messages {
        assert!(!m.contains(TOKEN) && !m.contains('\n'));
    }
    assert!(!format!("{:?}", Secret::new(TOKEN)).contains(TOKEN));
}

#[test]
fn retries_honour_retry_after_and_resume_bodies_cut_short() {
    let fake = FakeHub::start(vec![repo(false)], None);
    let s = sources(settings(&fake, None, false, None), None);
    let whole = repo(false).files[1].bytes.clone();

    fake.inject(Origin::Hub, Fault::TooMany(1));
    fake.inject(Origin::Hub, Fault::Unavailable);
    let started = Instant::now();
    let f = file(open(&s, "hf://org/tiny/model.safetensors").unwrap());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(fake.requests(), 3);

    fake.inject(Origin::Cdn, Fault::DropMidBody);
    fake.inject(Origin::Cdn, Fault::Unavailable);
    assert_eq!(read_range(&*f, 0..8000).unwrap(), whole[..8000]);
    // The first half arrived, the rest was asked for by a new Range (after one 503).
    let log = fake.stats().log.lock().unwrap().clone();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("Cdn")).count(),
        3,
        "{log:?}"
    );

    // A 200 to a Range request: read as far as needed, right values.
    fake.inject(Origin::Cdn, Fault::IgnoreRange);
    assert_eq!(read_range(&*f, 4000..4100).unwrap(), whole[4000..4100]);

    // A 200 announcing a huge body is not read at all.
    fake.inject(Origin::Cdn, Fault::IgnoreRangeHuge(100 << 30));
    let err = read_range(&*f, 0..8).unwrap_err();
    assert!(
        matches!(err, SourceError::NoRange { size, .. } if size == 100 << 30),
        "{err}"
    );

    // A server that always fails gets an error after the retries, never wrong values.
    fake.always(Origin::Cdn, Some(Fault::Unavailable));
    let before = fake.cdn_requests();
    let err = read_range(&*f, 0..8).unwrap_err();
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(fake.cdn_requests() - before, 6, "one try and five retries");
}

#[test]
fn servers_that_always_stall_drip_or_cut_short_end_in_an_error_never_wrong_values() {
    let fake = FakeHub::start(vec![repo(false)], None);
    let quick = HttpSettings {
        read_timeout: Duration::from_millis(300),
        ..fast()
    };
    let s3 = S3Settings {
        endpoint: None,
        region: "us-east-1".into(),
        credentials: None,
    };
    let s = Sources::new(quick, None, settings(&fake, None, false, None), s3);
    let f = file(open(&s, "hf://org/tiny/model.safetensors").unwrap());
    for fault in [
        Fault::Stall(Duration::from_secs(1)),
        Fault::Drip(Duration::from_millis(50)),
        Fault::ShortByOne,
    ] {
        fake.always(Origin::Cdn, Some(fault.clone()));
        let (before, started) = (fake.cdn_requests(), Instant::now());
        let err = read_range(&*f, 0..6000).unwrap_err();
        let tries = fake.cdn_requests() - before;
        // One try and five retries: a stall or a drip is a failure, bytes kept; a body one byte short
        // makes progress once (all but its last byte), then its last byte never comes.
        let expected = if matches!(fault, Fault::ShortByOne) {
            7
        } else {
            6
        };
        assert_eq!(tries, expected, "{fault:?}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{fault:?}: {:?}",
            started.elapsed()
        );
        assert!(
            matches!(
                err,
                SourceError::Network { .. } | SourceError::CutShort { .. }
            ),
            "{fault:?}: {err}"
        );
    }
    fake.always(Origin::Cdn, None);
    let whole = repo(false).files[1].bytes.clone();
    assert_eq!(read_range(&*f, 0..6000).unwrap(), whole[..6000]);
}

#[test]
fn a_plain_url_is_probed_once_for_its_length_and_head() {
    let fake = FakeHub::start(vec![repo(false)], None);
    let s = sources(settings(&fake, None, false, None), None);
    let url = format!(
        "{}/org/tiny/resolve/main/sub/part.safetensors",
        fake.endpoint
    );
    let f = file(open(&s, &url).unwrap());
    let whole = &repo(false).files[2].bytes;
    assert_eq!(f.len(), whole.len() as u64);
    assert_eq!(read_range(&*f, 0..f.len()).unwrap(), **whole);
    // One request (redirected once to the CDN), and the reads came from the probe.
    assert_eq!((fake.requests(), fake.cdn_requests()), (1, 1));
}

/// A repo shaped like Llama-3.1-70B: its 723 tensor names over 30 shards (tiny data), the index naming
/// each tensor's shard, and a config.
#[test]
fn thirty_shards_heads_are_read_in_parallel_in_about_one_round_trip() {
    use paramscope::source::fetch::{read_head, safetensors_need, try_each};
    let repo = llama_shaped(SHA, 4);
    let shards: Vec<FakeFile> = repo.files.iter().filter(|f| f.lfs).cloned().collect();
    let fake = FakeHub::start(vec![repo], None);
    fake.set_latency(Duration::from_millis(100));
    let s = sources(settings(&fake, None, false, None), None);
    let started = Instant::now();
    let Opened::Folder(folder) = open(&s, "hf://org/llama-70b-shaped").unwrap() else {
        panic!("a folder")
    };
    let files: Vec<Arc<dyn ByteSource>> = folder
        .files()
        .iter()
        .filter(|f| f.path.ends_with(".safetensors"))
        .map(|f| folder.open(&f.path).unwrap())
        .collect();
    let heads = try_each(&files, &|f| {
        read_head(&**f, 256 << 10, 100 << 20, &safetensors_need)
    })
    .unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "30 shards' heads at 100 ms latency: {elapsed:?}, {} requests, {} bytes",
        s.http().counters().requests(),
        s.http().counters().bytes()
    );
    for (head, shard) in heads.iter().zip(&shards) {
        let n = u64::from_le_bytes(head[..8].try_into().unwrap()) as usize;
        assert_eq!(head[..8 + n], shard.bytes[..8 + n]);
    }
    assert_eq!(
        s.http().counters().requests(),
        31,
        "one listing and one GET per shard"
    );
    assert!(s.http().counters().bytes() <= 30 * (256 << 10));
    // Serially this is 1 + 30 x 2 round trips of 100 ms (over 6 s); in parallel about 3.
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    // A header longer than the first read costs exactly one more request.
    let before = s.http().counters().requests();
    let head = read_head(&*files[0], 64, 1 << 20, &safetensors_need).unwrap();
    let n = u64::from_le_bytes(head[..8].try_into().unwrap()) as usize;
    assert!(head.len() >= 8 + n && n > 64);
    assert_eq!(s.http().counters().requests() - before, 2);
}

/// Serves the Llama-3.1-70B-shaped repo with 100 ms added to every request, for the peer figure
/// (`tests/fixtures/remote/peer_metadata.py` times `huggingface_hub`'s `get_safetensors_metadata` on it).
#[test]
#[ignore = "run by the peer script, not by the suite"]
fn serve_llama_shaped_with_latency() {
    let fake = FakeHub::start(vec![llama_shaped(SHA, 4)], None);
    fake.set_latency(Duration::from_millis(100));
    println!("ENDPOINT {}", fake.endpoint);
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    std::thread::sleep(Duration::from_mins(2));
}

/// Serves the test repo for `tests/fixtures/remote/check_fake_hub.py`, which asks `huggingface_hub` itself
/// about it, so the fake is known to answer as the Hub does. Prints the endpoint, then serves for a minute.
#[test]
#[ignore = "run by the fixture script, not by the suite"]
fn serve_for_huggingface_hub() {
    let fake = FakeHub::start(vec![repo(false)], None);
    println!("ENDPOINT {}", fake.endpoint);
    println!("SHA {SHA}");
    for f in &repo(false).files {
        println!("FILE {} {} {}", f.path, f.bytes.len(), f.sha256());
    }
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    std::thread::sleep(Duration::from_mins(1));
}
