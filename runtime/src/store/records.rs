//! Run records in SQLite: runs, their tasks and attempts, every input and output with its
//! digest, metrics, captured logs and errors. Each change is one transaction. Owns the
//! schema and its version (`PRAGMA user_version`); nothing else writes SQL.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The columns of `runs` that [`run_from_row`] reads, in its order.
macro_rules! run_columns {
    () => {
        "id, kind, name, source, source_digest, params, state, error, started_at, ended_at, pid, deploy, outputs, flags, pid_start_ticks"
    };
}
const SCHEMA_VERSION: i64 = 11;

const SCHEMA: &str = r#"
CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    source         TEXT NOT NULL,
    source_digest  TEXT NOT NULL,
    params         TEXT NOT NULL,
    state          TEXT NOT NULL,
    error          TEXT,
    pid            INTEGER NOT NULL,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    deploy         TEXT,
    outputs        TEXT,
    flags          TEXT,
    pid_start_ticks INTEGER,
    graph          TEXT
);
CREATE TABLE tasks (
    run_id            TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    position          INTEGER NOT NULL,
    component         TEXT NOT NULL,
    component_file    TEXT NOT NULL,
    component_digest  TEXT NOT NULL,
    implementation    TEXT,
    implementation_reason TEXT,
    executable_digest TEXT,
    state             TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    started_at        TEXT,
    ended_at          TEXT,
    error             TEXT,
    cache_key         TEXT,
    cached_from       TEXT,
    cache_source      INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    task        TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    state       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    error       TEXT,
    ran_on      TEXT,
    PRIMARY KEY (run_id, task, attempt),
    FOREIGN KEY (run_id, task) REFERENCES tasks(run_id, name) ON DELETE CASCADE
);
CREATE TABLE io (
    run_id     TEXT NOT NULL,
    task       TEXT NOT NULL,
    direction  TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    name       TEXT NOT NULL,
    type       TEXT,
    digest     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    value      TEXT,
    metadata   TEXT,
    PRIMARY KEY (run_id, task, direction, name),
    FOREIGN KEY (run_id, task) REFERENCES tasks(run_id, name) ON DELETE CASCADE
);
CREATE TABLE metrics (
    run_id  TEXT NOT NULL,
    task    TEXT NOT NULL,
    name    TEXT NOT NULL,
    value   REAL NOT NULL,
    PRIMARY KEY (run_id, task, name),
    FOREIGN KEY (run_id, task) REFERENCES tasks(run_id, name) ON DELETE CASCADE
);
CREATE TABLE logs (
    run_id     TEXT NOT NULL,
    task       TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    stream     TEXT NOT NULL,
    content    TEXT NOT NULL,
    omitted    INTEGER NOT NULL,
    PRIMARY KEY (run_id, task, attempt, stream),
    FOREIGN KEY (run_id, task) REFERENCES tasks(run_id, name) ON DELETE CASCADE
);
CREATE INDEX runs_started ON runs(started_at);
CREATE INDEX tasks_cache ON tasks(cache_key, ended_at) WHERE cache_key IS NOT NULL;
CREATE INDEX tasks_order ON tasks(run_id, position);
CREATE INDEX io_digest ON io(digest);
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Recorded as running by a process that is gone.
    Interrupted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),* }
            }
            fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($ty::$variant),)* _ => None }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(RunState {
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
    Interrupted => "interrupted",
});

text_enum!(TaskState {
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Skipped => "skipped",
    Cancelled => "cancelled",
});

impl TaskState {
    pub fn is_final(self) -> bool {
        !matches!(self, TaskState::Pending | TaskState::Running)
    }
}

/// Each step from one schema version to the next, applied in order to older databases.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "ALTER TABLE tasks ADD COLUMN implementation_reason TEXT;",
    ),
    (2, "ALTER TABLE runs ADD COLUMN deploy TEXT;"),
    (
        3,
        "ALTER TABLE tasks ADD COLUMN cache_key TEXT;
         ALTER TABLE tasks ADD COLUMN cached_from TEXT;
         ALTER TABLE io ADD COLUMN metadata TEXT;
         CREATE INDEX tasks_cache ON tasks(cache_key) WHERE cache_key IS NOT NULL;",
    ),
    (4, "ALTER TABLE runs ADD COLUMN outputs TEXT;"),
    (5, "ALTER TABLE runs ADD COLUMN flags TEXT;"),
    // Folder artifacts are named `sha256-tree:` from version 7 on; the records' names
    // for them are rewritten by `rename_trees`, which knows which digests are folders.
    (6, ""),
    // A task whose caching is off records its key (a resumed run matches it) but is no
    // source for other tasks' cache.
    (
        7,
        "ALTER TABLE tasks ADD COLUMN cache_source INTEGER NOT NULL DEFAULT 1;",
    ),
    // A run's tasks are read in order without a sort; the cache finds the newest task of
    // a key without sorting them all; a run records when its process started, to tell
    // that process from another with its id.
    (
        8,
        "CREATE INDEX IF NOT EXISTS tasks_order ON tasks(run_id, position);
         DROP INDEX IF EXISTS tasks_cache;
         CREATE INDEX tasks_cache ON tasks(cache_key, ended_at) WHERE cache_key IS NOT NULL;
         ALTER TABLE runs ADD COLUMN pid_start_ticks INTEGER;",
    ),
    // An attempt run elsewhere (a Slurm job) records where.
    (9, "ALTER TABLE attempts ADD COLUMN ran_on TEXT;"),
    // A run keeps its plan's graph for drawing; an artifact's readers and producers are
    // found by its digest.
    (
        10,
        "ALTER TABLE runs ADD COLUMN graph TEXT;
         CREATE INDEX io_digest ON io(digest);",
    ),
];

/// The schema version from which folder artifacts have their own digest algorithm.
const TREE_DIGESTS: i64 = 7;

/// Renames every record of the folder artifacts `trees` (hex digests) from `sha256:` to
/// `sha256-tree:`: task inputs and outputs, and runs' outputs. A task that read a folder
/// loses its cache key, which named the folder as `sha256:` and so would also be the key
/// of the same task reading a file whose bytes are that folder's manifest.
fn rename_trees(tx: &rusqlite::Transaction<'_>, trees: &[String]) -> Result<(), StoreError> {
    let mut io = tx
        .prepare("UPDATE io SET digest = ?2 WHERE digest = ?1")
        .map_err(db_err)?;
    let mut keys = tx
        .prepare(
            "UPDATE tasks SET cache_key = NULL WHERE cache_key IS NOT NULL AND EXISTS (
                 SELECT 1 FROM io WHERE io.run_id = tasks.run_id AND io.task = tasks.name
                     AND io.direction = 'input' AND io.digest = ?1)",
        )
        .map_err(db_err)?;
    let mut runs = tx
        .prepare("UPDATE runs SET outputs = replace(outputs, ?1, ?2) WHERE instr(outputs, ?1) > 0")
        .map_err(db_err)?;
    for hex in trees {
        let old = format!("sha256:{hex}");
        let new = format!("sha256-tree:{hex}");
        io.execute(rusqlite::params![old, new]).map_err(db_err)?;
        keys.execute(rusqlite::params![new]).map_err(db_err)?;
        runs.execute(rusqlite::params![old, new]).map_err(db_err)?;
    }
    Ok(())
}

/// A file's path as a run record keeps it: absolute (against the current folder),
/// never resolved through symbolic links.
fn recorded_path(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// What starts a run record.
#[derive(Clone, Debug)]
pub struct NewRun<'a> {
    pub kind: RunKind,
    pub name: &'a str,
    pub source: &'a Path,
    pub source_digest: &'a str,
    pub params: BTreeMap<String, String>,
    /// How the run was started, as command-line flags in their canonical spelling
    /// (`["--runner", "process", "--keep-going"]`): what a resumed or repeated run takes
    /// again unless it is given others. Never credentials.
    pub flags: Vec<String>,
    /// The plan's graph as JSON (`plan::Graph`), kept for drawing the run; the store
    /// does not read it.
    pub graph: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Pipeline,
    Component,
}

