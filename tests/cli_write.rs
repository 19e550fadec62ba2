//! `init` and `export` as scripts meet them: what they write, ties and aliases kept, and the
//! committed demo models still what `export` writes.

mod cli_support;

use std::path::Path;

use cli_support::{stdout_json, succeeded};

#[test]
fn an_export_runs_forward_alone_and_keeps_its_ties() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shared.safetensors");
    let file = file.to_str().unwrap();
    succeeded(&["export", "demo:shared", "-o", file]);
    let tree = stdout_json(&["tree", file, "--json"]);
    assert_eq!(tree["total_params"], 121);
    assert_eq!(
        tree["shared"][tree["params"][4]["shared"].as_u64().unwrap() as usize],
        serde_json::json!(["2.weight", "4.weight"])
    );
    let from_file = stdout_json(&["forward", file, "--batch", "3", "--json"]);
    let from_demo = stdout_json(&["forward", "demo:shared", "--batch", "3", "--json"]);
    assert_eq!(from_file["output"], from_demo["output"]);
    // Exporting over the file it reads from goes through a rename, so the mapped source stays intact.
    succeeded(&["export", file, "-o", file]);
    assert_eq!(
        stdout_json(&["forward", file, "--batch", "3", "--json"])["output"],
        from_demo["output"]
    );
}

#[test]
fn init_changes_only_the_subtree_and_every_alias() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let out = out.to_str().unwrap();
    succeeded(&[
        "init",
        "demo:rgnet",
        "--at",
        "[0][1]",
        "--weight",
        "constant:val=0.5",
        "--bias",
        "zeros",
        "-o",
        out,
    ]);
    let changed = stdout_json(&["show", out, "0.block1.2.weight", "--json"]);
    assert!(
        changed["values"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v == 0.5)
    );
    let bias = stdout_json(&["show", out, "0.block1.0.bias", "--json"]);
    assert_eq!(bias["stats"]["zeros"], 8);
    let untouched = stdout_json(&["show", out, "0.block2.0.weight", "--json"]);
    assert_eq!(
        untouched["values"],
        stdout_json(&["show", "demo:rgnet", "0.block2.0.weight", "--json"])["values"]
    );

    let tied = dir.path().join("tied.safetensors");
    let tied = tied.to_str().unwrap();
    succeeded(&[
        "init",
        "demo:shared",
        "--at",
        "4",
        "--weight",
        "ones",
        "-o",
        tied,
    ]);
    let through_2 = stdout_json(&["show", tied, "2.weight", "--json"]);
    assert!(
        through_2["values"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v == 1.0)
    );
}

#[test]
fn committed_demo_models_are_what_export_writes() {
    let dir = tempfile::tempdir().unwrap();
    for demo in ["mlp", "rgnet", "shared"] {
        let fresh = dir.path().join(format!("{demo}.safetensors"));
        succeeded(&[
            "export",
            &format!("demo:{demo}"),
            "-o",
            fresh.to_str().unwrap(),
        ]);
        let committed =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("demo-models/{demo}.safetensors"));
        assert!(
            std::fs::read(&fresh).unwrap() == std::fs::read(&committed).unwrap(),
            "demo-models/{demo}.safetensors is stale: regenerate it with the command in demo-models/README.md"
        );
    }
}

#[test]
fn init_at_a_parameter_writes_only_that_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let out = out.to_str().unwrap();
    let args = [
        "init",
        "demo:mlp",
        "--at",
        "[0].weight",
        "--weight",
        "zeros",
        "-o",
        out,
    ];
    succeeded(&args);
    let weight = stdout_json(&["show", out, "0.weight", "--json"]);
    assert_eq!(weight["stats"]["max"], 0.0);
    assert_eq!(weight["stats"]["min"], 0.0);
    let before = stdout_json(&["show", "demo:mlp", "0.bias", "--json"]);
    let bias = stdout_json(&["show", out, "0.bias", "--json"]);
    assert_eq!(bias["values"], before["values"]);
}
