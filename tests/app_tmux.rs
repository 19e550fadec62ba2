//! The real binary in a real terminal (tmux at 80x24, see `tmux_support`): a session of keys on a
//! demo, and a new user's session on a plain vt100; after `q` the terminal must be cooked again.
//! The signals' ways out are `app_signals.rs`.

mod tmux_support;

use std::path::Path;

use tmux_support::{Tmux, is_cooked};

/// The app has ended with the terminal back in cooked mode.
fn assert_exited_cooked(tmux: &Tmux) {
    let (_, stty) = tmux.after_exit();
    assert!(is_cooked(&stty), "the terminal is left raw:\n{stty}");
}

#[test]
fn launch_navigate_forward_init_quit() {
    let Some(tmux) = Tmux::start("keys", "demo:shared") else {
        return;
    };
    tmux.wait_for("paramscope demo:shared");
    tmux.wait_for("0.weight");
    // Down to 2.weight: 0.bias, (1), (2), 2.weight.
    tmux.keys(&["j", "j", "j", "j"]);
    tmux.wait_for("shared with 4.weight");
    tmux.keys(&["f"]);
    let screen = tmux.wait_for("output [2, 1]");
    assert!(screen.contains("forward pass"), "{screen}");
    tmux.keys(&["f", "i"]);
    tmux.wait_for("re-initialize");
    // zeros, applied to the weight through path 2: typed, since an arrow's escape sequence can
    // arrive split on a loaded machine and read as Esc.
    tmux.type_text("zer");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("1 tensor(s) · u undoes");
    assert!(screen.contains("before → after"), "{screen}");
    tmux.keys(&["?"]);
    tmux.wait_for("Tree and tensor panes");
    // Esc, then `q` once the help is gone: sent together they can arrive as one Alt-q.
    tmux.keys(&["Escape"]);
    tmux.wait_until("the help closing", |s| !s.contains("Tree and tensor panes"));
    tmux.keys(&["q"]);
    tmux.wait_for("Quit anyway?");
    tmux.keys(&["y"]);
    assert_exited_cooked(&tmux);
}

/// A checkpoint as PyTorch saves one (no architecture inside), with its `print(model)` text beside
/// it as `net.arch.txt`, in `dir`.
fn pytorch_checkpoint_with_its_architecture(dir: &Path) {
    let model = paramscope::model::demos::build("rgnet", 0).unwrap();
    let (tensors, mut metadata) = paramscope::checkpoint::save::contents(&model);
    metadata.remove(paramscope::model::arch::METADATA_KEY);
    paramscope::io::safetensors::save(&dir.join("net.safetensors"), &tensors, &metadata).unwrap();
    std::fs::write(
        dir.join("net.arch.txt"),
        paramscope::model::arch::print(&model.root),
    )
    .unwrap();
}

/// A new user's session over a plain terminal (vt100, NO_COLOR) at 80x24: open a PyTorch
/// checkpoint, find a tensor, run it forward, re-initialize a block, write it, and reopen it.
#[test]
fn a_session_on_a_vt100_without_colour() {
    let files = tempfile::tempdir().unwrap();
    pytorch_checkpoint_with_its_architecture(files.path());
    let Some(tmux) = Tmux::start_in(
        "vt100",
        "net.safetensors",
        &["TERM=vt100", "NO_COLOR=1", "COLORTERM=truecolor"],
        Some(files.path()),
    ) else {
        return;
    };
    tmux.wait_for("architecture from");
    // No colour escapes at all: SGR 30-37/90-97 set a colour, 38 an indexed or RGB one.
    let raw = tmux.capture(true);
    for colour in ["\x1b[38;", "\x1b[48;", "[31m", "[34m", "[36m", "[33m"] {
        assert!(!raw.contains(colour), "{colour:?} on a vt100:\n{raw}");
    }
    // Find a tensor with a glob.
    tmux.keys(&["/"]);
    tmux.type_text("block2.*.weight");
    tmux.keys(&["Enter"]);
    tmux.wait_for("│0.block2.0.weight");
    tmux.keys(&["f"]);
    tmux.wait_for("output [2, 1]");
    tmux.keys(&["f", "Escape"]);
    tmux.wait_until("the filter clearing", |s| !s.contains("filter \"block2"));
    tmux.keys(&["/"]);
    tmux.type_text("block2");
    tmux.keys(&["Enter", "i"]);
    tmux.wait_for("re-initialize 0.block2");
    tmux.type_text("xav");
    tmux.keys(&["Enter"]);
    tmux.wait_for("xavier_uniform on 0.block2 (biases: default) · 4 tensor(s)");
    tmux.wait_for("● unsaved");
    tmux.keys(&["w", "Enter"]);
    tmux.wait_for("wrote net.reinit.safetensors");
    tmux.keys(&["o"]);
    tmux.type_text("reinit");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("opened net.reinit.safetensors");
    assert!(!screen.contains("● unsaved"), "{screen}");
    tmux.keys(&["f"]);
    tmux.wait_for("output [2, 1]");
    tmux.keys(&["q"]);
    assert_exited_cooked(&tmux);
}