text_enum!(RunKind {
    Pipeline => "pipeline",
    Component => "component",
});

#[derive(Clone, Debug)]
pub struct NewTask<'a> {
    pub name: &'a str,
    pub component: String,
    pub component_file: &'a Path,
    pub component_digest: &'a str,
}

/// How one attempt of a task ended, as recorded.
#[derive(Clone, Copy, Debug)]
pub struct AttemptEnd<'a> {
    pub attempt: u32,
    pub state: TaskState,
    pub error: Option<&'a str>,
    pub logs: &'a [LogRecord],
    /// Where it ran, when not in the driver's process (`Slurm job 404 on node2`).
    pub ran_on: Option<&'a str>,
}

/// An attempt's start, as recorded.
#[derive(Clone, Copy, Debug)]
pub struct AttemptStart<'a> {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// How the attempt runs (`wasm`, `container <image>`, ...) and why.
    pub implementation: &'a str,
    pub reason: &'a str,
    /// The digest of what runs (a wasm component's bytes, an image id), when known.
    pub executable_digest: Option<&'a str>,
    /// The task's inputs, recorded with its first attempt.
    pub inputs: &'a [IoRecord],
    /// The task's cache key: what a resumed run matches it by, and, when it is a
    /// `cache_source`, what later tasks find its outputs under.
    pub cache_key: Option<&'a str>,
    /// Whether other tasks may take its outputs from the task cache (its caching is on).
    pub cache_source: bool,
    /// When it started.
    pub at: Timestamp,
}

/// A task taken as done with the outputs of an earlier one (the task cache, a resumed
/// run), as recorded.
#[derive(Clone, Copy, Debug)]
pub struct Reuse<'a> {
    /// The inputs it would have run with.
    pub inputs: &'a [IoRecord],
    /// The task whose outputs it takes.
    pub cached: &'a CachedTask,
    /// The digest of the executable it would have run.
    pub executable_digest: Option<&'a str>,
    /// Its own cache key, when it has one.
    pub cache_key: Option<&'a str>,
    /// Whether other tasks may take these outputs from it through the task cache.
    pub cache_source: bool,
}

/// A task's end as [`super::Journal`] holds it until it is written: what
/// [`TaskEnd`] and its last [`AttemptEnd`] say, owned.
#[derive(Clone, Debug)]
pub struct TaskEndEntry {
    pub run: String,
    pub task: String,
    pub state: TaskState,
    pub error: Option<String>,
    pub outputs: Vec<IoRecord>,
    pub metrics: BTreeMap<String, f64>,
    /// Its last attempt's end, when it had an attempt.
    pub last: Option<AttemptEntry>,
    /// When it ended.
    pub at: Timestamp,
}

/// An attempt's end, owned ([`AttemptEnd`]), its start recorded before it.
#[derive(Clone, Debug)]
pub struct AttemptEntry {
    pub attempt: u32,
    pub state: TaskState,
    pub error: Option<String>,
    pub logs: Vec<LogRecord>,
    pub ran_on: Option<String>,
}

/// What a run's journal records, in the order its tasks handed it over.
#[derive(Clone, Debug)]
pub enum JournalEntry {
    /// An attempt started.
    Start {
        run: String,
        task: String,
        start: StartEntry,
    },
    /// An attempt ended that is not its task's last: another follows.
    AttemptEnd {
        run: String,
        task: String,
        end: AttemptEntry,
        /// When it ended.
        at: Timestamp,
    },
    /// A task ended, with its last attempt.
    TaskEnd(TaskEndEntry),
}

impl JournalEntry {
    /// The task the entry is of.
    pub fn task(&self) -> &str {
        match self {
            JournalEntry::Start { task, .. } | JournalEntry::AttemptEnd { task, .. } => task,
            JournalEntry::TaskEnd(end) => &end.task,
        }
    }
}

impl StartEntry {
    fn borrowed(&self) -> AttemptStart<'_> {
        AttemptStart {
            attempt: self.attempt,
            implementation: &self.implementation,
            reason: &self.reason,
            executable_digest: self.executable_digest.as_deref(),
            inputs: &self.inputs,
            cache_key: self.cache_key.as_deref(),
            cache_source: self.cache_source,
            at: self.at,
        }
    }
}

impl AttemptEntry {
    fn borrowed(&self) -> AttemptEnd<'_> {
        AttemptEnd {
            attempt: self.attempt,
            state: self.state,
            error: self.error.as_deref(),
            logs: &self.logs,
            ran_on: self.ran_on.as_deref(),
        }
    }
}

/// An attempt's start, owned ([`AttemptStart`]).
#[derive(Clone, Debug)]
pub struct StartEntry {
    pub attempt: u32,
    pub implementation: String,
    pub reason: String,
    pub executable_digest: Option<String>,
    pub inputs: Vec<IoRecord>,
    pub cache_key: Option<String>,
    pub cache_source: bool,
    pub at: Timestamp,
}

/// How a task ended, as recorded: on success, its outputs and metrics.
#[derive(Clone, Copy, Debug)]
pub struct TaskEnd<'a> {
    pub state: TaskState,
    pub error: Option<&'a str>,
    pub outputs: &'a [IoRecord],
    pub metrics: &'a BTreeMap<String, f64>,
}

fn record_attempt_start(
    tx: &rusqlite::Transaction<'_>,
    run: &str,
    task: &str,
    start: &AttemptStart<'_>,
) -> Result<(), StoreError> {
    let at = ts(start.at);
    exec(
        tx,
        "UPDATE tasks SET state = 'running', attempts = ?3, implementation = ?4,
             implementation_reason = ?5, executable_digest = ?6,
             started_at = COALESCE(started_at, ?7), error = NULL,
             cache_key = COALESCE(?8, cache_key), cache_source = ?9
         WHERE run_id = ?1 AND name = ?2",
        params![
            run,
            task,
            start.attempt,
            start.implementation,
            start.reason,
            start.executable_digest,
            at,
            start.cache_key,
            start.cache_source,
        ],
    )
    .map_err(db_err)?;
    exec(tx,
        "INSERT INTO attempts (run_id, task, attempt, state, started_at) VALUES (?1, ?2, ?3, 'running', ?4)",
        params![run, task, start.attempt, at],
    )
    .map_err(db_err)?;
    if start.attempt == 1 {
        insert_io(tx, run, task, "input", start.inputs)?;
    }
    Ok(())
}

/// A task's final state, and on success its outputs and metrics; with `last`, the end of
/// its last attempt first.
fn record_task_end(
    tx: &rusqlite::Transaction<'_>,
    run: &str,
    task: &str,
    end: &TaskEnd<'_>,
    last: Option<&AttemptEnd<'_>>,
    at: Timestamp,
) -> Result<(), StoreError> {
    if let Some(attempt) = last {
        record_attempt_end(tx, run, task, attempt, at)?;
    }
    let now = ts(at);
    exec(
        tx,
        "UPDATE tasks SET state = ?3, error = ?4,
             ended_at = CASE WHEN started_at IS NULL THEN NULL ELSE ?5 END
         WHERE run_id = ?1 AND name = ?2",
        params![run, task, end.state.as_str(), end.error, now],
    )
    .map_err(db_err)?;
    insert_io(tx, run, task, "output", end.outputs)?;
    for (name, value) in end.metrics {
        exec(
            tx,
            "INSERT OR REPLACE INTO metrics (run_id, task, name, value) VALUES (?1, ?2, ?3, ?4)",
            params![run, task, name, value],
        )
        .map_err(db_err)?;
    }
    Ok(())
}

/// An attempt's end, which happened `at`.
fn record_attempt_end(
    tx: &rusqlite::Transaction<'_>,
    run: &str,
    task: &str,
    end: &AttemptEnd<'_>,
    at: Timestamp,
) -> Result<(), StoreError> {
    exec(
        tx,
        "UPDATE attempts SET state = ?4, ended_at = ?5, error = ?6, ran_on = ?7
         WHERE run_id = ?1 AND task = ?2 AND attempt = ?3",
        params![
            run,
            task,
            end.attempt,
            end.state.as_str(),
            ts(at),
            end.error,
            end.ran_on
        ],
    )
    .map_err(db_err)?;
    for log in end.logs {
        exec(
            tx,
            "INSERT OR REPLACE INTO logs (run_id, task, attempt, stream, content, omitted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                run,
                task,
                end.attempt,
                log.stream,
                log.content,
                log.omitted as i64
            ],
        )
        .map_err(db_err)?;
    }
    Ok(())
}

