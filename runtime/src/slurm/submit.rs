//! Submitting attempts' jobs, the iterations of a loop as job arrays.
//!
//! Submissions go through one queue, drained in rounds: those that arrive while an
//! `sbatch` is under way wait for it and go in the next round. A round holding a loop's
//! iteration first waits for the others the driver starts with it (until none has come
//! for [`QUIET`], at most [`GATHER`]). In a round, the iterations of one loop task that
//! ask for the same resources (the same `sbatch` arguments) become one job array
//! (`sbatch --array=0-<n-1>`, one `sbatch` for them all), up to [`MAX_ARRAY`] tasks
//! each; its batch script picks each task's attempt by `SLURM_ARRAY_TASK_ID`, and each
//! array task is followed, and cancelled, as a job of its own (`<array job id>_<index>`).
//! Everything else is a job of its own, named after its task.
//!
//! The run's driver already keeps at most `--parallelism` attempts (and a loop's own
//! parallelism) in flight, so an array holds only the iterations that may run now, and
//! needs no `%` throttle of its own.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::jobs::{self, JobId, SubmitError};

/// How long the first submission of a burst waits for the others at most: the attempts
/// the driver starts together each write their attempt file first, a millisecond or a
/// few each (more on a loaded machine).
const GATHER: std::time::Duration = std::time::Duration::from_millis(200);

/// The burst has ended when no submission came for this long.
const QUIET: std::time::Duration = std::time::Duration::from_millis(10);

/// The most tasks one job array is given: Slurm's default `MaxArraySize` of 1001 allows
/// indices 0 to 1000.
pub(super) const MAX_ARRAY: usize = 1000;

/// One attempt's job, to be submitted.
pub(super) struct Submission {
    /// `sbatch` arguments that are the same for every attempt that may share an array:
    /// all but its name, folder and script.
    pub args: Vec<String>,
    /// The name of the job arrays it may join, when it is an iteration of a loop
    /// (`sluice/<run>/square.*` for `square.3`); each array adds its number in the run
    /// (`#2`), so that cancelling one by name leaves the others be.
    pub array: Option<String>,
    /// The name of a job of its own (`sluice/<run>/<task>`).
    pub name: String,
    /// Its task folder, absolute: the job starts there.
    pub root: PathBuf,
    /// Its batch script as a job of its own, written.
    pub script: PathBuf,
    /// Its attempt file, which `sluice task exec` runs.
    pub attempt: PathBuf,
}

/// A submission waiting for its job id.
pub(super) struct Ticket {
    number: u64,
    /// The job's id, or why `sbatch` failed.
    pub id: oneshot::Receiver<Result<JobId, SubmitError>>,
}

/// The queue of submissions, drained by one task while it holds any.
pub(super) struct Submitter {
    /// The `sluice` program array scripts run.
    sluice: PathBuf,
    queue: Mutex<Queue>,
    /// Job arrays submitted so far.
    arrays: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// Whether a task drains the queue.
    draining: bool,
    next: u64,
}

struct Waiting {
    number: u64,
    submission: Submission,
    tx: oneshot::Sender<Result<JobId, SubmitError>>,
}

