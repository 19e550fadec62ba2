//! PyTorch files on the loopback Hub, run as a user runs them: every PyTorch fixture read remotely gives
//! what it gives locally (its tree, its values, its one-line error); a zip is listed from its first and
//! last bytes alone and each storage is fetched with its header when first read; a legacy file's head
//! grows until its pickles parse; a sharded `pytorch_model.bin.index.json` repo runs `forward --text`
//! with its `tokenizer.json` fetched once and cached; `diff` of two revisions fetches only what their
//! files' LFS hashes do not prove the same.

mod remote_support;

use std::io::Cursor;
use std::path::Path;

use remote_support::cli::{cdn_log, failed, ok, run, total};
use remote_support::{FakeFile, FakeHub, FakeRepo, Fault, Origin, safetensors_bytes};

const SHA: &str = "4f2c0f4ab1b2c3d4e5f60718293a4b5c6d7e8f90";
const SHA2: &str = "0123456789abcdef0123456789abcdef01234567";
/// The first ranged read of a file, and the last bytes of a zip read with it.
const PROBE: u64 = 256 << 10;
const REMOTE: &str = "tests/fixtures/remote/pytorch";

fn repo(name: &str, sha: &str, files: Vec<FakeFile>) -> FakeRepo {
    FakeRepo {
        repo: name.into(),
        sha: sha.into(),
        files,
        gated: false,
    }
}

fn lfs(path: &str, local: &str) -> FakeFile {
    FakeFile::new(path, std::fs::read(local).unwrap(), true)
}

/// Whether `name` is a PyTorch file's (`.pt`, `.bin`).
fn is_pytorch(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pt") || e.eq_ignore_ascii_case("bin"))
}

/// Every PyTorch file of the fixtures, by its name and its local path.
fn fixtures() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in [
        "tests/fixtures/pytorch_files",
        "tests/fixtures/pickle_hostile",
        REMOTE,
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if is_pytorch(&name) {
                out.push((name, path.to_str().unwrap().to_owned()));
            }
        }
    }
    out.sort();
    out
}

/// What a run said, with `local` (a path) written as `remote` (its name on the Hub).
fn said(out: &std::process::Output, local: &str, remote: &str) -> (bool, String, String) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).replace(local, remote);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// `text` without the number of the `tensor vN` an error names. A file whose views of one big-endian
/// storage overlap runs out of its memory budget a view later remotely: a local file's storage is
/// swapped once, whole, and counted; a remote one's views are each swapped as they arrive.
fn any_view(text: &str) -> String {
    match text.split_once("tensor v") {
        Some((before, after)) => {
            let rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{before}tensor v#{rest}")
        }
        None => text.to_owned(),
    }
}

#[test]
fn every_pytorch_fixture_reads_remotely_as_it_does_locally() {
    let files = fixtures();
    assert!(files.len() > 50, "{}", files.len());
    let served = files.iter().map(|(name, path)| lfs(name, path)).collect();
    let fake = FakeHub::start(vec![repo("org/pt", SHA, served)], None);
    let home = tempfile::tempdir().unwrap();
    let mut read = 0;
    for (name, path) in &files {
        let remote = format!("hf://org/pt@{SHA}/{name}");
        let tree = |model: &str| run(&fake, home.path(), &["tree", model, "--json"], &[]);
        let local = said(&tree(path), path, &remote);
        let (success, ..) = local;
        let (ok_remote, out_remote, err_remote) = said(&tree(&remote), path, &remote);
        assert_eq!(
            (ok_remote, out_remote),
            (local.0, local.1.clone()),
            "{name}"
        );
        assert_eq!(any_view(&err_remote), any_view(&local.2), "{name}");
        if !success {
            continue;
        }
        // Every value: the export of each, byte for byte.
        let export = |model: &str, to: &str| {
            let to = home.path().join(to);
            let out = run(
                &fake,
                home.path(),
                &["export", model, "-o", to.to_str().unwrap()],
                &[],
            );
            let written = std::fs::read(&to)
                .ok()
                .map(|b| FakeFile::new("", b, false).sha256());
            // The last line: what was written, or why not (a remote run says what it fetches first).
            let said = String::from_utf8_lossy(&out.stderr)
                .replace(path, &remote)
                .replace(to.to_str().unwrap(), "OUT");
            let last = said.lines().last().unwrap_or_default().to_owned();
            (out.status.code(), last, written)
        };
        assert_eq!(
            export(&remote, "remote.safetensors"),
            export(path, "local.safetensors"),
            "{name}"
        );
        read += 1;
    }
    assert!(read > 20, "{read} files read");
}

