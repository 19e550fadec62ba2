//! The subcommands on `s3://` MODELs against a loopback S3 store (path-style, as `AWS_ENDPOINT_URL`
//! selects): a prefix opened as a folder through paged `ListObjectsV2`, an object by ranged GETs, the
//! content-keyed cache, and S3's errors each in one line. The store is the test fake, not an S3 server
//! crate: those pull an async HTTP stack whose build is too heavy for this suite's machine.

mod remote_support;

use std::path::Path;
use std::process::{Command, Output};

use remote_support::{FakeFile, FakeHub, FakeRepo, safetensors_bytes};

const SECRET: &str = "s3-secret-key-value";

fn bucket(name: &str, locked: bool) -> FakeRepo {
    let shards: Vec<(String, Vec<&str>)> = vec![
        (
            "run/model-00001-of-00003.safetensors".into(),
            vec!["l.0.w", "l.0.b"],
        ),
        ("run/model-00002-of-00003.safetensors".into(), vec!["l.1.w"]),
        ("run/model-00003-of-00003.safetensors".into(), vec!["l.2.w"]),
    ];
    let mut weight_map = serde_json::Map::new();
    let mut files = Vec::new();
    for (i, (key, names)) in shards.iter().enumerate() {
        for n in names {
            weight_map.insert((*n).to_owned(), key.trim_start_matches("run/").into());
        }
        files.push(FakeFile::new(
            key,
            safetensors_bytes(names, 6, i as f32 * 10.0),
            false,
        ));
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    files.push(FakeFile::new(
        "run/model.safetensors.index.json",
        index.to_string().into_bytes(),
        false,
    ));
    files.push(FakeFile::new(
        "elsewhere/notes.txt",
        b"not a model".to_vec(),
        false,
    ));
    FakeRepo {
        repo: name.into(),
        sha: String::new(),
        files,
        gated: locked,
    }
}

fn run(store: &FakeHub, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paramscope"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("NO_PROXY", "*")
        .env("AWS_ENDPOINT_URL", &store.endpoint)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .output()
        .expect("the binary runs")
}

fn text(out: &Output) -> (String, String) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    (stdout, stderr)
}

#[test]
fn a_prefix_opens_as_a_folder_through_paged_listings_and_an_object_by_ranges() {
    let store = FakeHub::start_s3(vec![bucket("bkt", false)]);
    let home = tempfile::tempdir().unwrap();
    let out = run(&store, home.path(), &["tree", "s3://bkt/run/"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for name in ["l.0.w", "l.0.b", "l.1.w", "l.2.w"] {
        assert!(stdout.contains(name), "{stdout}");
    }
    // Two pages of two keys, the index, then one GET per shard.
    assert_eq!(store.requests(), 2 + 1 + 3);
    // Again: the listing is asked anew (a prefix has no commit), every head comes from the cache.
    let again = run(&store, home.path(), &["tree", "s3://bkt/run/"]);
    assert_eq!(text(&again).0, stdout);
    assert_eq!(store.requests(), 6 + 2);
    // The index named as an object opens in its prefix, with its shards.
    let index = run(
        &store,
        home.path(),
        &["tree", "s3://bkt/run/model.safetensors.index.json"],
    );
    assert_eq!(text(&index).0, stdout);

    let out = run(
        &store,
        home.path(),
        &[
            "show",
            "s3://bkt/run/model-00002-of-00003.safetensors",
            "l.1.w",
            "--json",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["values"][0], 10.0, "{json}");
    assert_eq!(json["values"][5], 15.0, "{json}");
}

#[test]
fn s3_errors_get_their_line() {
    let store = FakeHub::start_s3(vec![bucket("bkt", false), bucket("locked", true)]);
    let home = tempfile::tempdir().unwrap();
    let fail = |model: &str| {
        let out = run(&store, home.path(), &["tree", model]);
        assert_eq!(out.status.code(), Some(1), "{model}: {out:?}");
        text(&out).1
    };
    assert!(fail("s3://nope/run/").contains("s3://nope: no such bucket"));
    assert!(fail("s3://bkt/run/missing.safetensors").contains("no such key"));
    assert!(fail("s3://bkt/absent/").contains("no such key"));
    assert!(fail("s3://locked/run/").contains("access denied"));
    assert!(fail("s3://bkt/elsewhere/").contains("the folder holds no checkpoint"));
}
