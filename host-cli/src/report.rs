//! Tables for people: the summary after a run, `runs list` and `runs show`.

use std::fmt::Write as _;
use std::time::Duration;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, ContentArrangement, Table};
use jiff::Timestamp;
use sluice_runtime::models::{ModelState, Version};
use sluice_runtime::store::{DeployRecord, DeployState, RunRecord, TaskRecord};

use crate::progress::humanize;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY)
        .set_header(header.iter().map(Cell::new));
    // Fit a real terminal; a pseudo-terminal that reports no useful width gets full rows.
    if t.width().is_some_and(|w| w >= 60) {
        t.set_content_arrangement(ContentArrangement::Dynamic);
    }
    t
}

fn span(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => {
            let ms = (e.as_millisecond() - s.as_millisecond()).max(0) as u64;
            humanize(Duration::from_millis(ms))
        }
        (Some(_), None) => "…".into(),
        _ => "-".into(),
    }
}

/// A digest's first 12 hex digits, and a `/` after a folder's (`sha256-tree:`), so a file
/// and a folder with the same hex never look alike.
fn short(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", digest));
    let hex = hex.get(..12).unwrap_or(hex);
    match algorithm {
        "sha256-tree" => format!("{hex}/"),
        _ => hex.to_owned(),
    }
}

fn local(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How a task ran, and where its last attempt ran when that was elsewhere (a Slurm job).
fn ran_as(task: &TaskRecord) -> String {
    let implementation = task.implementation.as_deref().unwrap_or("-");
    match task
        .attempt_history
        .last()
        .and_then(|a| a.ran_on.as_deref())
    {
        Some(ran_on) => format!("{implementation}; {ran_on}"),
        None => implementation.to_owned(),
    }
}

/// Why tasks ran as they did, one line per implementation and reason, in the order each
/// first appears: `a, b and 3 more ran as wasm command: wasm runs by default`.
fn ran_as_lines(tasks: &[TaskRecord]) -> Vec<String> {
    /// Tasks named on a line before the rest are counted.
    const NAMED: usize = 3;
    let mut groups: Vec<((&str, &str), Vec<&str>)> = Vec::new();
    let mut index: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::new();
    for task in tasks {
        let (Some(imp), Some(why)) = (&task.implementation, &task.implementation_reason) else {
            continue;
        };
        let key = (imp.as_str(), why.as_str());
        let i = *index.entry(key).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(&task.name);
    }
    groups
        .into_iter()
        .map(|((imp, why), names)| {
            let named = names[..names.len().min(NAMED)].join(", ");
            let names = match names.len().saturating_sub(NAMED) {
                0 => named,
                more => format!("{named} and {more} more"),
            };
            format!("{names} ran as {imp}: {why}")
        })
        .collect()
}

/// Tables of more rows than this are drawn by [`LongTable`]: comfy-table takes about 3 us
/// a row, which a 10,000-task run's table would spend.
const LONG: usize = 500;

/// The tasks of a run, one row each.
fn task_rows(tasks: &[TaskRecord]) -> Box<dyn std::fmt::Display> {
    const HEADER: [&str; 6] = ["task", "state", "attempts", "time", "ran as", "note"];
    let rows = tasks.iter().map(|task| {
        [
            task.name.clone(),
            task.state.to_string(),
            task.attempts.to_string(),
            span(task.started_at, task.ended_at),
            ran_as(task),
            match (&task.error, &task.cached_from) {
                (Some(error), _) => error.clone(),
                (None, Some(from)) => format!("outputs reused from {from}"),
                (None, None) => String::new(),
            },
        ]
    });
    if tasks.len() > LONG {
        return Box::new(LongTable::new(&HEADER, rows));
    }
    let mut t = table(&HEADER);
    for row in rows {
        t.add_row(row.to_vec());
    }
    Box::new(t)
}

/// A table drawn as [`table`] draws one whose rows are never wrapped (a table on a pipe,
/// or one as wide as its content): `UTF8_BORDERS_ONLY`, a space either side of each
/// cell and between columns, columns as wide as their widest line (in terminal columns),
/// a cell of several lines making its row as tall. For tables too long to lay out
/// cell by cell.
struct LongTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    widths: Vec<usize>,
}

