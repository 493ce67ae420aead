//! The Sluice home: content-addressed artifacts, run records, task working folders and
//! the compiled-code cache location. Artifacts are written only through [`Store`].
//!
//! Layout under `SLUICE_HOME` (default `$XDG_DATA_HOME/sluice`, else
//! `~/.local/share/sluice`):
//! ```text
//! sluice.db                          run records (SQLite, WAL)
//! artifacts/sha256/ab/ab12...        file artifacts, read-only
//! artifacts/sha256-tree/ab/ab12...   folder artifacts, read-only
//! runs/<run>/<task>/<attempt>/       a task attempt's inputs/ and outputs/ while it runs
//! runs/<run>/.live/log               what running tasks write, as they write it (`live`)
//! cache/wasm/                        compiled components (see exec::wasm)
//! tmp/                               partial writes, renamed into place when complete
//! ```

mod artifacts;
mod journal;
mod live;
mod records;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use artifacts::{ArtifactRef, Stored, digest_of};
pub use journal::{Journal, JournalSender};
pub use live::LiveLogs;
pub use records::{
    ArtifactUse, AttemptEnd, AttemptEntry, AttemptRecord, AttemptStart, CachedTask, DeployRecord,
    DeployState, Direction, IoRecord, JournalEntry, LogRecord, NewRun, NewTask, Reuse, RunKind,
    RunQuery, RunRecord, RunState, StartEntry, TaskEnd, TaskEndEntry, TaskRecord, TaskState,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run database error")]
    Database(#[source] rusqlite::Error),
    #[error(
        "{} was written by a newer Sluice (schema {found}; this one reads {supported})",
        path.display()
    )]
    SchemaVersion {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("'{0}' is not a sha256 digest")]
    BadDigest(String),
    #[error("artifact {0} is not in the store")]
    MissingArtifact(String),
    /// The bytes under an artifact's name no longer hash to its digest.
    #[error("artifact {digest} in the store no longer matches its digest ({}): something wrote to it", path.display())]
    Corrupt { digest: String, path: PathBuf },
    #[error("{} is not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error("no run matches '{0}' (see `sluice runs list`)")]
    UnknownRun(String),
    #[error("'{prefix}' matches several runs: {}", matches.join(", "))]
    AmbiguousRun {
        prefix: String,
        matches: Vec<String>,
    },
    #[error("run {run} has no task '{task}'")]
    UnknownTask { run: String, task: String },
    #[error("cannot find a home folder: set SLUICE_HOME")]
    NoHome,
    /// The home itself cannot be made or written (permissions, a file in its place):
    /// the environment's to fix, not the command's input.
    #[error("cannot {action} {}", path.display())]
    Home {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// Where Sluice keeps its state: `SLUICE_HOME`, else `$XDG_DATA_HOME/sluice`, else
/// `~/.local/share/sluice`.
pub fn default_home() -> Result<PathBuf, StoreError> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(home) = env("SLUICE_HOME") {
        return Ok(home);
    }
    if let Some(data) = env("XDG_DATA_HOME") {
        return Ok(data.join("sluice"));
    }
    env("HOME")
        .map(|h| h.join(".local/share/sluice"))
        .ok_or(StoreError::NoHome)
}

/// What [`Store::collect_garbage`] removed (or, dry, would remove).
#[derive(Debug, Default)]
pub struct Collected {
    pub removed: Vec<Stored>,
    /// Bytes of the removed artifacts.
    pub bytes: u64,
    /// Artifacts kept because something refers to them.
    pub kept: usize,
    /// Artifacts kept because a run in progress may yet record them.
    pub in_progress: usize,
    /// Temporary files of unfinished writes removed.
    pub leftovers: usize,
}

/// Copies a file to a user's path as a new file with the process's umask (0644 under
/// umask 022), renamed over whatever was at `dest`: an existing file there is replaced,
/// never written into (it may be a hard link into the store).
pub fn write_out(src: &Path, dest: &Path) -> Result<(), StoreError> {
    artifacts::write_new_file(src, dest)
}

/// The host folders of one task attempt. `inputs/<name>/data` holds each input,
/// `outputs/<name>/` waits for each output.
#[derive(Clone, Debug)]
pub struct TaskDir {
    pub root: PathBuf,
    /// Where the outputs are written: `<root>/outputs`, or for a KFP step its folder
    /// under the run's artifacts (see [`Store::run_artifacts`]), where they stay.
    pub outputs: PathBuf,
}

/// The file in a task folder that names the process group a host-process step runs in:
/// its leader's pid and start tick ([`crate::process_start_ticks`]).
pub const PROCESS_FILE: &str = ".process";

/// The file in a task folder that hands its attempt to another process, maybe on another
/// machine (`sluice task exec`, a Slurm job): see `exec::attempt`.
pub const ATTEMPT_FILE: &str = "attempt.json";

