//! The `paramscope` binary: a subcommand, or the app when there is none.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use paramscope::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(command) => cli::run(command),
        None => cli::run(cli::Command::Tree(cli::TreeArgs::default_demo())),
    };
    match result {
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
