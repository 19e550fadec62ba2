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
    /// Starts `paramscope ARGS` at 80x24; when it exits, `stty -a` records the terminal's mode.
    fn start(name: &str, args: &str) -> Option<Tmux> {
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
        let status = tmux
            .command()
            .args(["new-session", "-d", "-x", "80", "-y", "24", "-s", "app"])
            .args(["-e", "TERM=xterm-256color", "-e", "NO_COLOR="])
            .arg(script)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
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
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", "app"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
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
    // zeros, applied to the weight through path 2.
    tmux.keys(&["Right", "Enter"]);
    let screen = tmux.wait_for("re-initialized 1 tensor");
    assert!(screen.contains("before → after"), "{screen}");
    tmux.keys(&["?"]);
    tmux.wait_for("Tree and tensor panes");
    tmux.keys(&["Escape", "q"]);
    tmux.wait_for("Quit anyway?");
    tmux.keys(&["y"]);
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
