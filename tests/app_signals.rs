//! Signals against the real binary in a real terminal (tmux, 80x24): SIGTERM and SIGHUP end the
//! app with 143 and 129 and the terminal cooked; Ctrl-Z and an external SIGTSTP give the terminal
//! back while stopped, and SIGCONT takes it again and repaints. Where tmux is absent the tests are
//! skipped with a note, except under CI (`CI=true`), where that is a failure.

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
    /// Starts `paramscope ARGS`; when it exits, its status and `stty -a` are recorded.
    fn start(name: &str, args: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tmux is not installed, and CI must run the signal tests"
            );
            eprintln!("note: tmux is not installed; skipping the signal test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            socket: format!("paramscope-signals-{name}-{}", std::process::id()),
            dir,
        };
        let (pid, code, stty) = (tmux.file("pid"), tmux.file("code"), tmux.file("stty"));
        let script = format!(
            "sh -c 'echo $$ > {pid}; exec {BIN} {args}'; echo $? > {code}; stty -a > {stty}.tmp; mv {stty}.tmp {stty}; sleep 60",
            pid = pid.display(),
            code = code.display(),
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

    /// Waits until `done` holds of the screen (the app draws within a frame; CI may be slow).
    fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what} never happened; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> String {
        let path = self.file("pid");
        wait_for_file(&path);
        std::fs::read_to_string(path).unwrap().trim().to_owned()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The app's process state letter (`T` when stopped), from /proc.
    fn state(&self) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.chars().next().unwrap()
    }

    /// The terminal's mode now (`stty -a` on the app's terminal).
    fn stty_now(&self) -> String {
        let tty = std::fs::read_link(format!("/proc/{}/fd/0", self.pid())).unwrap();
        let out = Command::new("stty")
            .args(["-a", "-F"])
            .arg(tty)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The exit status and `stty -a` recorded after the app ended.
    fn after_exit(&self) -> (i32, String) {
        let (code, stty) = (self.file("code"), self.file("stty"));
        wait_for_file(&stty);
        let code = std::fs::read_to_string(code)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (code, std::fs::read_to_string(stty).unwrap())
    }

    fn wait_for_state(&self, wanted: impl Fn(char) -> bool, what: &str) {
        let start = Instant::now();
        while !wanted(self.state()) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what} never happened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// Whether `stty -a` shows cooked mode: raw mode clears `icanon`, `echo` and `isig`.
fn is_cooked(stty: &str) -> bool {
    let words: Vec<&str> = stty.split_whitespace().collect();
    ["icanon", "echo", "isig"].iter().all(|f| words.contains(f))
}

#[test]
fn sigterm_and_sighup_exit_143_and_129_with_the_terminal_restored() {
    for (signal, code) in [("-TERM", 143), ("-HUP", 129), ("-INT", 130)] {
        let Some(tmux) = Tmux::start(&signal[1..], "demo:mlp") else {
            return;
        };
        tmux.wait_until("the app's start", |s| s.contains("paramscope demo:mlp"));
        tmux.signal(signal);
        let (status, stty) = tmux.after_exit();
        assert_eq!(status, code, "after {signal}");
        assert!(is_cooked(&stty), "after {signal}:\n{stty}");
    }
}

#[test]
fn ctrl_z_and_sigtstp_suspend_and_sigcont_resumes() {
    for how in ["C-z", "-TSTP"] {
        let Some(tmux) = Tmux::start(&how[1..], "demo:mlp") else {
            return;
        };
        tmux.wait_until("the app's start", |s| s.contains("paramscope demo:mlp"));
        if how == "C-z" {
            tmux.keys(&[how]);
        } else {
            tmux.signal(how);
        }
        tmux.wait_for_state(|s| s == 'T', "stopping");
        // Stopped, the shell's screen and mode are back.
        let screen = tmux.wait_until("leaving the alternate screen", |s| {
            !s.contains("paramscope demo:mlp")
        });
        assert!(!screen.contains("0.weight"), "{screen}");
        assert!(is_cooked(&tmux.stty_now()), "{how}: cooked while stopped");
        tmux.signal("-CONT");
        tmux.wait_for_state(|s| s != 'T', "continuing");
        tmux.wait_until("the repaint", |s| s.contains("paramscope demo:mlp"));
        assert!(
            !is_cooked(&tmux.stty_now()),
            "{how}: raw again after SIGCONT"
        );
        // The keys work again, and `q` ends it normally.
        tmux.keys(&["q"]);
        let (status, stty) = tmux.after_exit();
        assert_eq!(status, 0, "{how}");
        assert!(is_cooked(&stty), "{how}:\n{stty}");
    }
}
