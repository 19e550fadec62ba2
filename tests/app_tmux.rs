//! The real binary in a real terminal: tmux runs it at 80x24, keys go in with `send-keys`, the
//! screen comes back with `capture-pane`, and after every way out (`q`, SIGTERM, SIGHUP) `stty`
//! must find the terminal in cooked mode again. Skipped, with a note, where tmux is absent; under
//! CI (`CI=true`) a missing tmux fails the test instead, so the run cannot pass without running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_paramscope");

/// A tmux server of its own (its own socket), so tests never touch the user's sessions.
struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts `paramscope ARGS` at 80x24 in a 256-colour xterm, in the crate's folder.
    fn start(name: &str, args: &str) -> Option<Tmux> {
        Tmux::start_in(name, args, &["TERM=xterm-256color", "NO_COLOR="], None)
    }

    /// Starts `paramscope ARGS` at 80x24 with `env`, in `dir` (else the crate's folder); when it
    /// exits, `stty -a` records the terminal's mode.
    fn start_in(name: &str, args: &str, env: &[&str], cwd: Option<&Path>) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "tmux is not installed, and under CI the end-to-end test must run: install tmux"
            );
            eprintln!("note: tmux is not installed; skipping the end-to-end test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            socket: format!("paramscope-{name}-{}", std::process::id()),
            dir,
        };
        let (pid, stty) = (tmux.file("pid"), tmux.file("stty"));
        let script = format!(
            "sh -c 'echo $$ > {pid}; exec {BIN} {args}'; stty -a > {stty}.tmp; mv {stty}.tmp {stty}; sleep 60",
            pid = pid.display(),
            stty = stty.display()
        );
        let mut command = tmux.command();
        command.args(["new-session", "-d", "-x", "80", "-y", "24", "-s", "app"]);
        for var in env {
            command.args(["-e", var]);
        }
        let cwd = cwd.unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")));
        let status = command
            .args(["-c", &cwd.display().to_string()])
            .arg(script)
            .current_dir(cwd)
            .status()
            .unwrap();
        assert!(status.success());
        Some(tmux)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            let status = self
                .command()
                .args(["send-keys", "-t", "app", key])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    fn screen(&self) -> String {
        self.capture(false)
    }

    /// The screen, with its escape sequences (`-e`) when `escapes`.
    fn capture(&self, escapes: bool) -> String {
        let mut command = self.command();
        command.args(["capture-pane", "-p", "-t", "app"]);
        if escapes {
            command.arg("-e");
        }
        let out = command.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` one key at a time, as a person would.
    fn type_text(&self, text: &str) {
        for ch in text.chars() {
            self.keys(&[&ch.to_string()]);
        }
    }

    /// Waits until the screen shows `text` (the app draws within a frame; CI may be slow).
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{text:?} never showed; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `stty -a` recorded after the app ended.
    fn stty_after_exit(&self) -> String {
        let path = self.file("stty");
        wait_for_file(&path);
        std::fs::read_to_string(path).unwrap()
    }

    fn signal(&self, signal: &str) {
        let pid_file = self.file("pid");
        wait_for_file(&pid_file);
        let pid = std::fs::read_to_string(pid_file).unwrap();
        let status = Command::new("kill")
            .args([signal, pid.trim()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

fn wait_for_file(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Raw mode clears `icanon` and `echo`; a restored terminal has both again.
fn assert_cooked(stty: &str) {
    let words: Vec<&str> = stty.split_whitespace().collect();
    for flag in ["icanon", "echo", "isig"] {
        assert!(words.contains(&flag), "{flag} is off after exit:\n{stty}");
    }
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
    tmux.keys(&["Escape", "q"]);
    tmux.wait_for("Quit anyway?");
    tmux.keys(&["y"]);
    assert_cooked(&tmux.stty_after_exit());
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
    tmux.keys(&["f", "Escape", "/"]);
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
    assert_cooked(&tmux.stty_after_exit());
}

#[test]
fn sigterm_and_sighup_restore_the_terminal() {
    for signal in ["-TERM", "-HUP"] {
        let Some(tmux) = Tmux::start(&signal[1..], "demo:mlp") else {
            return;
        };
        tmux.wait_for("paramscope demo:mlp");
        tmux.signal(signal);
        assert_cooked(&tmux.stty_after_exit());
    }
}
