//! Issue 20's checkpoint-opening and file-writing cases, run through the binary: folders of any
//! format, the file's own order, optimizer state apart from the parameters, files opened by name
//! that are FIFOs or devices, npz and GGUF messages, writes, and the allocation budget. Numbers come
//! from `tests/fixtures/checkpoint_trust/expected.json`, which torch and numpy wrote (`make.py`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected() -> Value {
    let text = fs::read_to_string(fixture("checkpoint_trust/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs the binary through `sh -c` (for `ulimit`) or directly, killing it after 20 s: a FIFO
/// waited on must fail the test, not hang the run.
fn run(args: &[&str], shell_prefix: Option<&str>) -> Output {
    let mut command = if let Some(prefix) = shell_prefix {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("{prefix}; exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_paramscope"))
            .args(args);
        c
    } else {
        let mut c = Command::new(env!("CARGO_BIN_EXE_paramscope"));
        c.args(args);
        c
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("paramscope {args:?} did not finish in 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn succeeds(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The one-line error of a failing run.
fn fails(args: &[&str]) -> String {
    let out = run(args, None);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn a_folder_holding_one_checkpoint_of_any_format_opens_as_that_file() {
    for (file, name) in [
        ("pytorch_files/state_dict.pt", "pytorch_model.bin"),
        ("pytorch_files/state_dict_legacy.pt", "net.pt"),
        ("gguf/all_types.gguf", "model.gguf"),
        ("npz/arrays.npz", "arrays.npz"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        fs::copy(fixture(file), dir.path().join(name)).unwrap();
        fs::write(dir.path().join("notes.txt"), "not a model").unwrap();
        let by_file = succeeds(&["tree", s(&dir.path().join(name))]);
        assert_eq!(succeeds(&["tree", s(dir.path())]), by_file, "{name}");
    }
}

#[test]
fn a_folder_of_several_checkpoints_names_them_and_reinits_do_not_count() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(fixture("zoo.safetensors"), dir.path().join("a.safetensors")).unwrap();
    fs::copy(fixture("gguf/all_types.gguf"), dir.path().join("b.gguf")).unwrap();
    let err = fails(&["tree", s(dir.path())]);
    assert!(err.contains("holds 2 checkpoints"), "{err}");
    assert!(err.contains("name one: a.safetensors, b.gguf"), "{err}");

    // The app's `w` writes NAME.reinit.safetensors beside the model: the folder still opens.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    fs::copy(fixture("zoo.safetensors"), &model).unwrap();
    let before = succeeds(&["tree", s(dir.path())]);
    let reinit = dir.path().join("model.reinit.safetensors");
    succeeds(&["export", s(&model), "-o", s(&reinit)]);
    assert_eq!(succeeds(&["tree", s(dir.path())]), before);
}

#[test]
fn a_checkpoint_linked_from_outside_the_folder_is_named() {
    let outside = tempfile::tempdir().unwrap();
    let real = outside.path().join("weights.safetensors");
    fs::copy(fixture("zoo.safetensors"), &real).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("model.safetensors")).unwrap();
    let out = run(&["tree", s(dir.path())], None);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("is a link leading out of the folder, to"),
        "{stderr}"
    );
    assert!(stderr.contains("weights.safetensors"), "{stderr}");
}

#[test]
fn the_tree_and_the_state_dict_follow_the_files_order() {
    let want = &expected()["facenet_order.pt"];
    let json: Value = serde_json::from_str(&succeeds(&[
        "tree",
        s(&fixture("checkpoint_trust/facenet_order.pt")),
        "--json",
    ]))
    .unwrap();
    let keys: Vec<&str> = json["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let want_keys: Vec<&str> = want["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, want_keys);
    let text = succeeds(&["tree", s(&fixture("checkpoint_trust/facenet_order.pt"))]);
    let printed: Vec<&str> = text
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.trim().strip_prefix('(')?.split_once(')'))
        .map(|(name, _)| name)
        .collect();
    let modules: Vec<&str> = want["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(printed, modules);
}

#[test]
fn an_optimizers_state_is_not_counted_and_a_listed_value_shows() {
    let want = &expected()["training.pt"];
    let path = fixture("checkpoint_trust/training.pt");
    let text = succeeds(&["tree", s(&path)]);
    let parameters = want["parameters"].as_u64().unwrap();
    let apart = want["all_tensor_elements"].as_u64().unwrap() - parameters;
    assert!(
        text.contains(&format!(
            "total: {parameters} parameters (and {apart} elements of buffers or optimizer state)"
        )),
        "{text}"
    );
    assert!(text.contains("optimizer.state.0.exp_avg "), "{text}");
    let shown = succeeds(&["show", s(&path), "epoch"]);
    assert_eq!(shown, format!("epoch = {}\n", want["epoch"]));
    let json: Value =
        serde_json::from_str(&succeeds(&["show", s(&path), "epoch", "--json"])).unwrap();
    assert_eq!(json["value"], want["epoch"]);
}

#[test]
fn files_opened_by_name_that_are_fifos_or_devices_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    mkfifo(&index);
    assert!(fails(&["tree", s(&index)]).contains("a FIFO"));
    let zero = dir.path().join("zero.index.json");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    assert!(fails(&["tree", s(&zero)]).contains("a device"));

    // A family folder whose tokenizer.json or pooling config is a FIFO says so.
    let bert = tempfile::tempdir().unwrap();
    let source = fixture("families/bert");
    for name in ["config.json", "model.safetensors", "modules.json"] {
        fs::copy(source.join(name), bert.path().join(name)).unwrap();
    }
    fs::create_dir(bert.path().join("1_Pooling")).unwrap();
    mkfifo(&bert.path().join("tokenizer.json"));
    fs::copy(
        source.join("1_Pooling/config.json"),
        bert.path().join("1_Pooling/config.json"),
    )
    .unwrap();
    let err = fails(&["forward", s(bert.path()), "--text", "hi"]);
    assert!(
        err.contains("tokenizer.json") && err.contains("a FIFO"),
        "{err}"
    );
    fs::remove_file(bert.path().join("tokenizer.json")).unwrap();
    fs::copy(
        source.join("tokenizer.json"),
        bert.path().join("tokenizer.json"),
    )
    .unwrap();
    fs::remove_file(bert.path().join("1_Pooling/config.json")).unwrap();
    mkfifo(&bert.path().join("1_Pooling/config.json"));
    let out = run(&["forward", s(bert.path()), "--text", "hi"], None);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("a FIFO"), "{stderr}");
}

#[test]
fn an_npz_with_a_member_named_twice_is_refused() {
    // numpy lists both and reads the last; which one is meant is not for paramscope to guess.
    let want = &expected()["duplicate_member.npz"];
    assert_eq!(want["files"], serde_json::json!(["w", "w"]));
    let path = fixture("checkpoint_trust/duplicate_member.npz");
    let err = fails(&["tree", s(&path)]);
    assert_eq!(
        err,
        format!(
            "error: {}: the member w.npy is in the archive twice; refusing to pick one\n",
            path.display()
        )
    );
}

#[test]
fn an_npy_header_naming_its_descr_twice_is_read_as_numpy_reads_it() {
    // numpy's literal_eval of the header dict keeps the last descr (<i2), not the first (<f8).
    let want = &expected()["duplicate_descr.npy"];
    assert_eq!(want["dtype"], "int16");
    let path = fixture("checkpoint_trust/duplicate_descr.npy");
    let json: Value =
        serde_json::from_str(&succeeds(&["show", s(&path), "duplicate_descr", "--json"])).unwrap();
    assert_eq!(json["dtype"], "I16", "{json}");
    assert_eq!(json["values"], want["values"], "{json}");
}

#[test]
fn a_tar_pt_and_an_npz_with_a_nul_name_say_exactly_what_they_are() {
    // Made by tests/fixtures/pickle_hostile/make.py.
    let tar = fixture("pickle_hostile/legacy_tar.pt");
    assert_eq!(
        fails(&["tree", s(&tar)]),
        format!(
            "error: {}: a tar archive: torch.save's oldest layout is one (members sys_info, pickle, storages, tensors), which paramscope does not read; load it with torch and save it again\n",
            tar.display()
        )
    );
    let npz = fixture("pickle_hostile/npz_nul_name.npz");
    assert_eq!(
        fails(&["tree", s(&npz)]),
        format!(
            "error: {}: a numpy .npz archive with a NUL byte inside a member name (numpy reads the name only up to it), which paramscope refuses rather than guess the array's name\n",
            npz.display()
        )
    );
}

#[test]
fn a_byteorder_with_control_bytes_is_escaped_once() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.pt");
    let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    // An empty dict, protocol 2.
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(b"\x80\x02}q\x00.").unwrap();
    zip.start_file("archive/byteorder", stored).unwrap();
    zip.write_all(b"big\x1b[2J").unwrap();
    zip.finish().unwrap();
    assert_eq!(
        fails(&["tree", s(&path)]),
        format!(
            "error: {}: byteorder says \"big\\x1b[2J\", not little or big\n",
            path.display()
        )
    );
}