/// A succeeded task whose outputs another task with the same cache key may reuse.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedTask {
    pub run: String,
    pub task: String,
    pub outputs: Vec<IoRecord>,
    pub metrics: BTreeMap<String, f64>,
}

/// One input or output of a task as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IoRecord {
    pub name: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub digest: String,
    pub size: u64,
    /// The text of a parameter value (inputs given by value, parameter-typed outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// An artifact's metadata, as a KFP step reported it in its executor output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub state: TaskState,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub error: Option<String>,
    /// Where it ran, when not in the driver's process (`Slurm job 404 on node2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ran_on: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub name: String,
    pub component: String,
    pub component_file: String,
    pub component_digest: String,
    pub implementation: Option<String>,
    /// Why that implementation ran.
    pub implementation_reason: Option<String>,
    pub executable_digest: Option<String>,
    pub state: TaskState,
    pub attempts: u32,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub error: Option<String>,
    /// `run/task` whose outputs this task reused instead of running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<String>,
    pub inputs: Vec<IoRecord>,
    pub outputs: Vec<IoRecord>,
    pub metrics: BTreeMap<String, f64>,
    pub attempt_history: Vec<AttemptRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub kind: RunKind,
    pub name: String,
    pub source: String,
    pub source_digest: String,
    pub params: BTreeMap<String, String>,
    pub state: RunState,
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// What became of the pipeline's `deploy` section, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployRecord>,
    /// What the pipeline itself outputs (a KFP pipeline's return values): parameter
    /// values and artifacts, by name, once the run has ended with them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<IoRecord>,
    /// How the run was started ([`NewRun::flags`]).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Empty in listings; filled by [`Records::run`].
    pub tasks: Vec<TaskRecord>,
}

/// The outcome of a run's deploy section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeployRecord {
    pub model: String,
    pub state: DeployState,
    /// The version published, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Why nothing was deployed, or what became of the new version.
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployState {
    /// Published (and, when a server runs, serving).
    Deployed,
    /// Not attempted: the run failed or the gate did not hold.
    Skipped,
    /// Attempted and failed: the predictor rejected the model, say.
    Failed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub attempt: u32,
    pub stream: String,
    pub content: String,
    /// Bytes dropped from the middle because the capture was full.
    pub omitted: u64,
}

/// Which runs a listing shows: newest first, filtered, a page at a time.
#[derive(Clone, Debug)]
pub struct RunQuery {
    /// Only runs of this pipeline (its name).
    pub pipeline: Option<String>,
    pub state: Option<RunState>,
    /// Only runs started at or after this moment.
    pub since: Option<Timestamp>,
    /// Only runs started before this moment.
    pub until: Option<Timestamp>,
    /// Only runs after this one (the last of the previous page) in the listing's order.
    pub after: Option<String>,
    /// Most runs returned.
    pub limit: usize,
}

impl Default for RunQuery {
    fn default() -> Self {
        RunQuery {
            pipeline: None,
            state: None,
            since: None,
            until: None,
            after: None,
            limit: 50,
        }
    }
}

/// Whether a task read an artifact or wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Input,
    Output,
}

/// A task that read or wrote an artifact, as [`super::Store::uses_of`] finds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactUse {
    pub run: String,
    /// The run's pipeline name.
    pub pipeline: String,
    pub task: String,
    pub direction: Direction,
    /// The input's or output's name.
    pub name: String,
    /// When the run started.
    pub started_at: Timestamp,
}

