//! Showing a run while it happens: live per-task lines with indicatif on a terminal,
//! plain timestamped lines otherwise. (`--json` shows only notes: `Notes`.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_runtime::events::{Event, Observer};
use sluice_runtime::plan::Plan;
use sluice_runtime::store::TaskState;

use crate::output::one_line;

/// One line per happening, on stderr, for logs and pipes.
pub struct Plain {
    verbose: bool,
    start: Instant,
    /// Every task the run has reported, for its count at the end (a KFP run's tasks
    /// become known as it goes).
    seen: Mutex<std::collections::BTreeSet<String>>,
}

/// Shows only what the user should know before a run starts (`note: ...` lines on
/// stderr), for `--json`, whose stdout is the run's record.
#[derive(Debug, Default)]
pub struct Notes;

impl Observer for Notes {
    fn event(&self, event: &Event) {
        if let Event::Note { line } = event {
            errln!("note: {line}");
        }
    }
}

impl Plain {
    pub fn new(verbose: bool) -> Plain {
        Plain {
            verbose,
            start: Instant::now(),
            seen: Mutex::new(Default::default()),
        }
    }
}

impl Observer for Plain {
    fn event(&self, event: &Event) {
        let t = self.start.elapsed().as_secs_f64();
        if let Event::TaskStarted { task, .. } | Event::TaskFinished { task, .. } = event {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(task.clone());
        }
        if let Event::Note { line } = event {
            errln!("note: {line}");
            return;
        }
        let line = match event {
            Event::RunStarted {
                run_id,
                name,
                tasks,
                more,
            } => format!(
                "run {run_id}: {name}, {}{}",
                sluice_runtime::count(tasks.len(), "task"),
                if *more {
                    " and those its loops add as they run"
                } else {
                    ""
                }
            ),
            Event::RunFinished { run_id, state } => {
                let n = self.seen.lock().unwrap_or_else(|p| p.into_inner()).len();
                format!("run {run_id} {state}: {}", sluice_runtime::count(n, "task"))
            }
            Event::TaskStarted {
                task,
                attempt,
                implementation,
                reason,
            } => match attempt {
                1 => format!("{task}: started ({implementation}: {reason})"),
                n => format!("{task}: attempt {n} started ({implementation})"),
            },
            Event::TaskRetrying {
                task,
                failed_attempt,
                error,
                delay,
            } => format!(
                "{task}: attempt {failed_attempt} failed: {error}; retrying in {}",
                humanize(*delay)
            ),
            Event::TaskFinished {
                task,
                state,
                duration,
                error,
                ..
            } => finished_line(task, *state, *duration, error.as_deref()),
            Event::TaskLog { task, line, .. } if self.verbose => format!("{task} | {line}"),
            Event::TaskProgress { task, done, total } if self.verbose => {
                format!("{task}: {done}/{total}")
            }
            _ => return,
        };
        errln!("[{t:>7.2}s] {line}");
    }
}

fn finished_line(
    task: &str,
    state: TaskState,
    duration: Option<Duration>,
    error: Option<&str>,
) -> String {
    let took = duration
        .map(|d| format!(" in {}", humanize(d)))
        .unwrap_or_default();
    match (state, error) {
        (TaskState::Succeeded, _) => format!("{task}: succeeded{took}"),
        (TaskState::Skipped, Some(e)) => format!("{task}: {e}"),
        (_, Some(e)) => format!("{task}: {state}{took}: {e}"),
        (_, None) => format!("{task}: {state}{took}"),
    }
}

pub fn humanize(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.2}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Live lines on a terminal: one per task, with a spinner, the last output line, and a
/// bar when the task reports progress. Tasks the plan knows get their line at once; those
/// that become known as the run goes (each iteration of a loop) when they first appear.
pub struct Progress {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    width: usize,
    state: Mutex<HashMap<String, (Instant, String)>>,
}

