//! The subcommands on remote MODELs, run as a user runs them, against the loopback Hub: what is fetched
//! (request counts and byte ranges), the caches across runs, the token kept to its origin and out of
//! every output, and the one line each failure gets.

mod remote_support;

use remote_support::cli::{cdn_log, failed, log, ok, run, total};
use remote_support::{FakeFile, FakeHub, FakeRepo, Fault, Origin, llama_shaped, safetensors_bytes};

const SHA: &str = "4f2c0f4ab1b2c3d4e5f60718293a4b5c6d7e8f90";
const TOKEN: &str = "hf_secret_token_value";
/// The first ranged read of a safetensors shard.
const PROBE: u64 = 256 << 10;
/// Values per tensor of the tiny repo: 400 KB each, so the second lies past the first read.
const NUMEL: usize = 100_000;

fn tiny(gated: bool) -> FakeRepo {
    FakeRepo {
        repo: "org/tiny".into(),
        sha: SHA.into(),
        files: vec![
            FakeFile::new(
                "model.safetensors",
                safetensors_bytes(&["a", "b"], NUMEL, 0.0),
                true,
            ),
            FakeFile::new(
                "weights.npz",
                std::fs::read("tests/fixtures/npz/arrays.npz").unwrap(),
                true,
            ),
            FakeFile::new(
                "q.gguf",
                std::fs::read("tests/fixtures/gguf/all_types.gguf").unwrap(),
                true,
            ),
        ],
        gated,
    }
}

#[test]
fn tree_of_thirty_shards_reads_each_head_once_and_a_second_run_requests_nothing() {
    // 24 tensors of 3,000 F32 per shard: 288 KB of data, more than the first read.
    let fake = FakeHub::start(vec![llama_shaped(SHA, 3000)], None);
    let home = tempfile::tempdir().unwrap();
    let model = "hf://org/llama-70b-shaped";
    let out = ok(&run(&fake, home.path(), &["tree", model], &[]));
    assert!(
        out.contains("model.layers.79.mlp.down_proj.weight"),
        "{out}"
    );
    assert!(out.contains("lm_head.weight"), "{out}");
    // The listing, the index, config.json and one GET per shard (its CDN redirect counted with it).
    assert!(fake.requests() <= 33, "{:?}", log(&fake));
    assert_eq!(fake.cdn_requests(), 30, "{:?}", log(&fake));
    let past_the_head: Vec<String> = log(&fake)
        .into_iter()
        .filter(|l| l.starts_with("Cdn") && !l.ends_with(&format!("bytes=0-{}", PROBE - 1)))
        .collect();
    assert!(past_the_head.is_empty(), "{past_the_head:?}");

    // Again at the commit, or offline: nothing is requested; by branch, only the revision's commit.
    let before = total(&fake);
    let at_sha = format!("{model}@{SHA}");
    assert_eq!(ok(&run(&fake, home.path(), &["tree", &at_sha], &[])), out);
    assert_eq!(total(&fake), before);
    let offline = [("HF_HUB_OFFLINE", "1")];
    assert_eq!(
        ok(&run(&fake, home.path(), &["tree", model], &offline)),
        out
    );
    assert_eq!(total(&fake), before);
    assert_eq!(ok(&run(&fake, home.path(), &["tree", model], &[])), out);
    assert_eq!(total(&fake), before + 1);
    // The index named as a file opens in its folder, with its shards: the same tree.
    let index = format!("{at_sha}/model.safetensors.index.json");
    assert_eq!(ok(&run(&fake, home.path(), &["tree", &index], &[])), out);
}

#[test]
fn show_fetches_exactly_the_tensor_range_once() {
    let fake = FakeHub::start(vec![tiny(false)], None);
    let home = tempfile::tempdir().unwrap();
    let file = "hf://org/tiny/model.safetensors";
    let out = ok(&run(
        &fake,
        home.path(),
        &["show", file, "b", "--json"],
        &[],
    ));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    // b's values count on from a's: 100000, 100001, ...
    assert_eq!(json["values"][0], 100_000.0, "{json}");
    assert_eq!(json["stats"]["max"], 199_999.0, "{json}");
    let bytes = &tiny(false).files[0].bytes;
    let data_start = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let b = data_start + NUMEL as u64 * 4..data_start + NUMEL as u64 * 8;
    let cdn = cdn_log(&fake);
    assert_eq!(cdn.len(), 2, "the head, then b: {cdn:?}");
    assert!(
        cdn[1].ends_with(&format!("bytes={}-{}", b.start, b.end - 1)),
        "{cdn:?}"
    );
    // Shown again at the commit: from the cache, with no request.
    let before = total(&fake);
    let again = ok(&run(
        &fake,
        home.path(),
        &[
            "show",
            &format!("hf://org/tiny@{SHA}/model.safetensors"),
            "b",
            "--json",
        ],
        &[],
    ));
    assert_eq!(again, out);
    assert_eq!(total(&fake), before);
}

