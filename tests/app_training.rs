//! What training leaves behind, in the app at 80x24 without colour: a distributed checkpoint's
//! shard layout (and a damaged chunk said when its tensor is shown), an optimizer's state and next
//! update beside a parameter, and a run followed across its checkpoints (the drift sparklines of
//! the module table, the trajectory view with its flags), each checked against the fixtures' own
//! figures and kept as a named snapshot.

mod app_support;
mod fixture_support;

use app_support::{Harness, open_file_with, render, send, text};
use paramscope::app::action::Action::{
    CycleView, EarlierCheckpoint, FocusNext, LaterCheckpoint, Up,
};
use paramscope::app::format::short;
use paramscope::app::state::View;
use paramscope::app::theme::ColorLevel;

/// A fixture by its path from the package root (the tests' working folder), so that the title
/// bar, and with it each snapshot, is the same on every machine.
fn fixture(path: &str) -> std::path::PathBuf {
    std::path::PathBuf::from("tests/fixtures").join(path)
}

fn screen(h: &Harness) -> String {
    text(&render(&h.app, 80, 24))
}

/// Presses `v` until the tensor pane shows `view`, and runs what that asked of the worker.
fn show(h: &mut Harness, view: View) {
    let id = h.selected_param().expect("a tensor is selected");
    assert!(h.views(id).contains(&view), "{view:?} offered");
    while h.view_of(id) != view {
        send(h, &[CycleView]);
    }
}

#[test]
fn only_the_views_a_tensor_has_are_offered() {
    let model = paramscope::model::demos::build("mlp", 0).unwrap();
    let mut h = app_support::with_model(model, "demo:mlp", Some("0.weight"));
    let id = h.selected_param().unwrap();
    assert_eq!(
        h.views(id),
        [View::Values, View::Histogram, View::Heatmap],
        "a demo has no shards, optimizer or run"
    );
    send(&mut h, &[CycleView, CycleView, CycleView]);
    assert_eq!(h.view_of(id), View::Values, "v comes back round");
}

#[test]
fn a_distributed_tensor_shows_which_file_holds_which_chunk() {
    let folder = fixture("dcp/four_ranks");
    let mut h = open_file_with(&folder, Some("layers.1.weight"), ColorLevel::None);
    show(&mut h, View::Shards);
    let shown = screen(&h);
    insta::assert_snapshot!("shard_layout", shown);
    // Each chunk torch wrote, as `offsets sizes` in its file's row.
    let expected = fixture("dcp/four_ranks.expected.json");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(expected).unwrap()).unwrap();
    let chunks = expected["chunks"]["layers.1.weight"].as_array().unwrap();
    assert!(shown.contains(&format!("{} chunks in 4 files", chunks.len())));
    for chunk in chunks {
        let dims = |v: &serde_json::Value| {
            let parts: Vec<String> = (v.as_array().unwrap().iter())
                .map(ToString::to_string)
                .collect();
            format!("[{}]", parts.join(","))
        };
        let row = format!("{:<8}{}", dims(&chunk[0]), dims(&chunk[1]));
        assert!(shown.contains(&row), "{row} in\n{shown}");
    }
}

/// A module table of a distributed checkpoint's small sharded tensors shows their mean and std,
/// put together by the worker, as any other format's do (it showed `·` for each).
#[test]
fn a_distributed_module_table_shows_its_tensors_figures() {
    let mut h = open_file_with(&fixture("dcp/four_ranks"), None, ColorLevel::None);
    // The first tensor is selected at the start; the root is three rows up.
    send(&mut h, &[Up, Up, Up]);
    let rows: Vec<_> = h.module_rows(0).map(|(_, id)| id).collect();
    assert_eq!(rows.len(), 4, "the root lists the tensors: {}", screen(&h));
    for id in rows {
        let tensor = h.doc.model.store.get(id);
        assert!(!tensor.shards().is_empty(), "a sharded tensor");
        let summary = h.summary(id).expect("summarized by the worker");
        let values = tensor.to_f32_vec().unwrap();
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
        assert!((summary.stats.mean - mean).abs() <= 1e-9 * mean.abs().max(1.0));
    }
    let shown = screen(&h);
    assert!(!shown.contains("   ·   ·"), "{shown}");
}

