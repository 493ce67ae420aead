//! The Slurm backend: every attempt of every task runs as one Slurm batch job, while the
//! run's own process stays the driver (it schedules, stages inputs, collects outputs and
//! writes the run record, as in a local run).
//!
//! An attempt is handed over as an attempt file in its task folder
//! ([`crate::exec::attempt`]), which the job runs with `sluice task exec`; the job leaves
//! a result file beside it. The task folders, the store and the compile cache are in the
//! Sluice home, which every node must see at the same path (a shared file system, as
//! NFS or Lustre on real clusters).
//!
//! Jobs are submitted with `sbatch` and followed with one `squeue` query per tick for all
//! of them (`sacct` for those `squeue` no longer lists); the tick starts at
//! [`SlurmConfig::poll`] and doubles while nothing changes, up to
//! [`SlurmConfig::poll_max`]. A cancelled attempt (Ctrl-C, a timeout) is `scancel`ed. A
//! job that ended because its node failed (`NODE_FAIL`, `BOOT_FAIL`) is submitted again,
//! up to [`SlurmConfig::node_failures`] times, without counting as the task's failure.

mod jobs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::events::Observer;
use crate::exec::attempt::{
    ATTEMPT_FILE, AttemptError, AttemptFile, HostSettings, RESULT_FILE, ResultFile,
};
use crate::exec::{
    Executor, Failure, FailureKind, Invocation, Kind, PrepareError, Prepared, Report, Target,
};
use crate::store::LogRecord;
pub use jobs::{JobEnd, JobState};

/// How jobs are submitted and followed.
#[derive(Clone, Debug)]
pub struct SlurmConfig {
    /// `sbatch --partition`.
    pub partition: Option<String>,
    /// `sbatch --account`.
    pub account: Option<String>,
    /// More `sbatch` arguments, given to every job as they are (`--qos=high`).
    pub extra_args: Vec<String>,
    /// The `sluice` program the jobs run, at the same path on every node.
    pub sluice: PathBuf,
    /// First interval between two state queries.
    pub poll: Duration,
    /// Longest interval between two state queries.
    pub poll_max: Duration,
    /// How many times an attempt whose node failed is submitted again.
    pub node_failures: u32,
    /// Memory asked for each job beyond its task's own: the `sluice` process hosting a
    /// wasm sandbox or following a container, in bytes.
    pub host_memory: u64,
}

impl SlurmConfig {
    /// Defaults: no partition or account, this very `sluice` program, ticks from 100 ms to
    /// 2 s, 3 resubmissions after node failures, 256 MiB for the host process.
    pub fn new(sluice: PathBuf) -> SlurmConfig {
        SlurmConfig {
            partition: None,
            account: None,
            extra_args: Vec::new(),
            sluice,
            poll: Duration::from_millis(100),
            poll_max: Duration::from_secs(2),
            node_failures: 3,
            host_memory: 256 << 20,
        }
    }
}

/// Runs attempts as Slurm jobs; decides how each task runs as `local` does.
pub struct SlurmExecutor {
    local: Arc<dyn Executor>,
    host: HostSettings,
    config: SlurmConfig,
    jobs: Arc<jobs::Jobs>,
}

impl SlurmExecutor {
    /// An executor submitting to the cluster this machine's Slurm commands reach. `local`
    /// decides implementations (and loads wasm components, filling the shared compile
    /// cache); `host` is what the jobs run with; `observer` is told when Slurm's commands
    /// fail to answer.
    pub fn new(
        local: Arc<dyn Executor>,
        host: HostSettings,
        config: SlurmConfig,
        observer: Arc<dyn Observer>,
    ) -> SlurmExecutor {
        let jobs = Arc::new(jobs::Jobs::new(config.poll, config.poll_max, observer));
        SlurmExecutor {
            local,
            host,
            config,
            jobs,
        }
    }