#[test]
fn diff_export_and_check_fetch_what_they_read_and_match_the_local_file() {
    let fake = FakeHub::start(vec![tiny(false)], None);
    let home = tempfile::tempdir().unwrap();
    let local = home.path().join("local.safetensors");
    std::fs::write(&local, &*tiny(false).files[0].bytes).unwrap();
    let remote = "hf://org/tiny/model.safetensors";
    let out = ok(&run(
        &fake,
        home.path(),
        &["diff", remote, local.to_str().unwrap(), "--json"],
        &[],
    ));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["same"], 2, "{json}");
    assert_eq!(json["summary"]["changed"], 0, "{json}");
    let export = |model: &str, name: &str| {
        let out = home.path().join(name);
        ok(&run(
            &fake,
            home.path(),
            &["export", model, "-o", out.to_str().unwrap()],
            &[],
        ));
        std::fs::read(out).unwrap()
    };
    assert_eq!(
        export(remote, "from_remote.safetensors"),
        export(local.to_str().unwrap(), "from_local.safetensors")
    );
    // check reads every value: the remote tensors are fetched first (said on stderr), so it
    // finds what it finds locally, not what a model of unfetched, empty tensors would give.
    let check = |model: &str| run(&fake, home.path(), &["check", model, "--json"], &[]);
    let remote_check = check(remote);
    let said = String::from_utf8_lossy(&remote_check.stderr);
    assert!(said.contains("fetching 2 tensor(s)"), "{said}");
    assert_eq!(ok(&remote_check), ok(&check(local.to_str().unwrap())));
}

#[test]
fn a_gguf_is_listed_from_its_head_and_a_url_is_probed_once() {
    let fake = FakeHub::start(vec![tiny(false)], None);
    let home = tempfile::tempdir().unwrap();
    let local = ok(&run(
        &fake,
        home.path(),
        &["tree", "tests/fixtures/gguf/all_types.gguf"],
        &[],
    ));
    let out = ok(&run(
        &fake,
        home.path(),
        &["tree", "hf://org/tiny/q.gguf"],
        &[],
    ));
    assert_eq!(out, local);
    assert_eq!((fake.requests(), fake.cdn_requests()), (2, 1));
    // A plain URL on a loopback server: one ranged GET gives its length and header.
    let gguf = &tiny(false).files[2];
    let url = format!("{}/blobs/{}", fake.cdn(), gguf.sha256());
    let before = fake.cdn_requests();
    assert_eq!(ok(&run(&fake, home.path(), &["tree", &url], &[])), local);
    assert_eq!(fake.cdn_requests(), before + 1);
}

/// A GGUF whose header is `tokens` strings long (a vocabulary), then one F32 tensor `t` of `numel`.
fn gguf_with_vocabulary(tokens: usize, numel: usize) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes()); // tensors
    out.extend_from_slice(&1u64.to_le_bytes()); // metadata pairs
    string(&mut out, "tokenizer.ggml.tokens");
    out.extend_from_slice(&9u32.to_le_bytes()); // an array
    out.extend_from_slice(&8u32.to_le_bytes()); // of strings
    out.extend_from_slice(&(tokens as u64).to_le_bytes());
    for i in 0..tokens {
        string(&mut out, &format!("token{i:08}"));
    }
    string(&mut out, "t");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(numel as u64).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // F32
    out.extend_from_slice(&0u64.to_le_bytes());
    out.resize(out.len().next_multiple_of(32), 0);
    out.extend((0..numel).flat_map(|i| (i as f32).to_le_bytes()));
    out
}