impl LongTable {
    fn new<const N: usize>(header: &[&str; N], rows: impl Iterator<Item = [String; N]>) -> Self {
        use unicode_width::UnicodeWidthStr;
        let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
        let rows: Vec<Vec<String>> = rows
            .map(|row| {
                for (w, cell) in widths.iter_mut().zip(&row) {
                    *w = cell.split('\n').map(|l| l.width()).fold(*w, usize::max);
                }
                row.to_vec()
            })
            .collect();
        LongTable {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows,
            widths,
        }
    }

    fn rule(
        &self,
        f: &mut std::fmt::Formatter<'_>,
        ends: (char, char),
        fill: char,
    ) -> std::fmt::Result {
        let inner =
            self.widths.iter().map(|w| w + 2).sum::<usize>() + self.widths.len().saturating_sub(1);
        f.write_char(ends.0)?;
        for _ in 0..inner {
            f.write_char(fill)?;
        }
        f.write_char(ends.1)?;
        Ok(())
    }

    fn row(&self, f: &mut std::fmt::Formatter<'_>, cells: &[String]) -> std::fmt::Result {
        use unicode_width::UnicodeWidthStr;
        let height = cells
            .iter()
            .map(|c| c.split('\n').count())
            .max()
            .unwrap_or(1);
        for line in 0..height {
            f.write_str("\n│")?;
            for (i, (cell, width)) in cells.iter().zip(&self.widths).enumerate() {
                let text = cell.split('\n').nth(line).unwrap_or("");
                if i > 0 {
                    f.write_char(' ')?;
                }
                write!(f, " {text}{:pad$} ", "", pad = width - text.width())?;
            }
            f.write_char('│')?;
        }
        Ok(())
    }
}

impl std::fmt::Display for LongTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.rule(f, ('┌', '┐'), '─')?;
        self.row(f, &self.header)?;
        f.write_char('\n')?;
        self.rule(f, ('╞', '╡'), '═')?;
        for row in &self.rows {
            self.row(f, row)?;
        }
        f.write_char('\n')?;
        self.rule(f, ('└', '┘'), '─')
    }
}

fn metric_rows(tasks: &[TaskRecord]) -> Option<Table> {
    let mut t = table(&["task", "metric", "value"]);
    let mut any = false;
    for task in tasks {
        for (name, value) in &task.metrics {
            any = true;
            t.add_row(vec![task.name.clone(), name.clone(), format!("{value:.4}")]);
        }
    }
    any.then_some(t)
}

/// After `sluice run`: every task, the metrics, and where to look next.
pub fn summary(run: &RunRecord) {
    outln!("{}", task_rows(&run.tasks));
    if let Some(metrics) = metric_rows(&run.tasks) {
        outln!("{metrics}");
    }
    outln!(
        "run {} {} in {}; details: sluice runs show {}",
        run.id,
        run.state,
        span(Some(run.started_at), run.ended_at),
        run.id
    );
    if let Some(failed) = run.tasks.iter().find(|t| t.state.to_string() == "failed") {
        outln!(
            "logs of the failed task: sluice logs {} {}",
            run.id,
            failed.name
        );
    }
    if let Some(deploy) = &run.deploy {
        outln!("{}", deploy_line(deploy));
    }
}

fn deploy_line(deploy: &DeployRecord) -> String {
    match deploy.state {
        DeployState::Deployed => format!("deploy: {}", deploy.message),
        DeployState::Skipped => format!(
            "nothing deployed as model '{}': {}",
            deploy.model, deploy.message
        ),
        DeployState::Failed => format!(
            "deploy of model '{}' failed: {}",
            deploy.model, deploy.message
        ),
    }
}

