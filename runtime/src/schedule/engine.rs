//! The run of one plan: its nodes' instances on a ready queue.
//!
//! A *frame* is one activation of a group's members: the pipeline's own DAG (the root
//! frame), a group whose condition held, or one iteration of a loop. Each frame has one
//! *instance* of each member node (a task or a group), which waits for the instances of
//! its upstream siblings in the same frame. An instance becomes ready when they ended
//! as its [`Trigger`] asks; it is skipped at once when one ended badly and it needs them
//! all to succeed. A ready task instance resolves its inputs in its frame (a source reads
//! the instance of its producer in the nearest frame that holds it, a loop's item, the
//! values collected over a loop's iterations) and runs through [`TaskRun`]; a ready group
//! instance evaluates its condition, then opens one frame, or one per item of its loop
//! (at most `parallelism` at once). A group ends when all its frames have; the run ends
//! when the root frame has. A plan without groups is one frame of tasks.
//!
//! Task instances are recorded under their task's name, with `.<index>` per enclosing
//! loop (`square.0`); those in groups are added to the run record when their frame opens,
//! or, when a group never runs, once, saying why.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value as Json, json};
use tokio::task::JoinSet;

use super::fuse::Fusion;
use super::{Cleaner, Scheduler, TaskEnd, TaskRun, input_records};
use crate::events::{Event, Stream};
use crate::exec::{HeldTable, InputArg, Prepared, error_chain};
use crate::launcher::expr::{Condition, Selector};
use crate::launcher::task::{Action, ImportUri, KfpTask, bind, parameter_type, v1_type};
use crate::launcher::values::{self, ParameterType};
use crate::launcher::{ArtifactType, InputArtifact, TaskContext};
use crate::plan::{Node, ParamValue, Plan, Source, Trigger};
use crate::spec::TypeSpec;
use crate::store::{ArtifactRef, IoRecord, JournalSender, NewTask, RunState, TaskState};

/// Where the pipeline's own artifact inputs are published among the run's artifacts; no
/// task can have the name (task names do not start with a dot).
const PIPELINE_INPUTS: &str = ".inputs";

/// How an instance ended.
#[derive(Clone, Debug)]
enum End {
    Succeeded,
    Failed(String),
    /// Not started: an upstream node ended badly, or the run stopped; the reason.
    Skipped(String),
    /// Its group's condition was false: not run, which is no failure.
    NotRun,
    Cancelled,
}

impl End {
    fn is_bad(&self) -> bool {
        matches!(self, End::Failed(_) | End::Skipped(_) | End::Cancelled)
    }

    /// KFP's `PipelineTaskFinalStatus`, with the states KFP's backend reports for its
    /// executions (`COMPLETE`, `FAILED`, `CANCELED`); a failure comes with its message.
    fn final_status(&self, resource_name: &str, task: &str) -> Json {
        let (state, error) = match self {
            End::Succeeded | End::NotRun => ("COMPLETE", None),
            End::Failed(m) | End::Skipped(m) => ("FAILED", Some(m.as_str())),
            End::Cancelled => ("CANCELED", Some("cancelled")),
        };
        let error = match error {
            Some(message) => json!({"code": 2, "message": message}),
            None => json!({}),
        };
        json!({
            "state": state,
            "pipelineJobResourceName": resource_name,
            "pipelineTaskName": task,
            "error": error,
        })
    }
}

/// A value a source has in one frame.
#[derive(Clone, Debug)]
enum Value {
    /// A parameter's text, with its KFP type when it has one (a pipeline parameter).
    Text(String, Option<ParameterType>),
    /// A structured value: a loop's item, a selected field, a final status.
    Json(Json),
    /// A task's output, or an imported file: a parameter (its text in `record.value`) or
    /// an artifact.
    Record {
        record: IoRecord,
        /// An artifact's KFP type, as its producer declares it.
        artifact: Option<ArtifactType>,
        /// Where it is published among the run's artifacts (its KFP `uri`).
        uri: Option<String>,
    },
    /// One value per iteration of a loop.
    List(Vec<Value>),
}

/// One activation of a group's members (or of the pipeline's own DAG).
struct Frame {
    /// The group whose members it holds; `None` for the pipeline's own DAG.
    group: Option<usize>,
    /// The group instance it belongs to.
    owner: Option<usize>,
    parent: Option<usize>,
    /// A loop iteration's item.
    item: Option<Value>,
    /// `.<index>` per enclosing loop.
    suffix: String,
    /// The instance of each member node.
    members: HashMap<Node, usize>,
    /// Members that have not ended.
    remaining: usize,
}

struct Instance {
    node: Node,
    frame: usize,
    /// Upstream siblings that have not ended.
    waiting: usize,
    started: bool,
    end: Option<End>,
    /// The name it is recorded and reported under (`square.0`).
    name: String,
    /// A task's outputs, once it succeeded.
    outputs: Option<Arc<BTreeMap<String, IoRecord>>>,
    /// Taken as done with an earlier run's outputs.
    reused: bool,
    /// A group's frames: one per iteration, in item order, or its one frame.
    frames: Vec<usize>,
    /// A loop's iterations waiting for a place under its parallelism: index and item.
    pending: VecDeque<(usize, Value)>,
    /// A group's frames that have not ended.
    live: usize,
}

/// What a task instance is given: its inputs, and for a KFP task its context and the
/// values of its input parameters.
struct Bound {
    inputs: BTreeMap<String, InputArg>,
    kfp: Option<(TaskContext, BTreeMap<String, Json>)>,
}

/// What one run's engine is given: the recorded run, its plan and how each task runs.
pub(super) struct RunSetup<'a> {
    pub(super) run_id: String,
    pub(super) plan: Arc<Plan>,
    /// By task index.
    pub(super) prepared: &'a [Prepared],
    pub(super) fusion: &'a Fusion,
    /// Artifact parameters, by name, as imported into the store.
    pub(super) imported: &'a HashMap<String, ArtifactRef>,
    pub(super) cleaner: Option<&'a Cleaner>,
    pub(super) journal: JournalSender,
}

