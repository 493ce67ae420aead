//! Submitting, following and cancelling Slurm jobs with Slurm's own commands: `sbatch`,
//! `squeue`, `sacct` and `scancel`, found on the `PATH`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::oneshot;

use crate::events::{Event, Observer};

/// A job's state, as `squeue --format=%T` and `sacct --format=State` name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Completed,
    Failed,
    Cancelled,
    Timeout,
    OutOfMemory,
    NodeFail,
    BootFail,
    Preempted,
    Deadline,
    /// Pending, running, completing, suspended, requeued and the like.
    Active(String),
    /// A state this build does not know, taken as ended.
    Other(String),
    /// Neither `squeue` nor `sacct` knows the job any more.
    Gone,
}

impl JobState {
    /// Reads a state name; `sacct` may add words (`CANCELLED by 0`).
    pub fn parse(text: &str) -> JobState {
        let word = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match word {
            "COMPLETED" | "CD" => JobState::Completed,
            "FAILED" | "F" => JobState::Failed,
            "CANCELLED" | "CA" => JobState::Cancelled,
            "TIMEOUT" | "TO" => JobState::Timeout,
            "OUT_OF_MEMORY" | "OOM" => JobState::OutOfMemory,
            "NODE_FAIL" | "NF" => JobState::NodeFail,
            "BOOT_FAIL" | "BF" => JobState::BootFail,
            "PREEMPTED" | "PR" => JobState::Preempted,
            "DEADLINE" | "DL" => JobState::Deadline,
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
            | "REQUEUE_FED" | "REQUEUE_HOLD" | "RESIZING" | "SIGNALING" | "STAGE_OUT"
            | "STOPPED" | "RESV_DEL_HOLD" | "SPECIAL_EXIT" | "PD" | "R" | "CF" | "CG" | "S"
            | "RQ" | "RF" | "RH" | "RS" | "SI" | "SO" | "ST" | "SE" => {
                JobState::Active(word.to_owned())
            }
            other => JobState::Other(other.to_owned()),
        }
    }

    pub fn is_ended(&self) -> bool {
        !matches!(self, JobState::Active(_))
    }

    /// Whether the job ended because of its node, not of what it ran.
    pub fn is_node_failure(&self) -> bool {
        matches!(self, JobState::NodeFail | JobState::BootFail)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::Timeout => "TIMEOUT",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::NodeFail => "NODE_FAIL",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Preempted => "PREEMPTED",
            JobState::Deadline => "DEADLINE",
            JobState::Active(s) | JobState::Other(s) => s,
            JobState::Gone => "(no longer known to Slurm)",
        })
    }
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEnd {
    pub state: JobState,
    /// The node it ran on, when Slurm said.
    pub node: Option<String>,
}

/// The jobs being waited for, followed by one background loop while there are any.
pub(super) struct Jobs {
    poll: Duration,
    poll_max: Duration,
    waiting: Mutex<Waiting>,
    /// Set when a job is added: the tick starts again from `poll`.
    added: AtomicBool,
    /// Told, once per streak, that queries fail.
    observer: Arc<dyn Observer>,
}

#[derive(Default)]
struct Waiting {
    by_id: HashMap<u64, Vec<oneshot::Sender<JobEnd>>>,
    /// Whether the loop runs.
    following: bool,
}

