//! What the tmux tests share: the real binary in a tmux server of its own at 80x24, keys in with
//! `send-keys`, the screen back with `capture-pane`, and, once the app ends, its exit status and
//! `stty -a` of its terminal. Where tmux is absent a test is skipped with a note, except under CI
//! (`CI=true`), where that fails it, so a run cannot pass without running them.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the support"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_paramscope");

/// How long anything may take to show (the app draws within a frame; CI may be slow).
const PATIENCE: Duration = Duration::from_secs(20);

/// A tmux server of its own (its own socket), so tests never touch the user's sessions.
pub struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts `paramscope ARGS` at 80x24 in a 256-colour xterm, in the crate's folder.
    pub fn start(name: &str, args: &str) -> Option<Tmux> {
        Tmux::start_in(name, args, &["TERM=xterm-256color", "NO_COLOR="], None)
    }

    /// Starts `paramscope ARGS` at 80x24 with `env`, in `cwd` (else the crate's folder).
    pub fn start_in(name: &str, args: &str, env: &[&str], cwd: Option<&Path>) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tmux is not installed, and under CI the tmux tests must run: install tmux"
            );
            eprintln!("note: tmux is not installed; skipping a tmux test");
            return None;
        }
        let tmux = Tmux {
            socket: format!("paramscope-{name}-{}", std::process::id()),
            dir: tempfile::tempdir().unwrap(),
        };
        let (pid, code, stty) = (tmux.file("pid"), tmux.file("code"), tmux.file("stty"));
        let script = format!(
            "sh -c 'echo $$ > {pid}; exec {BIN} {args}'; echo $? > {code}; stty -a > {stty}.tmp; mv {stty}.tmp {stty}; sleep 60",
            pid = pid.display(),
            code = code.display(),
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

    /// A file in the session's own temporary folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    /// Sends each of `keys` (tmux key names: `q`, `Down`, `C-z`).
    pub fn keys(&self, keys: &[&str]) {
        for key in keys {
            let status = self
                .command()
                .args(["send-keys", "-t", "app", key])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    /// Types `text` one key at a time, as a person would.
    pub fn type_text(&self, text: &str) {
        for ch in text.chars() {
            self.keys(&[&ch.to_string()]);
        }
    }

    /// The screen's text.
    pub fn screen(&self) -> String {
        self.capture(false)
    }

    /// The screen, with its escape sequences (`-e`) when `escapes`.
    pub fn capture(&self, escapes: bool) -> String {
        let mut command = self.command();
        command.args(["capture-pane", "-p", "-t", "app"]);
        if escapes {
            command.arg("-e");
        }
        let out = command.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; the screen.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_until(&format!("{text:?}"), |s| s.contains(text))
    }

    /// Waits until `done` holds of the screen; the screen.
    pub fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{what} never showed; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The app's process id.
    pub fn pid(&self) -> String {
        let path = self.file("pid");
        wait_for_file(&path);
        std::fs::read_to_string(path).unwrap().trim().to_owned()
    }

    /// Sends `signal` (`-TERM`, `-CONT`) to the app.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The app's process state letter (`T` when stopped), from /proc.
    pub fn state(&self) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.chars().next().unwrap()
    }

    /// Waits until the app's process state satisfies `wanted`.
    pub fn wait_for_state(&self, wanted: impl Fn(char) -> bool, what: &str) {
        let start = Instant::now();
        while !wanted(self.state()) {
            assert!(start.elapsed() < PATIENCE, "{what} never happened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The terminal's mode now (`stty -a` on the app's terminal).
    pub fn stty_now(&self) -> String {
        let tty = std::fs::read_link(format!("/proc/{}/fd/0", self.pid())).unwrap();
        let out = Command::new("stty")
            .args(["-a", "-F"])
            .arg(tty)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The exit status and `stty -a` recorded after the app ended.
    pub fn after_exit(&self) -> (i32, String) {
        let (code, stty) = (self.file("code"), self.file("stty"));
        wait_for_file(&stty);
        let code = std::fs::read_to_string(code)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (code, std::fs::read_to_string(stty).unwrap())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

/// Waits until `path` exists.
pub fn wait_for_file(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < PATIENCE,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `stty -a` shows cooked mode: raw mode clears `icanon`, `echo` and `isig`.
pub fn is_cooked(stty: &str) -> bool {
    let words: Vec<&str> = stty.split_whitespace().collect();
    ["icanon", "echo", "isig"].iter().all(|f| words.contains(f))
}
