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
//! Iterations of a loop submitted together go as one job array ([`submit`]).

mod jobs;
mod submit;

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
use jobs::Update;
pub use jobs::{JobEnd, JobId, JobState, SubmitError};
use submit::{Submission, Submitter};

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
    submitter: Arc<Submitter>,
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
        let submitter = Arc::new(Submitter::new(config.sluice.clone()));
        SlurmExecutor {
            local,
            host,
            config,
            jobs,
            submitter,
        }
    }

    /// The `sbatch` arguments of one attempt but its job name, folder and batch script
    /// (which its submission adds: a job array shares them).
    fn sbatch_args(&self, inv: &Invocation) -> Vec<String> {
        let mut args = vec![
            "--parsable".to_owned(),
            // The batch script writes its own output file: Slurm reads the output path,
            // the home's path included, as a pattern (`%j`; a `\\` anywhere is dropped).
            "--output=/dev/null".to_owned(),
            // A job on a failed node is submitted again by Sluice, which knows it.
            "--no-requeue".to_owned(),
        ];
        // The driver stops the attempt at its limit; Slurm's own limit, a minute later,
        // stops a job whose driver is gone. A limit past a year is no limit to Slurm.
        if let Some(limit) = inv.timeout
            && limit < Duration::from_secs(365 * 86_400)
        {
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
        args
    }

    async fn run(&self, inv: Invocation) -> Report {
        let file = match AttemptFile::new(&inv, &self.host) {
            Ok(file) => file,
            Err(message) => return failed(message, Vec::new()),
        };
        // The task folder, absolute: the job runs in another process, on another machine.
        let root = file.root.clone();
        let attempt_path = root.join(ATTEMPT_FILE);
        let result_path = root.join(RESULT_FILE);
        let script = root.join("job.sh");
        let written = std::fs::create_dir_all(&root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))
            .and_then(|()| {
                file.write(&attempt_path)
                    .map_err(|e| crate::error_chain(&e))
            })
            .and_then(|()| {
                let _ = std::fs::remove_file(&result_path);
                std::fs::write(
                    &script,
                    submit::batch_script(&self.config.sluice, &attempt_path),
                )
                .map_err(|e| format!("cannot write {}: {e}", script.display()))
            });
        if let Err(message) = written {
            return failed(message, Vec::new());
        }
        let args = self.sbatch_args(&inv);
        let name = job_name(&inv);
        let array =
            submit::loop_task(&inv.task).map(|task| format!("sluice/{}/{task}.*", inv.run_id));
        let mut log = SlurmLog {
            inv: &inv,
            lines: Vec::new(),
            ran_on: None,
        };
        let mut node_failures = 0;
        loop {
            let mut ticket = self.submitter.submit(Submission {
                args: args.clone(),
                array: array.clone(),
                name: name.clone(),
                root: root.clone(),
                script: script.clone(),
                attempt: attempt_path.clone(),
            });
            let submitted = tokio::select! {
                submitted = &mut ticket.id => submitted,
                _ = inv.cancel.cancelled() => {
                    // Given to `sbatch` already: its job, if it gets one, is cancelled.
                    let mut line = "cancelled while submitting".to_owned();
                    if !self.submitter.withdraw(&ticket)
                        && let Ok(Ok(id)) = ticket.id.await
                    {
                        line = match jobs::scancel(id).await {
                            Ok(()) => format!("{line}; Slurm job {id}, submitted meanwhile, cancelled"),
                            Err(e) => format!("{line}; Slurm job {id}, submitted meanwhile: {e}"),
                        };
                        log.ran_on = Some(format!("Slurm job {id}"));
                    }
                    log.note(line);
                    return log.report(Err(Failure::interrupted("interrupted")), Vec::new());
                }
            };
            let submitted = submitted.unwrap_or_else(|_| {
                Err(SubmitError {
                    message: "the submission was dropped before sbatch answered".into(),
                    transient: true,
                })
            });
            let id = match submitted {
                Ok(id) => id,
                Err(e) => {
                    log.note(e.message.clone());
                    // A refusal (a partition or account the cluster lacks) is the
                    // pipeline's to fix: no retry can help.
                    let kind = if e.transient {
                        FailureKind::Failed
                    } else {
                        FailureKind::InvalidInput
                    };
                    let failure = Failure {
                        kind,
                        message: e.message,
                    };
                    return log.report(Err(failure), Vec::new());
                }
            };
            log.note(format!("submitted as Slurm job {id}"));
            log.ran_on = Some(format!("Slurm job {id}"));
            let mut updates = self.jobs.follow(id);
            // Set when Sluice cancelled the job: why, and until when it waits for its end.
            let mut stopped: Option<(Failure, tokio::time::Instant)> = None;
            let far = tokio::time::Instant::now() + Duration::from_secs(366 * 86_400);
            // Since when the job waits on the partition's configuration: a request no node
            // of it can meet, unless the reason passes.
            let mut misfit_since: Option<tokio::time::Instant> = None;
            let end = loop {
                let wait_until = stopped.as_ref().map_or(far, |(_, until)| *until);
                let misfit_until = misfit_since.map_or(far, |since| since + MISFIT_WAIT);
                tokio::select! {
                    update = updates.recv() => match update {
                        Some(Update::Pending(reason)) => {
                            log.note(format!("Slurm job {id} is pending: {reason}"));
                            misfit_since = (reason == "PartitionConfig")
                                .then(|| misfit_since.unwrap_or_else(tokio::time::Instant::now));
                            if let Some(why) = never_starts(&reason)
                                && stopped.is_none()
                            {
                                stopped = Some(will_not_start(id, &format!("{reason} ({why})")).await);
                            }
                        }
                        Some(Update::Started(node)) => {
                            misfit_since = None;
                            if let Some(node) = node {
                                log.note(format!("Slurm job {id} runs on {node}"));
                                log.ran_on = Some(format!("Slurm job {id} on {node}"));
                            }
                            inv.started.notify_one();
                        }
                        Some(Update::Ended(end)) => break Some(end),
                        None => break None,
                    },
                    _ = inv.cancel.cancelled(), if stopped.is_none() => {
                        let message = match jobs::scancel(id).await {
                            Ok(()) => "interrupted".to_owned(),
                            Err(e) => format!("interrupted; scancel {id} failed: {e}"),
                        };
                        stopped = Some((Failure::interrupted(message), tokio::time::Instant::now() + CANCEL_WAIT));
                    }
                    _ = tokio::time::sleep_until(misfit_until), if misfit_since.is_some() && stopped.is_none() => {
                        let why = format!(
                            "PartitionConfig for {} s (no node of the partition has the CPUs, memory or GPUs it asks for)",
                            MISFIT_WAIT.as_secs()
                        );
                        stopped = Some(will_not_start(id, &why).await);
                    }
                    _ = tokio::time::sleep_until(wait_until), if stopped.is_some() => {
                        log.note(format!(
                            "Slurm job {id} had not ended {} s after it was cancelled",
                            CANCEL_WAIT.as_secs()
                        ));
                        break None;
                    }
                }
            };
            let end = end.unwrap_or(JobEnd {
                state: JobState::Gone,
                node: None,
            });
            let node = end.node.as_deref().unwrap_or("no node");
            if let Some(n) = &end.node {
                log.ran_on = Some(format!("Slurm job {id} on {n}"));
            }
            if stopped.is_some() && end.state == JobState::Gone && end.node.is_none() {
                // A pending array task cancelled on its own leaves no record behind.
                log.note(format!("Slurm job {id} was cancelled before it ran"));
            } else {
                log.note(format!("Slurm job {id} ({node}) ended {}", end.state));
            }
            // The task's own lines, when its job wrote them before it ended.
            let result = ResultFile::read(&result_path);
            if let Some((failure, _)) = stopped {
                let task_logs = result.map(|r| r.logs).unwrap_or_default();
                return log.report(Err(failure), task_logs);
            }
            if end.state.is_node_failure() && node_failures < self.config.node_failures {
                node_failures += 1;
                // What the job on the failed node wrote is not the attempt's.
                let _ = std::fs::remove_file(&result_path);
                if let Err(e) = clear_outputs(&inv.dir.outputs) {
                    log.note(e.clone());
                    return log.report(Err(Failure::failed(e)), Vec::new());
                }
                log.note(format!(
                    "submitting again: the node failed, not the task ({node_failures} of {})",
                    self.config.node_failures
                ));
                continue;
            }
            let why = match &end.state {
                JobState::Timeout => "reached its Slurm time limit".to_owned(),
                JobState::OutOfMemory => "ran out of memory".to_owned(),
                JobState::Cancelled => "was cancelled outside Sluice".to_owned(),
                JobState::Preempted => "was preempted".to_owned(),
                state => format!("ended {state}"),
            };
            return match result {
                Ok(result) => {
                    // Where it ran, from the job itself when Slurm no longer said.
                    if end.node.is_none() {
                        log.ran_on = Some(format!("Slurm job {id} on {}", result.host));
                    }
                    let Report { result, logs, .. } = result.report();
                    // A job Slurm stopped reports its attempt interrupted; say why.
                    let result = result.map_err(|f| match f.kind {
                        FailureKind::Interrupted => {
                            Failure::failed(format!("Slurm job {id} {why}"))
                        }
                        _ => f,
                    });
                    log.report(result, logs)
                }
                Err(e) => {
                    let output = root.join(format!("slurm-{id}.out"));
                    let tail = last_line(&output)
                        .map(|l| format!("; its output ends: {l}"))
                        .unwrap_or_default();
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
                    let message = if end.state == JobState::Gone
                        && end.node.is_none()
                        && !output.exists()
                    {
                        // Without accounting, a pending array task cancelled on its own (an
                        // `scancel` from outside) leaves no record: it just disappears.
                        format!(
                            "Slurm job {id} left Slurm's queue before it ran, with no record of how it ended (a pending array task cancelled outside Sluice does that)"
                        )
                    } else if !output.exists() && !ran {
                        format!("Slurm job {id} {why} before it ran")
                    } else if !output.exists() {
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
                    log.report(Err(Failure::failed(message)), Vec::new())
                }
            };
        }
    }
}