/// Kills the process groups host-process steps of an interrupted run left running
/// (`<run folder>/<task>/<attempt>/.process`): a group whose leader is the process that
/// was started (same start tick), or whose leader is gone (its id stays the group's while
/// the group lives, so no other process has it). An attempt handed over as an attempt
/// file ran in a job, whose process ids are the job's node's, not this machine's: it is
/// never signalled from here (cancelling the job stops its processes).
/// What an interrupted run left: processes still running (stopped), and its tasks' live
/// logs (removed).
fn left_behind(home: &Path, run: &str) {
    let folder = home.join("runs").join(path_segment(run));
    stop_left_processes(&folder);
    let _ = fs::remove_dir_all(folder.join(live::LIVE));
}

fn stop_left_processes(run: &Path) {
    let Ok(tasks) = fs::read_dir(run) else {
        return;
    };
    for attempt in tasks
        .flatten()
        .filter_map(|task| fs::read_dir(task.path()).ok())
        .flatten()
        .flatten()
    {
        if attempt.path().join(ATTEMPT_FILE).exists() {
            continue;
        }
        let Ok(text) = fs::read_to_string(attempt.path().join(PROCESS_FILE)) else {
            continue;
        };
        let mut words = text.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(ticks))) = (words.next(), words.next()) else {
            continue;
        };
        // Never 0 or 1: a signal to group 0 or -1 would reach every process this one may
        // signal.
        let Ok(pid) = u32::try_from(pid) else {
            continue;
        };
        if pid <= 1 || pid > i32::MAX as u32 {
            continue;
        }
        let same = match crate::process_start_ticks(pid) {
            Some(now) => now == ticks,
            None => true,
        };
        if same && let Some(group) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

impl TaskDir {
    /// A task folder with its outputs inside it.
    pub fn new(root: PathBuf) -> TaskDir {
        let outputs = root.join("outputs");
        TaskDir { root, outputs }
    }

    /// Makes the folder, its `inputs` and its `outputs` where they are missing:
    /// [`Store::task_dir`] makes only those a task needs, executors that mount or enter
    /// them all (containers, processes) make the rest.
    pub fn ensure(&self) -> Result<(), StoreError> {
        for d in [&self.root, &self.inputs(), &self.outputs] {
            fs::create_dir_all(d).map_err(|e| StoreError::io("create", d, e))?;
        }
        Ok(())
    }
    pub fn inputs(&self) -> PathBuf {
        self.root.join("inputs")
    }
    pub fn outputs(&self) -> PathBuf {
        self.outputs.clone()
    }
    pub fn input_file(&self, name: &str) -> PathBuf {
        self.inputs().join(path_segment(name)).join("data")
    }
    pub fn output_file(&self, name: &str) -> PathBuf {
        self.outputs().join(path_segment(name)).join("data")
    }
}

/// The folder name for an input or output name: KFP names may hold spaces or slashes.
/// Letters, digits, `-`, `_` and `.` stay; every other byte becomes `%XX` (its hex, as in
/// a URL), as does a leading dot, so a name can never leave its folder and two names
/// never share one (`"a b"` is `a%20b`, `a_b` stays `a_b`, `a%20b` is `a%2520b`). The
/// empty name is `%`.
pub fn path_segment(name: &str) -> String {
    use std::fmt::Write;
    if name.is_empty() {
        return "%".to_owned();
    }
    let mut s = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        match b {
            b'.' if i == 0 => s.push_str("%2E"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => s.push(b as char),
            other => {
                let _ = write!(s, "%{other:02X}");
            }
        }
    }
    s
}

pub struct Store {
    home: PathBuf,
    artifacts: artifacts::Artifacts,
    records: Mutex<records::Records>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("home", &self.home).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `home`.
    pub fn open(home: &Path) -> Result<Store, StoreError> {
        // Absolute, once: every path the store hands out (task folders, published
        // artifacts' `uri`s) must mean the same to other processes, whatever their
        // working folder.
        let home = &std::path::absolute(home).map_err(|source| StoreError::Home {
            action: "resolve",
            path: home.to_owned(),
            source,
        })?;
        let home_error = |action, source| StoreError::Home {
            action,
            path: home.to_owned(),
            source,
        };
        if home.exists() && !home.is_dir() {
            return Err(home_error(
                "use",
                std::io::Error::other("it is not a folder"),
            ));
        }
        fs::create_dir_all(home).map_err(|e| home_error("create", e))?;
        // A home that exists but cannot be written (a read-only mount, another user's
        // folder) says so here, not as the database's "unable to open database file".
        let tmp = home.join("tmp");
        fs::create_dir_all(&tmp).map_err(|e| home_error("write in", e))?;
        let probe = tmp.join(format!(".writable-{}", std::process::id()));
        fs::File::create(&probe).map_err(|e| home_error("write in", e))?;
        let _ = fs::remove_file(&probe);
        let artifacts = artifacts::Artifacts::open(home.join("artifacts"), home.join("tmp"))?;
        let mut records =
            records::Records::open(&home.join("sluice.db"), &|| artifacts.move_trees())?;
        for run in std::mem::take(&mut records.interrupted) {
            left_behind(home, &run);
        }
        Ok(Store {
            home: home.to_owned(),
            artifacts,
            records: Mutex::new(records),
        })
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Where compiled wasm is cached unless `SLUICE_CACHE_DIR` says otherwise.
    pub fn cache_dir(&self) -> PathBuf {
        self.home.join("cache")
    }

    fn records(&self) -> std::sync::MutexGuard<'_, records::Records> {
        // A panic while holding the lock cannot leave a transaction half-applied
        // (SQLite rolls it back), so the connection stays usable.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    // Artifacts.

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<ArtifactRef, StoreError> {
        self.artifacts.put_bytes(bytes)
    }

    /// Copies a user's file into the store.
    pub fn import(&self, path: &Path) -> Result<ArtifactRef, StoreError> {
        self.artifacts.import(path)
    }

    /// Moves a file or folder a task produced into the store (refusing symlinks).
    pub fn ingest(&self, path: &Path) -> Result<ArtifactRef, StoreError> {
        self.artifacts.ingest(path)
    }

    pub fn artifact_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        self.artifacts.path(digest)
    }