    /// The `sbatch` arguments of one attempt, its batch script last.
    fn sbatch_args(&self, inv: &Invocation, root: &Path, script: &Path) -> Vec<String> {
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name=sluice/{}/{}", inv.run_id, inv.task),
            format!("--output={}", root.join("slurm-%j.out").display()),
            format!("--chdir={}", root.display()),
            // A job on a failed node is submitted again by Sluice, which knows it.
            "--no-requeue".to_owned(),
        ];
        if let Some(limit) = inv.timeout {
            // The driver stops the attempt at its limit; Slurm's own limit, a minute
            // later, stops a job whose driver is gone.
            args.push(format!(
                "--time={}",
                slurm_time(limit + Duration::from_secs(60))
            ));
        }
        let memory = match (inv.resources.memory, inv.prepared.kind) {
            (Some(m), _) => Some(m.0),
            (None, Kind::Wasm) => Some(self.host.wasm_memory),
            (None, _) => None,
        };
        if let Some(bytes) = memory {
            let total = bytes.saturating_add(self.config.host_memory);
            args.push(format!("--mem={}M", total.div_ceil(1 << 20)));
        }
        if let Some(cpu) = inv.resources.cpu {
            args.push(format!(
                "--cpus-per-task={}",
                cpu.millicores.div_ceil(1000).max(1)
            ));
        }
        if let Some(acc) = &inv.resources.accelerator {
            args.push(format!("--gres={}:{}", gres_name(&acc.kind), acc.count));
        }
        if let Some(p) = &self.config.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(a) = &self.config.account {
            args.push(format!("--account={a}"));
        }
        args.extend(self.config.extra_args.iter().cloned());
        args.push(script.display().to_string());
        args
    }

    async fn run(&self, inv: Invocation) -> Report {
        let root = inv.dir.root.clone();
        let attempt_path = root.join(ATTEMPT_FILE);
        let result_path = root.join(RESULT_FILE);
        let script = root.join("job.sh");
        let written = std::fs::create_dir_all(&root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))
            .and_then(|()| AttemptFile::new(&inv, &self.host))
            .and_then(|file| {
                file.write(&attempt_path)
                    .map_err(|e| crate::error_chain(&e))
            })
            .and_then(|()| {
                let _ = std::fs::remove_file(&result_path);
                std::fs::write(&script, batch_script(&self.config.sluice, &attempt_path))
                    .map_err(|e| format!("cannot write {}: {e}", script.display()))
            });
        if let Err(message) = written {
            return failed(message, Vec::new());
        }
        let args = self.sbatch_args(&inv, &root, &script);
        // What became of the attempt's jobs, one line each: recorded as the attempt's
        // `slurm` log, before the task's own streams.
        let mut lines = Vec::new();
        let note = |lines: &mut Vec<String>, line: String| {
            inv.sink.log(crate::events::Stream::Host, line.clone());
            lines.push(line);
        };
        let logs = |lines: &mut Vec<String>| {
            vec![LogRecord {
                attempt: inv.attempt,
                stream: "slurm".into(),
                content: lines.join("\n") + "\n",
                omitted: 0,
            }]
        };
        let mut node_failures = 0;
        loop {
            let id = match jobs::sbatch(&args).await {
                Ok(id) => id,
                Err(message) => {
                    note(&mut lines, message.clone());
                    return failed(message, logs(&mut lines));
                }
            };
            note(&mut lines, format!("submitted as Slurm job {id}"));
            let end = tokio::select! {
                end = self.jobs.wait(id) => end,
                _ = inv.cancel.cancelled() => {
                    let cancelled = jobs::scancel(id).await;
                    // The job's `sluice task exec` stops its attempt on SIGTERM; wait
                    // for it, a while.
                    let end = tokio::time::timeout(Duration::from_secs(30), self.jobs.wait(id)).await;
                    let message = match (cancelled, end) {
                        (Err(e), _) => format!("interrupted; scancel {id} failed: {e}"),
                        (Ok(()), Err(_)) => format!("interrupted; Slurm job {id} was cancelled but had not ended 30 s later"),
                        (Ok(()), Ok(_)) => "interrupted".to_owned(),
                    };
                    note(&mut lines, format!("Slurm job {id} cancelled"));
                    return Report {
                        result: Err(Failure {
                            kind: FailureKind::Interrupted,
                            message,
                        }),
                        logs: logs(&mut lines),
                    };
                }
            };
            let node = end.node.as_deref().unwrap_or("an unknown node");
            note(
                &mut lines,
                format!("Slurm job {id} ran on {node} and ended {}", end.state),
            );
            if end.state.is_node_failure() && node_failures < self.config.node_failures {
                node_failures += 1;
                // What the job on the failed node wrote is not the attempt's.
                let _ = std::fs::remove_file(&result_path);
                if let Err(e) = clear_outputs(&inv.dir.outputs) {
                    note(&mut lines, e.clone());
                    return failed(e, logs(&mut lines));
                }
                note(
                    &mut lines,
                    format!(
                        "submitting again: the node failed, not the task ({node_failures} of {})",
                        self.config.node_failures
                    ),
                );
                continue;
            }
            return match ResultFile::read(&result_path) {
                Ok(result) => {
                    let mut report = result.report();
                    let mut all = logs(&mut lines);
                    all.append(&mut report.logs);
                    report.logs = all;
                    report
                }
                Err(e) => {
                    let output = root.join(format!("slurm-{id}.out"));
                    let tail = last_line(&output)
                        .map(|l| format!("; its output ends: {l}"))
                        .unwrap_or_default();
                    let why = match &end.state {
                        JobState::Timeout => "reached its time limit".to_owned(),
                        JobState::OutOfMemory => "ran out of memory".to_owned(),
                        state => format!("ended {state}"),
                    };
                    let result = match e {
                        AttemptError::Read { source, .. }
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            "without a result".to_owned()
                        }
                        e => format!("with no readable result ({})", crate::error_chain(&e)),
                    };
                    // A job that started writes its output file first thing; neither it
                    // nor a result in the folder means the node wrote elsewhere.
                    let ran = end.node.is_some() && end.state != JobState::Cancelled;
                    let message = if ran && !output.exists() {
                        format!(
                            "Slurm job {id} {why} on {node} and left nothing in {}: the nodes \
                             must see the Sluice home at the same path, on a file system they \
                             share with this machine",
                            root.display()
                        )
                    } else {
                        format!(
                            "Slurm job {id} {why} on {node} {result}; its output is in {}{tail}",
                            output.display()
                        )
                    };
                    failed(message, logs(&mut lines))
                }
            };
        }
    }
}