/// The byte range of `entry`'s record in the zip `bytes`: its local header's first byte, and the end
/// of a first fetch, which takes the header's name and up to 128 bytes of extra field with the data.
fn record(bytes: &[u8], entry: &str) -> (u64, u64) {
    let zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let index = zip.index_for_name(entry).unwrap();
    let e = zip.by_index_data(index).unwrap();
    let start = e.header_start();
    let end = start + 30 + e.name_raw().len() as u64 + 128 + e.size();
    (start, end.min(bytes.len() as u64))
}

#[test]
fn a_zip_is_listed_from_its_two_ends_and_a_storage_fetched_with_its_header() {
    let big = std::fs::read(format!("{REMOTE}/big.bin")).unwrap();
    let len = big.len() as u64;
    assert!(len > 2 * PROBE, "{len}");
    let fake = FakeHub::start(
        vec![repo(
            "org/pt",
            SHA,
            vec![lfs("big.bin", &format!("{REMOTE}/big.bin"))],
        )],
        None,
    );
    let home = tempfile::tempdir().unwrap();
    let out = ok(&run(&fake, home.path(), &["tree", "hf://org/pt"], &[]));
    assert!(out.contains("  b     [140000] F32\n"), "{out}");
    // On the CDN the first 256 KiB (data.pkl) and the last (the central directory), and not a byte of
    // the storages between; on the Hub the listing and one resolve (the second read goes straight to
    // where the first was redirected).
    assert_eq!(fake.requests(), 2);
    let ranges: Vec<String> = cdn_log(&fake)
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        ranges,
        [
            format!("bytes=0-{}", PROBE - 1),
            format!("bytes={}-{}", len - PROBE, len - 1)
        ]
    );

    // show b: its record, header and data in one request; the two ends come from the cache.
    let before = fake.cdn_requests();
    let shown = ok(&run(
        &fake,
        home.path(),
        &["show", "hf://org/pt", "b", "--json", "--limit", "2"],
        &[],
    ));
    let json: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(json["values"], serde_json::json!([140_000.0, 140_001.0]));
    assert_eq!(json["stats"]["max"], 279_999.0, "{json}");
    let (start, end) = record(&big, "big/data/1");
    let fetched = &cdn_log(&fake)[before as usize..];
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert!(
        fetched[0].ends_with(&format!("bytes={start}-{}", end - 1)),
        "{fetched:?}"
    );

    // A server that answers the tail's Range with the whole file (under 64 MiB) is read only as far
    // as needed, and the values are right.
    let fresh = tempfile::tempdir().unwrap();
    fake.inject(Origin::Cdn, Fault::IgnoreRange);
    fake.inject(Origin::Cdn, Fault::IgnoreRange);
    let again = ok(&run(
        &fake,
        fresh.path(),
        &["show", "hf://org/pt", "b", "--json", "--limit", "2"],
        &[],
    ));
    assert_eq!(again, shown);
}

