//! Submitting, following and cancelling Slurm jobs with Slurm's own commands: `sbatch`,
//! `squeue`, `sacct` and `scancel`, found on the `PATH`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::mpsc;

use crate::events::{Event, Observer};

/// A Slurm job, or one task of a job array (`123_4`), as Slurm's commands print it and
/// take it (`squeue --jobs`, `sacct --jobs`, `scancel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId {
    /// The job id; for an array task, its array's (`SLURM_ARRAY_JOB_ID`).
    pub job: u64,
    /// Its index in its array (`SLURM_ARRAY_TASK_ID`).
    pub array_task: Option<u32>,
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.array_task {
            None => write!(f, "{}", self.job),
            Some(task) => write!(f, "{}_{task}", self.job),
        }
    }
}

impl std::str::FromStr for JobId {
    type Err = ();

    /// `123` or `123_4`; a range of array tasks (`123_[5-9%2]`) is not one job.
    fn from_str(text: &str) -> Result<JobId, ()> {
        let text = text.trim();
        match text.split_once('_') {
            None => Ok(JobId {
                job: text.parse().map_err(drop)?,
                array_task: None,
            }),
            Some((job, task)) => Ok(JobId {
                job: job.parse().map_err(drop)?,
                array_task: Some(task.parse().map_err(drop)?),
            }),
        }
    }
}

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

/// What a followed job did since the last tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// It waits in the queue for this reason (`Priority`, `Resources`, `JobHeldUser`,
    /// ...); sent when the reason changes.
    Pending(String),
    /// It started running on this node; sent once.
    Started(Option<String>),
    /// It ended; the last update.
    Ended(JobEnd),
}

/// One job's state as a query read it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    state: JobState,
    node: Option<String>,
    /// Why it is pending, as `squeue --format=%r` says.
    reason: Option<String>,
}

/// The jobs being followed, by one background loop while there are any.
pub(super) struct Jobs {
    poll: Duration,
    poll_max: Duration,
    following: Mutex<Following>,
    /// Set when a job is added: the tick starts again from `poll`.
    added: AtomicBool,
    /// Told, once per streak, that queries fail.
    observer: Arc<dyn Observer>,
}

#[derive(Default)]
struct Following {
    by_id: HashMap<JobId, Follower>,
    /// Whether the loop runs.
    running: bool,
}

struct Follower {
    tx: mpsc::UnboundedSender<Update>,
    started: bool,
    reason: Option<String>,
}