pub(super) struct Engine<'a> {
    scheduler: &'a Scheduler,
    run_id: String,
    plan: Arc<Plan>,
    prepared: &'a [Prepared],
    fusion: &'a Fusion,
    imported: &'a HashMap<String, ArtifactRef>,
    cleaner: Option<&'a Cleaner>,
    /// Where task ends go to be recorded.
    journal: JournalSender,
    /// When the run started, RFC 3339 in UTC.
    created: String,
    /// Member nodes of each group and, last, of the pipeline's own DAG, in plan order.
    members: Vec<Vec<Node>>,
    /// The nodes that wait on each task, and on each group, among their siblings.
    task_down: Vec<Vec<Node>>,
    group_down: Vec<Vec<Node>>,
    frames: Vec<Frame>,
    instances: Vec<Instance>,
    ready: BTreeSet<usize>,
    /// Ends still to take effect on downstream instances and frames, in order.
    settling: VecDeque<(usize, End)>,
    running: JoinSet<(usize, TaskEnd)>,
    spawned: HashMap<tokio::task::Id, usize>,
    /// The task whose failure stopped new starts (without `keep_going`).
    stopped_by: Option<String>,
    /// Tables on their way through a fused chain, by producing instance and output,
    /// until their last reader has started.
    held: HashMap<(usize, String), (HeldTable, usize)>,
}