#[test]
fn a_central_directory_longer_than_the_tail_costs_one_more_read() {
    // big.bin's entries, then 4,000 unused ones with long names: a directory of some 470 kB.
    let big = std::fs::read(format!("{REMOTE}/big.bin")).unwrap();
    let mut source = zip::ZipArchive::new(Cursor::new(&big)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..source.len() {
        out.raw_copy_file(source.by_index_raw(i).unwrap()).unwrap();
    }
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..4000 {
        out.start_file(format!("big/unused/{i:0>60}"), stored)
            .unwrap();
    }
    let bytes = out.finish().unwrap().into_inner();
    let len = bytes.len() as u64;
    let directory = zip::ZipArchive::new(Cursor::new(&bytes))
        .unwrap()
        .central_directory_start();
    assert!(len - directory > PROBE, "{directory} of {len}");
    let fake = FakeHub::start(
        vec![repo(
            "org/pt",
            SHA,
            vec![FakeFile::new("wide.pt", bytes, true)],
        )],
        None,
    );
    let home = tempfile::tempdir().unwrap();
    let shown = ok(&run(
        &fake,
        home.path(),
        &[
            "show",
            "hf://org/pt/wide.pt",
            "m_t",
            "--json",
            "--limit",
            "3",
        ],
        &[],
    ));
    let json: serde_json::Value = serde_json::from_str(&shown).unwrap();
    // m is 0..48 in an 8 x 6 matrix; its transpose's first row is m's first column.
    assert_eq!(
        json["values"],
        serde_json::json!([0.0, 6.0, 12.0]),
        "{json}"
    );
    let ranges: Vec<String> = cdn_log(&fake)
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect();
    // The head, the tail, the rest of the directory before the tail (one read, not one per entry),
    // then m's storage, with its header, for the transposed view.
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    assert_eq!(
        ranges[..3],
        [
            format!("bytes=0-{}", PROBE - 1),
            format!("bytes={}-{}", len - PROBE, len - 1),
            format!("bytes={directory}-{}", len - PROBE - 1)
        ]
    );
}

#[test]
fn a_legacy_head_grows_until_its_pickles_parse() {
    let path = format!("{REMOTE}/big_legacy.bin");
    let len = std::fs::metadata(&path).unwrap().len();
    let fake = FakeHub::start(vec![repo("org/pt", SHA, vec![lfs("old.bin", &path)])], None);
    let home = tempfile::tempdir().unwrap();
    let model = "hf://org/pt/old.bin";
    let out = ok(&run(&fake, home.path(), &["tree", model], &[]));
    assert!(out.contains("  m_t   [6, 8] F32\n"), "{out}");
    // Its 275 kB string runs past the first read: the head is read again, twice as long, and that
    // is all: the large storage after it is not read.
    let ranges: Vec<String> = cdn_log(&fake)
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        ranges,
        [
            format!("bytes=0-{}", PROBE - 1),
            format!("bytes={PROBE}-{}", 2 * PROBE - 1)
        ]
    );
    assert!(len > 2 * PROBE, "{len}");
    // Each storage is fetched on its own: 8 bytes of element count, then its data.
    let before = fake.cdn_requests();
    let shown = ok(&run(
        &fake,
        home.path(),
        &["show", model, "b", "--json", "--limit", "1"],
        &[],
    ));
    let json: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(json["values"], serde_json::json!([70_000.0]), "{json}");
    let fetched = &cdn_log(&fake)[before as usize..];
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    let range = fetched[0].rsplit("bytes=").next().unwrap();
    let (a, b) = range.split_once('-').unwrap();
    let size = b.parse::<u64>().unwrap() + 1 - a.parse::<u64>().unwrap();
    assert_eq!(size, 8 + 70_000 * 4, "{fetched:?}");
}

/// The tiny Llama as `save_pretrained(safe_serialization=False)` writes it: two PyTorch shards and
/// their index, beside its config.json and tokenizer.json.
fn llama_files() -> Vec<FakeFile> {
    let family = "tests/fixtures/families/llama";
    let mut files = vec![
        FakeFile::new(
            "config.json",
            std::fs::read(format!("{family}/config.json")).unwrap(),
            false,
        ),
        FakeFile::new(
            "tokenizer.json",
            std::fs::read(format!("{family}/tokenizer.json")).unwrap(),
            false,
        ),
        FakeFile::new(
            "pytorch_model.bin.index.json",
            std::fs::read(format!("{REMOTE}/llama/pytorch_model.bin.index.json")).unwrap(),
            false,
        ),
    ];
    for shard in [
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
    ] {
        files.push(lfs(shard, &format!("{REMOTE}/llama/{shard}")));
    }
    files
}