pub(super) struct Records {
    conn: Connection,
    /// The runs opening the database found interrupted and ended.
    pub(super) interrupted: Vec<String>,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Records {
    /// Opens the run database, creating or migrating its schema. Several processes may
    /// do so at once: SQLite answers some of the steps of opening a new database (its
    /// switch to WAL, the first reads of the WAL index) with "busy" at once rather than
    /// through the busy handler, so the whole sequence is retried for up to 10 s.
    ///
    /// `trees` is called when a database older than folder digests of their own is
    /// migrated: it moves the store's folders to their new place and returns the hex of
    /// every folder artifact, whose names the records then take.
    pub(super) fn open(
        path: &Path,
        trees: &dyn Fn() -> Result<Vec<String>, StoreError>,
    ) -> Result<Records, StoreError> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(2);
        loop {
            match Records::try_open(path, trees) {
                Err(StoreError::Database(e))
                    if is_busy(&e) && started.elapsed() < std::time::Duration::from_secs(10) =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn try_open(
        path: &Path,
        trees: &dyn Fn() -> Result<Vec<String>, StoreError>,
    ) -> Result<Records, StoreError> {
        let mut conn = Connection::open(path).map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err)?;
        // Read the version and create or migrate under one immediate transaction: of
        // several processes opening a new home at once, one creates the schema and the
        // others, waiting on the lock, then read its version and find nothing to do.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db_err)?;
        match version {
            0 => {
                tx.execute_batch(&format!("{SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};"))
                    .map_err(db_err)?;
            }
            SCHEMA_VERSION => {}
            older if older < SCHEMA_VERSION => {
                let steps: String = MIGRATIONS
                    .iter()
                    .filter(|(from, _)| *from >= older)
                    .map(|(_, sql)| *sql)
                    .collect();
                tx.execute_batch(&format!("{steps} PRAGMA user_version = {SCHEMA_VERSION};"))
                    .map_err(db_err)?;
                if older < TREE_DIGESTS {
                    rename_trees(&tx, &trees()?)?;
                }
            }
            newer => {
                return Err(StoreError::SchemaVersion {
                    path: path.to_owned(),
                    found: newer,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        tx.commit().map_err(db_err)?;
        let mut records = Records {
            conn,
            interrupted: Vec::new(),
        };
        records.interrupted = records.end_interrupted()?;
        Ok(records)
    }

    /// A write transaction, taking the write lock at its start (`BEGIN IMMEDIATE`). A
    /// deferred one that reads first could not wait for the lock: once another process
    /// has written since its read, SQLite fails its first write with "database is locked"
    /// at once, past the busy timeout.
    fn write(&mut self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    }

    /// Ends every run recorded as running by a Sluice process that is gone (killed, or
    /// unable to write its record's end, as on a full disk): the run `interrupted`, its
    /// running tasks and attempts `failed` and its pending tasks `skipped`, each with the
    /// reason. Returns the runs it ended.
    pub(super) fn end_interrupted(&mut self) -> Result<Vec<String>, StoreError> {
        type Running = (String, u32, Option<String>, Option<i64>);
        let running: Vec<Running> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT id, pid, started_at, pid_start_ticks FROM runs WHERE state = 'running'",
                )
                .map_err(db_err)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?
        };
        let mut ended = Vec::new();
        for (id, pid, started, ticks) in running {
            let started = started.as_deref().and_then(|t| t.parse().ok());
            if crate::process_alive(pid, started, ticks.map(|t| t as u64)) {
                continue;
            }
            // When it was last seen doing something: its record's latest moment, not
            // when this process happened to look.
            let now: String = self
                .conn
                .query_row(
                    "SELECT MAX(t) FROM (
                         SELECT started_at AS t FROM runs WHERE id = ?1
                         UNION ALL SELECT started_at FROM tasks WHERE run_id = ?1
                         UNION ALL SELECT ended_at FROM tasks WHERE run_id = ?1
                         UNION ALL SELECT started_at FROM attempts WHERE run_id = ?1
                         UNION ALL SELECT ended_at FROM attempts WHERE run_id = ?1)",
                    [&id],
                    |r| r.get::<_, Option<String>>(0),
                )
                .map_err(db_err)?
                .unwrap_or_else(|| ts(Timestamp::now()));
            let why = format!(
                "interrupted: the Sluice process running it (pid {pid}) ended before the run did"
            );
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db_err)?;
            // Another process may have ended it meanwhile.
            let still: bool = tx
                .query_row(
                    "SELECT state = 'running' FROM runs WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            if !still {
                continue;
            }
            tx.execute(
                "UPDATE attempts SET state = 'failed', error = COALESCE(error, ?2), ended_at = ?3
                 WHERE run_id = ?1 AND state = 'running'",
                params![id, why, now],
            )
            .map_err(db_err)?;
            tx.execute(
                "UPDATE tasks SET state = 'failed', error = COALESCE(error, ?2), ended_at = ?3
                 WHERE run_id = ?1 AND state = 'running'",
                params![id, why, now],
            )
            .map_err(db_err)?;
            tx.execute(
                "UPDATE tasks SET state = 'skipped', error = COALESCE(error, ?2), ended_at = ?3
                 WHERE run_id = ?1 AND state = 'pending'",
                params![
                    id,
                    "not recorded as started: the run was interrupted (an attempt's start is \
                     recorded a few milliseconds after it, so it may have run)",
                    now
                ],
            )
            .map_err(db_err)?;
            tx.execute(
                "UPDATE runs SET state = 'interrupted', error = ?2, ended_at = ?3 WHERE id = ?1",
                params![id, why, now],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            ended.push(id);
        }
        Ok(ended)
    }

    /// Every artifact digest a run refers to: its tasks' inputs and outputs, and its own
    /// outputs.
    pub(super) fn referenced_digests(
        &self,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut digests = std::collections::HashSet::new();
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT digest FROM io")
            .map_err(db_err)?;
        for digest in stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err)?
        {
            digests.insert(digest.map_err(db_err)?);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT outputs FROM runs WHERE outputs IS NOT NULL")
            .map_err(db_err)?;
        for text in stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err)?
        {
            let outputs: Vec<IoRecord> =
                serde_json::from_str(&text.map_err(db_err)?).unwrap_or_default();
            digests.extend(outputs.into_iter().map(|o| o.digest));
        }
        // A run's artifact parameters are recorded by digest: a resumed or repeated run
        // reads them again, whether or not a task of the run got to read them. (A text
        // parameter that happens to look like a digest keeps that artifact too.)
        let mut stmt = self
            .conn
            .prepare("SELECT params FROM runs")
            .map_err(db_err)?;
        for text in stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err)?
        {
            let params: BTreeMap<String, String> =
                serde_json::from_str(&text.map_err(db_err)?).unwrap_or_default();
            digests.extend(
                params
                    .into_values()
                    .filter(|v| v.starts_with("sha256:") || v.starts_with("sha256-tree:")),
            );
        }
        Ok(digests)
    }

    /// When the earliest run that is still running started, if any runs.
    pub(super) fn running_since(&self) -> Result<Option<Timestamp>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT pid, started_at, pid_start_ticks FROM runs WHERE state = 'running'")
            .map_err(db_err)?;
        let rows: Vec<(u32, Option<String>, Option<i64>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db_err)?
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .filter_map(|(pid, started, ticks)| {
                let started = started.and_then(|t| t.parse::<Timestamp>().ok());
                crate::process_alive(pid, started, ticks.map(|t| t as u64))
                    .then_some(started)
                    .flatten()
            })
            .min())
    }

    /// Records a new run with its tasks, all pending, and returns its id. Paths are
    /// recorded absolute, so the run can be resumed or rerun from any folder.
    pub(super) fn begin_run(
        &mut self,
        run: &NewRun<'_>,
        tasks: &[NewTask<'_>],
    ) -> Result<String, StoreError> {
        let tx = self.write().map_err(db_err)?;
        let now = Timestamp::now();
        let mut id = new_run_id(now);
        while tx
            .query_row("SELECT 1 FROM runs WHERE id = ?1", [&id], |_| Ok(()))
            .optional()
            .map_err(db_err)?
            .is_some()
        {
            id = new_run_id(now);
        }
        exec(&tx,
            "INSERT INTO runs (id, kind, name, source, source_digest, params, state, pid, started_at, flags, pid_start_ticks, graph)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9, ?10, ?11)",
            params![
                id,
                run.kind.as_str(),
                run.name,
                recorded_path(run.source),
                run.source_digest,
                serde_json::to_string(&run.params).expect("params serialise"),
                std::process::id(),
                ts(now),
                serde_json::to_string(&run.flags).expect("flags serialise"),
                crate::process_start_ticks(std::process::id()).map(|t| t as i64),
                run.graph,
            ],
        )
        .map_err(db_err)?;
        for (position, task) in tasks.iter().enumerate() {
            exec(&tx,
                "INSERT INTO tasks (run_id, name, position, component, component_file, component_digest, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
                params![
                    id,
                    task.name,
                    position as i64,
                    task.component,
                    recorded_path(task.component_file),
                    task.component_digest,
                ],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(id)
    }

    pub(super) fn attempt_started(
        &mut self,
        run: &str,
        task: &str,
        start: &AttemptStart<'_>,
    ) -> Result<(), StoreError> {
        let tx = self.write().map_err(db_err)?;
        record_attempt_start(&tx, run, task, start)?;
        tx.commit().map_err(db_err)
    }

    pub(super) fn attempt_finished(
        &mut self,
        run: &str,
        task: &str,
        attempt: &AttemptEnd<'_>,
    ) -> Result<(), StoreError> {
        let tx = self.write().map_err(db_err)?;
        record_attempt_end(&tx, run, task, attempt, Timestamp::now())?;
        tx.commit().map_err(db_err)
    }

    /// Records a task's final state, and on success its outputs and metrics; with
    /// `last`, the end of its last attempt too, in the same transaction.
    pub(super) fn task_finished(
        &mut self,
        run: &str,
        task: &str,
        end: &TaskEnd<'_>,
        last: Option<&AttemptEnd<'_>>,
    ) -> Result<(), StoreError> {
        let tx = self.write().map_err(db_err)?;
        record_task_end(&tx, run, task, end, last, Timestamp::now())?;
        tx.commit().map_err(db_err)
    }

    /// Records `entries`, in order, in one transaction: all or none.
    pub(super) fn journal(&mut self, entries: &[JournalEntry]) -> Result<(), StoreError> {
        let tx = self.write().map_err(db_err)?;
        for entry in entries {
            match entry {
                JournalEntry::Start { run, task, start } => {
                    record_attempt_start(&tx, run, task, &start.borrowed())?;
                }
                JournalEntry::AttemptEnd { run, task, end, at } => {
                    record_attempt_end(&tx, run, task, &end.borrowed(), *at)?;
                }
                JournalEntry::TaskEnd(e) => {
                    let last = e.last.as_ref().map(AttemptEntry::borrowed);
                    let end = TaskEnd {
                        state: e.state,
                        error: e.error.as_deref(),
                        outputs: &e.outputs,
                        metrics: &e.metrics,
                    };
                    record_task_end(&tx, &e.run, &e.task, &end, last.as_ref(), e.at)?;
                }
            }
        }
        tx.commit().map_err(db_err)
    }

    /// Adds a task to a running run, after the tasks it already has: for pipelines whose
    /// tasks are known only as they run (loops over values computed by the run).
    pub(super) fn add_task(&mut self, run: &str, task: &NewTask<'_>) -> Result<(), StoreError> {
        exec(
            &self.conn,
            "INSERT INTO tasks (run_id, name, position, component, component_file, component_digest, state)
             VALUES (?1, ?2, (SELECT COALESCE(MAX(position), -1) + 1 FROM tasks WHERE run_id = ?1),
                     ?3, ?4, ?5, 'pending')",
            params![
                run,
                task.name,
                task.component,
                task.component_file.display().to_string(),
                task.component_digest,
            ],
        )
        .map_err(db_err)?;
        Ok(())
    }

    pub(super) fn set_cache_key(
        &mut self,
        run: &str,
        task: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        exec(
            &self.conn,
            "UPDATE tasks SET cache_key = ?3 WHERE run_id = ?1 AND name = ?2",
            params![run, task, key],
        )
        .map_err(db_err)?;
        Ok(())
    }

    /// The succeeded tasks, of any run, recorded under `key` and ended at or after
    /// `ended_since` (all of them without it), newest first, at most `limit`, each with the
    /// task it itself reused (`RUN/TASK`), if it did. A task that
    /// itself reused another's outputs counts too, but not against a staleness bound: its
    /// end says when it was reused, not when its outputs were made (the task that made
    /// them has the same key, and counts by its own end).
    pub(super) fn cache_candidates(
        &self,
        key: &str,
        ended_since: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let since = ended_since.map(ts).unwrap_or_default();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT run_id, name, cached_from FROM tasks
                 WHERE cache_key = ?1 AND state = 'succeeded' AND cache_source = 1
                   AND (?2 = '' OR (ended_at >= ?2 AND cached_from IS NULL))
                 ORDER BY ended_at DESC LIMIT ?3",
            )
            .map_err(db_err)?;
        stmt.query_map(params![key, since, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)
    }

    /// Whether task `task` of run `run` succeeded under cache key `key`.
    pub(super) fn succeeded_in_run(
        &self,
        run: &str,
        task: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT 1 FROM tasks
                 WHERE run_id = ?1 AND name = ?2 AND cache_key = ?3 AND state = 'succeeded'",
            )
            .and_then(|mut stmt| stmt.exists([run, task, key]))
            .map_err(db_err)
    }

    /// A recorded task's outputs and metrics, as a task that reuses them takes them.
    pub(super) fn cached_task(&self, run: &str, task: &str) -> Result<CachedTask, StoreError> {
        let (run, task) = (run.to_owned(), task.to_owned());
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, type, digest, size, value, metadata FROM io
                 WHERE run_id = ?1 AND task = ?2 AND direction = 'output' ORDER BY rowid",
            )
            .map_err(db_err)?;
        let outputs = stmt
            .query_map([&run, &task], |r| {
                Ok(IoRecord {
                    name: r.get(0)?,
                    type_: r.get(1)?,
                    digest: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    value: r.get(4)?,
                    metadata: r
                        .get::<_, Option<String>>(5)?
                        .and_then(|text| serde_json::from_str(&text).ok()),
                })
            })
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        let mut stmt = self
            .conn
            .prepare("SELECT name, value FROM metrics WHERE run_id = ?1 AND task = ?2")
            .map_err(db_err)?;
        let metrics = stmt
            .query_map([&run, &task], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_err)?
            .collect::<Result<BTreeMap<String, f64>, _>>()
            .map_err(db_err)?;
        Ok(CachedTask {
            run,
            task,
            outputs,
            metrics,
        })
    }

    /// Records a task as succeeded with the outputs of the cached task it reused.
    pub(super) fn task_reused(
        &mut self,
        run: &str,
        task: &str,
        reuse: &Reuse<'_>,
    ) -> Result<(), StoreError> {
        let Reuse {
            inputs,
            cached,
            executable_digest,
            cache_key,
            cache_source,
        } = *reuse;
        let tx = self.write().map_err(db_err)?;
        let now = ts(Timestamp::now());
        exec(
            &tx,
            "UPDATE tasks SET state = 'succeeded', started_at = ?3, ended_at = ?3, cached_from = ?4,
                 implementation = 'cache', executable_digest = ?5,
                 cache_key = COALESCE(?6, cache_key), cache_source = ?7
             WHERE run_id = ?1 AND name = ?2",
            params![
                run,
                task,
                now,
                format!("{}/{}", cached.run, cached.task),
                executable_digest,
                cache_key,
                cache_source
            ],
        )
        .map_err(db_err)?;
        insert_io(&tx, run, task, "input", inputs)?;
        insert_io(&tx, run, task, "output", &cached.outputs)?;
        for (name, value) in &cached.metrics {
            exec(&tx,
                "INSERT OR REPLACE INTO metrics (run_id, task, name, value) VALUES (?1, ?2, ?3, ?4)",
                params![run, task, name, value],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    pub(super) fn finish_run(
        &mut self,
        run: &str,
        state: RunState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self.write().map_err(db_err)?;
        let now = ts(Timestamp::now());
        // A finished run has no task still running or pending: one whose end could not
        // be recorded (the database stayed locked) ends with the run.
        let why = format!(
            "the run ended ({}) before this task's end was recorded{}",
            state.as_str(),
            error.map(|e| format!(": {e}")).unwrap_or_default()
        );
        for table in ["attempts", "tasks"] {
            exec(
                &tx,
                &format!(
                    "UPDATE {table} SET state = 'failed', error = COALESCE(error, ?2), ended_at = ?3
                     WHERE run_id = ?1 AND state = 'running'"
                ),
                params![run, why, now],
            )
            .map_err(db_err)?;
        }
        exec(
            &tx,
            "UPDATE tasks SET state = 'skipped', error = COALESCE(error, ?2), ended_at = ?3
             WHERE run_id = ?1 AND state = 'pending'",
            params![
                run,
                format!("not started: the run ended ({})", state.as_str()),
                now
            ],
        )
        .map_err(db_err)?;
        exec(
            &tx,
            "UPDATE runs SET state = ?2, error = ?3, ended_at = ?4 WHERE id = ?1",
            params![run, state.as_str(), error, now],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(())
    }

    pub(super) fn set_run_outputs(
        &mut self,
        run: &str,
        outputs: &[IoRecord],
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(outputs).expect("output records are plain data");
        self.conn
            .execute(
                "UPDATE runs SET outputs = ?2 WHERE id = ?1",
                params![run, text],
            )
            .map_err(db_err)?;
        Ok(())
    }

    pub(super) fn set_deploy(
        &mut self,
        run: &str,
        deploy: &DeployRecord,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(deploy).expect("a deploy record is plain data");
        self.conn
            .execute(
                "UPDATE runs SET deploy = ?2 WHERE id = ?1",
                params![run, text],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// The most recent runs first.
    pub(super) fn list(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs ORDER BY started_at DESC, id DESC LIMIT ?1"
            ))
            .map_err(db_err)?;
        let rows = stmt
            .query_map([limit as i64], run_from_row)
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    /// Finds a run by its id or a unique prefix of it.
    pub(super) fn resolve(&self, id_or_prefix: &str) -> Result<String, StoreError> {
        let pattern = format!("{}%", id_or_prefix.replace(['%', '_'], ""));
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM runs WHERE id LIKE ?1 ORDER BY id LIMIT 3")
            .map_err(db_err)?;
        let ids: Vec<String> = stmt
            .query_map([pattern], |r| r.get(0))
            .map_err(db_err)?
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        match ids.as_slice() {
            [] => Err(StoreError::UnknownRun(id_or_prefix.to_owned())),
            [one] => Ok(one.clone()),
            _ if ids.iter().any(|i| i == id_or_prefix) => Ok(id_or_prefix.to_owned()),
            many => Err(StoreError::AmbiguousRun {
                prefix: id_or_prefix.to_owned(),
                matches: many.to_vec(),
            }),
        }
    }

    pub(super) fn run(&self, id: &str) -> Result<RunRecord, StoreError> {
        let mut run = self
            .conn
            .query_row(
                concat!("SELECT ", run_columns!(), " FROM runs WHERE id = ?1"),
                [id],
                run_from_row,
            )
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| StoreError::UnknownRun(id.to_owned()))?;

        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, component, component_file, component_digest, implementation, executable_digest,
                        state, attempts, started_at, ended_at, error, implementation_reason, cached_from
                 FROM tasks WHERE run_id = ?1 ORDER BY position",
            )
            .map_err(db_err)?;
        let tasks = stmt
            .query_map([id], |r| {
                Ok(TaskRecord {
                    name: r.get(0)?,
                    component: r.get(1)?,
                    component_file: r.get(2)?,
                    component_digest: r.get(3)?,
                    implementation: r.get(4)?,
                    implementation_reason: r.get(11)?,
                    executable_digest: r.get(5)?,
                    state: text_enum(r, 6, TaskState::parse)?.unwrap_or(TaskState::Failed),
                    attempts: r.get(7)?,
                    started_at: read_ts(r, 8)?,
                    ended_at: read_ts(r, 9)?,
                    error: r.get(10)?,
                    cached_from: r.get(12)?,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    metrics: BTreeMap::new(),
                    attempt_history: Vec::new(),
                })
            })
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        run.tasks = tasks;
        // Rows below name their task; find it by name in O(log n), not by a scan.
        let position: HashMap<String, usize> = run
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();

        let mut io = self
            .conn
            .prepare(
                "SELECT task, direction, name, type, digest, size, value, metadata FROM io WHERE run_id = ?1
                 ORDER BY rowid",
            )
            .map_err(db_err)?;
        let rows = io
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    IoRecord {
                        name: r.get(2)?,
                        type_: r.get(3)?,
                        digest: r.get(4)?,
                        size: r.get::<_, i64>(5)? as u64,
                        value: r.get(6)?,
                        metadata: r
                            .get::<_, Option<String>>(7)?
                            .and_then(|text| serde_json::from_str(&text).ok()),
                    },
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (task, direction, record) = row.map_err(db_err)?;
            if let Some(i) = position.get(&task).copied() {
                let t = &mut run.tasks[i];
                if direction == "input" {
                    t.inputs.push(record);
                } else {
                    t.outputs.push(record);
                }
            }
        }

        let mut metrics = self
            .conn
            .prepare("SELECT task, name, value FROM metrics WHERE run_id = ?1")
            .map_err(db_err)?;
        let rows = metrics
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, f64>(2)?,
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (task, name, value) = row.map_err(db_err)?;
            if let Some(i) = position.get(&task).copied() {
                run.tasks[i].metrics.insert(name, value);
            }
        }

        let mut attempts = self
            .conn
            .prepare(
                "SELECT task, attempt, state, started_at, ended_at, error, ran_on FROM attempts
                 WHERE run_id = ?1 ORDER BY task, attempt",
            )
            .map_err(db_err)?;
        let rows = attempts
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    AttemptRecord {
                        attempt: r.get(1)?,
                        state: text_enum(r, 2, TaskState::parse)?.unwrap_or(TaskState::Failed),
                        started_at: read_ts(r, 3)?.unwrap_or_default(),
                        ended_at: read_ts(r, 4)?,
                        error: r.get(5)?,
                        ran_on: r.get(6)?,
                    },
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (task, record) = row.map_err(db_err)?;
            if let Some(i) = position.get(&task).copied() {
                run.tasks[i].attempt_history.push(record);
            }
        }
        Ok(run)
    }

    /// Runs as `query` selects them, newest first (by start time, then id).
    pub(super) fn query(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        let mut sql = String::from(concat!("SELECT ", run_columns!(), " FROM runs WHERE 1 = 1"));
        let mut values: Vec<String> = Vec::new();
        let mut bind = |sql: &mut String, clause: &str, value: String| {
            values.push(value);
            sql.push_str(&clause.replace('?', &format!("?{}", values.len())));
        };
        if let Some(name) = &query.pipeline {
            bind(&mut sql, " AND name = ?", name.clone());
        }
        if let Some(since) = query.since {
            bind(&mut sql, " AND started_at >= ?", ts(since));
        }
        if let Some(until) = query.until {
            bind(&mut sql, " AND started_at < ?", ts(until));
        }
        // A run recorded as running whose process is gone reads as interrupted
        // (`run_from_row`): those two states are told apart after reading.
        match query.state {
            Some(RunState::Running) => bind(&mut sql, " AND state = ?", "running".to_owned()),
            Some(RunState::Interrupted) => sql.push_str(" AND state IN ('interrupted', 'running')"),
            Some(state) => bind(&mut sql, " AND state = ?", state.as_str().to_owned()),
            None => {}
        }
        if let Some(after) = &query.after {
            bind(
                &mut sql,
                " AND (started_at, id) < (SELECT started_at, id FROM runs WHERE id = ?)",
                after.clone(),
            );
        }
        sql.push_str(" ORDER BY started_at DESC, id DESC");
        let mut stmt = self.conn.prepare(&sql).map_err(db_err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values.iter()), run_from_row)
            .map_err(db_err)?;
        let mut runs = Vec::new();
        for row in rows {
            let run = row.map_err(db_err)?;
            if query.state.is_none_or(|s| s == run.state) {
                runs.push(run);
                if runs.len() >= query.limit {
                    break;
                }
            }
        }
        Ok(runs)
    }

    /// Every pipeline name runs were recorded under, with how many runs each has.
    pub(super) fn pipelines(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, COUNT(*) FROM runs GROUP BY name ORDER BY name")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    /// The run's state and each of its tasks' states, in task order.
    pub(super) fn task_states(
        &self,
        run: &str,
    ) -> Result<(RunState, Vec<(String, TaskState)>), StoreError> {
        let record = self
            .conn
            .query_row(
                concat!("SELECT ", run_columns!(), " FROM runs WHERE id = ?1"),
                [run],
                run_from_row,
            )
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| StoreError::UnknownRun(run.to_owned()))?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, state FROM tasks WHERE run_id = ?1 ORDER BY position")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([run], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    text_enum(r, 1, TaskState::parse)?.unwrap_or(TaskState::Failed),
                ))
            })
            .map_err(db_err)?;
        let tasks = rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?;
        Ok((record.state, tasks))
    }

    /// One task's state; `None` when the run has no such task.
    pub(super) fn task_state(
        &self,
        run: &str,
        task: &str,
    ) -> Result<Option<TaskState>, StoreError> {
        self.conn
            .query_row(
                "SELECT state FROM tasks WHERE run_id = ?1 AND name = ?2",
                [run, task],
                |r| Ok(text_enum(r, 0, TaskState::parse)?.unwrap_or(TaskState::Failed)),
            )
            .optional()
            .map_err(db_err)
    }

    /// Every task that read or wrote the artifact `digest`, newest run first.
    pub(super) fn uses_of(&self, digest: &str) -> Result<Vec<ArtifactUse>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT io.run_id, runs.name, io.task, io.direction, io.name, runs.started_at
                 FROM io JOIN runs ON runs.id = io.run_id
                 WHERE io.digest = ?1
                 ORDER BY runs.started_at DESC, io.run_id DESC, io.task, io.direction, io.name",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([digest], |r| {
                Ok(ArtifactUse {
                    run: r.get(0)?,
                    pipeline: r.get(1)?,
                    task: r.get(2)?,
                    direction: if r.get_ref(3)?.as_str()? == "input" {
                        Direction::Input
                    } else {
                        Direction::Output
                    },
                    name: r.get(4)?,
                    started_at: read_ts(r, 5)?.unwrap_or_default(),
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    /// The graph the run was recorded with (JSON), if any.
    pub(super) fn graph(&self, run: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT graph FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| StoreError::UnknownRun(run.to_owned()))
    }

    pub(super) fn logs(&self, run: &str, task: &str) -> Result<Vec<LogRecord>, StoreError> {
        let exists = self
            .conn
            .query_row(
                "SELECT 1 FROM tasks WHERE run_id = ?1 AND name = ?2",
                [run, task],
                |_| Ok(()),
            )
            .optional()
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(StoreError::UnknownTask {
                run: run.to_owned(),
                task: task.to_owned(),
            });
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT attempt, stream, content, omitted FROM logs WHERE run_id = ?1 AND task = ?2
                 ORDER BY attempt, CASE stream WHEN 'stdout' THEN 0 WHEN 'stderr' THEN 1 ELSE 2 END",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([run, task], |r| {
                Ok(LogRecord {
                    attempt: r.get(0)?,
                    stream: r.get(1)?,
                    content: r.get(2)?,
                    omitted: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }
}

/// Runs a statement through the connection's cache of prepared statements: the same few
/// run for every task, so they are parsed once.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

fn insert_io(
    tx: &rusqlite::Transaction<'_>,
    run: &str,
    task: &str,
    direction: &str,
    records: &[IoRecord],
) -> Result<(), StoreError> {
    for io in records {
        exec(
            tx,
            "INSERT OR REPLACE INTO io (run_id, task, direction, name, type, digest, size, value, metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                run,
                task,
                direction,
                io.name,
                io.type_,
                io.digest,
                io.size as i64,
                io.value,
                io.metadata.as_ref().map(|m| m.to_string())
            ],
        )
        .map_err(db_err)?;
    }
    Ok(())
}

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let state = text_enum(r, 6, RunState::parse)?.unwrap_or(RunState::Failed);
    let pid: u32 = r.get(10)?;
    let started = read_ts(r, 8)?;
    let ticks: Option<i64> = r.get(14)?;
    let state = if state == RunState::Running
        && !crate::process_alive(pid, started, ticks.map(|t| t as u64))
    {
        RunState::Interrupted
    } else {
        state
    };
    Ok(RunRecord {
        id: r.get(0)?,
        kind: text_enum(r, 1, RunKind::parse)?.unwrap_or(RunKind::Pipeline),
        name: r.get(2)?,
        source: r.get(3)?,
        source_digest: r.get(4)?,
        params: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
        state,
        error: r.get(7)?,
        started_at: started.unwrap_or_default(),
        ended_at: read_ts(r, 9)?,
        deploy: r
            .get::<_, Option<String>>(11)?
            .and_then(|text| serde_json::from_str(&text).ok()),
        outputs: r
            .get::<_, Option<String>>(12)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
        flags: r
            .get::<_, Option<String>>(13)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
        tasks: Vec::new(),
    })
}

