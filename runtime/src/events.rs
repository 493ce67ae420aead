//! What a run reports while it happens: task starts, log lines, progress, metrics,
//! retries and ends. The runtime emits [`Event`]s to an [`Observer`]; presenting them
//! (progress bars, plain lines, JSON) is the caller's business.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{RunState, TaskState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Lines a typed step logs through the `host.log` import.
    Host,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Host => "host",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Something the user should know before the run starts (one line), such as a
    /// setting of the pipeline that does not apply to a local run.
    Note {
        line: String,
    },
    RunStarted {
        run_id: String,
        name: String,
        /// The tasks known when the run starts.
        tasks: Vec<String>,
        /// Whether more become known as it runs (a loop's tasks, once per iteration).
        more: bool,
    },
    TaskStarted {
        task: String,
        attempt: u32,
        implementation: String,
        /// Why this implementation runs the task.
        reason: String,
    },
    TaskLog {
        task: String,
        stream: Stream,
        line: String,
    },
    TaskProgress {
        task: String,
        done: u64,
        total: u64,
    },
    TaskMetric {
        task: String,
        name: String,
        value: f64,
    },
    TaskRetrying {
        task: String,
        failed_attempt: u32,
        error: String,
        delay: Duration,
    },
    TaskFinished {
        task: String,
        state: TaskState,
        attempts: u32,
        duration: Option<Duration>,
        error: Option<String>,
    },
    RunFinished {
        run_id: String,
        state: RunState,
    },
}

/// Receives events. Called from many threads; must not block for long.
pub trait Observer: Send + Sync {
    fn event(&self, event: &Event);
}

/// Discards every event.
#[derive(Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &Event) {}
}

/// The events of one task, as handed to an executor.
#[derive(Clone)]
pub struct TaskSink {
    task: String,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for TaskSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSink")
            .field("task", &self.task)
            .finish()
    }
}

impl TaskSink {
    pub fn new(task: impl Into<String>, observer: Arc<dyn Observer>) -> TaskSink {
        TaskSink {
            task: task.into(),
            observer,
        }
    }

    pub fn log(&self, stream: Stream, line: impl Into<String>) {
        self.observer.event(&Event::TaskLog {
            task: self.task.clone(),
            stream,
            line: line.into(),
        });
    }

    pub fn progress(&self, done: u64, total: u64) {
        self.observer.event(&Event::TaskProgress {
            task: self.task.clone(),
            done,
            total,
        });
    }

    pub fn metric(&self, name: impl Into<String>, value: f64) {
        self.observer.event(&Event::TaskMetric {
            task: self.task.clone(),
            name: name.into(),
            value,
        });
    }
}