impl<'a> Engine<'a> {
    pub(super) fn new(scheduler: &'a Scheduler, run: RunSetup<'a>) -> Engine<'a> {
        let RunSetup {
            run_id,
            plan,
            prepared,
            fusion,
            imported,
            cleaner,
            journal,
        } = run;
        let root = plan.groups.len();
        let mut members = vec![Vec::new(); root + 1];
        let mut task_down = vec![Vec::new(); plan.tasks.len()];
        let mut group_down = vec![Vec::new(); plan.groups.len()];
        for (t, task) in plan.tasks.iter().enumerate() {
            members[task.group.unwrap_or(root)].push(Node::Task(t));
            for &u in &task.upstream {
                task_down[u].push(Node::Task(t));
            }
            for &g in &task.after_groups {
                group_down[g].push(Node::Task(t));
            }
        }
        for (g, group) in plan.groups.iter().enumerate() {
            members[group.group.unwrap_or(root)].push(Node::Group(g));
            for node in &group.upstream {
                match *node {
                    Node::Task(u) => task_down[u].push(Node::Group(g)),
                    Node::Group(h) => group_down[h].push(Node::Group(g)),
                }
            }
        }
        Engine {
            scheduler,
            run_id,
            plan,
            prepared,
            fusion,
            imported,
            cleaner,
            journal,
            created: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            members,
            task_down,
            group_down,
            frames: Vec::new(),
            instances: Vec::new(),
            ready: BTreeSet::new(),
            settling: VecDeque::new(),
            running: JoinSet::new(),
            spawned: HashMap::new(),
            stopped_by: None,
            held: HashMap::new(),
        }
    }

    /// Runs the plan to its end and says how it ended.
    pub(super) async fn run(mut self) -> RunState {
        self.open_frame(None, None, None, None, String::new());
        let parallelism = self.scheduler.options.parallelism.max(1);
        loop {
            self.drain();
            while self.running.len() < parallelism {
                let Some(id) = self.ready.pop_first() else {
                    break;
                };
                self.start(id);
                self.drain();
            }
            let Some(joined) = self.running.join_next_with_id().await else {
                break;
            };
            let (id, end) = match joined {
                Ok((_, done)) => done,
                Err(e) => {
                    // A panic in the task's own future is a host bug; the task fails, the
                    // run goes on as for any failure.
                    let id = self.spawned[&e.id()];
                    let reason = format!("internal error: {e}");
                    let name = self.instances[id].name.clone();
                    self.scheduler.finish_unstarted(
                        &self.run_id,
                        &name,
                        TaskState::Failed,
                        &reason,
                    );
                    (id, TaskEnd::Failed { error: reason })
                }
            };
            self.task_ended(id, end);
        }
        // Nothing can be left waiting: every upstream end releases or skips what waits
        // on it. Should a bug leave an instance, it is recorded rather than lost.
        for id in 0..self.instances.len() {
            if self.instances[id].end.is_none() && !self.instances[id].started {
                self.end_unstarted(id, End::Skipped("not started".into()));
            }
        }
        self.drain();
        let state = if self.scheduler.cancel.is_cancelled() {
            RunState::Cancelled
        } else if self
            .root_ends()
            .all(|e| matches!(e, Some(End::Succeeded | End::NotRun)))
        {
            RunState::Succeeded
        } else {
            RunState::Failed
        };
        if state == RunState::Succeeded && !self.plan.outputs.is_empty() {
            let records = self.run_outputs();
            if let Err(e) = self.scheduler.store.set_run_outputs(&self.run_id, &records) {
                self.note(&format!(
                    "cannot record the pipeline's outputs: {}",
                    error_chain(&e)
                ));
            }
        }
        state
    }

    fn root_ends(&self) -> impl Iterator<Item = Option<&End>> {
        self.frames[0]
            .members
            .values()
            .map(|&id| self.instances[id].end.as_ref())
    }

    fn note(&self, line: &str) {
        self.scheduler.observer.event(&Event::Note {
            line: line.to_owned(),
        });
    }

    fn trigger(&self, node: Node) -> Trigger {
        match node {
            Node::Task(t) => self.plan.tasks[t].trigger,
            Node::Group(g) => self.plan.groups[g].trigger,
        }
    }

    fn node_name(&self, node: Node) -> &str {
        match node {
            Node::Task(t) => &self.plan.tasks[t].name,
            Node::Group(g) => &self.plan.groups[g].name,
        }
    }

    /// Opens a frame of `group`'s members (the pipeline's own with `None`): an instance
    /// of each, those that wait for nothing ready. Tasks of a group are added to the run
    /// record under their names in this frame.
    fn open_frame(
        &mut self,
        group: Option<usize>,
        owner: Option<usize>,
        parent: Option<usize>,
        item: Option<Value>,
        suffix: String,
    ) -> usize {
        let f = self.frames.len();
        let plan = self.plan.clone();
        let members = &self.members[group.unwrap_or(plan.groups.len())];
        let mut frame = Frame {
            group,
            owner,
            parent,
            item,
            suffix,
            members: HashMap::with_capacity(members.len()),
            remaining: members.len(),
        };
        let mut added = Vec::new();
        for &node in members {
            let id = self.instances.len();
            let (waiting, name) = match node {
                Node::Task(t) => {
                    let task = &plan.tasks[t];
                    let name = format!("{}{}", task.name, frame.suffix);
                    if group.is_some() {
                        added.push((t, name.clone()));
                    }
                    (task.upstream.len() + task.after_groups.len(), name)
                }
                Node::Group(g) => {
                    let group = &plan.groups[g];
                    (
                        group.upstream.len(),
                        format!("{}{}", group.name, frame.suffix),
                    )
                }
            };
            self.instances.push(Instance {
                node,
                frame: f,
                waiting,
                started: false,
                end: None,
                name,
                outputs: None,
                reused: false,
                frames: Vec::new(),
                pending: VecDeque::new(),
                live: 0,
            });
            frame.members.insert(node, id);
            if waiting == 0 {
                self.ready.insert(id);
            }
        }
        self.frames.push(frame);
        for (t, name) in added {
            self.add_record(t, &name);
        }
        f
    }

    fn add_record(&self, t: usize, name: &str) {
        let task = &self.plan.tasks[t];
        let added = self.scheduler.store.add_task(
            &self.run_id,
            &NewTask {
                name,
                component: task.component.name(),
                component_file: &task.component.path,
                component_digest: &task.component.digest,
            },
        );
        if let Err(e) = added {
            self.host_line(
                name,
                &format!("cannot record the task: {}", error_chain(&e)),
            );
        }
    }

    fn host_line(&self, task: &str, line: &str) {
        self.scheduler.observer.event(&Event::TaskLog {
            task: task.to_owned(),
            stream: Stream::Host,
            line: line.to_owned(),
        });
    }

    /// Lets the ends settled so far take effect: downstream instances are released or
    /// skipped, frames close, groups end.
    fn drain(&mut self) {
        while let Some((id, end)) = self.settling.pop_front() {
            if self.instances[id].end.is_some() {
                continue;
            }
            if matches!(end, End::Failed(_))
                && !self.scheduler.options.keep_going
                && self.stopped_by.is_none()
            {
                self.stopped_by = Some(self.instances[id].name.clone());
            }
            self.instances[id].end = Some(end.clone());
            let (node, frame) = (self.instances[id].node, self.instances[id].frame);
            let count = match node {
                Node::Task(t) => self.task_down[t].len(),
                Node::Group(g) => self.group_down[g].len(),
            };
            for k in 0..count {
                let d = match node {
                    Node::Task(t) => self.task_down[t][k],
                    Node::Group(g) => self.group_down[g][k],
                };
                let did = self.frames[frame].members[&d];
                let waiter = &self.instances[did];
                if waiter.end.is_some() || waiter.started {
                    continue;
                }
                if end.is_bad() && self.trigger(d) == Trigger::AllSucceeded {
                    let skip = match &end {
                        End::Skipped(reason) => End::Skipped(reason.clone()),
                        End::Cancelled => End::Cancelled,
                        _ => End::Skipped(format!(
                            "skipped: upstream task '{}' failed",
                            self.instances[id].name
                        )),
                    };
                    self.end_unstarted(did, skip);
                    continue;
                }
                let waiter = &mut self.instances[did];
                waiter.waiting -= 1;
                if waiter.waiting == 0 {
                    self.ready.insert(did);
                }
            }
            self.frames[frame].remaining -= 1;
            if self.frames[frame].remaining == 0 {
                self.frame_ended(frame);
            }
        }
    }

    /// A frame's members all ended: its loop's next iteration opens, or its group ends.
    fn frame_ended(&mut self, frame: usize) {
        let Some(owner) = self.frames[frame].owner else {
            return;
        };
        self.instances[owner].live -= 1;
        while let Some((index, item)) = self.instances[owner].pending.pop_front() {
            if self.open_iteration(owner, index, item) {
                return;
            }
        }
        if self.instances[owner].live == 0 {
            let end = self.group_end(owner);
            self.settling.push_back((owner, end));
        }
    }

    /// Opens iteration `index` of loop instance `owner`; false when it has no members
    /// and so ended at once.
    fn open_iteration(&mut self, owner: usize, index: usize, item: Value) -> bool {
        let Node::Group(g) = self.instances[owner].node else {
            unreachable!("only groups iterate");
        };
        let parent = self.instances[owner].frame;
        let suffix = format!("{}.{index}", self.frames[parent].suffix);
        let f = self.open_frame(Some(g), Some(owner), Some(parent), Some(item), suffix);
        self.instances[owner].frames.push(f);
        if self.frames[f].remaining == 0 {
            return false;
        }
        self.instances[owner].live += 1;
        true
    }

    /// How a group ended, from its members in every frame: failed if one failed,
    /// cancelled if one was, skipped (for the same reason) if one was, else succeeded.
    fn group_end(&self, owner: usize) -> End {
        let Node::Group(g) = self.instances[owner].node else {
            unreachable!("only groups have frames");
        };
        let mut cancelled = false;
        let mut skipped = None;
        for &f in &self.instances[owner].frames {
            for node in &self.members[g] {
                let member = &self.instances[self.frames[f].members[node]];
                match &member.end {
                    Some(End::Failed(m)) => {
                        return End::Failed(format!("task '{}': {m}", member.name));
                    }
                    Some(End::Cancelled) => cancelled = true,
                    Some(End::Skipped(m)) => {
                        skipped.get_or_insert_with(|| m.clone());
                    }
                    _ => {}
                }
            }
        }
        match (cancelled, skipped) {
            (true, _) => End::Cancelled,
            (false, Some(m)) => End::Skipped(m),
            (false, None) => End::Succeeded,
        }
    }

    /// Ends an instance that never ran: a task is recorded with the reason, a group's
    /// tasks are, each once.
    fn end_unstarted(&mut self, id: usize, end: End) {
        let (state, reason) = match &end {
            End::Failed(m) => (TaskState::Failed, m.clone()),
            End::Skipped(m) => (TaskState::Skipped, m.clone()),
            End::Cancelled => (
                TaskState::Cancelled,
                "the run was cancelled before it started".to_owned(),
            ),
            End::NotRun => (TaskState::Skipped, "not run".to_owned()),
            End::Succeeded => unreachable!("a success is never unstarted"),
        };
        self.end_unstarted_saying(id, end, state, &reason);
    }

    fn end_unstarted_saying(&mut self, id: usize, end: End, state: TaskState, reason: &str) {
        let inst = &self.instances[id];
        match inst.node {
            Node::Task(_) => {
                self.scheduler
                    .finish_unstarted(&self.run_id, &inst.name, state, reason);
            }
            Node::Group(g) => {
                let suffix = self.frames[inst.frame].suffix.clone();
                self.record_group_unstarted(g, &suffix, state, reason);
            }
        }
        self.settling.push_back((id, end));
    }

    /// Records every task in group `g` as ended without running, under its name in a
    /// frame with `suffix` (a loop that never ran records its tasks once).
    fn record_group_unstarted(&self, g: usize, suffix: &str, state: TaskState, reason: &str) {
        for node in &self.members[g] {
            match *node {
                Node::Task(t) => {
                    let name = format!("{}{suffix}", self.plan.tasks[t].name);
                    self.add_record(t, &name);
                    self.scheduler
                        .finish_unstarted(&self.run_id, &name, state, reason);
                }
                Node::Group(h) => self.record_group_unstarted(h, suffix, state, reason),
            }
        }
    }

    /// Starts a ready instance, or ends it when the run was cancelled or stopped.
    fn start(&mut self, id: usize) {
        let node = self.instances[id].node;
        if self.scheduler.cancel.is_cancelled() {
            self.end_unstarted(id, End::Cancelled);
            return;
        }
        if self.trigger(node) == Trigger::AllSucceeded
            && let Some(failed) = &self.stopped_by
        {
            let reason = format!(
                "not started: the run stopped after '{failed}' failed (--keep-going runs independent tasks)"
            );
            self.end_unstarted(id, End::Skipped(reason));
            return;
        }
        self.instances[id].started = true;
        match node {
            Node::Task(t) => self.start_task(id, t),
            Node::Group(g) => self.start_group(id, g),
        }
    }

    fn start_group(&mut self, id: usize, g: usize) {
        let plan = self.plan.clone();
        let group = &plan.groups[g];
        let frame = self.instances[id].frame;
        let name = self.instances[id].name.clone();
        let mut params = BTreeMap::new();
        for (input, source) in &group.inputs {
            match self.resolve(source, frame, &name) {
                Ok(Some(value)) => {
                    params.insert(input.clone(), self.json(&value));
                }
                Ok(None) => {}
                Err(m) => return self.group_failed(id, g, format!("input '{input}': {m}")),
            }
        }
        crate::launcher::resolve_parameter_references(&mut params);
        if let Some(condition) = &group.condition {
            match Condition::compile(condition).and_then(|c| c.holds(&params)) {
                Ok(true) => {}
                Ok(false) => {
                    let reason = format!("not run: condition `{condition}` is false");
                    self.end_unstarted_saying(id, End::NotRun, TaskState::Skipped, &reason);
                    return;
                }
                Err(e) => return self.group_failed(id, g, e.to_string()),
            }
        }
        let Some(iteration) = &group.iteration else {
            let suffix = self.frames[frame].suffix.clone();
            let f = self.open_frame(Some(g), Some(id), Some(frame), None, suffix);
            self.instances[id].frames.push(f);
            if self.frames[f].remaining == 0 {
                self.settling.push_back((id, End::Succeeded));
            } else {
                self.instances[id].live = 1;
            }
            return;
        };
        let items = match self.resolve(&iteration.items, frame, &name) {
            Ok(Some(value)) => self.items(value),
            Ok(None) => Err("the loop's items have no value".to_owned()),
            Err(m) => Err(m),
        };
        let items = match items {
            Ok(items) => items,
            Err(m) => return self.group_failed(id, g, m),
        };
        let limit = iteration.parallelism.unwrap_or(usize::MAX).max(1);
        self.instances[id].pending = items.into_iter().enumerate().collect();
        while self.instances[id].live < limit {
            let Some((index, item)) = self.instances[id].pending.pop_front() else {
                break;
            };
            self.open_iteration(id, index, item);
        }
        if self.instances[id].live == 0 {
            // No items, or only iterations with nothing in them.
            self.settling.push_back((id, End::Succeeded));
        }
    }

    /// A group that cannot start: its tasks are recorded as not run, saying why, and it
    /// fails with the reason.
    fn group_failed(&mut self, id: usize, g: usize, reason: String) {
        let group = &self.plan.groups[g];
        let what = if group.iteration.is_some() {
            "loop"
        } else {
            "group"
        };
        let recorded = format!("not run: {what} '{}' cannot start: {reason}", group.name);
        self.end_unstarted_saying(id, End::Failed(reason), TaskState::Skipped, &recorded);
    }

    /// The items of a loop: a JSON list (or its text), or a list of artifacts.
    fn items(&self, value: Value) -> Result<Vec<Value>, String> {
        match value {
            Value::List(items) => Ok(items),
            Value::Record {
                artifact: Some(_), ..
            } => Ok(vec![value]),
            other => match self.json(&other) {
                Json::Array(items) => Ok(items.into_iter().map(Value::Json).collect()),
                Json::String(text) => match serde_json::from_str::<Json>(&text) {
                    Ok(Json::Array(items)) => Ok(items.into_iter().map(Value::Json).collect()),
                    _ => Err(format!("the loop's items are not a list: {text}")),
                },
                v => Err(format!("the loop's items are not a list: {v}")),
            },
        }
    }

    fn start_task(&mut self, id: usize, t: usize) {
        let plan = self.plan.clone();
        let task = &plan.tasks[t];
        if self.instances[id].frame == 0
            && let Some(outputs) = self.reuse(id, t)
        {
            let inst = &mut self.instances[id];
            inst.reused = true;
            inst.outputs = Some(Arc::new(outputs));
            self.settling.push_back((id, End::Succeeded));
            return;
        }
        let name = self.instances[id].name.clone();
        let bound = match self.bind(id, t) {
            Ok(bound) => bound,
            Err(message) => {
                self.end_unstarted(id, End::Failed(message));
                return;
            }
        };
        let action = task.kfp.as_ref().map(|k| &k.action);
        match action {
            Some(Action::Importer {
                uri,
                type_,
                metadata,
            }) => {
                let params = bound.kfp.map(|(_, p)| p).unwrap_or_default();
                let end = self.import(&name, uri, type_, metadata, &params);
                self.instant_end(id, end);
                return;
            }
            Some(Action::Kubernetes { operation }) => {
                let params = bound.kfp.map(|(_, p)| p).unwrap_or_default();
                let end = self.kubernetes(t, &name, operation, &params);
                self.instant_end(id, end);
                return;
            }
            _ => {}
        }
        let mut planned = task.clone();
        let mut context = None;
        if let Some((ctx, params)) = bound.kfp {
            if let Some(Action::Container {
                resources_at_run: Some(at_run),
            }) = action
            {
                match at_run.apply(&task.resources, &params) {
                    Ok(resources) => planned.resources = resources,
                    Err(message) => {
                        self.end_unstarted(id, End::Failed(message));
                        return;
                    }
                }
            }
            context = Some(Arc::new(ctx));
        }
        planned.name = name;
        let inputs = self.take_held_tables(id, t, bound.inputs);
        let options = &self.scheduler.options;
        let run = TaskRun {
            store: self.scheduler.store.clone(),
            executor: self.scheduler.executor.clone(),
            observer: self.scheduler.observer.clone(),
            cancel: self.scheduler.cancel.clone(),
            cleaner: self.cleaner.map(Cleaner::handle),
            journal: self.journal.clone(),
            run_id: self.run_id.clone(),
            task: Arc::new(planned),
            context,
            prepared: self.prepared[t].clone(),
            transform: self.fusion.calls[t].clone(),
            default_timeout: options.default_timeout,
            ended_attempt: Default::default(),
            caching: options.caching.and(task.caching),
            cache_key: Default::default(),
            resumes: options.resumes.clone(),
        };
        let handle = self
            .running
            .spawn(async move { (id, run.run(Ok(inputs)).await) });
        self.spawned.insert(handle.id(), id);
    }

    /// An importer or a cluster-only operation ended where it started.
    fn instant_end(&mut self, id: usize, end: Result<BTreeMap<String, IoRecord>, String>) {
        match end {
            Ok(outputs) => {
                self.instances[id].outputs = Some(Arc::new(outputs));
                self.settling.push_back((id, End::Succeeded));
            }
            Err(message) => self.end_unstarted(id, End::Failed(message)),
        }
    }

    /// Hands a task of a fused chain the tables its upstream task keeps for it.
    fn take_held_tables(
        &mut self,
        id: usize,
        t: usize,
        mut inputs: BTreeMap<String, InputArg>,
    ) -> BTreeMap<String, InputArg> {
        if self.instances[id].frame != 0 {
            return inputs;
        }
        for (name, arg) in &mut inputs {
            if !self.fusion.input_in_memory(t, name) {
                continue;
            }
            let Some(Source::Output { task: u, output }) = self.plan.tasks[t].inputs.get(name)
            else {
                continue;
            };
            let key = (self.frames[0].members[&Node::Task(*u)], output.clone());
            if let Some((table, readers)) = self.held.get_mut(&key) {
                arg.table = Some(table.table.clone());
                *readers -= 1;
                if *readers == 0 {
                    self.held.remove(&key);
                }
            }
        }
        inputs
    }

    fn task_ended(&mut self, id: usize, end: TaskEnd) {
        let end = match end {
            TaskEnd::Succeeded { outputs, tables } => {
                let Node::Task(t) = self.instances[id].node else {
                    unreachable!("only tasks run");
                };
                for (output, table) in tables {
                    let readers = self
                        .fusion
                        .in_memory
                        .iter()
                        .filter(|(a, o, _, _)| *a == t && *o == output)
                        .count();
                    self.held.insert((id, output), (table, readers));
                }
                self.instances[id].outputs = Some(Arc::new(outputs));
                End::Succeeded
            }
            TaskEnd::Failed { error } => End::Failed(error),
            TaskEnd::Cancelled => End::Cancelled,
        };
        self.settling.push_back((id, end));
    }

    /// Takes task `t` as done with the outputs of the earlier task it reuses
    /// ([`super::Options::reuse`]), when it has one whose outputs all still match their
    /// digests in the store, whose executable and inputs are the ones it would run with
    /// now, every task upstream of it was reused too (one that ran may have made other
    /// outputs than those the reused task read), and it can be recorded; `None` runs it.
    fn reuse(&self, id: usize, t: usize) -> Option<BTreeMap<String, IoRecord>> {
        let task = &self.plan.tasks[t];
        let earlier = self.scheduler.options.reuse.get(&task.name)?;
        let cached = &earlier.cached;
        let prepared = &self.prepared[t];
        let root = &self.frames[0];
        if !task
            .upstream
            .iter()
            .all(|u| self.instances[root.members[&Node::Task(*u)]].reused)
            || prepared.executable_digest != earlier.executable_digest
            || !self.scheduler.store.intact(&cached.outputs)
        {
            return None;
        }
        let inputs = self.bind(id, t).ok()?.inputs;
        let records = input_records(&inputs);
        let by_name = |list: &[IoRecord]| -> BTreeMap<String, String> {
            list.iter()
                .map(|r| (r.name.clone(), r.digest.clone()))
                .collect()
        };
        if by_name(&records) != by_name(&earlier.inputs) {
            return None;
        }
        let store = &self.scheduler.store;
        store
            .task_reused(
                &self.run_id,
                &task.name,
                &crate::store::Reuse {
                    inputs: &records,
                    cached,
                    executable_digest: prepared.executable_digest.as_deref(),
                    cache_key: None,
                    cache_source: task.caching.enabled,
                },
            )
            .ok()?;
        self.host_line(
            &task.name,
            &format!(
                "reused: the outputs of task '{}' of run {}",
                cached.task, cached.run
            ),
        );
        self.scheduler.observer.event(&Event::TaskFinished {
            task: task.name.clone(),
            state: TaskState::Succeeded,
            attempts: 0,
            duration: None,
            error: None,
        });
        Some(
            cached
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.clone()))
                .collect(),
        )
    }

    /// The context of a KFP task recorded as `name` in this run, before its inputs: its
    /// task name is the pipeline's (a loop iteration's without its index, as KFP's
    /// backend names it), its id the instance's own.
    fn context(&self, name: &str) -> TaskContext {
        let mut task_name = name;
        while let Some((rest, index)) = task_name.rsplit_once('.')
            && !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
        {
            task_name = rest;
        }
        TaskContext {
            params: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            output_params: Vec::new(),
            output_artifacts: BTreeMap::new(),
            pipeline_name: self.plan.name.clone(),
            run_id: self.run_id.clone(),
            task_name: task_name.to_owned(),
            task_id: format!("{}-{name}", self.run_id),
            created: self.created.clone(),
            pipeline_root: self.plan.pipeline_root.clone().unwrap_or_else(|| {
                let folder = self.scheduler.store.run_artifacts(&self.run_id);
                folder.display().to_string()
            }),
        }
    }

    /// The value `source` has in `frame`, for the instance named `consumer`; `None` when
    /// it has none (a branch that did not run, an optional input left unset).
    fn resolve(
        &self,
        source: &Source,
        frame: usize,
        consumer: &str,
    ) -> Result<Option<Value>, String> {
        Ok(Some(match source {
            Source::Constant(v) | Source::Default(v) => Value::Text(v.clone(), None),
            Source::Param {
                name,
                value: ParamValue::Value(v),
            } => {
                let type_ = self.plan.params.get(name).and_then(|p| {
                    let named = p.spec.type_.as_ref()?.to_string();
                    parameter_type(&named)
                });
                Value::Text(v.clone(), type_)
            }
            Source::Param {
                name,
                value: ParamValue::File(_),
            } => {
                let Some(r) = self.imported.get(name) else {
                    return Ok(None);
                };
                let title = self
                    .plan
                    .params
                    .get(name)
                    .and_then(|p| p.spec.type_.clone());
                let uri = self
                    .scheduler
                    .store
                    .publish(&self.run_id, PIPELINE_INPUTS, name, &r.digest)
                    .map_err(|e| format!("parameter '{name}': {}", error_chain(&e)))?;
                Value::Record {
                    record: IoRecord {
                        name: name.clone(),
                        type_: title.as_ref().map(ToString::to_string),
                        digest: r.digest.clone(),
                        size: r.size,
                        value: None,
                        metadata: None,
                    },
                    artifact: Some(ArtifactType {
                        schema_title: title.map(|t| t.to_string()),
                        schema_version: None,
                    }),
                    uri: Some(uri.display().to_string()),
                }
            }
            Source::RunText(text) => {
                let filled = self.context(consumer).run_placeholder(text);
                Value::Text(filled.unwrap_or_else(|| text.clone()), None)
            }
            Source::Output { task: u, output } => {
                let Some(producer) = self.locate(Node::Task(*u), frame) else {
                    return Ok(None);
                };
                let inst = &self.instances[producer];
                let Some(record) = inst.outputs.as_ref().and_then(|o| o.get(output)) else {
                    return Ok(None);
                };
                let artifact = self.plan.tasks[*u]
                    .kfp
                    .as_ref()
                    .and_then(|k| k.outputs.artifacts.get(output))
                    .map(|a| a.artifact_type.clone());
                let uri = match &artifact {
                    Some(_) => Some(
                        self.scheduler
                            .store
                            .publish(&self.run_id, &inst.name, output, &record.digest)
                            .map_err(|e| format!("output '{output}': {}", error_chain(&e)))?
                            .display()
                            .to_string(),
                    ),
                    None => None,
                };
                Value::Record {
                    record: record.clone(),
                    artifact,
                    uri,
                }
            }
            Source::Item { group } => {
                let mut at = Some(frame);
                while let Some(f) = at {
                    if self.frames[f].group == Some(*group) {
                        return Ok(self.frames[f].item.clone());
                    }
                    at = self.frames[f].parent;
                }
                return Ok(None);
            }
            Source::Collected { group, of } => {
                let Some(owner) = self.locate(Node::Group(*group), frame) else {
                    return Ok(None);
                };
                let mut values = Vec::new();
                for &f in &self.instances[owner].frames {
                    match self.resolve(of, f, consumer)? {
                        // A list of artifacts per iteration joins one list.
                        Some(Value::List(list)) if self.artifacts_within(&list) => {
                            values.extend(list)
                        }
                        Some(v) => values.push(v),
                        None => {}
                    }
                }
                Value::List(values)
            }
            Source::OneOf(sources) => {
                for s in sources {
                    if let Some(v) = self.resolve(s, frame, consumer)? {
                        return Ok(Some(v));
                    }
                }
                return Ok(None);
            }
            Source::Select { of, selector } => {
                let Some(value) = self.resolve(of, frame, consumer)? else {
                    return Ok(None);
                };
                let selected = Selector::compile(selector)
                    .and_then(|s| s.select(&self.json(&value)))
                    .map_err(|e| e.to_string())?;
                Value::Json(selected)
            }
            Source::FinalStatus(node) => {
                let Some(producer) = self.locate(*node, frame) else {
                    return Ok(None);
                };
                let end = self.instances[producer]
                    .end
                    .clone()
                    .unwrap_or(End::Skipped("not ended".into()));
                let resource_name = format!("{}-{}", self.plan.name, self.run_id);
                Value::Json(end.final_status(&resource_name, self.node_name(*node)))
            }
        }))
    }

    fn artifacts_within(&self, list: &[Value]) -> bool {
        list.iter().all(|v| {
            matches!(
                v,
                Value::Record {
                    artifact: Some(_),
                    ..
                }
            )
        })
    }

    /// The instance of `node` that a consumer in `frame` sees: in the nearest frame up
    /// from `frame` whose group holds `node` (or one of the groups around it), then down
    /// through the one frame of each group in between. `None` when one of them did not
    /// run.
    fn locate(&self, node: Node, frame: usize) -> Option<usize> {
        let home = match node {
            Node::Task(t) => self.plan.tasks[t].group,
            Node::Group(g) => self.plan.groups[g].group,
        };
        // The groups around `node`, innermost first, ending with the pipeline's own.
        let mut around = vec![home];
        while let Some(Some(g)) = around.last() {
            around.push(self.plan.groups[*g].group);
        }
        let mut at = frame;
        let depth = loop {
            if let Some(depth) = around.iter().position(|g| *g == self.frames[at].group) {
                break depth;
            }
            at = self.frames[at].parent?;
        };
        for g in around[..depth].iter().rev() {
            let g = g.expect("only the outermost is the pipeline's own");
            let inst = &self.instances[*self.frames[at].members.get(&Node::Group(g))?];
            // A loop's members are reached only through `Collected`.
            if self.plan.groups[g].iteration.is_some() {
                return None;
            }
            at = *inst.frames.first()?;
        }
        self.frames[at].members.get(&node).copied()
    }

    /// A value as KFP's JSON: a parameter's text parsed as its type (or as text), an
    /// artifact as its text would not be.
    fn json(&self, value: &Value) -> Json {
        match value {
            Value::Text(text, Some(ty)) => {
                values::parse(*ty, text).unwrap_or_else(|_| Json::String(text.clone()))
            }
            Value::Text(text, None) => Json::String(text.clone()),
            Value::Json(v) => v.clone(),
            Value::Record { record, .. } => {
                let text = self.text_of(record);
                match record.type_.as_deref().and_then(parameter_type) {
                    Some(ty) => values::parse(ty, &text).unwrap_or(Json::String(text)),
                    None => Json::String(text),
                }
            }
            Value::List(list) => Json::Array(list.iter().map(|v| self.json(v)).collect()),
        }
    }

    /// A parameter output's text: as recorded, or read from the store.
    fn text_of(&self, record: &IoRecord) -> String {
        match &record.value {
            Some(v) => v.clone(),
            None => self
                .scheduler
                .store
                .read(&record.digest)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
        }
    }

    /// The inputs of task instance `id`: each source resolved in its frame; a KFP task's
    /// typed by its interface, with its executor input's context.
    fn bind(&self, id: usize, t: usize) -> Result<Bound, String> {
        let task = &self.plan.tasks[t];
        let inst = &self.instances[id];
        if let Some(k) = &task.kfp {
            return self.bind_kfp(inst, t, k);
        }
        let store = &self.scheduler.store;
        let mut inputs = BTreeMap::new();
        for (name, source) in &task.inputs {
            let Some(value) = self
                .resolve(source, inst.frame, &inst.name)
                .map_err(|m| format!("input '{name}': {m}"))?
            else {
                if let Source::Output { task: u, output } = source {
                    return Err(format!(
                        "input '{name}': output '{}.{output}' is missing",
                        self.plan.tasks[*u].name
                    ));
                }
                if task.component.input(name).is_some_and(|i| !i.optional) {
                    return Err(format!("input '{name}' has no value"));
                }
                continue;
            };
            let type_ = task.component.input(name).and_then(|i| i.type_.clone());
            let arg = match value {
                // A file as its producer left it: staged, not given by value.
                Value::Record { record, .. } => InputArg {
                    digest: record.digest,
                    size: record.size,
                    value: None,
                    type_,
                    table: None,
                },
                Value::List(_) => {
                    return Err(format!(
                        "input '{name}': a list of values reaches one input"
                    ));
                }
                other => {
                    let text = match other {
                        Value::Text(text, _) => text,
                        v => values::render(&self.json(&v)),
                    };
                    let r = store
                        .put_bytes(text.as_bytes())
                        .map_err(|e| format!("input '{name}': {}", error_chain(&e)))?;
                    InputArg {
                        digest: r.digest,
                        size: r.size,
                        value: Some(text),
                        type_,
                        table: None,
                    }
                }
            };
            inputs.insert(name.clone(), arg);
        }
        Ok(Bound { inputs, kfp: None })
    }

    /// A KFP task's inputs, as KFP's driver resolves them: parameter values typed and
    /// defaulted by the component's interface and stored as their text; artifacts staged
    /// under their input's name (`name[i]` for a list), with their type, metadata and
    /// `uri` in the executor input.
    fn bind_kfp(&self, inst: &Instance, t: usize, k: &KfpTask) -> Result<Bound, String> {
        let task = &self.plan.tasks[t];
        let mut params = BTreeMap::new();
        let mut artifacts: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (name, source) in &task.inputs {
            let Some(value) = self
                .resolve(source, inst.frame, &inst.name)
                .map_err(|m| format!("input '{name}': {m}"))?
            else {
                continue;
            };
            if k.inputs.artifacts.contains_key(name) {
                let list = match value {
                    Value::List(list) => list,
                    one => vec![one],
                };
                artifacts.insert(name.clone(), list);
            } else {
                params.insert(name.clone(), self.json(&value));
            }
        }
        crate::launcher::resolve_parameter_references(&mut params);
        bind(&k.inputs, &mut params, |n| artifacts.contains_key(n))?;
        let store = &self.scheduler.store;
        let mut inputs = BTreeMap::new();
        for (name, value) in &params {
            let text = values::render(value);
            let stored = store
                .put_bytes(text.as_bytes())
                .map_err(|e| format!("input '{name}': {}", error_chain(&e)))?;
            let type_ = k
                .inputs
                .parameters
                .get(name)
                .map(|p| TypeSpec::named(v1_type(p.parameter_type)));
            inputs.insert(
                name.clone(),
                InputArg {
                    digest: stored.digest,
                    size: stored.size,
                    value: Some(text),
                    type_,
                    table: None,
                },
            );
        }
        let mut given_artifacts = BTreeMap::new();
        for (name, list) in &artifacts {
            let declared = k.inputs.artifacts.get(name);
            let is_list = declared.is_some_and(|a| a.is_artifact_list);
            let mut given = Vec::new();
            for (i, value) in list.iter().enumerate() {
                let Value::Record {
                    record,
                    artifact,
                    uri,
                } = value
                else {
                    return Err(format!("input artifact '{name}': not an artifact"));
                };
                let type_ = artifact
                    .clone()
                    .or_else(|| declared.map(|a| a.artifact_type.clone()))
                    .unwrap_or_default();
                let key = if is_list {
                    format!("{name}[{i}]")
                } else {
                    name.clone()
                };
                inputs.insert(
                    key.clone(),
                    InputArg {
                        digest: record.digest.clone(),
                        size: record.size,
                        value: None,
                        type_: Some(TypeSpec::named(type_.title())),
                        table: None,
                    },
                );
                given.push(InputArtifact {
                    key,
                    name: record.name.clone(),
                    type_,
                    metadata: record.metadata.clone().unwrap_or_else(|| json!({})),
                    uri: uri.clone(),
                });
                if !is_list {
                    break;
                }
            }
            given_artifacts.insert(name.clone(), given);
        }
        let context = TaskContext {
            params: params.clone(),
            artifacts: given_artifacts,
            output_params: k.outputs.parameters.keys().cloned().collect(),
            output_artifacts: k
                .outputs
                .artifacts
                .iter()
                .map(|(n, a)| (n.clone(), a.artifact_type.clone()))
                .collect(),
            ..self.context(&inst.name)
        };
        Ok(Bound {
            inputs,
            kfp: Some((context, params)),
        })
    }

    /// KFP's importer: the file its URI names, taken into the store and published as the
    /// task's `artifact` output.
    fn import(
        &self,
        record: &str,
        uri: &ImportUri,
        type_: &ArtifactType,
        metadata: &Json,
        params: &BTreeMap<String, Json>,
    ) -> Result<BTreeMap<String, IoRecord>, String> {
        let store = &self.scheduler.store;
        let uri = match uri {
            ImportUri::Constant(c) => c.clone(),
            ImportUri::Parameter(p) => params
                .get(p)
                .map(values::render)
                .ok_or_else(|| format!("the importer's URI parameter '{p}' has no value"))?,
        };
        let path = local_path(&uri)?;
        let reason = format!("imports {uri}");
        self.scheduler.observer.event(&Event::TaskStarted {
            task: record.to_owned(),
            attempt: 1,
            implementation: "importer".into(),
            reason: reason.clone(),
        });
        let stored = store
            .import(&path)
            .map_err(|e| format!("cannot import {uri}: {}", error_chain(&e)))?;
        let recorded =
            |e: crate::store::StoreError| format!("cannot record the task: {}", error_chain(&e));
        store
            .attempt_started(
                &self.run_id,
                record,
                &crate::store::AttemptStart {
                    attempt: 1,
                    implementation: "importer",
                    reason: &reason,
                    executable_digest: None,
                    inputs: &[],
                    cache_key: None,
                    cache_source: false,
                    at: jiff::Timestamp::now(),
                },
            )
            .map_err(recorded)?;
        store
            .publish(&self.run_id, record, "artifact", &stored.digest)
            .map_err(|e| format!("cannot import {uri}: {}", error_chain(&e)))?;
        let io = IoRecord {
            name: "artifact".into(),
            type_: Some(type_.title().to_owned()),
            digest: stored.digest,
            size: stored.size,
            value: None,
            metadata: Some(metadata.clone()),
        };
        let _ = store.attempt_finished(
            &self.run_id,
            record,
            &crate::store::AttemptEnd {
                attempt: 1,
                state: TaskState::Succeeded,
                error: None,
                logs: &[],
                ran_on: None,
            },
        );
        store
            .task_finished(
                &self.run_id,
                record,
                TaskState::Succeeded,
                None,
                std::slice::from_ref(&io),
                &BTreeMap::new(),
            )
            .map_err(recorded)?;
        self.scheduler.observer.event(&Event::TaskFinished {
            task: record.to_owned(),
            state: TaskState::Succeeded,
            attempts: 1,
            duration: None,
            error: None,
        });
        Ok(BTreeMap::from([("artifact".to_owned(), io)]))
    }

    /// A volume operation of kfp-kubernetes: there is no cluster to create a volume in, so
    /// the task succeeds doing nothing, and a created volume's `name` is the one asked for.
    fn kubernetes(
        &self,
        t: usize,
        record: &str,
        operation: &str,
        params: &BTreeMap<String, Json>,
    ) -> Result<BTreeMap<String, IoRecord>, String> {
        let store = &self.scheduler.store;
        let note = format!(
            "the Kubernetes operation '{operation}' does not apply to a local run; nothing done"
        );
        self.host_line(record, &note);
        let mut outputs = BTreeMap::new();
        let declares_name = self.plan.tasks[t]
            .kfp
            .as_ref()
            .is_some_and(|k| k.outputs.parameters.contains_key("name"));
        if declares_name {
            let resource_name = format!("{}-{}", self.plan.name, self.run_id);
            let name = match (params.get("pvc_name"), params.get("pvc_name_suffix")) {
                (Some(n), _) => values::render(n),
                (None, Some(suffix)) => format!("{resource_name}{}", values::render(suffix)),
                (None, None) => resource_name,
            };
            let stored = store
                .put_bytes(name.as_bytes())
                .map_err(|e| format!("output 'name': {}", error_chain(&e)))?;
            outputs.insert(
                "name".to_owned(),
                IoRecord {
                    name: "name".into(),
                    type_: Some("String".into()),
                    digest: stored.digest,
                    size: stored.size,
                    value: Some(name),
                    metadata: None,
                },
            );
        }
        let records: Vec<IoRecord> = outputs.values().cloned().collect();
        store
            .task_finished(
                &self.run_id,
                record,
                TaskState::Succeeded,
                Some(&note),
                &records,
                &BTreeMap::new(),
            )
            .map_err(|e| format!("cannot record the task: {}", error_chain(&e)))?;
        self.scheduler.observer.event(&Event::TaskFinished {
            task: record.to_owned(),
            state: TaskState::Succeeded,
            attempts: 0,
            duration: None,
            error: None,
        });
        Ok(outputs)
    }

    /// What the pipeline outputs, as records: each parameter's text stored by its
    /// digest, each artifact (`name[i]` for a list) as the task that made it stored it.
    fn run_outputs(&self) -> Vec<IoRecord> {
        let mut records = Vec::new();
        for (name, output) in &self.plan.outputs {
            let Ok(Some(value)) = self.resolve(&output.source, 0, &self.plan.name) else {
                continue;
            };
            if output.artifact {
                let list = match value {
                    Value::List(list) => list,
                    one => vec![one],
                };
                let one = list.len() == 1;
                for (i, v) in list.into_iter().enumerate() {
                    let Value::Record { record, .. } = v else {
                        continue;
                    };
                    records.push(IoRecord {
                        name: if one {
                            name.clone()
                        } else {
                            format!("{name}[{i}]")
                        },
                        type_: Some(output.type_.clone()),
                        ..record
                    });
                }
                continue;
            }
            let text = values::render(&self.json(&value));
            let Ok(stored) = self.scheduler.store.put_bytes(text.as_bytes()) else {
                continue;
            };
            records.push(IoRecord {
                name: name.clone(),
                type_: Some(output.type_.clone()),
                digest: stored.digest,
                size: stored.size,
                value: Some(text),
                metadata: None,
            });
        }
        records
    }
}

/// A local file named by an importer URI: a path or a `file://` URI.
fn local_path(uri: &str) -> Result<std::path::PathBuf, String> {
    if let Some(path) = uri.strip_prefix("file://") {
        return Ok(path.into());
    }
    if let Some((scheme, _)) = uri.split_once("://") {
        return Err(format!(
            "cannot import '{uri}': a {scheme}:// URI needs remote storage; Sluice imports local paths and file:// URIs"
        ));
    }
    Ok(uri.into())
}