    pub fn contains(&self, digest: &str) -> bool {
        self.artifacts.contains(digest)
    }

    /// Checks that the artifact under `digest` is in the store and still hashes to it
    /// ([`StoreError::MissingArtifact`], [`StoreError::Corrupt`]). Files already checked
    /// and unchanged since (same inode, size and modification time) are not hashed again.
    pub fn verify(&self, digest: &str) -> Result<(), StoreError> {
        self.artifacts.verify(digest)
    }

    /// The bytes of a file artifact, checked against its digest: an artifact changed in
    /// the store is [`StoreError::Corrupt`], never read as if it were the original.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        self.artifacts.read(digest)
    }

    /// Copies an artifact (a file or a folder) out of the store to a user's path, checked
    /// against its digest on the way. The files written are new files with the process's
    /// umask (0644 under umask 022), renamed over whatever was at `dest`.
    pub fn export(&self, digest: &str, dest: &Path) -> Result<(), StoreError> {
        self.artifacts.export(digest, dest)
    }

    // Task folders.

    /// Creates a fresh working folder for one attempt, with an empty `outputs/<name>/` for
    /// each output. With `published`, the outputs folder is the task's folder under the
    /// run's artifacts instead, emptied for each attempt: what the attempt writes there is
    /// linked back after it is stored, so the paths a KFP step was told stay valid for as
    /// long as the run's record does.
    pub fn task_dir(
        &self,
        run: &str,
        task: &str,
        attempt: u32,
        inputs: bool,
        outputs: &[&str],
        published: bool,
    ) -> Result<TaskDir, StoreError> {
        let root = self
            .home
            .join("runs")
            .join(run)
            .join(task)
            .join(attempt.to_string());
        if root.exists() {
            remove_tree(&root)?;
        }
        let mut dir = TaskDir::new(root);
        if published {
            dir.outputs = self.run_artifacts(run).join(path_segment(task));
            if dir.outputs.exists() {
                remove_tree(&dir.outputs)?;
            }
        }
        // Only what the task needs: a step with nothing to stage and nothing to write
        // gets no folder at all (nothing to make, nothing to remove).
        let mut needed = Vec::new();
        if inputs {
            needed.push(dir.inputs());
        }
        if published || !outputs.is_empty() {
            needed.push(dir.outputs());
        }
        for d in needed {
            fs::create_dir_all(&d).map_err(|e| StoreError::io("create", &d, e))?;
        }
        for name in outputs {
            let d = dir.outputs().join(path_segment(name));
            fs::create_dir_all(&d).map_err(|e| StoreError::io("create", &d, e))?;
        }
        Ok(dir)
    }

    /// The folder of a run's published KFP artifacts, `<home>/runs/<run>/.artifacts`, as
    /// an absolute path: KFP's local pipeline root. `<task>/<output>/data` in it is each
    /// output of each KFP step, a read-only link into the store kept with the run, so an
    /// artifact's `uri` stays valid after its task ends (for later tasks, importers and
    /// later runs that reuse it from the cache).
    pub fn run_artifacts(&self, run: &str) -> PathBuf {
        let folder = self.home.join("runs").join(run).join(".artifacts");
        std::path::absolute(&folder).unwrap_or(folder)
    }

    /// Links a stored artifact at `<run artifacts>/<task>/<output>/data` (made if need be)
    /// and returns that path. An existing link there is left as it is.
    pub fn publish(
        &self,
        run: &str,
        task: &str,
        output: &str,
        digest: &str,
    ) -> Result<PathBuf, StoreError> {
        let folder = self
            .run_artifacts(run)
            .join(path_segment(task))
            .join(path_segment(output));
        let path = folder.join("data");
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(path);
        }
        fs::create_dir_all(&folder).map_err(|e| StoreError::io("create", &folder, e))?;
        self.artifacts.stage(digest, &path)?;
        Ok(path)
    }

    /// Places an artifact at `inputs/<name>/data` of a task folder. The folder must be new:
    /// staging never writes into a path that exists (it could be another input's link
    /// into the store).
    pub fn stage_input(&self, dir: &TaskDir, name: &str, digest: &str) -> Result<(), StoreError> {
        let folder = dir.inputs().join(path_segment(name));
        fs::create_dir(&folder).map_err(|e| StoreError::io("create", &folder, e))?;
        self.artifacts.stage(digest, &folder.join("data"))
    }

    /// Removes an attempt's working folder, and its task's folder once that is empty.
    ///
    /// The run's folder stays while the run goes on, however empty: other tasks create
    /// their folders in it at any moment, and removing it under them would make their
    /// `mkdir` fail. [`Store::finish_run`] removes it if nothing is left in it.
    pub fn remove_task_dir(&self, dir: &TaskDir) -> Result<(), StoreError> {
        remove_tree(&dir.root)?;
        // Attempts of one task run one after another, so its folder is ours to prune.
        if let Some(task) = dir.root.parent() {
            let _ = fs::remove_dir(task);
        }
        Ok(())
    }

    // Records.

    pub fn begin_run(&self, run: &NewRun<'_>, tasks: &[NewTask<'_>]) -> Result<String, StoreError> {
        self.records().begin_run(run, tasks)
    }

    pub fn attempt_started(
        &self,
        run: &str,
        task: &str,
        start: &AttemptStart<'_>,
    ) -> Result<(), StoreError> {
        self.records().attempt_started(run, task, start)
    }

    /// Records how an attempt ended (and, with [`AttemptEnd::start`], how it started),
    /// in one transaction.
    pub fn attempt_finished(
        &self,
        run: &str,
        task: &str,
        end: &AttemptEnd<'_>,
    ) -> Result<(), StoreError> {
        self.records().attempt_finished(run, task, end)
    }

    pub fn task_finished(
        &self,
        run: &str,
        task: &str,
        state: TaskState,
        error: Option<&str>,
        outputs: &[IoRecord],
        metrics: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        let end = TaskEnd {
            state,
            error,
            outputs,
            metrics,
        };
        self.records().task_finished(run, task, &end, None)
    }

    pub fn add_task(&self, run: &str, task: &NewTask<'_>) -> Result<(), StoreError> {
        self.records().add_task(run, task)
    }

    pub fn set_cache_key(&self, run: &str, task: &str, key: &str) -> Result<(), StoreError> {
        self.records().set_cache_key(run, task, key)
    }

    /// Task `task` of run `run`, when it succeeded under cache key `key` (the same
    /// component, executable and inputs) and every output is in the store with bytes that
    /// still match its digest: what a resumed run takes instead of running the task
    /// again, whatever the task's caching.
    pub fn succeeded_in_run(
        &self,
        run: &str,
        task: &str,
        key: &str,
    ) -> Result<Option<CachedTask>, StoreError> {
        if !self.records().succeeded_in_run(run, task, key)? {
            return Ok(None);
        }
        let cached = self.records().cached_task(run, task)?;
        Ok(self.intact(&cached.outputs).then_some(cached))
    }

    /// Whether every one of `outputs` is in the store with bytes that still match its
    /// digest: the condition for taking them instead of running their task again.
    pub fn intact(&self, outputs: &[IoRecord]) -> bool {
        outputs.iter().all(|o| self.verify(&o.digest).is_ok())
    }

    /// The latest succeeded task recorded under a cache key, ended at or after
    /// `ended_since` when given, whose outputs are all in the store with bytes that still
    /// match their digests, named by the task that made those outputs (when it reused
    /// them itself, the one it reused). `None` when there is none.
    pub fn find_cached(
        &self,
        key: &str,
        ended_since: Option<jiff::Timestamp>,
    ) -> Result<Option<CachedTask>, StoreError> {
        // A few of the newest: one whose outputs were pruned or changed gives way to the
        // one before it.
        let candidates = self.records().cache_candidates(key, ended_since, 8)?;
        for (run, task, reused) in candidates {
            let mut cached = self.records().cached_task(&run, &task)?;
            if !self.intact(&cached.outputs) {
                continue;
            }
            // A task that took its outputs from another names that one: the task that
            // made them.
            if let Some((run, task)) = reused.as_deref().and_then(|r| r.split_once('/')) {
                cached.run = run.to_owned();
                cached.task = task.to_owned();
            }
            return Ok(Some(cached));
        }
        Ok(None)
    }

    /// Records a task as succeeded with the outputs of the task it reused.
    pub fn task_reused(&self, run: &str, task: &str, reuse: &Reuse<'_>) -> Result<(), StoreError> {
        self.records().task_reused(run, task, reuse)
    }

    /// Removes every artifact whose digest is not in `keep` and no run refers to, and the
    /// temporary files of writes that never finished. While a run is in progress,
    /// whatever was written since it started stays (its outputs may not be recorded
    /// yet). With `dry_run`, removes nothing and reports what it would remove.
    pub fn collect_garbage(
        &self,
        keep: &std::collections::HashSet<String>,
        dry_run: bool,
    ) -> Result<Collected, StoreError> {
        let referenced = self.records().referenced_digests()?;
        let since: Option<std::time::SystemTime> = self.records().running_since()?.map(|t| {
            std::time::SystemTime::UNIX_EPOCH
                + t.duration_since(jiff::Timestamp::UNIX_EPOCH).unsigned_abs()
        });
        let recent = |modified: Option<std::time::SystemTime>| match (since, modified) {
            (Some(since), Some(m)) => m >= since,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut collected = Collected::default();
        for stored in self.artifacts.list()? {
            if referenced.contains(&stored.digest) || keep.contains(&stored.digest) {
                collected.kept += 1;
                continue;
            }
            if recent(stored.modified) {
                collected.in_progress += 1;
                continue;
            }
            if !dry_run {
                self.artifacts.remove(&stored)?;
            }
            collected.bytes += stored.size;
            collected.removed.push(stored);
        }
        for (path, modified) in self.artifacts.leftovers() {
            if recent(modified) {
                continue;
            }
            if !dry_run {
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
            collected.leftovers += 1;
        }
        Ok(collected)
    }

    /// Records what the pipeline itself outputs.
    pub fn set_run_outputs(&self, run: &str, outputs: &[IoRecord]) -> Result<(), StoreError> {
        self.records().set_run_outputs(run, outputs)
    }

    /// Records the end of a run, and removes its working folder (`runs/<run>`) if none of
    /// its tasks left anything there.
    pub fn finish_run(
        &self,
        run: &str,
        state: RunState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.records().finish_run(run, state, error)?;
        let _ = fs::remove_dir(self.home.join("runs").join(run));
        Ok(())
    }

    pub fn set_deploy(&self, run: &str, deploy: &DeployRecord) -> Result<(), StoreError> {
        self.records().set_deploy(run, deploy)
    }

    /// Ends every run recorded as running whose Sluice process is gone, as opening the
    /// store does (the run `interrupted`, its running tasks `failed`, its pending ones
    /// `skipped`), and stops what they left running; for a process that keeps the store
    /// open while runs come and go (the UI). Returns the runs it ended.
    pub fn end_interrupted_runs(&self) -> Result<Vec<String>, StoreError> {
        let ended = self.records().end_interrupted()?;
        for run in &ended {
            left_behind(&self.home, run);
        }
        Ok(ended)
    }

    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.records().list(limit)
    }

    /// Finds a run by id or unique id prefix.
    pub fn resolve_run(&self, id_or_prefix: &str) -> Result<String, StoreError> {
        self.records().resolve(id_or_prefix)
    }

    pub fn run(&self, id: &str) -> Result<RunRecord, StoreError> {
        self.records().run(id)
    }

    pub fn logs(&self, run: &str, task: &str) -> Result<Vec<LogRecord>, StoreError> {
        self.records().logs(run, task)
    }

    /// Runs as `query` selects them: newest first, filtered, one page.
    pub fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        self.records().query(query)
    }

    /// Every pipeline name runs were recorded under, with its number of runs, by name.
    pub fn pipelines(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.records().pipelines()
    }

    /// A run's state and its tasks' states (in task order): what a page following a run
    /// reads again and again, without the rest of the record.
    pub fn task_states(
        &self,
        run: &str,
    ) -> Result<(RunState, Vec<(String, TaskState)>), StoreError> {
        self.records().task_states(run)
    }

    /// One task's state; `None` when the run has no task of that name.
    pub fn task_state(&self, run: &str, task: &str) -> Result<Option<TaskState>, StoreError> {
        self.records().task_state(run, task)
    }

    /// Every task of every run that read or wrote the artifact `digest`, newest first.
    pub fn uses_of(&self, digest: &str) -> Result<Vec<ArtifactUse>, StoreError> {
        self.records().uses_of(digest)
    }

    /// The graph a run was recorded with, as JSON ([`NewRun::graph`]); `None` for runs
    /// recorded without one.
    pub fn run_graph(&self, run: &str) -> Result<Option<String>, StoreError> {
        self.records().graph(run)
    }
}