fn ts(t: Timestamp) -> String {
    t.round(jiff::Unit::Millisecond)
        .unwrap_or(t)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A timestamp column, read in place (no string copied): `None` when NULL or not one.
fn read_ts(r: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(r.get_ref(column)?
        .as_str_or_null()?
        .and_then(|t| t.parse().ok()))
}

/// A text-enum column (a state, a kind), read in place.
fn text_enum<T>(
    r: &rusqlite::Row<'_>,
    column: usize,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<Option<T>> {
    Ok(parse(r.get_ref(column)?.as_str()?))
}

/// A run id people can read and type: UTC start time and four random hex digits,
/// e.g. `20261128-141502-7f3a`. Sorts by start time.
fn new_run_id(now: Timestamp) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.strftime("%Y%m%d-%H%M%S"), &random[..4])
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn start(attempt: u32, inputs: &[IoRecord]) -> AttemptStart<'_> {
        AttemptStart {
            attempt,
            implementation: "wasm",
            reason: "default",
            executable_digest: Some("sha256:33"),
            inputs,
            cache_key: None,
            cache_source: true,
            at: Timestamp::now(),
        }
    }

    /// A pipeline run `p` of `p.yaml`, without parameters or flags.
    pub(in crate::store) fn pipeline_run() -> NewRun<'static> {
        NewRun {
            kind: RunKind::Pipeline,
            name: "p",
            source: Path::new("p.yaml"),
            source_digest: "sha256:00",
            params: BTreeMap::new(),
            flags: Vec::new(),
            graph: None,
        }
    }

    fn records() -> (tempfile::TempDir, Records) {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::open(&dir.path().join("sluice.db"), &|| Ok(Vec::new())).unwrap();
        (dir, r)
    }

    /// A run that ends while one of its tasks is recorded running (its end could not be
    /// written: the database stayed locked) leaves no task running or pending.
    #[test]
    fn a_finished_run_has_no_task_left_running() {
        let (_d, mut r) = records();
        let run = pipeline_run();
        let task = |name| NewTask {
            name,
            component: "c".into(),
            component_file: Path::new("c.yaml"),
            component_digest: "sha256:11",
        };
        let id = r.begin_run(&run, &[task("a"), task("b")]).unwrap();
        r.attempt_started(&id, "a", &start(1, &[])).unwrap();
        r.finish_run(&id, RunState::Failed, Some("database is locked"))
            .unwrap();
        let got = r.run(&id).unwrap();
        let (a, b) = (&got.tasks[0], &got.tasks[1]);
        assert_eq!(a.state, TaskState::Failed);
        assert_eq!(
            a.error.as_deref(),
            Some("the run ended (failed) before this task's end was recorded: database is locked")
        );
        assert_eq!(a.attempt_history[0].state, TaskState::Failed);
        assert!(a.ended_at.is_some());
        assert_eq!(b.state, TaskState::Skipped);
        assert_eq!(
            b.error.as_deref(),
            Some("not started: the run ended (failed)")
        );
    }

    #[test]
    fn a_run_round_trips() {
        let (_d, mut r) = records();
        let run = NewRun {
            kind: RunKind::Pipeline,
            name: "p",
            source: Path::new("p.yaml"),
            source_digest: "sha256:00",
            params: [("seed".to_owned(), "7".to_owned())].into(),
            flags: vec!["--keep-going".into()],
            graph: None,
        };
        let tasks = [NewTask {
            name: "t",
            component: "c".into(),
            component_file: Path::new("c.yaml"),
            component_digest: "sha256:11",
        }];
        let id = r.begin_run(&run, &tasks).unwrap();
        let input = IoRecord {
            name: "rows".into(),
            type_: Some("Integer".into()),
            digest: "sha256:22".into(),
            size: 1,
            value: Some("3".into()),
            metadata: None,
        };
        r.attempt_started(&id, "t", &start(1, std::slice::from_ref(&input)))
            .unwrap();
        r.attempt_finished(
            &id,
            "t",
            &AttemptEnd {
                attempt: 1,
                state: TaskState::Failed,
                error: Some("boom"),
                logs: &[LogRecord {
                    attempt: 1,
                    stream: "stderr".into(),
                    content: "oops\n".into(),
                    omitted: 0,
                }],
                ran_on: Some("Slurm job 7 on node2"),
            },
        )
        .unwrap();
        r.attempt_started(&id, "t", &start(2, &[])).unwrap();
        let metrics = [("accuracy".to_owned(), 0.97)].into();
        r.task_finished(
            &id,
            "t",
            &TaskEnd {
                state: TaskState::Succeeded,
                error: None,
                outputs: &[],
                metrics: &metrics,
            },
            Some(&AttemptEnd {
                attempt: 2,
                state: TaskState::Succeeded,
                error: None,
                logs: &[],
                ran_on: None,
            }),
        )
        .unwrap();
        r.finish_run(&id, RunState::Succeeded, None).unwrap();

        let got = r.run(&r.resolve(&id[..10]).unwrap()).unwrap();
        assert_eq!(got.state, RunState::Succeeded);
        assert_eq!(got.params["seed"], "7");
        assert_eq!(got.flags, ["--keep-going"]);
        // Paths are kept absolute, so the run can be resumed from any folder.
        let here = std::env::current_dir().unwrap();
        assert_eq!(Path::new(&got.source), here.join("p.yaml"));
        let t = &got.tasks[0];
        assert_eq!(Path::new(&t.component_file), here.join("c.yaml"));
        assert_eq!(t.state, TaskState::Succeeded);
        assert_eq!(t.attempts, 2);
        assert_eq!(t.inputs, [input]);
        assert_eq!(t.metrics["accuracy"], 0.97);
        assert_eq!(t.attempt_history.len(), 2);
        assert_eq!(t.attempt_history[0].error.as_deref(), Some("boom"));
        assert_eq!(
            t.attempt_history[0].ran_on.as_deref(),
            Some("Slurm job 7 on node2")
        );
        assert_eq!(t.attempt_history[1].ran_on, None);
        let logs = r.logs(&id, "t").unwrap();
        assert_eq!(logs[0].content, "oops\n");
        assert!(matches!(
            r.logs(&id, "nope"),
            Err(StoreError::UnknownTask { .. })
        ));
        assert_eq!(r.list(10).unwrap().len(), 1);
    }

    #[test]
    fn older_databases_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        let v1 = SCHEMA
            .replace("    ran_on      TEXT,\n", "")
            .replace("    implementation_reason TEXT,\n", "")
            .replace(
                "    cache_key         TEXT,\n    cached_from       TEXT,\n",
                "",
            )
            .replace("    cache_source      INTEGER NOT NULL DEFAULT 1,\n", "")
            .replace("    metadata   TEXT,\n", "")
            .replace(
                "CREATE INDEX tasks_cache ON tasks(cache_key, ended_at) WHERE cache_key IS NOT NULL;\n",
                "",
            )
            .replace(
                "    ended_at       TEXT,\n    deploy         TEXT,\n    outputs        TEXT,\n    flags          TEXT,\n    pid_start_ticks INTEGER,\n    graph          TEXT\n",
                "    ended_at       TEXT\n",
            )
            .replace("CREATE INDEX io_digest ON io(digest);\n", "");
        assert_ne!(v1, SCHEMA);
        assert!(!v1.contains("outputs        TEXT") && !v1.contains("deploy "));
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("{v1} PRAGMA user_version = 1;"))
            .unwrap();
        let mut r = Records::open(&path, &|| Ok(Vec::new())).unwrap();
        let run = pipeline_run();
        let task = NewTask {
            name: "t",
            component: "c".into(),
            component_file: Path::new("c.yaml"),
            component_digest: "sha256:11",
        };
        let id = r.begin_run(&run, &[task]).unwrap();
        r.attempt_started(
            &id,
            "t",
            &AttemptStart {
                implementation: "container x",
                reason: "asked for",
                ..start(1, &[])
            },
        )
        .unwrap();
        let t = &r.run(&id).unwrap().tasks[0];
        assert_eq!(t.implementation_reason.as_deref(), Some("asked for"));
        // The newest column is there too.
        let output = IoRecord {
            name: "Output".into(),
            type_: Some("NUMBER_INTEGER".into()),
            digest: "sha256:22".into(),
            size: 2,
            value: Some("21".into()),
            metadata: None,
        };
        r.set_run_outputs(&id, std::slice::from_ref(&output))
            .unwrap();
        assert_eq!(r.run(&id).unwrap().outputs, [output]);
    }

    /// A home made by the version before `pid_start_ticks` and the ordered indexes
    /// (schema 8) gains them: a run can be begun and found again.
    #[test]
    fn a_schema_8_database_gains_the_start_tick_and_the_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        let v8 = SCHEMA
            .replace("    ran_on      TEXT,\n", "")
            .replace(
                ",\n    pid_start_ticks INTEGER,\n    graph          TEXT\n",
                "\n",
            )
            .replace("CREATE INDEX tasks_order ON tasks(run_id, position);\n", "")
            .replace("CREATE INDEX io_digest ON io(digest);\n", "")
            .replace(
                "tasks_cache ON tasks(cache_key, ended_at)",
                "tasks_cache ON tasks(cache_key)",
            );
        assert!(!v8.contains("pid_start_ticks") && !v8.contains("tasks_order"));
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("{v8} PRAGMA user_version = 8;"))
            .unwrap();
        let mut r = Records::open(&path, &|| Ok(Vec::new())).unwrap();
        let run = pipeline_run();
        let id = r.begin_run(&run, &[]).unwrap();
        assert_eq!(r.run(&id).unwrap().state, RunState::Running);
        let indexes: Vec<String> = r
            .conn
            .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'tasks_%'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            indexes
                .iter()
                .any(|i| i.contains("tasks(run_id, position)")),
            "{indexes:?}"
        );
        assert!(
            indexes
                .iter()
                .any(|i| i.contains("tasks(cache_key, ended_at)")),
            "{indexes:?}"
        );
        // And, from step 9, where each attempt ran.
        r.conn.prepare("SELECT ran_on FROM attempts").unwrap();
    }

    #[test]
    fn unknown_and_ambiguous_ids() {
        let (_d, mut r) = records();
        let run = NewRun {
            kind: RunKind::Component,
            name: "c",
            source: Path::new("c.yaml"),
            source_digest: "sha256:00",
            params: BTreeMap::new(),
            flags: Vec::new(),
            graph: None,
        };
        let a = r.begin_run(&run, &[]).unwrap();
        let b = r.begin_run(&run, &[]).unwrap();
        assert_ne!(a, b);
        assert!(matches!(r.resolve("1999"), Err(StoreError::UnknownRun(_))));
        let common: String = a
            .chars()
            .zip(b.chars())
            .take_while(|(x, y)| x == y)
            .map(|(x, _)| x)
            .collect();
        assert!(matches!(
            r.resolve(&common),
            Err(StoreError::AmbiguousRun { .. })
        ));
    }

    #[test]
    fn run_ids_sort_by_time() {
        let id = new_run_id("2026-11-28T14:15:02Z".parse().unwrap());
        assert!(id.starts_with("20261128-141502-"), "{id}");
        assert_eq!(id.len(), 20);
    }

    #[test]
    fn tasks_added_later_and_cached_outputs() {
        let (_d, mut r) = records();
        let run = |name| NewRun {
            kind: RunKind::Pipeline,
            name,
            source: Path::new("p.yaml"),
            source_digest: "sha256:00",
            params: BTreeMap::new(),
            flags: Vec::new(),
            graph: None,
        };
        let task = |name| NewTask {
            name,
            component: "c".into(),
            component_file: Path::new("p.yaml"),
            component_digest: "sha256:11",
        };
        let first = r.begin_run(&run("p"), &[]).unwrap();
        r.add_task(&first, &task("square.0")).unwrap();
        r.add_task(&first, &task("square.1")).unwrap();
        assert!(r.cache_candidates("k", None, 8).unwrap().is_empty());
        r.set_cache_key(&first, "square.1", "k").unwrap();
        // Only a succeeded task is reused.
        assert!(r.cache_candidates("k", None, 8).unwrap().is_empty());
        let output = IoRecord {
            name: "out".into(),
            type_: Some("system.Dataset".into()),
            digest: "sha256:44".into(),
            size: 2,
            value: None,
            metadata: Some(serde_json::json!({"rows": 3})),
        };
        let metrics = BTreeMap::from([("acc".to_owned(), 0.5)]);
        r.attempt_started(&first, "square.1", &start(1, &[]))
            .unwrap();
        r.task_finished(
            &first,
            "square.1",
            &TaskEnd {
                state: TaskState::Succeeded,
                error: None,
                outputs: std::slice::from_ref(&output),
                metrics: &metrics,
            },
            None,
        )
        .unwrap();
        let found = r.cache_candidates("k", None, 8).unwrap();
        assert_eq!(found, [(first.clone(), "square.1".to_owned(), None)]);
        // One that ended before the staleness bound is not a candidate.
        let later = Timestamp::now() + jiff::SignedDuration::from_secs(60);
        assert!(r.cache_candidates("k", Some(later), 8).unwrap().is_empty());
        let earlier = Timestamp::now() - jiff::SignedDuration::from_secs(60);
        assert_eq!(r.cache_candidates("k", Some(earlier), 8).unwrap().len(), 1);
        let cached = r.cached_task(&first, "square.1").unwrap();
        assert_eq!(
            (cached.run.as_str(), cached.task.as_str()),
            (first.as_str(), "square.1")
        );
        assert_eq!(cached.outputs, vec![output.clone()]);
        assert_eq!(cached.metrics, metrics);

        let second = r.begin_run(&run("p"), &[]).unwrap();
        r.add_task(&second, &task("square.1")).unwrap();
        let reuse = Reuse {
            inputs: &[],
            cached: &cached,
            executable_digest: None,
            cache_key: Some("k"),
            cache_source: true,
        };
        r.task_reused(&second, "square.1", &reuse).unwrap();
        // A reuse is fresh by its end, but its outputs are as old as the first run's: a
        // staleness bound counts only tasks that made their outputs.
        assert_eq!(r.cache_candidates("k", None, 8).unwrap().len(), 2);
        assert_eq!(
            r.cache_candidates("k", Some(earlier), 8).unwrap(),
            [(first.clone(), "square.1".to_owned(), None)]
        );
        let record = r.run(&second).unwrap();
        let t = &record.tasks[0];
        assert_eq!(t.state, TaskState::Succeeded);
        assert_eq!(
            t.cached_from.as_deref(),
            Some(format!("{first}/square.1").as_str())
        );
        assert_eq!(t.outputs, vec![output]);
        assert_eq!(t.metrics, metrics);
        let names: Vec<String> = r
            .run(&first)
            .unwrap()
            .tasks
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["square.0", "square.1"]);
    }
}