#[test]
fn a_sharded_pytorch_repo_runs_forward_on_text_with_its_fetched_tokenizer() {
    let fake = FakeHub::start(vec![repo("org/llama-pt", SHA, llama_files())], None);
    let home = tempfile::tempdir().unwrap();
    let local = home.path().join("llama");
    std::fs::create_dir(&local).unwrap();
    for f in llama_files() {
        std::fs::write(local.join(&f.path), &*f.bytes).unwrap();
    }
    let local = local.to_str().unwrap();
    let model = "hf://org/llama-pt";
    let tree = ok(&run(&fake, home.path(), &["tree", model], &[]));
    assert_eq!(tree, ok(&run(&fake, home.path(), &["tree", local], &[])));
    assert!(
        tree.contains("LlamaForCausalLM") || tree.contains("(model)"),
        "{tree}"
    );
    // The listing, the index and config.json, one resolve per shard; each shard (under 256 KiB)
    // whole in one ranged GET, its central directory with it.
    assert_eq!((fake.requests(), fake.cdn_requests()), (5, 2));

    let forward = |model: &str| {
        let args = ["forward", model, "--text", "hello world", "--json"];
        run(&fake, home.path(), &args, &[])
    };
    let remote = ok(&forward(model));
    assert_eq!(remote, ok(&forward(local)));
    let json: serde_json::Value = serde_json::from_str(&remote).unwrap();
    assert!(json["tokens"][0].as_array().unwrap().len() > 2, "{json}");
    // Again at the commit: tokenizer.json, the shards and their tensors all come from the cache.
    let before = total(&fake);
    assert_eq!(ok(&forward(&format!("{model}@{SHA}"))), remote);
    assert_eq!(total(&fake), before);
    // A repo without tokenizer.json says so, in one line, and --tokens still runs.
    let bare: Vec<FakeFile> = llama_files()
        .into_iter()
        .filter(|f| f.path != "tokenizer.json")
        .collect();
    let fake = FakeHub::start(vec![repo("org/bare", SHA, bare)], None);
    let err = failed(&forward_on(
        &fake,
        home.path(),
        "hf://org/bare",
        "--text",
        "hi",
    ));
    assert_eq!(
        err,
        "error: hf://org/bare@main: no tokenizer.json beside the checkpoint, so --text cannot be tokenized; give ids with --tokens 1,2,3\n"
    );
    ok(&forward_on(
        &fake,
        home.path(),
        "hf://org/bare",
        "--tokens",
        "1,2,3",
    ));
}

fn forward_on(
    fake: &FakeHub,
    home: &Path,
    model: &str,
    flag: &str,
    value: &str,
) -> std::process::Output {
    run(fake, home, &["forward", model, flag, value], &[])
}

