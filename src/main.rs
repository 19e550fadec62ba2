//! The binary: a subcommand, or the app when there is none. Every byte it prints from a file or an
//! argument goes through [`paramscope::text`] here, once, at the edge.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Parser;
use paramscope::app;
use paramscope::cli::{self, Cli};
use paramscope::io::fault;
use paramscope::text::{escape, escape_lines};

fn main() -> ExitCode {
    fault::install();
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return run_app(cli.app);
    };
    exit_cleanly_on_signals();
    match cli::run(command) {
        Ok(output) => {
            let written = std::io::stdout()
                .lock()
                .write_all(escape_lines(&output.stdout).as_bytes());
            // Freed by the end of the process, all at once (see `Output::opened`).
            std::mem::forget(output.opened);
            // A closed pipe (`paramscope tree | head`) is the reader's choice, not an error.
            match written {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot write to stdout: {e}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::from(output.code),
            }
        }
        Err(error) => {
            eprintln!("error: {}", escape(&error.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP during a subcommand remove the temp file of a write in progress
/// before the process ends with 128 + the signal, as the default action would report it.
fn exit_cleanly_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("paramscope-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                fault::remove_temps();
                std::process::exit(128 + signal);
            }
        });
    if let Err(e) = spawned {
        eprintln!("paramscope: a signal may leave a temp file behind: {e}");
    }
}

/// Whether `model` names a server's file or folder (and no local file of that name exists).
fn is_remote(model: &str) -> bool {
    !std::path::Path::new(model).exists()
        && paramscope::source::Location::parse(model).is_ok_and(|l| l.is_remote())
}

/// The interactive app; it needs a terminal on both ends, which a pipe is not.
fn run_app(args: cli::AppArgs) -> ExitCode {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        eprintln!(
            "error: the app needs a terminal; for text, use a subcommand (paramscope tree {})",
            escape(args.model.as_deref().unwrap_or("demo:mlp"))
        );
        return ExitCode::from(2);
    }
    // A remote MODEL is opened before the screen is taken: say why the wait (headers only, a few
    // round trips), while Ctrl-C still works as in any command.
    if let Some(model) = args.model.as_deref().filter(|m| is_remote(m)) {
        eprintln!("paramscope: reading the headers of {}", escape(model));
    }
    let result = app::run(app::Args {
        model: args.model,
        arch: args.arch,
        select: args.select,
        input: args.input,
        seed: args.seed,
        compare: args.compare,
        base: args.base,
        trajectory: args.trajectory,
    });
    // A write the worker had not finished leaves no temp file behind.
    fault::remove_temps();
    if let Some(signal) = app::terminal::quit_signal() {
        return ExitCode::from(u8::try_from(128 + signal).unwrap_or(1));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {}", escape(&message.to_string()));
            ExitCode::FAILURE
        }
    }
}