impl Submitter {
    pub(super) fn new(sluice: PathBuf) -> Submitter {
        Submitter {
            sluice,
            queue: Mutex::new(Queue::default()),
            arrays: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a submission. When the ticket's receiver is dropped before its job id
    /// arrives, the job is cancelled.
    pub(super) fn submit(self: &Arc<Self>, submission: Submission) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let mut queue = self.lock();
        let number = queue.next;
        queue.next += 1;
        queue.waiting.push(Waiting {
            number,
            submission,
            tx,
        });
        if !queue.draining {
            queue.draining = true;
            let submitter = self.clone();
            tokio::spawn(async move { submitter.drain().await });
        }
        Ticket { number, id: rx }
    }

    /// Takes a submission back if `sbatch` has not been given it yet; false when it has
    /// (its job id, or its error, is still to come on the ticket).
    pub(super) fn withdraw(&self, ticket: &Ticket) -> bool {
        let mut queue = self.lock();
        let before = queue.waiting.len();
        queue.waiting.retain(|w| w.number != ticket.number);
        queue.waiting.len() < before
    }

    /// Waits until no submission has come for [`QUIET`], or [`GATHER`] has passed.
    async fn gather(&self) {
        let until = tokio::time::Instant::now() + GATHER;
        let mut seen = self.lock().waiting.len();
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(QUIET).await;
            let now = self.lock().waiting.len();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    async fn drain(&self) {
        loop {
            let iterations = self
                .lock()
                .waiting
                .iter()
                .any(|w| w.submission.array.is_some());
            if iterations {
                self.gather().await;
            }
            let waiting = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.draining = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            for group in groups(waiting) {
                self.submit_group(group).await;
            }
        }
    }

    /// Submits a group: one job, or a job array when it holds several iterations (or, when
    /// the array's script cannot be written, each as a job of its own).
    async fn submit_group(&self, group: Vec<Waiting>) {
        if group.len() > 1 {
            let first = &group[0].submission;
            let script = first.root.join(ARRAY_SCRIPT);
            let roots: Vec<(&Path, &Path)> = group
                .iter()
                .map(|w| (w.submission.root.as_path(), w.submission.attempt.as_path()))
                .collect();
            let text = array_script(&self.sluice, &roots);
            // Each task's folder keeps the script its job ran (the first one's is given
            // to `sbatch`), for whoever looks into a failed one.
            let written = group
                .iter()
                .all(|w| std::fs::write(w.submission.root.join(ARRAY_SCRIPT), &text).is_ok());
            if written {
                let number = 1 + self
                    .arrays
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let name = format!("{}#{number}", first.array.as_deref().unwrap_or(&first.name));
                let mut args = first.args.clone();
                args.extend([
                    format!("--job-name={name}"),
                    format!("--chdir={}", first.root.display()),
                    format!("--array=0-{}", group.len() - 1),
                    script.display().to_string(),
                ]);
                let submitted = sbatch(&args, &name).await;
                for (index, waiting) in group.into_iter().enumerate() {
                    let id = submitted.clone().map(|job| JobId {
                        job,
                        array_task: Some(index as u32),
                    });
                    hand_over(waiting, id).await;
                }
                return;
            }
        }
        for waiting in group {
            let s = &waiting.submission;
            let mut args = s.args.clone();
            args.extend([
                format!("--job-name={}", s.name),
                format!("--chdir={}", s.root.display()),
                s.script.display().to_string(),
            ]);
            let id = sbatch(&args, &s.name).await.map(|job| JobId {
                job,
                array_task: None,
            });
            hand_over(waiting, id).await;
        }
    }
}

/// Submits with `sbatch`; a submission that failed but may have gone through (it timed
/// out) is cancelled by its name.
async fn sbatch(args: &[String], name: &str) -> Result<u64, SubmitError> {
    let submitted = jobs::sbatch(args).await;
    if let Err(e) = &submitted
        && e.transient
    {
        let _ = jobs::scancel_name(name).await;
    }
    submitted
}

/// Gives a submission its job id; a job whose attempt no longer waits for it is cancelled.
async fn hand_over(waiting: Waiting, id: Result<JobId, SubmitError>) {
    if let Err(Ok(id)) = waiting.tx.send(id) {
        let _ = jobs::scancel(id).await;
    }
}

/// The groups a batch of submissions goes in, in the order they came: the iterations of
/// one loop task with the same `sbatch` arguments together (at most [`MAX_ARRAY`] each),
/// every other submission alone.
fn groups(waiting: Vec<Waiting>) -> Vec<Vec<Waiting>> {
    let mut groups: Vec<Vec<Waiting>> = Vec::new();
    for w in waiting {
        let joins = w.submission.array.as_ref().and_then(|array| {
            groups.iter().position(|g| {
                let first = &g[0].submission;
                g.len() < MAX_ARRAY
                    && first.array.as_ref() == Some(array)
                    && first.args == w.submission.args
            })
        });
        match joins {
            Some(i) => groups[i].push(w),
            None => groups.push(vec![w]),
        }
    }
    groups
}

/// The file a job array's batch script is written to, in each of its tasks' folders.
pub(super) const ARRAY_SCRIPT: &str = "array-job.sh";

/// The batch script of one attempt: `sluice task exec` on its attempt file, its output
/// in `slurm-<job id>.out` in the folder the job starts in (`--chdir`, the task folder).
pub(super) fn batch_script(sluice: &Path, attempt: &Path) -> String {
    format!(
        "#!/bin/sh\nexec >\"slurm-$SLURM_JOB_ID.out\" 2>&1\nexec {} task exec {}\n",
        shell_quote(&sluice.display().to_string()),
        shell_quote(&attempt.display().to_string())
    )
}

/// The batch script of a job array: array task `i` runs the attempt of `attempts[i]`
/// (task folder, attempt file) in its folder, its output in
/// `slurm-<array job id>_<i>.out` there. The script holds the list itself: `sbatch`
/// keeps a copy of it, so later changes to the file do not reach queued tasks.
fn array_script(sluice: &Path, attempts: &[(&Path, &Path)]) -> String {
    let mut script = String::from("#!/bin/sh\ncase \"$SLURM_ARRAY_TASK_ID\" in\n");
    for (i, (root, attempt)) in attempts.iter().enumerate() {
        script.push_str(&format!(
            "{i}) root={} attempt={} ;;\n",
            shell_quote(&root.display().to_string()),
            shell_quote(&attempt.display().to_string())
        ));
    }
    script.push_str(
        "*) echo \"no attempt for array task $SLURM_ARRAY_TASK_ID\" >&2; exit 1 ;;\nesac\n\
         cd \"$root\" || exit 1\n\
         exec >\"slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.out\" 2>&1\n",
    );
    script.push_str(&format!(
        "exec {} task exec \"$attempt\"\n",
        shell_quote(&sluice.display().to_string())
    ));
    script
}

pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The loop task an attempt's task is an iteration of: `square` for `square.3` (and for
/// `square.0.2`, in a nested loop); `None` for a task outside loops.
pub(super) fn loop_task(task: &str) -> Option<&str> {
    let mut base = task;
    while let Some((rest, index)) = base.rsplit_once('.') {
        if rest.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        base = rest;
    }
    (base.len() < task.len()).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(task: &str, args: &[&str]) -> Waiting {
        let (tx, _) = oneshot::channel();
        Waiting {
            number: 0,
            submission: Submission {
                args: args.iter().map(|a| a.to_string()).collect(),
                array: loop_task(task).map(|l| format!("sluice/r/{l}.*")),
                name: format!("sluice/r/{task}"),
                root: PathBuf::from(format!("/h/{task}")),
                script: PathBuf::from(format!("/h/{task}/job.sh")),
                attempt: PathBuf::from(format!("/h/{task}/attempt.json")),
            },
            tx,
        }
    }

    #[test]
    fn iterations_of_one_loop_asking_alike_share_an_array() {
        assert_eq!(loop_task("square.3"), Some("square"));
        assert_eq!(loop_task("square.0.12"), Some("square"));
        assert_eq!(loop_task("square"), None);
        assert_eq!(loop_task("v1.x"), None);
        assert_eq!(loop_task(".3"), None);
        let names = |groups: Vec<Vec<Waiting>>| -> Vec<Vec<String>> {
            groups
                .iter()
                .map(|g| g.iter().map(|w| w.submission.name.clone()).collect())
                .collect()
        };
        let batch = vec![
            waiting("square.0", &["--mem=10M"]),
            waiting("train", &["--mem=10M"]),
            waiting("square.1", &["--mem=10M"]),
            waiting("square.2", &["--mem=20M"]),
            waiting("cube.0", &["--mem=10M"]),
            waiting("square.3", &["--mem=10M"]),
            waiting("report", &["--mem=10M"]),
        ];
        assert_eq!(
            names(groups(batch)),
            [
                vec![
                    "sluice/r/square.0",
                    "sluice/r/square.1",
                    "sluice/r/square.3"
                ],
                vec!["sluice/r/train"],
                vec!["sluice/r/square.2"],
                vec!["sluice/r/cube.0"],
                vec!["sluice/r/report"],
            ]
        );
        let many = (0..MAX_ARRAY + 2)
            .map(|i| waiting(&format!("square.{i}"), &[]))
            .collect();
        let sizes: Vec<usize> = groups(many).iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_ARRAY, 2]);
    }