#[test]
fn a_parameter_shows_its_optimizer_state_and_next_update() {
    let path = fixture("optimizer/mlp_adamw.pt");
    let mut h = open_file_with(&path, Some("model.0.weight"), ColorLevel::None);
    show(&mut h, View::Optimizer);
    assert!(h.queued.is_empty(), "the block was computed on the worker");
    let shown = screen(&h);
    insta::assert_snapshot!("optimizer_block", shown);
    let expected = &fixture_support::expected("optimizer")["mlp_adamw.pt"];
    let ratio = expected["params"]["0.weight"]["update_ratio"]
        .as_f64()
        .unwrap();
    assert!(shown.contains(&format!("‖update‖ / ‖param‖ = {}", short(ratio))));
    assert!(shown.contains("AdamW · step"), "{shown}");
    assert!(shown.contains("exp_avg_sq"), "{shown}");
}

#[test]
fn a_nan_second_moment_is_counted_in_the_block() {
    let path = fixture("optimizer/mlp_adamw_broken.pt");
    let mut h = open_file_with(&path, Some("model.0.weight"), ColorLevel::None);
    show(&mut h, View::Optimizer);
    let shown = screen(&h);
    let nan_row = shown
        .lines()
        .find(|l| l.contains("│NaN "))
        .expect("a NaN row");
    let counts: Vec<&str> = nan_row
        .split('│')
        .nth(3)
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect();
    assert_eq!(
        counts,
        ["0", "1", "1"],
        "exp_avg, exp_avg_sq, update: {nan_row}"
    );
    assert!(shown.contains("‖update‖ / ‖param‖ = nan"), "{shown}");
}

/// The app on the fixture run's last checkpoint, following the whole run.
fn followed(select: &str) -> Harness {
    let run = fixture("trajectory/run");
    let checkpoints = paramscope::checkpoint::locate::run(&[run.display().to_string()]);
    let last = std::path::PathBuf::from(checkpoints.last().unwrap());
    let mut h = open_file_with(&last, Some(select), ColorLevel::None);
    let fx = paramscope::app::update::follow_run(&mut h.app, checkpoints);
    h.take(fx);
    assert_eq!(h.jobs().last(), Some(&"trajectory"));
    h.work();
    h
}

#[test]
fn a_followed_run_draws_each_tensors_drift_and_marks_the_flagged() {
    let mut h = followed("0");
    send(&mut h, &[FocusNext]);
    let shown = screen(&h);
    insta::assert_snapshot!("trajectory_module", shown);
    let expected = fixture_support::expected("trajectory");
    let flagged: Vec<&str> = (expected["flags"].as_array().unwrap().iter())
        .filter_map(|f| f["name"].as_str())
        .collect();
    for name in ["weight", "bias"] {
        let row = shown
            .lines()
            .find(|l| l.contains(&format!("│{name} ")))
            .unwrap();
        let flagged_here = flagged.contains(&format!("0.{name}").as_str());
        assert_eq!(
            row.trim_end_matches('│').ends_with('!'),
            flagged_here,
            "{row}"
        );
        // Six checkpoints, six cells; the NaN of the last is a cross, not a bar.
        assert!(row.contains("×!"), "{row}");
    }
}

#[test]
fn the_trajectory_view_lists_every_checkpoint_and_its_flags() {
    let mut h = followed("0.weight");
    show(&mut h, View::Trajectory);
    let shown = screen(&h);
    insta::assert_snapshot!("trajectory_view", shown);
    let expected = fixture_support::expected("trajectory");
    let series = (expected["tensors"].as_array().unwrap().iter())
        .find(|t| t["name"] == "0.weight")
        .unwrap();
    // The table's rows, below its heading.
    let rows: Vec<&str> = shown.lines().skip_while(|l| !l.contains("ckpt")).collect();
    for (k, norm) in series["norm"].as_array().unwrap().iter().enumerate() {
        let row = rows
            .iter()
            .find(|l| l.contains(&format!("│[{k}] ")))
            .unwrap_or_else(|| panic!("[{k}] in\n{shown}"));
        let figure = norm.as_f64().map_or("-".to_owned(), short);
        assert!(row.contains(&figure), "{figure} in {row}");
        let flags: Vec<&str> = (expected["flags"].as_array().unwrap().iter())
            .filter(|f| f["name"] == "0.weight" && f["checkpoint"] == k)
            .map(|f| match f["kind"].as_str().unwrap() {
                "nonfinite" => "nan",
                _ => "jump",
            })
            .collect();
        // ckpt, norm, drift, step, cos, NaN/Inf, then the flag's word when there is one.
        let cells: Vec<&str> = row.split('│').nth(3).unwrap().split_whitespace().collect();
        assert_eq!(cells.get(6).copied(), flags.first().copied(), "{row}");
    }
}