#[test]
fn a_gguf_header_longer_than_the_first_read_grows_by_doubling() {
    // 200,000 tokens of 21 bytes: a 4.2 MB header, then 4 MiB of data.
    let gguf = gguf_with_vocabulary(200_000, 1 << 20);
    let header_end = gguf.len() - (4 << 20);
    let repo = FakeRepo {
        repo: "org/vocab".into(),
        sha: SHA.into(),
        files: vec![FakeFile::new("big.gguf", gguf, true)],
        gated: false,
    };
    let fake = FakeHub::start(vec![repo], None);
    let home = tempfile::tempdir().unwrap();
    let out = ok(&run(&fake, home.path(), &["tree", "hf://org/vocab"], &[]));
    assert!(out.contains("t  [1048576] F32"), "{out}");
    // The listing, then 1, 2, 4 and 8 MiB ranges: at most 5 requests, never the whole data.
    assert!(fake.requests() <= 5, "{:?}", log(&fake));
    let fetched = fake.stats().bytes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        fetched < 2 * header_end as u64,
        "{fetched} bytes for a {header_end}-byte header"
    );
    // show fetches the tensor, and its values are right.
    let shown = ok(&run(
        &fake,
        home.path(),
        &["show", "hf://org/vocab", "t", "--json", "--limit", "3"],
        &[],
    ));
    let json: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(json["values"], serde_json::json!([0.0, 1.0, 2.0]), "{json}");
}

#[test]
fn the_token_goes_to_the_hub_only_and_never_into_any_output() {
    let fake = FakeHub::start(vec![tiny(true)], Some(TOKEN));
    let home = tempfile::tempdir().unwrap();
    let token = [("HF_TOKEN", TOKEN)];
    for args in [
        &["tree", "hf://org/tiny", "--json"][..],
        &["show", "hf://org/tiny/model.safetensors", "a", "--json"],
        &["tree", "hf://org/tiny/nope.safetensors"],
    ] {
        let out = run(&fake, home.path(), args, &token);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(TOKEN), "{args:?}: {text}");
    }
    assert!(fake.cdn_requests() > 0);
    // Without the token: the gated repo's line.
    let anonymous = tempfile::tempdir().unwrap();
    assert_eq!(
        failed(&run(
            &fake,
            anonymous.path(),
            &["tree", "hf://org/tiny"],
            &[]
        )),
        "error: org/tiny is gated: accept its terms on its Hub page and set HF_TOKEN\n"
    );
    // Dropping the fake asserts the CDN origin never saw an Authorization header.
}

#[test]
fn failures_get_one_line_each() {
    let fake = FakeHub::start(vec![tiny(false)], None);
    let home = tempfile::tempdir().unwrap();
    let fail = |args: &[&str]| failed(&run(&fake, home.path(), args, &[]));
    assert!(
        fail(&["tree", "hf://org/nope"]).contains("org/nope: no such model repo on the Hub"),
        "{}",
        fail(&["tree", "hf://org/nope"])
    );
    assert!(
        fail(&["tree", "hf://org/tiny/nope.safetensors"])
            .contains("no file or folder nope.safetensors")
    );
    assert_eq!(
        fail(&["tree", "hf://org/tiny/weights.npz"]),
        "error: hf://org/tiny@main/weights.npz: a NumPy .npz archive is not supported remotely yet; download it and open the local copy\n"
    );
    assert!(fail(&["tree", "hf://datasets/org/x"]).contains("only model repos"));
    assert!(fail(&["tree", "http://example.com/a.safetensors"]).contains("use https://"));
    // The root opens as a local folder would: model.safetensors, by name, among three checkpoints.
    let root = ok(&run(&fake, home.path(), &["tree", "hf://org/tiny"], &[]));
    assert!(root.contains("  b  [100000] F32"), "{root}");
    // A server that answers a Range request with the whole of a 100 GB file: stop, and say so.
    fake.always(Origin::Cdn, Some(Fault::IgnoreRangeHuge(100 << 30)));
    let fresh = tempfile::tempdir().unwrap();
    let err = failed(&run(
        &fake,
        fresh.path(),
        &["tree", "hf://org/tiny/model.safetensors"],
        &[],
    ));
    assert!(err.contains("does not answer Range requests"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bodies_cut_short_and_whole_answers_to_ranges_still_give_the_right_values() {
    let fake = FakeHub::start(vec![tiny(false)], None);
    for fault in [Fault::DropMidBody, Fault::IgnoreRange] {
        let home = tempfile::tempdir().unwrap();
        fake.inject(Origin::Cdn, fault.clone());
        fake.inject(Origin::Cdn, fault.clone());
        let out = ok(&run(
            &fake,
            home.path(),
            &["show", "hf://org/tiny/model.safetensors", "b", "--json"],
            &[],
        ));
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["values"][0], 100_000.0, "{fault:?}: {json}");
        assert_eq!(json["stats"]["max"], 199_999.0, "{fault:?}: {json}");
    }
}

/// A safetensors file of 300 kB whose header claims one F32 tensor of 2^39 bytes, and the length it
/// would have.
fn huge_header() -> (Vec<u8>, u64) {
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{}]}}}}"#,
        1u64 << 37,
        1u64 << 39
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    let claimed = out.len() as u64 + (1 << 39);
    out.resize(300_000, 0);
    (out, claimed)
}