/// Cancels the jobs a run's driver left queued or running (it was killed outright), so
/// that resuming the run does not run them twice: every job of this user named
/// `sluice/<run>/...` that has not ended. Returns their ids.
pub async fn cancel_left_jobs(run_id: &str) -> Result<Vec<JobId>, String> {
    jobs::cancel_named(&format!("sluice/{run_id}/")).await
}

/// Cancels job `id`, which Slurm will never start, and says why; the attempt then waits
/// for its end a while.
async fn will_not_start(id: JobId, why: &str) -> (Failure, tokio::time::Instant) {
    let _ = jobs::scancel(id).await;
    let failure = Failure {
        kind: FailureKind::InvalidInput,
        message: format!("Slurm will not start job {id}: {why}"),
    };
    (failure, tokio::time::Instant::now() + CANCEL_WAIT)
}

/// How long a cancelled job may take to end before the attempt stops waiting for it.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// How long a job may wait on `PartitionConfig` (which Slurm also shows for a moment
/// before a more precise reason) before its request is taken as one no node can meet.
const MISFIT_WAIT: Duration = Duration::from_secs(10);

/// The name of an attempt's jobs: `sluice/<run>/<task>`.
fn job_name(inv: &Invocation) -> String {
    format!("sluice/{}/{}", inv.run_id, inv.task)
}

