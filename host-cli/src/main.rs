//! The `sluice` binary: parses the command line and hands each subcommand to its file in
//! `commands/`. All behaviour lives in `sluice-runtime`; this crate only knows the
//! terminal. Exit codes: 0 success, 1 the pipeline or a task failed, 2 the user's input
//! or usage was wrong, 3 the environment failed (the Docker Engine or a registry
//! unreachable, the disk full, the run database locked), 130 cancelled with Ctrl-C.

// First, so its macros (`outln!`, `out!`, `errln!`) reach every module after it.
#[macro_use]
mod output;

mod commands;
mod progress;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_runtime::error::Blame;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Run ML pipelines of sandboxed WASI components",
    propagate_version = true
)]
struct Cli {
    /// Where Sluice keeps artifacts and run records [default: ~/.local/share/sluice]
    #[arg(long, global = true, env = "SLUICE_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    /// Where compiled components are cached [default: <home>/cache]
    #[arg(long, global = true, env = "SLUICE_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline
    Run(commands::run::Args),
    /// Work with single components
    #[command(subcommand)]
    Component(commands::component::Command),
    /// Check a pipeline or component file without running it
    Validate(commands::validate::Args),
    /// Show the tasks of a pipeline in the order they would run
    Plan(commands::plan::Args),
    /// Make one component of several by plugging exports into imports
    Compose(commands::compose::Args),
    /// List and inspect recorded runs
    #[command(subcommand)]
    Runs(commands::runs::Command),
    /// Print the captured output of a task
    Logs(commands::logs::Args),
    /// Serve the home's models over REST (TF Serving and Open Inference Protocol v2)
    Serve(commands::serve::Args),
    /// Browse the home's runs, tasks, artifacts and models in a web browser
    Ui(commands::ui::Args),
    /// List, inspect, label and roll back served models
    #[command(subcommand)]
    Models(commands::models::Command),
    /// Push a wasm component to an OCI registry
    Push(commands::registry::PushArgs),
    /// Pull a wasm component from an OCI registry into the cache
    Pull(commands::registry::PullArgs),
    /// Show a registry component's manifest, digest and imports and exports
    Inspect(commands::registry::InspectArgs),
    /// List or prune the cache of pulled components
    #[command(subcommand)]
    Cache(commands::registry::CacheCommand),
    /// Write a pipeline, its files and its registry components into one archive
    Bundle(commands::bundle::Args),
    /// Write a pipeline for another engine (an Argo Workflow, for Kubernetes)
    #[command(subcommand)]
    Export(commands::export::Command),
    /// Look after the home's artifact store
    #[command(subcommand)]
    Store(commands::store::Command),
    /// Run one task where a cluster placed it: an attempt a Slurm job was given, or a step
    /// of an exported workflow
    #[command(subcommand)]
    Task(commands::task::Command),
}

/// Where the store and caches live, from `--home` and `--cache-dir`.
pub struct Paths {
    pub home: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

/// Exit code for input the user must fix: a bad file, an unknown run, a usage error.
pub const BAD_INPUT: u8 = 2;

/// Exit code for a failure of the machine or of a service Sluice needs, not of the input:
/// the Docker Engine or a registry unreachable, the disk full or read-only, the run
/// database locked by another process past the wait.
pub const ENVIRONMENT: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    sluice_runtime::raise_open_files_limit();
    let paths = Paths {
        home: cli.home,
        cache_dir: cli.cache_dir,
    };
    let result = match cli.command {
        Command::Run(args) => commands::run::run(&paths, args),
        Command::Component(cmd) => commands::component::run(&paths, cmd),
        Command::Validate(args) => commands::validate::run(&paths, args),
        Command::Plan(args) => commands::plan::run(&paths, args),
        Command::Compose(args) => commands::compose::run(args),
        Command::Runs(cmd) => commands::runs::run(&paths, cmd),
        Command::Logs(args) => commands::logs::run(&paths, args),
        Command::Serve(args) => commands::serve::run(&paths, args),
        Command::Ui(args) => commands::ui::run(&paths, args),
        Command::Models(cmd) => commands::models::run(&paths, cmd),
        Command::Push(args) => commands::registry::push(&paths, args),
        Command::Pull(args) => commands::registry::pull(&paths, args),
        Command::Inspect(args) => commands::registry::inspect(&paths, args),
        Command::Cache(cmd) => commands::registry::cache(&paths, cmd),
        Command::Bundle(args) => commands::bundle::run(&paths, args),
        Command::Export(cmd) => commands::export::run(&paths, cmd),
        Command::Store(cmd) => commands::store::run(&paths, cmd),
        Command::Task(cmd) => commands::task::run(&paths, cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            errln!("error: {err:#}");
            match sluice_runtime::error::blame(err.as_ref()) {
                Blame::Input => ExitCode::from(BAD_INPUT),
                Blame::Environment => ExitCode::from(ENVIRONMENT),
            }
        }
    }
}