pub fn run_list(runs: &[RunRecord]) {
    let mut t = table(&["run", "name", "kind", "state", "started", "time"]);
    for r in runs {
        t.add_row(vec![
            r.id.clone(),
            r.name.clone(),
            r.kind.to_string(),
            r.state.to_string(),
            local(r.started_at),
            span(Some(r.started_at), r.ended_at),
        ]);
    }
    outln!("{t}");
}

/// What the pipeline itself outputs: parameter values, and artifacts by digest.
fn run_outputs(run: &RunRecord) {
    if run.outputs.is_empty() {
        return;
    }
    outln!("outputs");
    for o in &run.outputs {
        match &o.value {
            Some(value) => outln!("  {} = {value}", o.name),
            None => outln!("  {} = {} ({} bytes)", o.name, short(&o.digest), o.size),
        }
    }
}

pub fn run_details(run: &RunRecord) {
    outln!("run      {}", run.id);
    outln!("{:<8} {}", run.kind, run.name);
    outln!("source   {} ({})", run.source, short(&run.source_digest));
    if !run.flags.is_empty() {
        outln!("flags    {}", run.flags.join(" "));
    }
    outln!("state    {}", run.state);
    outln!("started  {}", local(run.started_at));
    outln!("time     {}", span(Some(run.started_at), run.ended_at));
    if !run.params.is_empty() {
        outln!("params");
        for (k, v) in &run.params {
            outln!("  {k} = {v}");
        }
    }
    run_outputs(run);
    outln!("{}", task_rows(&run.tasks));
    for line in ran_as_lines(&run.tasks) {
        outln!("{line}");
    }

    let mut io = table(&["task", "", "name", "type", "digest", "size", "value"]);
    let mut any = false;
    for task in &run.tasks {
        for (dir, list) in [("in", &task.inputs), ("out", &task.outputs)] {
            for r in list.iter() {
                any = true;
                // A table a fused chain handed on has a digest but no stored bytes.
                let in_memory = r
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get("in_memory"))
                    .is_some_and(|v| v == true);
                io.add_row(vec![
                    task.name.clone(),
                    dir.to_owned(),
                    r.name.clone(),
                    r.type_.clone().unwrap_or_default(),
                    short(&r.digest),
                    r.size.to_string(),
                    r.value
                        .as_deref()
                        .or(in_memory.then_some("(handed on in memory, not stored)"))
                        .map(|v| {
                            let v = v.trim();
                            if v.chars().count() > 40 {
                                format!("{}…", v.chars().take(40).collect::<String>())
                            } else {
                                v.to_owned()
                            }
                        })
                        .unwrap_or_default(),
                ]);
            }
        }
    }
    if any {
        outln!("{io}");
    }
    if let Some(metrics) = metric_rows(&run.tasks) {
        outln!("{metrics}");
    }
    if let Some(deploy) = &run.deploy {
        outln!("{}", deploy_line(deploy));
    }
}

/// `sluice models list`.
pub fn model_list(models: &[(String, Vec<Version>, ModelState, u64)]) {
    let mut t = table(&["model", "serves", "versions", "labels", "published"]);
    for (name, versions, state, default) in models {
        let latest = versions.iter().map(|v| v.meta.created_at).max();
        t.add_row(vec![
            name.clone(),
            default.to_string(),
            versions.len().to_string(),
            labels(state),
            latest.map(local).unwrap_or_default(),
        ]);
    }
    outln!("{t}");
}

fn labels(state: &ModelState) -> String {
    let mut parts: Vec<String> = state
        .labels
        .iter()
        .map(|(l, v)| format!("{l}={v}"))
        .collect();
    if state.labels.contains_key("canary") && state.canary_share > 0.0 {
        parts.push(format!("canary share {}%", state.canary_share * 100.0));
    }
    parts.join(", ")
}