impl Jobs {
    pub(super) fn new(poll: Duration, poll_max: Duration, observer: Arc<dyn Observer>) -> Jobs {
        Jobs {
            observer,
            poll,
            poll_max,
            following: Mutex::new(Following::default()),
            added: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Following> {
        self.following.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows job `id`: its updates, the last one [`Update::Ended`]. Dropping the
    /// receiver stops following it.
    pub(super) fn follow(self: &Arc<Self>, id: JobId) -> mpsc::UnboundedReceiver<Update> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut following = self.lock();
        following.by_id.insert(
            id,
            Follower {
                tx,
                started: false,
                reason: None,
            },
        );
        self.added.store(true, Ordering::Relaxed);
        if !following.running {
            following.running = true;
            let jobs = self.clone();
            tokio::spawn(async move { jobs.run().await });
        }
        rx
    }

    /// Queries all followed jobs once per tick until none is left. The tick starts at
    /// `poll`, doubles while nothing changes, and starts again when a job is added or
    /// changes.
    async fn run(&self) {
        let mut tick = self.poll;
        let mut failing = false;
        loop {
            tokio::time::sleep(tick).await;
            let ids: Vec<JobId> = {
                let mut following = self.lock();
                following.by_id.retain(|_, f| !f.tx.is_closed());
                if following.by_id.is_empty() {
                    following.running = false;
                    return;
                }
                following.by_id.keys().copied().collect()
            };
            let seen = match states(&ids).await {
                Ok(seen) => {
                    failing = false;
                    seen
                }
                Err(message) => {
                    if !failing {
                        self.observer.event(&Event::Note {
                            line: format!("following the Slurm jobs: {message} (retrying)"),
                        });
                    }
                    failing = true;
                    HashMap::new()
                }
            };
            let mut changed = self.added.swap(false, Ordering::Relaxed);
            let mut following = self.lock();
            for (id, seen) in seen {
                let Some(f) = following.by_id.get_mut(&id) else {
                    continue;
                };
                if seen.state.is_ended() {
                    if !f.started {
                        let _ = f.tx.send(Update::Started(seen.node.clone()));
                    }
                    let _ = f.tx.send(Update::Ended(JobEnd {
                        state: seen.state,
                        node: seen.node,
                    }));
                    following.by_id.remove(&id);
                    changed = true;
                } else if matches!(&seen.state, JobState::Active(s) if s == "PENDING") {
                    if seen.reason.is_some() && seen.reason != f.reason {
                        f.reason = seen.reason.clone();
                        let _ = f.tx.send(Update::Pending(seen.reason.unwrap_or_default()));
                        changed = true;
                    }
                } else if !f.started {
                    f.started = true;
                    let _ = f.tx.send(Update::Started(seen.node));
                    changed = true;
                }
            }
            tick = if changed {
                self.poll
            } else {
                (tick * 2).min(self.poll_max)
            };
        }
    }
}

/// The state of each of `ids`: one `squeue` for all of them, and one `sacct` for those it
/// no longer lists; a job neither knows has ended ([`JobState::Gone`]).
async fn states(ids: &[JobId]) -> Result<HashMap<JobId, Seen>, String> {
    let list = |ids: &[JobId]| {
        ids.iter()
            .map(JobId::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let squeue = run(
        "squeue",
        &[
            "--noheader",
            "--states=all",
            // One line per array task, pending ones too (not `123_[4-9]`).
            "--array",
            &format!("--jobs={}", list(ids)),
            "--format=%i|%T|%N|%r",
        ],
    )
    .await;
    let mut seen = match squeue {
        Ok(text) => parse_table(&text),
        // `squeue` refuses a list holding only jobs it has forgotten.
        Err(e) if e.contains("Invalid job id") => HashMap::new(),
        Err(e) => return Err(e),
    };
    let unlisted: Vec<JobId> = ids
        .iter()
        .copied()
        .filter(|id| !seen.contains_key(id))
        .collect();
    if unlisted.is_empty() {
        return Ok(seen);
    }
    // Without accounting `sacct` fails; a job no command knows has ended.
    let accounted = run(
        "sacct",
        &[
            "--noheader",
            "--parsable2",
            "--allocations",
            &format!("--jobs={}", list(&unlisted)),
            "--format=JobID,State,NodeList",
        ],
    )
    .await
    .map(|text| parse_table(&text))
    .unwrap_or_default();
    for id in unlisted {
        let state = accounted.get(&id).cloned().unwrap_or(Seen {
            state: JobState::Gone,
            node: None,
            reason: None,
        });
        seen.insert(id, state);
    }
    Ok(seen)
}

/// Lines `id|state|nodes[|reason]`, as both queries print them.
fn parse_table(text: &str) -> HashMap<JobId, Seen> {
    let mut jobs = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split('|');
        let (Some(id), Some(state)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(id) = id.parse::<JobId>() else {
            continue;
        };
        let known = |f: Option<&str>| {
            f.map(str::trim)
                .filter(|n| !n.is_empty() && !matches!(*n, "None" | "None assigned" | "(null)"))
                .map(str::to_owned)
        };
        let node = known(fields.next());
        let reason = known(fields.next());
        jobs.insert(
            id,
            Seen {
                state: JobState::parse(state),
                node,
                reason,
            },
        );
    }
    jobs
}

/// `sbatch` refused or failed to submit a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitError {
    /// What `sbatch` said, every line of it.
    pub message: String,
    /// Whether submitting again may work: the controller could not be reached or was
    /// busy, rather than refusing the job.
    pub transient: bool,
}

/// Submits a batch job (or a job array); its id (the array's).
pub(super) async fn sbatch(args: &[String]) -> Result<u64, SubmitError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("sbatch", &args).await.map_err(|message| SubmitError {
        transient: is_transient(&message),
        message,
    })?;
    // `--parsable` prints `id` or `id;cluster`.
    let first = out.lines().next().unwrap_or("").trim();
    let id = first.split(';').next().unwrap_or("");
    id.parse().map_err(|_| SubmitError {
        message: format!("sbatch printed '{first}', expected a job id"),
        transient: false,
    })
}

/// Whether a failed Slurm command may work when run again: it could not reach the
/// controller, or the controller was too busy to answer.
fn is_transient(message: &str) -> bool {
    [
        "Unable to contact slurm controller",
        "Socket timed out",
        "Resource temporarily unavailable",
        "temporarily unable",
        "Zero Bytes were transmitted",
        "Connection refused",
        "did not answer within",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Cancels a job (SIGTERM to its steps, then SIGKILL after Slurm's `KillWait`).
pub(super) async fn scancel(id: JobId) -> Result<(), String> {
    run("scancel", &[&id.to_string()]).await.map(drop)
}

/// Cancels every queued or running job of this user named `name`: for a submission whose
/// job id never came back.
pub(super) async fn scancel_name(name: &str) -> Result<(), String> {
    run("scancel", &[&format!("--name={name}")]).await.map(drop)
}

/// Cancels every job of this user whose name starts with `prefix` and that has not
/// ended; their ids.
pub(super) async fn cancel_named(prefix: &str) -> Result<Vec<JobId>, String> {
    let listed = run(
        "squeue",
        &[
            "--noheader",
            "--me",
            "--array",
            "--states=PENDING,RUNNING,CONFIGURING,SUSPENDED,REQUEUED",
            "--format=%i|%j",
        ],
    )
    .await?;
    let ids: Vec<String> = listed
        .lines()
        .filter_map(|line| {
            let (id, name) = line.split_once('|')?;
            name.trim()
                .starts_with(prefix)
                .then(|| id.trim().to_owned())
        })
        .collect();
    if !ids.is_empty() {
        let args: Vec<&str> = ids.iter().map(String::as_str).collect();
        run("scancel", &args).await?;
    }
    Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
}

/// Runs a Slurm command, for a minute at most; its standard output, or one line saying
/// why it failed.
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
        // Every line: the telling one is often not the first.
        let err = String::from_utf8_lossy(&out.stderr);
        let mut said = err
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if said.is_empty() {
            said = "no message".into();
        }
        if said.len() > 1000 {
            let cut = (0..=1000)
                .rev()
                .find(|&i| said.is_char_boundary(i))
                .unwrap_or(0);
            said.truncate(cut);
            said.push_str("...");
        }
        return Err(format!("{program} failed ({}): {said}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_squeue_and_sacct_print_them() {
        let table = parse_table(
            "12|COMPLETED|node1|None\n13|RUNNING|node2|None\n14|PENDING||JobHeldUser\n15|CANCELLED by 0|node1\nbad\n16_3|RUNNING|n|None\n17_[4-9%2]|PENDING||None\n",
        );
        let id = |text: &str| text.parse::<JobId>().expect("a job id");
        assert_eq!(table[&id("12")].state, JobState::Completed);
        assert_eq!(table[&id("12")].node.as_deref(), Some("node1"));
        assert_eq!(table[&id("12")].reason, None);
        assert!(!table[&id("13")].state.is_ended());
        assert_eq!(table[&id("14")].node, None);
        assert_eq!(table[&id("14")].reason.as_deref(), Some("JobHeldUser"));
        assert_eq!(table[&id("15")].state, JobState::Cancelled);
        // An array task is a job of its own; a range of them is not one job.
        assert_eq!(table[&id("16_3")].node.as_deref(), Some("n"));
        assert_eq!(table.len(), 5);
        assert_eq!(id("16_3").to_string(), "16_3");
        assert_eq!(
            id("16_3"),
            JobId {
                job: 16,
                array_task: Some(3)
            }
        );
        assert!("16_".parse::<JobId>().is_err() && "x".parse::<JobId>().is_err());
        assert!(JobState::parse("NODE_FAIL").is_node_failure());
        assert!(JobState::parse("WEIRD").is_ended());
        assert!(!JobState::parse("COMPLETING").is_ended());
    }
}