#[test]
fn the_trajectory_view_plots_drift_and_step_change_without_colour() {
    let mut h = followed("0.weight");
    show(&mut h, View::Trajectory);
    let shown = screen(&h);
    assert!(
        shown.contains("drift ⠤⠒ line   step change • dots"),
        "{shown}"
    );
    // The chart sits between the tabs and the table: Braille for the line, dots for the steps.
    let chart: String = (shown.lines())
        .skip_while(|l| !l.contains("step change • dots"))
        .skip(1)
        .take_while(|l| !l.contains("ckpt"))
        .collect();
    let braille = chart
        .chars()
        .filter(|c| ('\u{2801}'..='\u{28ff}').contains(c));
    assert!(braille.count() >= 6, "{chart}");
    // One dot per finite step change: checkpoints 1 to 4 (the first has none, the last is NaN).
    assert_eq!(chart.matches('•').count(), 4, "{chart}");
    assert!(chart.contains("[0] checkpoint-50") && chart.contains("[5] checkpoint-300"));
}

#[test]
fn brackets_step_the_values_through_the_checkpoints() {
    let mut h = followed("0.weight");
    let expected = fixture_support::expected("trajectory");
    let series = (expected["tensors"].as_array().unwrap().iter())
        .find(|t| t["name"] == "0.weight")
        .unwrap();
    let nonfinite = |k: usize| series["nonfinite"][k].as_u64().unwrap();
    assert_eq!((nonfinite(4), nonfinite(5)), (0, 32));
    assert!(screen(&h).contains(&format!("NaN {}", nonfinite(5))));
    // `[` from the open (last) checkpoint: the one before, read on the worker.
    h.hold(EarlierCheckpoint);
    assert_eq!(h.jobs().last(), Some(&"checkpoint"));
    assert!(screen(&h).contains("reading this checkpoint's tensor"));
    h.work();
    let shown = screen(&h);
    assert!(shown.contains("values · checkpoint [4]"), "{shown}");
    assert!(shown.contains(&format!("NaN {}", nonfinite(4))), "{shown}");
    // The trajectory view marks where the values are.
    show(&mut h, View::Trajectory);
    assert!(screen(&h).contains("│[4]< "), "{}", screen(&h));
    // Stepping stops at either end.
    for _ in 0..7 {
        send(&mut h, &[EarlierCheckpoint]);
        h.work();
    }
    assert!(screen(&h).contains("│[0]< "));
    for _ in 0..7 {
        send(&mut h, &[LaterCheckpoint]);
        h.work();
    }
    show(&mut h, View::Values);
    let shown = screen(&h);
    assert!(shown.contains("values · checkpoint [5]"), "{shown}");
    assert!(shown.contains(&format!("NaN {}", nonfinite(5))), "{shown}");
    // Ten steps, down to [0] and back up to [5]: each of the six checkpoints opened once.
    assert_eq!(h.worker.checkpoints.count, 6);
}

#[test]
fn a_damaged_chunk_is_said_in_the_status_bar_when_its_tensor_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("dcp/single")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let opened = paramscope::io::dcp::open(dir.path()).unwrap();
    let (_, weight) = (opened.tensors.iter())
        .find(|(n, _)| n == "layers.1.weight")
        .unwrap();
    let at = weight.shards()[0].bytes.clone();
    let shard = dir.path().join("__0_0.distcp");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[at.start as usize..at.end as usize].fill(0);
    std::fs::write(&shard, bytes).unwrap();
    let mut h = open_file_with(dir.path(), Some("layers.1.weight"), ColorLevel::None);
    h.work();
    let Some(paramscope::app::state::Message::Error(said)) = &h.message else {
        panic!("an error in the status bar: {:?}", h.message);
    };
    for want in [
        "__0_0.distcp",
        "layers.1.weight",
        "neither a torch.save archive",
    ] {
        assert!(said.contains(want), "{want}: {said}");
    }
}