/// `sluice models show <name>`.
pub fn model_details(name: &str, versions: &[Version], state: &ModelState, default: u64) {
    outln!("model    {name}");
    outln!("serves   version {default}");
    if !state.labels.is_empty() {
        outln!("labels   {}", labels(state));
    }
    let mut t = table(&["version", "published", "model", "predictor", "run"]);
    for v in versions.iter().rev() {
        let marker = if v.meta.version == default { " *" } else { "" };
        t.add_row(vec![
            format!("{}{marker}", v.meta.version),
            local(v.meta.created_at),
            short(&v.meta.model_digest),
            short(&v.meta.predictor_digest),
            v.meta.run.clone().unwrap_or_default(),
        ]);
    }
    outln!("{t}");
    if let Some(latest) = versions.iter().find(|v| v.meta.version == default) {
        for (task, metrics) in &latest.meta.metrics {
            let values: Vec<String> = metrics.iter().map(|(k, x)| format!("{k} {x:.4}")).collect();
            outln!("{task:<8} {}", values.join(", "));
        }
        let spec = |list: &[sluice_runtime::models::TensorSpec]| {
            list.iter()
                .map(|s| format!("{} {} {:?}", s.name, s.datatype, s.shape))
                .collect::<Vec<_>>()
                .join(", ")
        };
        outln!("inputs   {}", spec(&latest.meta.signature.inputs));
        outln!("outputs  {}", spec(&latest.meta.signature.outputs));
    }
}

/// `sluice cache list`.
pub fn cache_list(entries: &[(sluice_runtime::oci::cache::Entry, Vec<String>)]) {
    let mut t = table(&["digest", "component", "size", "tags"]);
    for (entry, tags) in entries {
        t.add_row(vec![
            short(&entry.manifest_digest),
            short(&entry.wasm_digest),
            entry.size.to_string(),
            tags.join(", "),
        ]);
    }
    outln!("{t}");
}

#[cfg(test)]
mod tests {
    use sluice_runtime::store::{TaskRecord, TaskState};

    use super::{LongTable, ran_as_lines};

    fn task(name: &str, implementation: &str, reason: &str) -> TaskRecord {
        TaskRecord {
            name: name.into(),
            component: "c".into(),
            component_file: "c.yaml".into(),
            component_digest: "sha256:00".into(),
            implementation: Some(implementation.into()),
            implementation_reason: Some(reason.into()),
            executable_digest: None,
            state: TaskState::Succeeded,
            attempts: 1,
            started_at: None,
            ended_at: None,
            error: None,
            cached_from: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            metrics: Default::default(),
            attempt_history: Vec::new(),
        }
    }

    #[test]
    fn tasks_that_ran_alike_for_the_same_reason_share_a_line() {
        let mut tasks: Vec<TaskRecord> = (0..6)
            .map(|i| task(&format!("t{i}"), "wasm command", "wasm runs by default"))
            .collect();
        tasks.insert(2, task("train", "docker", "no wasm implementation"));
        tasks.push(task("one", "wasm command", "asked for with --prefer"));
        assert_eq!(
            ran_as_lines(&tasks),
            [
                "t0, t1, t2 and 3 more ran as wasm command: wasm runs by default",
                "train ran as docker: no wasm implementation",
                "one ran as wasm command: asked for with --prefer",
            ]
        );
    }

    /// A long table reads exactly as comfy-table draws the same rows unwrapped: wide
    /// characters, empty cells, cells of several lines, a column wider than its header.
    #[test]
    fn a_long_table_is_drawn_as_comfy_table_draws_it() {
        let header = ["task", "state", "note"];
        let rows: Vec<[String; 3]> = vec![
            ["t0".into(), "succeeded".into(), String::new()],
            [
                "données-日本".into(),
                "failed".into(),
                "exited with code 1\nsee the logs".into(),
            ],
            [String::new(), "é".into(), "a\n\nb".into()],
            [
                "a-much-longer-task-name".into(),
                "skipped".into(),
                "upstream failed".into(),
            ],
        ];
        let long = LongTable::new(&header, rows.clone().into_iter()).to_string();
        let mut comfy = comfy_table::Table::new();
        comfy
            .load_style(comfy_table::presets::UTF8_BORDERS_ONLY)
            .set_header(header.iter().map(comfy_table::Cell::new));
        for row in rows {
            comfy.add_row(row.to_vec());
        }
        assert_eq!(long, comfy.to_string(), "\n{long}\n{comfy}");
    }
}
