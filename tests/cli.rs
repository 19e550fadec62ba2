//! The command line as scripts meet it: `tree` and `show`'s JSON contract, exit codes, and one
//! clear line per error. `init` and `export` are in cli_write.rs, `forward` in forward_cli.rs.

mod cli_support;

use std::path::PathBuf;

use cli_support::{fixture, paramscope, stdout_json};
use serde_json::Value;

/// Runs a command that must fail with exit 1 and one `error:` line containing `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let out = paramscope(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line, got {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
    assert!(out.stdout.is_empty());
}

fn temp_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path: PathBuf = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn tree_json_lists_every_alias_and_counts_each_tensor_once() {
    let tree = stdout_json(&["tree", "demo:shared", "--json"]);
    assert_eq!(tree["total_params"], 121);
    let names: Vec<&str> = tree["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias", "6.weight", "6.bias"
        ]
    );
    let p2 = &tree["params"][2];
    assert_eq!(p2["shape"], serde_json::json!([8, 8]));
    assert_eq!(p2["dtype"], "F32");
    // A shared tensor's paths are listed once, as a group each of its entries points at.
    assert_eq!(p2["shared"], 0);
    assert_eq!(
        tree["shared"][0],
        serde_json::json!(["2.weight", "4.weight"])
    );
    assert_eq!(tree["params"][0]["shared"], serde_json::Value::Null);
    assert_eq!(
        tree["modules"]["4"]["repr"],
        "Linear(in_features=8, out_features=8, bias=True)"
    );
    assert_eq!(tree["modules"][""]["num_params"], 121);

    let rgnet = stdout_json(&["tree", "demo:rgnet", "--json"]);
    assert_eq!(rgnet["total_params"], 309);
    assert_eq!(rgnet["modules"]["0.block1"]["kind"], "Sequential");
    assert_eq!(rgnet["modules"]["0.block1"]["num_params"], 76);
}