/// Why a job pending for `reason` will never start unless the cluster's configuration
/// changes, if that is so.
fn never_starts(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "PartitionTimeLimit" => {
            "its time limit, the task's timeout and a minute, is over the partition's; set a timeout at least a minute under the partition's limit"
        }
        "DependencyNeverSatisfied" => "a job it depends on can no longer end as required",
        "PartitionNodeLimit" => "it asks for more nodes than the partition allows",
        "BadConstraints" => "no node can satisfy what it asks for",
        "InvalidAccount" => "the account is not valid",
        "InvalidQOS" => "the QOS is not valid",
        "QOSMaxWallDurationPerJobLimit" | "AssocMaxWallDurationPerJobLimit" => {
            "its time limit is over what its QOS or association allows; set a shorter timeout"
        }
        _ => return None,
    })
}

/// What became of an attempt's jobs, one line each: shown as they come and recorded as
/// the attempt's `slurm` log, beside the task's own streams.
struct SlurmLog<'a> {
    inv: &'a Invocation,
    lines: Vec<String>,
    /// The attempt's last job, and its node once known.
    ran_on: Option<String>,
}

impl SlurmLog<'_> {
    fn note(&mut self, line: String) {
        self.inv.sink.log(crate::events::Stream::Host, line.clone());
        self.lines.push(line);
    }

    fn report(
        self,
        result: Result<crate::exec::Completion, Failure>,
        mut task: Vec<LogRecord>,
    ) -> Report {
        let mut logs = vec![LogRecord {
            attempt: self.inv.attempt,
            stream: "slurm".into(),
            content: self.lines.join("\n") + "\n",
            omitted: 0,
        }];
        logs.append(&mut task);
        Report {
            result,
            logs,
            ran_on: self.ran_on,
        }
    }
}

impl Executor for SlurmExecutor {
    fn prepare<'a>(&'a self, target: Target<'a>) -> BoxFuture<'a, Result<Prepared, PrepareError>> {
        // As the runners decide: what runs is the same on Slurm, and so is its cache key;
        // where it ran is the attempt's `ran_on`.
        self.local.prepare(target)
    }

    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Report> {
        Box::pin(self.run(inv))
    }

    /// Jobs wait in Slurm's queue; an attempt's time counts once its job runs.
    fn queues(&self) -> bool {
        true
    }
}

fn failed(message: String, logs: Vec<LogRecord>) -> Report {
    Report {
        ran_on: None,
        result: Err(Failure::failed(message)),
        logs,
    }
}

/// Empties an attempt's outputs folder, keeping (empty) the folder of each output.
fn clear_outputs(outputs: &Path) -> Result<(), String> {
    let entries = match std::fs::read_dir(outputs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", outputs.display())),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let cleared = match entry.file_type() {
            Ok(t) if t.is_dir() => {
                std::fs::remove_dir_all(&path).and_then(|()| std::fs::create_dir(&path))
            }
            _ => std::fs::remove_file(&path),
        };
        cleared.map_err(|e| format!("cannot clear {}: {e}", path.display()))?;
    }
    Ok(())
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

/// The last non-empty line of a file, from its last 4 KiB (a job's output may be large).
fn last_line(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = crate::files::open_regular(path, crate::files::Follow::No).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    String::from_utf8_lossy(&tail)
        .lines()
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
    }
}
