//! `paramscope diff` and `paramscope check` against figures numpy and torch computed
//! (tests/fixtures/compare/make.py): every figure within 1e-4 relative, every finding exact.

mod cli_support;

use std::collections::BTreeSet;
use std::path::Path;

use cli_support::{paramscope, stdout_json as json};
use serde_json::Value;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compare")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn expected(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// Within 1e-4 relative of numpy's figure (exact when numpy's is zero).
fn assert_close(got: &Value, want: &Value, what: &str) {
    let (g, w) = (got.as_f64(), want.as_f64());
    let (Some(g), Some(w)) = (g, w) else {
        assert_eq!(got, want, "{what}");
        return;
    };
    assert!(
        (g - w).abs() <= 1e-4 * w.abs(),
        "{what}: paramscope {g}, numpy {w}"
    );
}

#[test]
fn diff_figures_equal_numpys() {
    let (base, tune) = (fixture("base.safetensors"), fixture("finetune.safetensors"));
    let got = json(&["diff", &base, &tune, "--map", "model.=", "--json"]);
    let want = expected("diff.json");
    assert_eq!(got["summary"], want["summary"]);
    let tensors = got["tensors"].as_array().unwrap();
    let want_tensors = want["tensors"].as_object().unwrap();
    assert_eq!(tensors.len(), want_tensors.len());
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let w = &want_tensors[name];
        assert_eq!(t["status"], w["status"], "{name}");
        for figure in ["max_abs_diff", "rel_l2", "cosine", "identical_fraction"] {
            let want_figure = w.get(figure).unwrap_or(&Value::Null);
            assert_close(&t[figure], want_figure, &format!("{name} {figure}"));
        }
        let rows = t
            .get("rows")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let want_rows = w
            .get("rows")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        assert_eq!(rows.len(), want_rows.len(), "{name} rows");
        for (r, wr) in rows.iter().zip(&want_rows) {
            assert_eq!(r["row"], wr["row"], "{name} rows");
            assert_close(&r["l2"], &wr["l2"], &format!("{name} row l2"));
            assert_close(&r["rel_l2"], &wr["rel_l2"], &format!("{name} row rel_l2"));
        }
    }
    let status = |name: &str| {
        tensors
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["status"].clone())
            .unwrap()
    };
    // The fixture plants one of each status; make sure the figures above covered them.
    assert_eq!(status("layers.1.self_attn.q_proj.weight"), "same");
    assert_eq!(status("lm_head.weight"), "dtype");
    assert_eq!(status("layers.1.mlp.gate_proj.weight"), "shape");
    assert_eq!(status("extra.weight"), "only_b");
}