/// A GGUF v3 file's first bytes: magic, version, no tensor, `kvs` metadata pairs follow.
fn gguf_head(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(version.to_le_bytes());
    f.extend(tensors.to_le_bytes());
    f.extend(kvs.to_le_bytes());
    f
}

fn gguf_error(bytes: &[u8]) -> String {
    paramscope::io::gguf::read_header(bytes, 8)
        .unwrap_err()
        .to_string()
}

#[test]
fn gguf_messages_say_what_is_wrong() {
    let mut v0 = gguf_head(0, 0, 0);
    v0.resize(64, 0);
    assert_eq!(
        gguf_error(&v0),
        "GGUF version 0 is not supported (2 and 3 are)"
    );

    // A key whose string value claims 65 MiB: the cap, not the file, refuses it.
    let mut long = gguf_head(3, 0, 1);
    long.extend(1u64.to_le_bytes());
    long.push(b'k');
    long.extend(8u32.to_le_bytes());
    long.extend((65u64 << 20).to_le_bytes());
    long.resize(1024, 0);
    assert_eq!(
        gguf_error(&long),
        "at byte 37: a string of 68157440 bytes is over paramscope's 64 MiB cap on GGUF strings"
    );

    // general.alignment = 32.0 (an f32): its type is what is wrong, not its value.
    let mut float = gguf_head(3, 0, 1);
    let key = b"general.alignment";
    float.extend((key.len() as u64).to_le_bytes());
    float.extend(key);
    float.extend(6u32.to_le_bytes());
    float.extend(32f32.to_le_bytes());
    float.resize(256, 0);
    assert_eq!(
        gguf_error(&float),
        "general.alignment must be an unsigned integer, a power of two from 1 to 2^30; the file has 32 (of type f32)"
    );

    // A 0-d Q4_0 tensor: one value cannot fill a block of 32.
    let mut scalar = gguf_head(3, 1, 0);
    scalar.extend(1u64.to_le_bytes());
    scalar.push(b'w');
    scalar.extend(0u32.to_le_bytes());
    scalar.extend(2u32.to_le_bytes());
    scalar.extend(0u64.to_le_bytes());
    scalar.resize(256, 0);
    assert_eq!(
        gguf_error(&scalar),
        "tensor w: a 0-d tensor (one value) cannot be Q4_0, which stores blocks of 32 values"
    );
}

#[test]
fn exports_drop_setuid_and_take_names_up_to_255_bytes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    fs::write(&out, b"old").unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o4755)).unwrap();
    succeeds(&["export", "demo:mlp", "-o", s(&out)]);
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o7777,
        0o755
    );

    let long = dir.path().join(format!("{}.safetensors", "m".repeat(240)));
    assert_eq!(long.file_name().unwrap().len(), 252);
    succeeds(&["export", "demo:mlp", "-o", s(&long)]);
    assert!(long.is_file());
}

#[test]
fn a_write_stopped_by_ulimit_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rgnet.safetensors");
    let result = run(
        &["export", "demo:rgnet", "-o", s(&out)],
        Some("ulimit -f 0"),
    );
    assert!(!result.status.success());
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_architecture_text_asking_for_16_gib_meets_the_parameter_cap() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("big.txt");
    fs::write(
        &text,
        "Sequential(\n  (0): Linear(in_features=0, out_features=2147483648, bias=True)\n)\n",
    )
    .unwrap();
    let err = fails(&["tree", s(&text)]);
    assert!(
        err.contains("over the cap of 4.3 GB on parameters"),
        "{err}"
    );
}
