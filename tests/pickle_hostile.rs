//! Hostile pickles (tests/fixtures/pickle_hostile/make.py wrote them, and expected.json says what
//! each names): every global outside torch's weights_only allow-list that any pickle of a file
//! names is named, nothing runs, nothing panics, memory and time stay bounded; and a TorchScript
//! archive's tensors match what torch.jit.load reads.

use std::path::PathBuf;
use std::time::Instant;

use paramscope::io::pytorch;
use serde_json::Value;

mod fixture_support;

fn fixture(name: &str) -> PathBuf {
    fixture_support::path("pickle_hostile", name)
}

fn expected() -> serde_json::Map<String, Value> {
    fixture_support::expected("pickle_hostile")
}

/// Runs paramscope in a fresh folder: (exit code, stdout, stderr, whether the payload ran there).
fn paramscope(args: &[&str]) -> (i32, String, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paramscope"))
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        dir.path().join("paramscope_pwned_marker").exists(),
    )
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_foreign_global_of_every_pickle_is_named() {
    let cases: Vec<(String, Value)> = expected()
        .into_iter()
        .filter(|(_, v)| v.get("foreign").is_some())
        .collect();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    for (name, want) in cases {
        let path = fixture(&name);
        let shown = path.to_str().unwrap();
        let (code, stdout, stderr, ran) = paramscope(&["tree", shown]);
        assert!(!ran, "{name}: the payload ran");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let foreign = strings(&want["foreign"]);
        if want["tensors"].as_bool().unwrap() {
            assert_eq!(code, 0, "{name}: {stderr}");
            assert!(stdout.contains("total: "), "{name}: {stdout}");
            let warnings: Vec<&str> = stderr.lines().collect();
            assert_eq!(warnings.len(), foreign.len(), "{name}: {stderr}");
            for (line, global) in warnings.iter().zip(&foreign) {
                assert_eq!(
                    *line,
                    format!(
                        "warning: {shown}: the pickle names {global} (outside torch's weights_only allow-list: torch.load(weights_only=False) would import it and could run it; paramscope did not)"
                    ),
                    "{name}"
                );
            }
        } else {
            assert_eq!(code, 1, "{name}: {stdout}{stderr}");
            assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
            assert!(stderr.starts_with("error: "), "{name}: {stderr}");
            let error = want["error"].as_str().unwrap();
            assert!(stderr.contains(error), "{name}: wants {error:?}: {stderr}");
            for global in &foreign {
                assert!(
                    stderr.contains(global.as_str()),
                    "{name}: wants {global}: {stderr}"
                );
            }
        }
    }
}

#[test]
fn the_library_names_them_too_and_a_foreign_global_after_an_error_is_named() {
    let contents = pytorch::open(&fixture("zip_partial.pt")).unwrap();
    assert_eq!(contents.tensors.len(), 2);
    assert!(contents.warnings[0].contains("names functools.partial ("));
    assert!(contents.warnings[1].contains("names os.system ("));
    let error = pytorch::open(&fixture("zip_call_then_broken.pt"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains(
            "unknown or unsupported opcode; before it, the file's pickles name os.system"
        ),
        "{error}"
    );
}

#[test]
fn big_endian_tensors_over_one_storage_are_read_in_linear_time() {
    let start = Instant::now();
    let contents = pytorch::open(&fixture("time_big_endian_tensors.pt")).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(contents.tensors.len(), 2000);
    let (_, last) = contents.tensors.iter().find(|(n, _)| n == "t1999").unwrap();
    let want: Vec<f32> = expected()["time_big_endian_tensors.pt"]["t1999"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(last.to_f32_vec().unwrap(), want);
    // Swapping the 512 KiB storage once per tensor (2,000 times) took seconds; once takes a blink.
    assert!(elapsed.as_secs() < 5, "{elapsed:?}");
}

#[test]
fn a_torchscript_archive_lists_the_tensors_torch_jit_load_gives() {
    let want = expected()["scripted_private.pt"].clone();
    let contents = pytorch::open(&fixture("scripted_private.pt")).unwrap();
    assert!(contents.torchscript);
    let tensors = want["tensors"].as_object().unwrap();
    let names: Vec<&str> = contents.tensors.iter().map(|(n, _)| n.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    let mut wanted: Vec<&str> = tensors.keys().map(String::as_str).collect();
    wanted.sort_unstable();
    assert_eq!(sorted, wanted);
    for (name, tensor) in &contents.tensors {
        let w = &tensors[name];
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(tensor.shape(), shape.as_slice(), "{name}");
        let values: Vec<f32> = w["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(tensor.to_f32_vec().unwrap(), values, "{name}");
    }
    // The code files are named, never run.
    let note = &contents.warnings[0];
    for code in strings(&want["code"]) {
        assert!(note.contains(&code), "{code}: {note}");
    }
    assert!(note.contains("is not run"), "{note}");
}

#[test]
fn exporting_a_model_of_no_tensors_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let (code, _, stderr, _) = paramscope(&[
        "export",
        fixture("scripted_empty.pt").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("holds no tensors"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_tar_pt_and_an_npz_with_a_nul_name_say_what_they_are() {
    for (name, words) in [
        (
            "legacy_tar.pt",
            "a tar archive: torch.save's oldest layout is one",
        ),
        ("npz_nul_name.npz", "a numpy .npz archive with a NUL byte"),
    ] {
        let (code, _, stderr, _) = paramscope(&["tree", fixture(name).to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(stderr.contains(words), "{name}: {stderr}");
        assert!(!stderr.contains("UTF-8 text"), "{name}: {stderr}");
    }
}

#[test]
fn mutated_hostile_files_never_panic() {
    // Every small hostile file with one byte changed at 100 places each (a fixed xorshift walk):
    // each opens or fails with an error, and never panics.
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut opened = 0;
    for name in expected().keys() {
        let bytes = std::fs::read(fixture(name)).unwrap();
        if bytes.len() > 2048 {
            continue;
        }
        for _ in 0..100 {
            let mut mutated = bytes.clone();
            let at = (next() % bytes.len() as u64) as usize;
            mutated[at] = (next() & 0xff) as u8;
            let path = dir.path().join("mutated.pt");
            std::fs::write(&path, &mutated).unwrap();
            opened += usize::from(pytorch::open(&path).is_ok());
        }
    }
    // Some mutations land in bytes nothing reads (a zip's dates, a string's text).
    assert!(opened > 0);
}