#[test]
fn without_the_map_names_do_not_match() {
    let (base, tune) = (fixture("base.safetensors"), fixture("finetune.safetensors"));
    let got = json(&["diff", &base, &tune, "--json"]);
    let s = &got["summary"];
    // Only lm_head.weight carries no "model." prefix; it matches, with another dtype.
    assert_eq!(
        (s["same"].as_u64(), s["mismatched"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(s["only_a"].as_u64().unwrap() + 1, 21);
}

#[test]
fn exit_codes_follow_git_diff() {
    let (base, tune) = (fixture("base.safetensors"), fixture("finetune.safetensors"));
    let code = |args: &[&str]| paramscope(args).status.code();
    assert_eq!(code(&["diff", &base, &tune]), Some(0));
    assert_eq!(code(&["diff", &base, &tune, "--exit-code"]), Some(3));
    assert_eq!(code(&["diff", &base, &base, "--exit-code"]), Some(0));
    let missing = paramscope(&["diff", &base, "no/such.safetensors", "--exit-code"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).starts_with("error: "));
    let bad_map = paramscope(&["diff", &base, &tune, "--map", "model."]);
    assert_eq!(bad_map.status.code(), Some(2), "a usage error");
}

#[test]
fn the_text_table_is_sorted_by_rel_l2_with_the_unchanged_summed_up() {
    let (base, tune) = (fixture("base.safetensors"), fixture("finetune.safetensors"));
    let out = paramscope(&["diff", &base, &tune, "--map", "model.="]);
    let text = String::from_utf8(out.stdout).unwrap();
    let rel: Vec<f64> = text
        .lines()
        .skip(1)
        .take_while(|l| !l.contains("tensors unchanged"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(rel.len() >= 10, "{text}");
    assert!(rel.windows(2).all(|w| w[0] >= w[1]), "{text}");
    // The biggest move is down_proj's two planted rows, named in its line.
    let first = text.lines().nth(1).unwrap();
    assert!(
        first.ends_with("layers.1.mlp.down_proj.weight  rows 3, 7"),
        "{first}"
    );
    let want = expected("diff.json");
    let same = want["summary"]["same"].as_u64().unwrap();
    assert!(
        text.contains(&format!("{same} tensors unchanged")),
        "{text}"
    );
}

/// A JSON object as text with its keys sorted (the crate keeps insertion order).
fn sorted_text(value: &Value) -> String {
    let sorted: std::collections::BTreeMap<&String, &Value> =
        value.as_object().unwrap().iter().collect();
    serde_json::to_string(&sorted).unwrap()
}

/// A finding as a comparable string: duplicates as an unordered pair (which of the two is
/// "tensor" follows state_dict order, which numpy's dict order does not model).
fn finding_key(f: &Value) -> String {
    let mut f = f.as_object().unwrap().clone();
    f.remove("median_column_max");
    f.remove("median_row_norm");
    // Outlier features are information; every other kind is a defect.
    let severity = f.remove("severity").unwrap();
    assert_eq!(
        severity,
        if f["kind"] == "outlier_columns" {
            "info"
        } else {
            "defect"
        }
    );
    if f["kind"] == "duplicate" {
        let mut pair = [f["tensor"].as_str().unwrap(), f["of"].as_str().unwrap()];
        pair.sort_unstable();
        return format!("duplicate {pair:?}");
    }
    sorted_text(&Value::Object(f))
}

fn expected_key(f: &Value) -> String {
    if f["kind"] == "duplicate" {
        let pair: Vec<&str> = f["pair"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        return format!("duplicate {pair:?}");
    }
    sorted_text(f)
}

#[test]
fn check_names_exactly_the_planted_defects() {
    let got = json(&["check", &fixture("planted.safetensors"), "--json"]);
    let got: BTreeSet<String> = got["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(finding_key)
        .collect();
    let want: BTreeSet<String> = expected("planted.json")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(expected_key)
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 8, "one finding of each kind");
}

#[test]
fn clean_models_have_no_findings() {
    for model in [
        "clean.safetensors",
        "trained.safetensors",
        "base.safetensors",
    ] {
        let got = json(&["check", &fixture(model), "--json"]);
        assert_eq!(got["findings"], Value::Array(vec![]), "{model}");
    }
    let text = paramscope(&["check", &fixture("trained.safetensors")]);
    assert!(String::from_utf8_lossy(&text.stdout).starts_with("no findings in 21 tensors"));
}

#[test]
fn spectral_figures_equal_numpys_and_weightwatchers_fit() {
    let want = expected("spectral.json");
    for (model, file) in [
        ("base", "base.safetensors"),
        ("trained", "trained.safetensors"),
    ] {
        let got = json(&["check", &fixture(file), "--json", "--spectral"]);
        let spectral = got["spectral"].as_array().unwrap();
        let want = want[model].as_object().unwrap();
        assert_eq!(spectral.len(), want.len(), "{model}");
        for s in spectral {
            let name = s["tensor"].as_str().unwrap();
            for figure in ["spectral_norm", "stable_rank", "alpha"] {
                assert_close(
                    &s[figure],
                    &want[name][figure],
                    &format!("{model} {name} {figure}"),
                );
            }
        }
    }
}

#[test]
fn names_from_the_file_are_escaped_in_text_and_valid_in_json() {
    // A safetensors file whose only tensor is named with an escape sequence that clears a screen.
    let header = r#"{"\u001b[2Jw":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let path = path.to_string_lossy();
    let base = fixture("base.safetensors");
    let text = paramscope(&["diff", &base, &path]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        !text.contains('\u{1b}') && text.contains("\\x1b[2Jw"),
        "{text}"
    );
    let value = json(&["diff", &base, &path, "--json"]);
    let names: Vec<&str> = value["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"\u{1b}[2Jw"));
}