/// A command line clap could not read, as one line: clap's error, its tip if it has one,
/// and where the command's help is; help and version requests print as clap prints them.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
    }
    let mut line = one_line(&e.render().to_string());
    if !line.contains("--help`)") {
        let args: Vec<String> = std::env::args().skip(1).collect();
        line.push_str(&format!(" (see `{} --help`)", command_path(&args)));
    }
    errln!("{line}");
    ExitCode::from(BAD_INPUT)
}

/// The subcommand a command line names, `sluice runs resume`, for a pointer to its help:
/// its leading words that name subcommands, global flags and their values skipped.
fn command_path(args: &[String]) -> String {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut path = vec!["sluice".to_owned()];
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--home" || arg == "--cache-dir" {
            args.next();
            continue;
        }
        if arg.starts_with('-') {
            continue;
        }
        match command.find_subcommand(arg) {
            Some(sub) => {
                path.push(arg.clone());
                command = sub.clone();
            }
            None => break,
        }
    }
    path.join(" ")
}

/// clap's rendered error, `error: ...` then tips, a usage line and a pointer to
/// `--help`, folded into one line.
fn one_line(rendered: &str) -> String {
    let mut line = String::new();
    let mut command = None;
    // Within a list a line ending in `:` opens (the arguments not provided), up to the
    // next blank line.
    let mut list = false;
    for l in rendered.lines().map(str::trim) {
        if l.is_empty() {
            list = false;
            continue;
        }
        if let Some(usage) = l.strip_prefix("Usage: ") {
            let words: Vec<&str> = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect();
            command = Some(words.join(" "));
        } else if l.starts_with("For more information")
            // clap's advice to pass a value after `--`, which no Sluice command takes.
            || l.contains("use '-- ")
        {
        } else if line.is_empty() {
            line.push_str(l);
        } else if list {
            line.push_str(if line.ends_with(':') { " " } else { ", " });
            line.push_str(l);
        } else {
            line.push_str("; ");
            line.push_str(l);
        }
        list = list || l.ends_with(':');
    }
    if let Some(command) = command {
        line.push_str(&format!(" (see `{command} --help`)"));
    }
    line
}

#[cfg(test)]
mod tests {
    /// Every argument's definition agrees with how it is read (clap checks at parse time
    /// only what a command line happens to use).
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// A usage error is one line, with clap's tip and where the help is.
    #[test]
    fn usage_errors_are_one_line() {
        use clap::Parser;
        let e = super::Cli::try_parse_from(["sluice", "run", "p.yaml", "--kep-going"])
            .err()
            .unwrap();
        assert_eq!(
            super::one_line(&e.render().to_string()),
            "error: unexpected argument '--kep-going' found; tip: a similar argument exists: '--keep-going' (see `sluice run --help`)"
        );
        let args = ["--home", "h", "runs", "resume", "r", "--parallelism", "x"].map(String::from);
        assert_eq!(super::command_path(&args), "sluice runs resume");
        let e = super::Cli::try_parse_from(["sluice", "run", "p.yaml", "--bogus"])
            .err()
            .unwrap();
        let line = super::one_line(&e.render().to_string());
        assert!(!line.contains("use '--"), "{line}");
        let e = super::Cli::try_parse_from(["sluice", "component", "run", "c.yaml"])
            .err()
            .unwrap();
        assert_eq!(
            super::one_line(&e.render().to_string()),
            "error: the following required arguments were not provided: --output-dir <DIR> (see `sluice component run --help`)"
        );
    }
}