impl Progress {
    pub fn new(plan: &Plan) -> Progress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        // A task in a loop shows once per iteration, `square.0`: room for an index per loop.
        let loops = |mut group: Option<usize>| {
            let mut n = 0;
            while let Some(g) = group {
                n += usize::from(plan.groups[g].iteration.is_some());
                group = plan.groups[g].group;
            }
            n
        };
        let width = plan
            .tasks
            .iter()
            .map(|t| t.name.len() + 3 * loops(t.group))
            .max()
            .unwrap_or(0);
        let progress = Progress {
            multi,
            bars: Mutex::new(HashMap::new()),
            width,
            state: Mutex::new(HashMap::new()),
        };
        for task in plan.tasks.iter().filter(|t| loops(t.group) == 0) {
            progress.bar(&task.name);
        }
        progress
    }

    /// The line of `task`, added below the others if it has none yet.
    fn bar(&self, task: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        bars.entry(task.to_owned())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(style("{prefix} {msg:.dim}", self.width));
                bar.set_prefix(one_line(task));
                bar.set_message("pending");
                bar.tick();
                bar
            })
            .clone()
    }
}

fn style(template: &str, width: usize) -> ProgressStyle {
    let template = template.replace("{prefix}", &format!("{{prefix:<{width}.bold}}"));
    ProgressStyle::with_template(&template)
        .expect("progress templates are valid")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
        .progress_chars("=> ")
}

impl Observer for Progress {
    fn event(&self, event: &Event) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Note { line } => {
                let _ = self.multi.println(format!("note: {line}"));
            }
            Event::TaskStarted {
                task,
                attempt,
                implementation,
                ..
            } => {
                let bar = self.bar(task);
                let label = match attempt {
                    1 => implementation.clone(),
                    n => format!("{implementation}, attempt {n}"),
                };
                state.insert(task.clone(), (Instant::now(), label.clone()));
                bar.set_style(style(
                    "{prefix} {spinner:.cyan} {elapsed:>4} {wide_msg}",
                    self.width,
                ));
                bar.set_message(label);
                bar.enable_steady_tick(Duration::from_millis(100));
            }
            Event::TaskLog { task, line, .. } => {
                if let Some((_, label)) = state.get(task) {
                    self.bar(task)
                        .set_message(format!("{label} · {}", one_line(line)));
                }
            }
            Event::TaskProgress { task, done, total } => {
                let bar = self.bar(task);
                if *total > 0 {
                    if bar.length() != Some(*total) {
                        bar.set_style(style(
                            "{prefix} {spinner:.cyan} {elapsed:>4} [{bar:20.cyan/blue}] {pos}/{len} {wide_msg}",
                            self.width,
                        ));
                        bar.set_length(*total);
                    }
                    bar.set_position(*done);
                }
            }
            Event::TaskRetrying {
                task,
                failed_attempt,
                error,
                delay,
            } => {
                self.bar(task).set_message(format!(
                    "attempt {failed_attempt} failed: {}; retrying in {}",
                    one_line(error),
                    humanize(*delay)
                ));
            }
            Event::TaskFinished {
                task,
                state: task_state,
                duration,
                error,
                ..
            } => {
                let bar = self.bar(task);
                let took = duration
                    .map(|d| format!(" in {}", humanize(d)))
                    .unwrap_or_default();
                let (template, message) = match task_state {
                    TaskState::Succeeded => ("{prefix} {msg:.green}", format!("✔ succeeded{took}")),
                    TaskState::Failed => (
                        "{prefix} {msg:.red}",
                        format!(
                            "✘ failed{took}: {}",
                            one_line(error.as_deref().unwrap_or(""))
                        ),
                    ),
                    TaskState::Cancelled => {
                        ("{prefix} {msg:.yellow}", format!("✘ cancelled{took}"))
                    }
                    _ => (
                        "{prefix} {msg:.dim}",
                        format!("– {}", one_line(error.as_deref().unwrap_or("skipped"))),
                    ),
                };
                bar.set_style(style(template, self.width));
                bar.finish_with_message(message);
            }
            Event::RunStarted { .. } | Event::TaskMetric { .. } | Event::RunFinished { .. } => {}
        }
    }
}
