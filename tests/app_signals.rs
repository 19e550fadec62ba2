//! Signals against the real binary in a real terminal (tmux, 80x24): SIGTERM, SIGHUP, SIGQUIT,
//! SIGUSR1, SIGALRM and SIGABRT (an allocation failure) end the app with 128 + the signal and the
//! terminal cooked; Ctrl-Z and an external SIGTSTP give the terminal
//! back while stopped, and SIGCONT takes it again and repaints.

mod tmux_support;

use tmux_support::{Tmux, is_cooked};

#[test]
fn every_signal_that_ends_the_app_restores_the_terminal_first() {
    for (signal, code) in [
        ("-TERM", 143),
        ("-HUP", 129),
        ("-INT", 130),
        ("-QUIT", 131),
        ("-USR1", 138),
        ("-ALRM", 142),
        // An allocation failure aborts: SIGABRT restores the terminal, then the abort goes on.
        ("-ABRT", 134),
    ] {
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
