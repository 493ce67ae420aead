//! Running the `sluice` binary in a scratch home, from the repository's root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sluice_runtime::store::RunRecord;

pub fn root() -> &'static Path {
    Path::new(sluice_test_artifacts::ROOT)
}

/// Compiled components are shared by every test, as a user's cache is shared by runs.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sluice-wasm-cache")
}

pub struct Home {
    pub dir: tempfile::TempDir,
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// The run record a `--json` run printed.
    pub fn record(&self) -> RunRecord {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not a run record ({e}):\n{}", self.stdout))
    }
}

/// Each output's digest in a run, by task and output.
pub fn outputs(run: &RunRecord) -> std::collections::BTreeMap<(String, String), String> {
    run.tasks
        .iter()
        .flat_map(|t| {
            t.outputs
                .iter()
                .map(|o| ((t.name.clone(), o.name.clone()), o.digest.clone()))
        })
        .collect()
}

/// The digest of the model a run's `train` task trained.
pub fn trained_model(run: &RunRecord) -> String {
    let train = run.tasks.iter().find(|t| t.name == "train").unwrap();
    let model = train.outputs.iter().find(|o| o.name == "model").unwrap();
    model.digest.clone()
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn sluice(&self, args: &[&str]) -> Ran {
        self.sluice_with(args, &[])
    }

    pub fn sluice_with(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        self.sluice_in(root(), args, env)
    }

    /// Runs in the folder `cwd`.
    pub fn sluice_in(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let output: Output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(cwd)
            .env("SLUICE_HOME", self.dir.path().join("home"))
            .env("SLUICE_CACHE_DIR", cache_dir())
            .output()
            .expect("sluice runs");
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `sluice run <pipeline>` and reads its progress lines until one contains
    /// `until`; returns the process, the rest of its stderr, and the lines read.
    pub fn start_run(
        &self,
        pipeline: &Path,
        until: &str,
    ) -> (
        std::process::Child,
        std::io::BufReader<std::process::ChildStderr>,
        String,
    ) {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .arg(pipeline)
            .current_dir(root())
            .env("SLUICE_HOME", self.dir.path().join("home"))
            .env("SLUICE_CACHE_DIR", cache_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sluice starts");
        let mut stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
        let mut seen = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            seen.push_str(&line);
            if line.contains(until) {
                break;
            }
            line.clear();
        }
        (child, stderr, seen)
    }

    /// Runs under the file-mode mask `umask` (octal, as the shell takes it) and expects
    /// `code`.
    pub fn expect_under_umask(&self, umask: &str, args: &[&str], code: i32) -> Ran {
        let output: Output = Command::new("sh")
            .args([
                "-c",
                "umask \"$0\" && exec \"$@\"",
                umask,
                env!("CARGO_BIN_EXE_sluice"),
            ])
            .args(args)
            .current_dir(root())
            .env("SLUICE_HOME", self.dir.path().join("home"))
            .env("SLUICE_CACHE_DIR", cache_dir())
            .output()
            .expect("sluice runs");
        let ran = Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        assert_eq!(
            ran.code,
            code,
            "sluice {}\n{}{}",
            args.join(" "),
            ran.stdout,
            ran.stderr
        );
        ran
    }

    /// Runs and expects `code`, showing the output when it is not.
    pub fn expect(&self, args: &[&str], code: i32) -> Ran {
        self.expect_in(root(), args, code)
    }

    /// Runs in the folder `cwd` and expects `code`.
    pub fn expect_in(&self, cwd: &Path, args: &[&str], code: i32) -> Ran {
        let ran = self.sluice_in(cwd, args, &[]);
        assert_eq!(
            ran.code,
            code,
            "sluice {}\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            ran.stdout,
            ran.stderr
        );
        ran
    }
}

/// Names of the containers Docker still has for a run.
pub fn containers_of(run: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=sluice.run={run}"))
        .output()
        .expect("the docker command runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