impl Executor for SlurmExecutor {
    fn prepare<'a>(&'a self, target: Target<'a>) -> BoxFuture<'a, Result<Prepared, PrepareError>> {
        Box::pin(async move {
            let mut prepared = self.local.prepare(target).await?;
            prepared.implementation = format!("{} on Slurm", prepared.implementation);
            Ok(prepared)
        })
    }

    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Report> {
        Box::pin(self.run(inv))
    }
}

fn failed(message: String, logs: Vec<LogRecord>) -> Report {
    Report {
        result: Err(Failure::failed(message)),
        logs,
    }
}

/// Empties an attempt's outputs folder, keeping the folder of each output.
fn clear_outputs(outputs: &Path) -> Result<(), String> {
    let clear = |dir: &Path| -> std::io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            match std::fs::symlink_metadata(&path)?.is_dir() {
                true => std::fs::remove_dir_all(&path)?,
                false => std::fs::remove_file(&path)?,
            }
        }
        Ok(())
    };
    let entries = match std::fs::read_dir(outputs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", outputs.display())),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let cleared = match entry.file_type() {
            Ok(t) if t.is_dir() => clear(&path),
            _ => std::fs::remove_file(&path),
        };
        cleared.map_err(|e| format!("cannot clear {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The batch script of one attempt: `sluice task exec` on its attempt file.
fn batch_script(sluice: &Path, attempt: &Path) -> String {
    format!(
        "#!/bin/sh\nexec {} task exec {}\n",
        shell_quote(&sluice.display().to_string()),
        shell_quote(&attempt.display().to_string())
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A duration as Slurm's `--time` takes it: `days-hours:minutes:seconds`, rounded up to
/// the second.
fn slurm_time(d: Duration) -> String {
    let mut s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let days = s / 86_400;
    s %= 86_400;
    format!("{days}-{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The generic resource a Kubernetes accelerator type asks for: `nvidia.com/gpu` and
/// `amd.com/gpu` are Slurm's `gpu`; another type is its last path segment.
fn gres_name(kind: &str) -> &str {
    let name = kind.rsplit('/').next().unwrap_or(kind);
    if name.eq_ignore_ascii_case("gpu") {
        "gpu"
    } else {
        name
    }
}

/// The last non-empty line of a file, if it can be read.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_resources_map_to_sbatch_arguments() {
        assert_eq!(slurm_time(Duration::from_secs(61)), "0-00:01:01");
        assert_eq!(slurm_time(Duration::from_millis(90_001)), "0-00:01:31");
        assert_eq!(
            slurm_time(Duration::from_secs(86_400 + 3_600)),
            "1-01:00:00"
        );
        assert_eq!(gres_name("nvidia.com/gpu"), "gpu");
        assert_eq!(gres_name("amd.com/gpu"), "gpu");
        assert_eq!(gres_name("tpu"), "tpu");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