impl Jobs {
    pub(super) fn new(poll: Duration, poll_max: Duration, observer: Arc<dyn Observer>) -> Jobs {
        Jobs {
            observer,
            poll,
            poll_max,
            waiting: Mutex::new(Waiting::default()),
            added: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for job `id` to end.
    pub(super) async fn wait(self: &Arc<Self>, id: u64) -> JobEnd {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self.lock();
            waiting.by_id.entry(id).or_default().push(tx);
            if !waiting.following {
                waiting.following = true;
                let jobs = self.clone();
                tokio::spawn(async move { jobs.follow().await });
            }
        }
        self.added.store(true, Ordering::Relaxed);
        rx.await.unwrap_or(JobEnd {
            state: JobState::Gone,
            node: None,
        })
    }

    /// Queries all waited-for jobs once per tick until none is left. The tick starts at
    /// `poll`, doubles while nothing ends, and starts again when a job is added or ends.
    async fn follow(&self) {
        let mut tick = self.poll;
        let mut failing = false;
        loop {
            tokio::time::sleep(tick).await;
            let ids: Vec<u64> = {
                let mut waiting = self.lock();
                waiting.by_id.retain(|_, senders| {
                    senders.retain(|s| !s.is_closed());
                    !senders.is_empty()
                });
                if waiting.by_id.is_empty() {
                    waiting.following = false;
                    return;
                }
                waiting.by_id.keys().copied().collect()
            };
            let ended = match states(&ids).await {
                Ok(ended) => {
                    failing = false;
                    ended
                }
                Err(message) => {
                    if !failing {
                        self.observer.event(&Event::Note {
                            line: format!("following the Slurm jobs: {message} (retrying)"),
                        });
                    }
                    failing = true;
                    Vec::new()
                }
            };
            let added = self.added.swap(false, Ordering::Relaxed);
            if ended.is_empty() && !added {
                tick = (tick * 2).min(self.poll_max);
                continue;
            }
            tick = self.poll;
            let mut waiting = self.lock();
            for (id, end) in ended {
                for tx in waiting.by_id.remove(&id).unwrap_or_default() {
                    let _ = tx.send(end.clone());
                }
            }
        }
    }
}

/// The jobs among `ids` that ended, and how: one `squeue` for all of them, and one `sacct`
/// for those it no longer lists.
async fn states(ids: &[u64]) -> Result<Vec<(u64, JobEnd)>, String> {
    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let squeue = run(
        "squeue",
        &[
            "--noheader",
            "--states=all",
            &format!("--jobs={list}"),
            "--format=%i|%T|%N",
        ],
    )
    .await;
    let listed = match squeue {
        Ok(text) => parse_table(&text),
        // `squeue` refuses a list holding only jobs it has forgotten.
        Err(e) if e.contains("Invalid job id") => HashMap::new(),
        Err(e) => return Err(e),
    };
    let mut ended = Vec::new();
    let mut unlisted = Vec::new();
    for &id in ids {
        match listed.get(&id) {
            Some(end) if end.state.is_ended() => ended.push((id, end.clone())),
            Some(_) => {}
            None => unlisted.push(id),
        }
    }
    if unlisted.is_empty() {
        return Ok(ended);
    }
    let list = unlisted
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // Without accounting `sacct` fails; a job no command knows has ended.
    let accounted = run(
        "sacct",
        &[
            "--noheader",
            "--parsable2",
            "--allocations",
            &format!("--jobs={list}"),
            "--format=JobID,State,NodeList",
        ],
    )
    .await
    .map(|text| parse_table(&text))
    .unwrap_or_default();
    for id in unlisted {
        match accounted.get(&id) {
            Some(end) if end.state.is_ended() => ended.push((id, end.clone())),
            Some(_) => {}
            None => ended.push((
                id,
                JobEnd {
                    state: JobState::Gone,
                    node: None,
                },
            )),
        }
    }
    Ok(ended)
}

/// Lines `id|state|nodes`, as both queries print them.
fn parse_table(text: &str) -> HashMap<u64, JobEnd> {
    let mut jobs = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split('|');
        let (Some(id), Some(state)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(id) = id.trim().parse::<u64>() else {
            continue;
        };
        let node = fields
            .next()
            .map(str::trim)
            .filter(|n| !n.is_empty() && *n != "None assigned" && *n != "(null)")
            .map(str::to_owned);
        jobs.insert(
            id,
            JobEnd {
                state: JobState::parse(state),
                node,
            },
        );
    }
    jobs
}

/// Submits a batch job; its id.
pub(super) async fn sbatch(args: &[String]) -> Result<u64, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("sbatch", &args).await?;
    // `--parsable` prints `id` or `id;cluster`.
    let first = out.lines().next().unwrap_or("").trim();
    let id = first.split(';').next().unwrap_or("");
    id.parse()
        .map_err(|_| format!("sbatch printed '{first}', expected a job id"))
}

/// Cancels a job (SIGTERM to its steps, then SIGKILL after Slurm's `KillWait`).
pub(super) async fn scancel(id: u64) -> Result<(), String> {
    run("scancel", &[&id.to_string()]).await.map(drop)
}

/// Runs a Slurm command; its standard output, or one line saying why it failed.
async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(program).args(args).kill_on_drop(true).output(),
    )
    .await
    .map_err(|_| format!("{program} did not answer within 60 s"))?
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("{program} is not on the PATH (the Slurm backend needs Slurm's commands)")
        }
        _ => format!("cannot run {program}: {e}"),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(format!(
            "{program} failed ({}): {}",
            out.status,
            line.trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_squeue_and_sacct_print_them() {
        let table = parse_table(
            "12|COMPLETED|node1\n13|RUNNING|node2\n14|PENDING|\n15|CANCELLED by 0|node1\nbad\n16_3|RUNNING|n\n",
        );
        assert_eq!(table[&12].state, JobState::Completed);
        assert_eq!(table[&12].node.as_deref(), Some("node1"));
        assert!(!table[&13].state.is_ended());
        assert_eq!(table[&14].node, None);
        assert_eq!(table[&15].state, JobState::Cancelled);
        assert_eq!(table.len(), 4);
        assert!(JobState::parse("NODE_FAIL").is_node_failure());
        assert!(JobState::parse("WEIRD").is_ended());
        assert!(!JobState::parse("COMPLETING").is_ended());
    }
}