    #[test]
    fn an_array_task_runs_its_own_attempt_in_its_own_folder() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary folder");
        // A `sluice` that says where it ran and on what.
        let sluice = dir.path().join("sluice");
        std::fs::write(&sluice, "#!/bin/sh\necho \"$(pwd) $*\"\n").expect("write");
        std::fs::set_permissions(&sluice, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let roots = [dir.path().join("a.0"), dir.path().join("it's")];
        let attempts: Vec<PathBuf> = roots.iter().map(|r| r.join("attempt.json")).collect();
        for root in &roots {
            std::fs::create_dir(root).expect("mkdir");
        }
        let list: Vec<(&Path, &Path)> = roots
            .iter()
            .zip(&attempts)
            .map(|(r, a)| (r.as_path(), a.as_path()))
            .collect();
        let script = dir.path().join(ARRAY_SCRIPT);
        std::fs::write(&script, array_script(&sluice, &list)).expect("write");
        let run = |index: &str| {
            std::process::Command::new("sh")
                .arg(&script)
                .current_dir(dir.path())
                .env("SLURM_ARRAY_JOB_ID", "41")
                .env("SLURM_ARRAY_TASK_ID", index)
                .output()
                .expect("sh runs")
                .status
                .code()
        };
        for (i, root) in roots.iter().enumerate() {
            assert_eq!(run(&i.to_string()), Some(0));
            let out = std::fs::read_to_string(root.join(format!("slurm-41_{i}.out")))
                .expect("the task's output is in its folder");
            assert_eq!(
                out.trim(),
                format!("{} task exec {}", root.display(), attempts[i].display())
            );
        }
        assert_eq!(run("2"), Some(1), "an index past the list fails");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