/// Removes a folder tree whose files may be read-only.
fn remove_tree(root: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", root, e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;

    /// A `.process` file naming a sleeping process group of this machine; the process.
    fn left_process(attempt: &Path) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .expect("sleep starts");
        let ticks = crate::process_start_ticks(child.id()).expect("its start tick");
        fs::create_dir_all(attempt).expect("mkdir");
        fs::write(
            attempt.join(PROCESS_FILE),
            format!("{} {ticks}\n", child.id()),
        )
        .expect("write");
        child
    }

    #[test]
    fn run_queries_filter_and_page_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for (i, (name, state)) in [
            ("a", RunState::Succeeded),
            ("b", RunState::Failed),
            ("a", RunState::Failed),
            ("a", RunState::Succeeded),
        ]
        .into_iter()
        .enumerate()
        {
            let run = NewRun {
                name,
                graph: Some(format!("{{\"n\": {i}}}")),
                ..records::tests::pipeline_run()
            };
            let id = store.begin_run(&run, &[]).unwrap();
            store.finish_run(&id, state, None).unwrap();
            ids.push(id);
            // Distinct start times, to the millisecond the records keep.
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        let listed = |q: RunQuery| -> Vec<String> {
            store
                .query_runs(&q)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        let newest: Vec<String> = ids.iter().rev().cloned().collect();
        assert_eq!(listed(RunQuery::default()), newest);
        assert_eq!(
            listed(RunQuery {
                pipeline: Some("a".into()),
                ..RunQuery::default()
            }),
            [ids[3].clone(), ids[2].clone(), ids[0].clone()]
        );
        assert_eq!(
            listed(RunQuery {
                state: Some(RunState::Failed),
                ..RunQuery::default()
            }),
            [ids[2].clone(), ids[1].clone()]
        );
        // A page continues after the last run of the one before.
        let first = listed(RunQuery {
            limit: 2,
            ..RunQuery::default()
        });
        assert_eq!(first, newest[..2]);
        let next = listed(RunQuery {
            limit: 2,
            after: first.last().cloned(),
            ..RunQuery::default()
        });
        assert_eq!(next, newest[2..]);
        let started = store.run(&ids[2]).unwrap().started_at;
        assert_eq!(
            listed(RunQuery {
                since: Some(started),
                ..RunQuery::default()
            }),
            newest[..2]
        );
        assert_eq!(
            listed(RunQuery {
                until: Some(started),
                ..RunQuery::default()
            }),
            newest[2..]
        );
        assert_eq!(
            store.pipelines().unwrap(),
            [("a".to_owned(), 3), ("b".to_owned(), 1)]
        );
        assert_eq!(
            store.run_graph(&ids[1]).unwrap().as_deref(),
            Some("{\"n\": 1}")
        );
        assert!(matches!(
            store.run_graph("nope"),
            Err(StoreError::UnknownRun(_))
        ));
        let (state, tasks) = store.task_states(&ids[1]).unwrap();
        assert_eq!((state, tasks.len()), (RunState::Failed, 0));
    }

    #[test]
    fn only_processes_this_machine_started_are_stopped_after_a_kill() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let run = dir.path().join("run");
        // Handed over to a job: its pid is the job's node's, whatever this machine has.
        let handed = run.join("remote/1");
        let mut remote = left_process(&handed);
        fs::write(handed.join(ATTEMPT_FILE), "{}").expect("write");
        let mut local = left_process(&run.join("local/1"));
        stop_left_processes(&run);
        let status = local.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status:?}"
        );
        assert!(
            remote.try_wait().expect("try_wait").is_none(),
            "a job's process was signalled from the driver's machine"
        );
        let _ = remote.kill();
        let _ = remote.wait();
    }

    /// What a process running as root (which read-only modes do not stop) does to a file.
    fn overwrite(path: &Path, bytes: &[u8]) {
        let mut perms = fs::metadata(path).unwrap().permissions();
        perms.set_mode(0o644);
        fs::set_permissions(path, perms).unwrap();
        fs::write(path, bytes).unwrap();
    }

    /// Ends handed to the journal are all on record once it finishes, but one that cannot
    /// be written, which is named, and which costs the others nothing.
    #[test]
    fn the_journal_writes_every_end_it_is_given_and_names_those_it_cannot() {
        let home = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(home.path()).unwrap());
        let task = |name| NewTask {
            name,
            component: "c".into(),
            component_file: Path::new("p.yaml"),
            component_digest: "sha256:11",
        };
        let names: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        let tasks: Vec<NewTask<'_>> = names.iter().map(|n| task(n.as_str())).collect();
        let run = store
            .begin_run(&records::tests::pipeline_run(), &tasks)
            .unwrap();
        let output = store.put_bytes(b"out").unwrap();
        let end = |task: &str| TaskEndEntry {
            run: run.clone(),
            task: task.to_owned(),
            state: TaskState::Succeeded,
            error: None,
            outputs: vec![IoRecord {
                name: "out".into(),
                type_: None,
                digest: output.digest.clone(),
                size: output.size,
                value: None,
                metadata: None,
            }],
            metrics: BTreeMap::new(),
            last: None,
            at: jiff::Timestamp::now(),
        };
        let journal = Journal::start(store.clone());
        let sender = journal.sender(store.clone());
        let writers: Vec<_> = names
            .chunks(25)
            .map(|chunk| {
                let (sender, chunk) = (sender.clone(), chunk.to_vec());
                let end = chunk.iter().map(|t| end(t)).collect::<Vec<_>>();
                std::thread::spawn(move || {
                    end.into_iter()
                        .for_each(|e| sender.record(JournalEntry::TaskEnd(e)).unwrap())
                })
            })
            .collect();
        // A task the run does not have: its outputs cannot be recorded.
        sender.record(JournalEntry::TaskEnd(end("nobody"))).unwrap();
        drop(sender);
        writers.into_iter().for_each(|w| w.join().unwrap());
        let unrecorded = journal.finish();
        assert_eq!(unrecorded.len(), 1, "{unrecorded:?}");
        assert!(
            unrecorded[0].starts_with("task 'nobody': "),
            "{unrecorded:?}"
        );
        let record = store.run(&run).unwrap();
        assert!(
            record
                .tasks
                .iter()
                .all(|t| t.state == TaskState::Succeeded && t.outputs.len() == 1)
        );
    }

    #[test]
    fn a_home_from_before_folder_digests_keeps_its_folders_and_their_records() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let folder = home.path().join("model");
        fs::create_dir_all(folder.join("variables")).unwrap();
        fs::write(folder.join("variables/data"), b"weights").unwrap();
        let tree = store.ingest(&folder).unwrap();
        let file = store.put_bytes(b"a file").unwrap();
        let run = NewRun {
            kind: RunKind::Pipeline,
            name: "p",
            source: Path::new("p.yaml"),
            source_digest: &file.digest,
            params: BTreeMap::new(),
            flags: Vec::new(),
            graph: None,
        };
        let task = NewTask {
            name: "train",
            component: "c".into(),
            component_file: Path::new("c.yaml"),
            component_digest: &file.digest,
        };
        let reader = NewTask {
            name: "serve",
            component: "c".into(),
            component_file: Path::new("c.yaml"),
            component_digest: &file.digest,
        };
        let id = store.begin_run(&run, &[task, reader]).unwrap();
        let outputs = [&tree, &file].map(|a| IoRecord {
            name: a.digest[..8].to_owned(),
            type_: None,
            digest: a.digest.clone(),
            size: a.size,
            value: None,
            metadata: None,
        });
        let metrics = BTreeMap::new();
        store
            .task_finished(&id, "train", TaskState::Succeeded, None, &outputs, &metrics)
            .unwrap();
        store.set_run_outputs(&id, &outputs).unwrap();
        // A task that read the folder, under a cache key naming it.
        store
            .attempt_started(
                &id,
                "serve",
                &AttemptStart {
                    attempt: 1,
                    implementation: "wasm command",
                    reason: "wasm runs by default",
                    executable_digest: None,
                    inputs: &outputs[..1],
                    cache_key: Some("key-naming-the-folder"),
                    cache_source: true,
                    at: jiff::Timestamp::now(),
                },
            )
            .unwrap();
        drop(store);

        // What a home of schema 6 held: the folder under `sha256/`, named `sha256:`.
        let hex = tree.digest.strip_prefix("sha256-tree:").unwrap();
        let old = format!("sha256:{hex}");
        let artifacts = home.path().join("artifacts");
        fs::create_dir_all(artifacts.join("sha256").join(&hex[..2])).unwrap();
        fs::rename(
            artifacts.join("sha256-tree").join(&hex[..2]).join(hex),
            artifacts.join("sha256").join(&hex[..2]).join(hex),
        )
        .unwrap();
        let db = rusqlite::Connection::open(home.path().join("sluice.db")).unwrap();
        db.execute(
            "UPDATE io SET digest = ?1 WHERE digest = ?2",
            [&old, &tree.digest],
        )
        .unwrap();
        db.execute(
            "UPDATE runs SET outputs = replace(outputs, ?2, ?1)",
            [&old, &tree.digest],
        )
        .unwrap();
        db.execute_batch(
            "ALTER TABLE tasks DROP COLUMN cache_source; ALTER TABLE runs DROP COLUMN pid_start_ticks;
             ALTER TABLE attempts DROP COLUMN ran_on; ALTER TABLE runs DROP COLUMN graph;
             DROP INDEX io_digest; PRAGMA user_version = 6",
        )
            .unwrap();
        drop(db);

        let store = Store::open(home.path()).unwrap();
        let record = store.run(&id).unwrap();
        let digests = |io: &[IoRecord]| io.iter().map(|o| o.digest.clone()).collect::<Vec<_>>();
        assert_eq!(
            digests(&record.tasks[0].outputs),
            [&tree.digest[..], &file.digest[..]]
        );
        assert_eq!(
            digests(&record.outputs),
            [&tree.digest[..], &file.digest[..]]
        );
        store.verify(&tree.digest).unwrap();
        store.verify(&file.digest).unwrap();
        // The reader's cache key named the folder by its old name, which a file can have.
        let db = rusqlite::Connection::open(home.path().join("sluice.db")).unwrap();
        let key: Option<String> = db
            .query_row(
                "SELECT cache_key FROM tasks WHERE name = 'serve'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(key, None);
        let out = home.path().join("exported");
        store.export(&tree.digest, &out).unwrap();
        assert_eq!(fs::read(out.join("variables/data")).unwrap(), b"weights");
    }

    #[test]
    fn garbage_collection_keeps_a_runs_artifact_parameters_no_task_read() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let data = store.put_bytes(b"a parameter's file").unwrap();
        let loose = store.put_bytes(b"nothing refers to this").unwrap();
        let run = NewRun {
            kind: RunKind::Pipeline,
            name: "p",
            source: Path::new("p.yaml"),
            source_digest: "sha256:00",
            params: BTreeMap::from([("data".to_owned(), data.digest.clone())]),
            flags: Vec::new(),
            graph: None,
        };
        let id = store.begin_run(&run, &[]).unwrap();
        store
            .finish_run(&id, RunState::Failed, Some("a task failed"))
            .unwrap();
        let collected = store
            .collect_garbage(&std::collections::HashSet::new(), false)
            .unwrap();
        let removed: Vec<&str> = collected
            .removed
            .iter()
            .map(|s| s.digest.as_str())
            .collect();
        assert_eq!(removed, [loose.digest.as_str()]);
        store.verify(&data.digest).unwrap();
    }

    #[test]
    fn inputs_whose_names_look_alike_are_staged_apart_and_the_store_is_untouched() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let first = store.put_bytes(b"first input").unwrap();
        let second = store.put_bytes(b"second input").unwrap();
        let dir = store.task_dir("run", "task", 1, true, &[], false).unwrap();
        store.stage_input(&dir, "a b", &first.digest).unwrap();
        store.stage_input(&dir, "a_b", &second.digest).unwrap();
        assert_eq!(fs::read(dir.input_file("a b")).unwrap(), b"first input");
        assert_eq!(fs::read(dir.input_file("a_b")).unwrap(), b"second input");
        assert_eq!(store.read(&first.digest).unwrap(), b"first input");
        // The same name twice is refused, and writes nothing anywhere.
        let again = store.stage_input(&dir, "a b", &second.digest).unwrap_err();
        assert!(again.to_string().starts_with("cannot create"), "{again}");
        assert_eq!(store.read(&first.digest).unwrap(), b"first input");
    }

    #[test]
    fn an_artifact_changed_behind_the_stores_back_is_an_error_everywhere() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let stored = store.put_bytes(b"the original").unwrap();
        let dir = store.task_dir("run", "task", 1, true, &[], false).unwrap();
        store.stage_input(&dir, "x", &stored.digest).unwrap();
        // A task that may write where it should not (the process runner, as root)
        // writes through its staged link.
        overwrite(&dir.input_file("x"), b"changed!");
        let corrupt = |e: StoreError| matches!(e, StoreError::Corrupt { .. });
        assert!(corrupt(store.read(&stored.digest).unwrap_err()));
        let dir2 = store.task_dir("run", "task", 2, true, &[], false).unwrap();
        let staged = store.stage_input(&dir2, "x", &stored.digest).unwrap_err();
        assert!(corrupt(staged));
        let out = home.path().join("exported");
        assert!(corrupt(store.export(&stored.digest, &out).unwrap_err()));
        assert!(!out.exists());
    }

    #[test]
    fn storing_bytes_again_replaces_a_changed_copy_of_them() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let stored = store.put_bytes(b"the original").unwrap();
        overwrite(&store.artifact_path(&stored.digest).unwrap(), b"changed!");
        assert!(store.verify(&stored.digest).is_err());
        // The same bytes again, from memory and as a task's output: the store heals.
        assert_eq!(store.put_bytes(b"the original").unwrap(), stored);
        assert_eq!(store.read(&stored.digest).unwrap(), b"the original");
        overwrite(&store.artifact_path(&stored.digest).unwrap(), b"changed!");
        let dir = store
            .task_dir("run", "task", 1, true, &["out"], false)
            .unwrap();
        let out = dir.outputs().join("out").join("data");
        fs::write(&out, b"the original").unwrap();
        assert_eq!(store.ingest(&out).unwrap(), stored);
        assert_eq!(store.read(&stored.digest).unwrap(), b"the original");
    }

    #[test]
    fn exports_are_new_files_and_never_write_into_the_store() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let stored = store.put_bytes(b"model").unwrap();
        let other = store.put_bytes(b"other model").unwrap();
        let dir = store.task_dir("run", "task", 1, true, &[], false).unwrap();
        store.stage_input(&dir, "x", &stored.digest).unwrap();
        // Exporting over a path that is a hard link into the store replaces the link.
        let out = dir.input_file("x");
        store.export(&other.digest, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"other model");
        assert_eq!(store.read(&stored.digest).unwrap(), b"model");
        let mode = fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o222 & !0o200,
            0,
            "group- or world-writable: {mode:o}"
        );
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
    }

    /// Tasks of one run create and remove their folders side by side; on a fast file
    /// system, pruning the run's folder when it was briefly empty made another task's
    /// `mkdir` fail. Run on tmpfs where there is one, where the race shows most.
    #[test]
    fn task_folders_made_and_removed_at_once_never_fail() {
        let shm = Path::new("/dev/shm");
        let home = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let store = Store::open(home.path()).unwrap();
        std::thread::scope(|s| {
            for worker in 0..4 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..2_000 {
                        let task = format!("t{worker}-{i}");
                        let dir = store
                            .task_dir("run", &task, 1, true, &["out"], false)
                            .unwrap();
                        store.remove_task_dir(&dir).unwrap();
                    }
                });
            }
        });
        assert!(home.path().join("runs/run").is_dir());
        assert_eq!(
            fs::read_dir(home.path().join("runs/run")).unwrap().count(),
            0
        );
    }

    #[test]
    fn names_cannot_escape_their_folder() {
        assert_eq!(path_segment("MLPipeline Metrics"), "MLPipeline%20Metrics");
        assert_eq!(path_segment("fitted_stats"), "fitted_stats");
        assert_eq!(path_segment("../../etc"), "%2E.%2F..%2Fetc");
        assert_eq!(path_segment(".."), "%2E.");
        assert_eq!(path_segment(""), "%");
        assert_eq!(path_segment("café"), "caf%C3%A9");
    }

    #[test]
    fn no_two_names_share_a_folder() {
        let names = [
            "a b", "a_b", "a__b", "a%20b", "a%2520b", "a/b", "a\\b", ".a", "%2Ea", "_", "", "%",
            "a.b", "A b", "a\u{0}b",
        ];
        let mut seen = BTreeMap::new();
        for name in names {
            let segment = path_segment(name);
            assert!(
                !segment.contains('/') && !segment.starts_with('.'),
                "{name:?}"
            );
            if let Some(other) = seen.insert(segment.clone(), name) {
                panic!("{name:?} and {other:?} both map to {segment}");
            }
        }
    }
}
