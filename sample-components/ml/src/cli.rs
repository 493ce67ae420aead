//! Command-line options of the command components: `--name value` (or `--name=value`)
//! pairs declared up front, each taking exactly one value, with usage text generated from
//! the declarations. Kept this small because the components are compiled to wasm, where
//! every dependency costs size; this module only parses, it never prints or exits.

use std::str::FromStr;

use thiserror::Error;

/// One option a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// The name without dashes: `data` for `--data`.
    pub name: &'static str,
    /// How the value is shown in the usage text, e.g. `<csv>`.
    pub value: &'static str,
    pub required: bool,
    pub help: &'static str,
}

/// A command's name, summary and options.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    pub name: &'static str,
    pub about: &'static str,
    pub options: &'static [Opt],
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UsageError {
    #[error("help was asked for")]
    Help,
    #[error("unknown option '{0}'")]
    Unknown(String),
    #[error("unexpected argument '{0}', every value follows an option")]
    Positional(String),
    #[error("option --{0} needs a value")]
    NoValue(&'static str),
    #[error("option --{0} is given twice")]
    Repeated(&'static str),
    #[error("missing required option --{0}")]
    Missing(&'static str),
    #[error("option --{name}: expected {expected}, found '{value}'")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// The parsed option values.
#[derive(Debug, Clone)]
pub struct Args {
    values: Vec<(&'static str, String)>,
}

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse(&self, args: impl IntoIterator<Item = String>) -> Result<Args, UsageError> {
        let mut values: Vec<(&'static str, String)> = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Err(UsageError::Help);
            }
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(UsageError::Positional(arg));
            };
            let (flag, inline) = match flag.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_owned())),
                None => (flag, None),
            };
            let opt = self
                .options
                .iter()
                .find(|opt| opt.name == flag)
                .ok_or_else(|| UsageError::Unknown(format!("--{flag}")))?;
            let value = match inline {
                Some(value) => value,
                None => args.next().ok_or(UsageError::NoValue(opt.name))?,
            };
            if values.iter().any(|(name, _)| *name == opt.name) {
                return Err(UsageError::Repeated(opt.name));
            }
            values.push((opt.name, value));
        }
        for opt in self.options.iter().filter(|opt| opt.required) {
            if !values.iter().any(|(name, _)| *name == opt.name) {
                return Err(UsageError::Missing(opt.name));
            }
        }
        Ok(Args { values })
    }

    /// Usage text: a synopsis line, the summary, then one line per option.
    pub fn usage(&self) -> String {
        let mut synopsis = format!("usage: {}", self.name);
        for opt in self.options {
            if opt.required {
                synopsis.push_str(&format!(" --{} {}", opt.name, opt.value));
            } else {
                synopsis.push_str(&format!(" [--{} {}]", opt.name, opt.value));
            }
        }
        let mut text = format!("{synopsis}\n\n{}\n\noptions:\n", self.about);
        let width = self
            .options
            .iter()
            .map(|opt| opt.name.len() + opt.value.len() + 3)
            .max()
            .unwrap_or(0);
        for opt in self.options {
            let left = format!("--{} {}", opt.name, opt.value);
            text.push_str(&format!("  {left:width$}  {}\n", opt.help));
        }
        text
    }
}

impl Args {
    /// The value of an option, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(opt, _)| *opt == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of a required option (`parse` has checked it is there).
    pub fn value(&self, name: &'static str) -> Result<&str, UsageError> {
        self.get(name).ok_or(UsageError::Missing(name))
    }

    /// The value of an option parsed as `T`, if given; `expected` describes `T` in errors.
    pub fn parsed<T: FromStr>(
        &self,
        name: &'static str,
        expected: &'static str,
    ) -> Result<Option<T>, UsageError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|_| UsageError::Invalid {
                name,
                value: value.to_owned(),
                expected,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMAND: Command = Command {
        name: "train",
        about: "Trains a model.",
        options: &[
            Opt {
                name: "train",
                value: "<csv>",
                required: true,
                help: "training table",
            },
            Opt {
                name: "l2",
                value: "<f>",
                required: false,
                help: "penalty",
            },
        ],
    };

    fn parse(args: &[&str]) -> Result<Args, UsageError> {
        COMMAND.parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn reads_separate_and_inline_values() {
        let args = parse(&["--train", "t.csv", "--l2=0.5"]).unwrap();
        assert_eq!(args.get("train"), Some("t.csv"));
        assert_eq!(args.value("train").unwrap(), "t.csv");
        assert_eq!(args.parsed::<f64>("l2", "a number").unwrap(), Some(0.5));
        let args = parse(&["--train", "t.csv"]).unwrap();
        assert_eq!(args.parsed::<f64>("l2", "a number").unwrap(), None);
    }

    #[test]
    fn values_may_start_with_dashes() {
        let args = parse(&["--train", "--odd-name.csv"]).unwrap();
        assert_eq!(args.get("train"), Some("--odd-name.csv"));
    }

    #[test]
    fn reports_each_kind_of_mistake() {
        assert_eq!(parse(&[]).unwrap_err(), UsageError::Missing("train"));
        assert_eq!(
            parse(&["--train", "a", "--l1", "b"])
                .unwrap_err()
                .to_string(),
            "unknown option '--l1'"
        );
        assert_eq!(
            parse(&["--train"]).unwrap_err().to_string(),
            "option --train needs a value"
        );
        assert_eq!(
            parse(&["--train", "a", "--train", "b"])
                .unwrap_err()
                .to_string(),
            "option --train is given twice"
        );
        assert_eq!(
            parse(&["t.csv"]).unwrap_err().to_string(),
            "unexpected argument 't.csv', every value follows an option"
        );
        assert_eq!(parse(&["--help"]).unwrap_err(), UsageError::Help);
        let args = parse(&["--train", "a", "--l2", "x"]).unwrap();
        assert_eq!(
            args.parsed::<f64>("l2", "a number")
                .unwrap_err()
                .to_string(),
            "option --l2: expected a number, found 'x'"
        );
    }

    #[test]
    fn usage_lists_every_option() {
        let usage = COMMAND.usage();
        assert!(usage.starts_with("usage: train --train <csv> [--l2 <f>]\n"));
        assert!(usage.contains("  --train <csv>  training table\n"));
        assert!(usage.contains("  --l2 <f>       penalty\n"));
    }
}
