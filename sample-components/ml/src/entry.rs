//! The shared `main` of the command components: parses the command line, prints the
//! usage or the error, and turns the outcome into the exit status (0 done, 1 failed,
//! 2 usage). The only module of the crate that prints.

use std::fmt::Display;
use std::process::ExitCode;

use crate::cli::{Args, Command, UsageError};

/// Runs `run` on the parsed arguments of this process. An error is printed as
/// `<command>: <error>` (with its causes, for errors that show them in `{:#}`).
pub fn main<E: Display>(
    command: &Command,
    run: impl FnOnce(&Args) -> Result<ExitCode, E>,
) -> ExitCode {
    let args = match command.parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(UsageError::Help) => {
            print!("{}", command.usage());
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{}: {err}\n\n{}", command.name, command.usage());
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}: {err:#}", command.name);
            ExitCode::FAILURE
        }
    }
}