#[test]
fn tree_text_is_print_model_then_the_parameters() {
    let out = paramscope(&["tree", "demo:mlp"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with(
        "Sequential(\n  (0): Linear(in_features=4, out_features=8, bias=True)\n  (1): ReLU()\n  (2): Linear(in_features=8, out_features=1, bias=True)\n)\n"
    ));
    assert!(text.contains("  0.weight  [8, 4] F32\n"));
    assert!(text.ends_with("total: 49 parameters\n"));
}

#[test]
fn show_accepts_the_chapters_indexing_and_reports_pytorch_values() {
    let demos: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("demos.json")).unwrap()).unwrap();
    let want = demos["rgnet@0"]["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "0.block1.0.bias")
        .unwrap();
    let shown = stdout_json(&["show", "demo:rgnet", "[0][1][0].bias", "--json"]);
    assert_eq!(shown["name"], "0.block1.0.bias");
    assert_eq!(shown["values"], want["values"]);
    assert_eq!(shown["numel"], 8);
    let stats = &shown["stats"];
    let values: Vec<f64> = want["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mean = values.iter().sum::<f64>() / 8.0;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 7.0).sqrt();
    assert!((stats["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert!(
        (stats["std"].as_f64().unwrap() - std).abs() < 1e-12,
        "unbiased std"
    );
    assert_eq!(stats["nan"], 0);

    let limited = stdout_json(&["show", "demo:mlp", "0.weight", "--json", "--limit", "3"]);
    assert_eq!(limited["values"].as_array().unwrap().len(), 3);
    let shared = stdout_json(&["show", "demo:shared", "4.bias", "--json"]);
    assert_eq!(shared["shared_with"], serde_json::json!(["2.bias"]));
}

#[test]
fn an_architecture_text_is_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let arch = temp_file(&dir, "arch.txt", b"Sequential(\n  (0): Linear(in_features=3, out_features=5, bias=False)\n  (1): GELU(approximate='none')\n  (2): Linear(in_features=5, out_features=2, bias=True)\n)\n");
    let tree = stdout_json(&["tree", &arch, "--json"]);
    assert_eq!(tree["total_params"], 15 + 10 + 2);
    let out = stdout_json(&["forward", &arch, "--batch", "4", "--json"]);
    assert_eq!(out["output_shape"], serde_json::json!([4, 2]));
}

#[test]
fn bad_input_gets_one_clear_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        &["tree", "demo:resnet"],
        "unknown demo \"demo:resnet\"; the demos are demo:mlp, demo:rgnet, demo:shared",
    );
    fails_with(&["tree", "/nonexistent/model.safetensors"], "no such file");
    fails_with(
        &["show", "demo:mlp", "3.weight"],
        "no parameter \"3.weight\"",
    );
    fails_with(&["show", "demo:mlp", "[0][[1]"], "cannot read");
    fails_with(
        &[
            "init",
            "demo:mlp",
            "--weight",
            "gaussian",
            "-o",
            "x.safetensors",
        ],
        "unknown init scheme \"gaussian\"",
    );
    fails_with(
        &[
            "init",
            "demo:mlp",
            "--weight",
            "normal:std=-1",
            "-o",
            "x.safetensors",
        ],
        "normal expects std >= 0.0",
    );
    fails_with(
        &[
            "init",
            "demo:mlp",
            "--weight",
            "ones",
            "--bias",
            "xavier_uniform",
            "-o",
            "x.safetensors",
        ],
        "fewer than 2 dimensions",
    );
    fails_with(
        &[
            "init",
            "demo:mlp",
            "--at",
            "5",
            "--weight",
            "ones",
            "-o",
            "x.safetensors",
        ],
        "no module \"5\"",
    );
    fails_with(
        &[
            "init",
            "demo:mlp",
            "--at",
            "1",
            "--weight",
            "ones",
            "-o",
            "x.safetensors",
        ],
        "no Linear layer under \"1\"",
    );
    fails_with(
        &["export", "demo:mlp", "-o", "/nonexistent/dir/x.safetensors"],
        "/nonexistent/dir/x.safetensors",
    );

    let arch = temp_file(&dir, "bad_arch.txt", b"Sequential(\n  (0): Linear(in_features=4, out_features=8, bias=True)\n  (1): Conv2d(3, 8, kernel_size=(3, 3))\n)\n");
    fails_with(&["tree", &arch], "line 3: unknown module kind \"Conv2d\"");

    let wide = dir.path().join("wide.npy");
    paramscope::io::npy::write(&wide, &ndarray::ArrayD::zeros(ndarray::IxDyn(&[2, 5]))).unwrap();
    fails_with(
        &["forward", "demo:mlp", "--input", wide.to_str().unwrap()],
        "the last dimension must be 4",
    );

    // A torch-saved Sequential has no record of its activations: forward needs the architecture.
    fails_with(
        &["forward", &fixture("zoo.safetensors"), "--batch", "1"],
        "--arch",
    );
    fails_with(
        &[
            "forward",
            &fixture("zoo.safetensors"),
            "--arch",
            &fixture("zoo_arch.txt").replace("zoo_arch", "missing"),
            "--batch",
            "1",
        ],
        "No such file",
    );
}