#[test]
fn lying_sizes_are_refused_in_one_line_and_never_size_an_allocation() {
    // A listing and a Content-Range that both claim 512 GiB, over a header that claims a tensor of as
    // many: the tree lists it from the first read, and show refuses it before fetching or allocating.
    let (huge, claimed) = huge_header();
    let liar = FakeRepo {
        repo: "org/liar".into(),
        sha: SHA.into(),
        files: vec![
            FakeFile::new("model.safetensors", huge, true).claiming(claimed),
            FakeFile::new(
                "small.safetensors",
                safetensors_bytes(&["a", "b"], NUMEL, 0.0),
                true,
            ),
        ],
        gated: false,
    };
    let fake = FakeHub::start(vec![liar], None);
    let home = tempfile::tempdir().unwrap();
    let file = "hf://org/liar/model.safetensors";
    let tree = ok(&run(&fake, home.path(), &["tree", file], &[]));
    assert!(tree.contains("w  [137438953472] F32"), "{tree}");
    let err = failed(&run(&fake, home.path(), &["show", file, "w"], &[]));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: a remote tensor needs 550 GB of values"),
        "{err}"
    );
    assert_eq!(fake.cdn_requests(), 1, "{:?}", log(&fake));

    // A server whose Content-Range contradicts the listing: the first read says so, in one line.
    let small = "hf://org/liar/small.safetensors";
    let len = safetensors_bytes(&["a", "b"], NUMEL, 0.0).len() as u64;
    for claimed in [len + 4096, len - 4096] {
        fake.always(Origin::Cdn, Some(Fault::ClaimTotal(claimed)));
        let fresh = tempfile::tempdir().unwrap();
        assert_eq!(
            failed(&run(&fake, fresh.path(), &["tree", small], &[])),
            format!(
                "error: hf://org/liar@main/small.safetensors: unexpected answer from the server: the server says the file is {claimed} bytes where its listing said {len}\n"
            )
        );
    }
}

#[test]
fn a_redirect_loop_ends_in_one_line_after_ten_hops() {
    let fake = FakeHub::start(vec![tiny(false)], None);
    fake.always(Origin::Hub, Some(Fault::RedirectLoop));
    let home = tempfile::tempdir().unwrap();
    let err = failed(&run(&fake, home.path(), &["tree", "hf://org/tiny"], &[]));
    assert!(err.contains("too many redirects"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The first request and ten redirects followed, then no retry: a loop is no transient failure.
    assert_eq!(fake.requests(), 11, "{:?}", log(&fake));
    assert_eq!(fake.cdn_requests(), 0);
}

#[test]
fn a_stalled_or_short_body_is_resumed_to_the_right_values() {
    let fake = FakeHub::start(vec![tiny(false)], None);
    let one_second = [("PARAMSCOPE_HTTP_TIMEOUT", "1")];
    let faults = [
        Fault::Stall(std::time::Duration::from_secs(3)),
        Fault::ShortByOne,
        Fault::Drip(std::time::Duration::from_millis(20)),
    ];
    for fault in faults {
        let home = tempfile::tempdir().unwrap();
        // The head's read, then b's, each meet the fault once.
        fake.inject(Origin::Cdn, fault.clone());
        fake.inject(Origin::Cdn, fault.clone());
        let started = std::time::Instant::now();
        let out = ok(&run(
            &fake,
            home.path(),
            &["show", "hf://org/tiny/model.safetensors", "b", "--json"],
            &one_second,
        ));
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["values"][0], 100_000.0, "{fault:?}: {json}");
        assert_eq!(json["stats"]["max"], 199_999.0, "{fault:?}: {json}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{fault:?}: {:?}",
            started.elapsed()
        );
    }
}