/// Three safetensors shards and their index; `seed` changes the second shard's values only.
fn three_shards(seed: f32) -> Vec<FakeFile> {
    let names = [["a.0", "a.1"], ["b.0", "b.1"], ["c.0", "c.1"]];
    let mut weight_map = serde_json::Map::new();
    let mut files = Vec::new();
    for (i, pair) in names.iter().enumerate() {
        let shard = format!("model-0000{}-of-00003.safetensors", i + 1);
        for n in pair {
            weight_map.insert((*n).to_owned(), shard.clone().into());
        }
        let first = if i == 1 { seed } else { i as f32 };
        files.push(FakeFile::new(
            &shard,
            safetensors_bytes(pair, 70_000, first),
            true,
        ));
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    files.push(FakeFile::new(
        "model.safetensors.index.json",
        index.to_string().into_bytes(),
        false,
    ));
    files
}

#[test]
fn diff_of_two_revisions_fetches_only_files_whose_hashes_differ() {
    let old = three_shards(1.0);
    let new = three_shards(5.0);
    let unchanged: Vec<String> = [0, 2].iter().map(|&i| old[i].sha256()).collect();
    assert_ne!(old[1].sha256(), new[1].sha256());
    let fake = FakeHub::start(
        vec![
            repo("org/m", SHA, old),
            repo("org/m", SHA2, new),
            repo("org/llama-pt", SHA, llama_files()),
            repo("org/llama-pt", SHA2, llama_files()),
        ],
        None,
    );
    let home = tempfile::tempdir().unwrap();
    let (a, b) = (format!("hf://org/m@{SHA}"), format!("hf://org/m@{SHA2}"));
    let out = run(&fake, home.path(), &["diff", &a, &b, "--json"], &[]);
    let json: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let summary = &json["summary"];
    assert_eq!(
        (
            &summary["same"],
            &summary["same_by_hash"],
            &summary["changed"]
        ),
        (&4.into(), &4.into(), &2.into()),
        "{json}"
    );
    let b0 = json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "b.0")
        .unwrap();
    assert_eq!(b0["status"], "changed");
    assert!(b0["max_abs_diff"].as_f64().unwrap() == 4.0, "{b0}");
    // The shards whose LFS sha256 match were read for their headers only, once for both sides.
    let log = cdn_log(&fake);
    for sha in &unchanged {
        let reads: Vec<&String> = log.iter().filter(|l| l.contains(sha.as_str())).collect();
        assert_eq!(reads.len(), 1, "{log:?}");
        assert!(
            reads[0].ends_with(&format!("bytes=0-{}", PROBE - 1)),
            "{reads:?}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fetching 2 tensor(s)"), "{stderr}");
    let text = ok(&run(&fake, home.path(), &["diff", &a, &b], &[]));
    assert!(
        text.contains("4 of them without fetching their values"),
        "{text}"
    );

    // Two revisions of a PyTorch repo with the same files: every tensor is the same, none fetched.
    let before = fake.cdn_requests();
    let pt = |sha: &str| format!("hf://org/llama-pt@{sha}");
    let out = ok(&run(
        &fake,
        home.path(),
        &["diff", &pt(SHA), &pt(SHA2), "--json"],
        &[],
    ));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["changed"], 0, "{json}");
    assert_eq!(json["summary"]["same"], json["summary"]["same_by_hash"]);
    // The two shards' heads (whole files here) and nothing else.
    assert_eq!(fake.cdn_requests() - before, 2);
}

/// Serves the PyTorch repo `tests/fixtures/remote/peer_pytorch.py` made in the folder
/// `PARAMSCOPE_PEER_DIR` (every file there, `*.bin` in LFS) as `org/llama-70b-pt`, with 100 ms added to
/// every request, for its peer figure. Prints the endpoint; each line on stdin asks for the request
/// counts so far (`STATS HUB CDN BYTES`); ends at the end of stdin, or after ten minutes.
#[test]
#[ignore = "run by the peer script, not by the suite"]
fn serve_pytorch_for_the_peer_script() {
    use std::io::BufRead as _;
    use std::sync::atomic::Ordering;
    let dir =
        std::env::var("PARAMSCOPE_PEER_DIR").expect("PARAMSCOPE_PEER_DIR names the repo's folder");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        files.push(FakeFile::new(
            &name,
            std::fs::read(&path).unwrap(),
            is_pytorch(&name),
        ));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let fake = FakeHub::start(vec![repo("org/llama-70b-pt", SHA, files)], None);
    fake.set_latency(std::time::Duration::from_millis(100));
    println!("ENDPOINT {}", fake.endpoint);
    let started = std::time::Instant::now();
    for line in std::io::stdin().lock().lines().take(1000) {
        if line.is_err() || started.elapsed() > std::time::Duration::from_mins(10) {
            break;
        }
        let bytes = fake.stats().bytes.load(Ordering::SeqCst);
        println!("STATS {} {} {bytes}", fake.requests(), fake.cdn_requests());
    }
}