#[test]
fn files_that_are_not_safetensors_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 6] = [
        (
            "lfs.safetensors",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1234\n",
            "Git LFS pointer",
        ),
        (
            "page.safetensors",
            b"<!DOCTYPE html>\n<html><body>Sign in</body></html>",
            "HTML page",
        ),
        (
            "model.safetensors",
            b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
            "zip archive",
        ),
        ("empty.safetensors", b"", "empty"),
        (
            "short.safetensors",
            b"\x05\x00",
            "shorter than the 8-byte header",
        ),
        (
            "huge.safetensors",
            b"\xff\xff\xff\xff\x00\x00\x00\x00{}",
            "100 MB",
        ),
    ];
    for (name, bytes, needle) in cases {
        let path = temp_file(&dir, name, bytes);
        fails_with(&["tree", &path], needle);
        fails_with(&["tree", &path], name);
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        paramscope(&["init", "demo:mlp", "-o", "x.safetensors"])
            .status
            .code(),
        Some(2)
    );
    let input_and_batch = ["forward", "demo:mlp", "--input", "x.npy", "--batch", "2"];
    assert_eq!(paramscope(&input_and_batch).status.code(), Some(2));
    assert_eq!(
        paramscope(&["forward", "demo:mlp", "--batch", "0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(paramscope(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn control_characters_in_names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![0u8; 8];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
    let metadata =
        std::collections::HashMap::from([("note\u{9b}31m".to_owned(), "red\x1b[31m".to_owned())]);
    let bytes = safetensors::serialize([("evil\x1b[2J.weight", view)], Some(metadata)).unwrap();
    let path = temp_file(&dir, "evil.safetensors", &bytes);
    let out = paramscope(&["tree", &path]);
    assert!(out.status.success());
    assert!(
        !out.stdout.contains(&0x1b),
        "a raw ESC reached the terminal"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("evil\\x1b[2J"));
    let json = paramscope(&["tree", &path, "--json"]);
    assert!(!json.stdout.contains(&0x1b));
    let parsed: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed["params"][0]["name"], "evil\x1b[2J.weight");
}

#[test]
fn a_chain_inferred_from_names_runs_with_a_warning() {
    // Linear layers 0 and 1 and nothing else: the names allow a forward pass, but cannot rule out
    // an activation after the last layer, so the user is told where the architecture came from.
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 4 * (8 * 4 + 8 + 2 * 8)];
    let view = |shape: Vec<usize>, range: std::ops::Range<usize>| {
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &zeros[range]).unwrap()
    };
    let bytes = safetensors::serialize(
        [
            ("0.weight", view(vec![8, 4], 0..128)),
            ("0.bias", view(vec![8], 128..160)),
            ("1.weight", view(vec![2, 8], 160..224)),
        ],
        None,
    )
    .unwrap();
    let path = temp_file(&dir, "chain.safetensors", &bytes);
    let out = paramscope(&["forward", &path, "--batch", "3", "--json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("warning: ") && stderr.contains("read from the tensor names"),
        "{stderr}"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["output_shape"], serde_json::json!([3, 2]));
    // An exported file carries its architecture: no warning.
    let exported = dir.path().join("mlp.safetensors");
    assert!(
        paramscope(&["export", "demo:mlp", "-o", exported.to_str().unwrap()])
            .status
            .success()
    );
    let out = paramscope(&["forward", exported.to_str().unwrap(), "--batch", "1"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_architecture_text_may_hold_any_unicode() {
    // A module name of 300 two-byte characters straddles the 512 bytes read to recognise a file.
    let dir = tempfile::tempdir().unwrap();
    let name = "é".repeat(300);
    let text =
        format!("Sequential(\n  ({name}): Linear(in_features=2, out_features=3, bias=True)\n)\n");
    let arch = temp_file(&dir, "unicode.txt", text.as_bytes());
    let tree = stdout_json(&["tree", &arch, "--json"]);
    assert_eq!(tree["params"][0]["name"], format!("{name}.weight"));
}

#[test]
fn typos_get_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let out = out.to_str().unwrap();
    fails_with(
        &["init", "demo:mlp", "--weight", "xavier_unifrom", "-o", out],
        "did you mean \"xavier_uniform\"?",
    );
    fails_with(
        &[
            "init",
            "demo:rgnet",
            "--at",
            "0.blok1",
            "--weight",
            "zeros",
            "-o",
            out,
        ],
        "did you mean \"0.block1\"?",
    );
    fails_with(
        &["show", "demo:mlp", "0.wieght"],
        "did you mean \"0.weight\"?",
    );
}

#[test]
fn show_says_when_statistics_skip_non_finite_values_and_when_a_tensor_is_empty() {
    use paramscope::tensor::Tensor;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.safetensors");
    let empty = Tensor::from_f32(vec![0, 4], &[]);
    let with_nan = Tensor::from_f32(vec![3], &[1.0, f32::NAN, 3.0]);
    let tensors = vec![("empty".to_owned(), &empty), ("nan".to_owned(), &with_nan)];
    paramscope::io::safetensors::save(&path, &tensors, &std::collections::BTreeMap::new()).unwrap();
    let path = path.to_str().unwrap();
    let text = |name: &str| String::from_utf8(paramscope(&["show", path, name]).stdout).unwrap();
    let empty = text("empty");
    assert!(
        empty.contains("(empty)") && !empty.contains("nan  "),
        "{empty}"
    );
    let nan = text("nan");
    assert!(nan.contains("finite values only"), "{nan}");
    assert!(nan.contains("max      3.000000"), "{nan}");
}
