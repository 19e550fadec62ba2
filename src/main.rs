//! The `paramscope` binary: a subcommand, or the app when there is none.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Parser;
use paramscope::app;
use paramscope::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return run_app(cli.app);
    };
    match cli::run(command) {
        Ok(stdout) => {
            // A closed pipe (`paramscope tree | head`) is the reader's choice, not an error.
            match std::io::stdout().lock().write_all(stdout.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot write to stdout: {e}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The interactive app; it needs a terminal on both ends, which a pipe is not.
fn run_app(args: cli::AppArgs) -> ExitCode {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        eprintln!(
            "error: the app needs a terminal; for text, use a subcommand (paramscope tree {})",
            args.model.as_deref().unwrap_or("demo:mlp")
        );
        return ExitCode::from(2);
    }
    let result = app::run(app::Args {
        model: args.model,
        arch: args.arch,
        select: args.select,
        input: args.input,
        seed: args.seed,
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
