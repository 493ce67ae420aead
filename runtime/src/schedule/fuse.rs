//! Fused chains: which consecutive transform tasks hand tables to each other in memory,
//! and why every other task does not. Decided once per run from the plan and from how
//! each task will run (its [`Prepared`], which carries the transform export read from the
//! component's binary); pure, no IO.
//!
//! A wiring `a.out -> b.in` is fused when both tasks run as wasm through a transform export
//! this host can call, and `out` and `in` are table ports of their components
//! (`implementation.wasm.transform.tables`). An output is handed on in memory (and not
//! stored) when every task reading it reads it through a fused wiring; its tasks form a
//! chain. An output the pipeline asks to `keep`, or a deploy serves, is stored as well.
//! Where two transforms are wired table to table, their exported interfaces must agree,
//! fused or not: that is checked first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::exec::{Kind, Prepared, TransformCall};
use crate::plan::{Plan, Source, one_line};

/// What fusion decided for a plan.
#[derive(Clone, Debug, Default)]
pub struct Fusion {
    /// Per task: the call through its transform export, for a task in a chain.
    pub calls: Vec<Option<Arc<TransformCall>>>,
    /// The chains, each its tasks in plan order; chains in the order of their first task.
    pub chains: Vec<Vec<usize>>,
    /// Per task: why it is not in a chain (`None` for tasks in one).
    pub not_fused: Vec<Option<String>>,
    /// Wirings whose table passes in memory: (producer, output, consumer, input).
    pub in_memory: Vec<(usize, String, usize, String)>,
    /// Table outputs of chain tasks that are stored, and why.
    pub stored: Vec<(usize, String, String)>,
}

/// Two transform tasks wired table to table whose exported interfaces disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub producer: String,
    pub output: String,
    pub consumer: String,
    pub input: String,
    /// What the producer's component exports, and what the consumer's does.
    pub produces: String,
    pub consumes: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tasks.{}.inputs.{}: task '{}' exports {}, but task '{}' exports {}; the table from '{}.{}' does not fit",
            self.consumer,
            self.input,
            self.producer,
            self.produces,
            self.consumer,
            self.consumes,
            self.producer,
            self.output,
        )
    }
}

/// Where two type texts first differ: a few words of each, from the start of the field or
/// case that differs.
fn first_difference(a: &str, b: &str) -> (String, String) {
    let at = a
        .bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    // Back to the start of the field or case: after the last `{`, `(`, `<` or `,`.
    let start = a[..at].rfind(['{', '(', '<', ',']).map_or(0, |i| i + 1);
    let excerpt = |s: &str| {
        let rest = s[start..].trim_start();
        match rest.char_indices().nth(48) {
            Some((end, _)) => format!("{}...", &rest[..end]),
            None => rest.to_owned(),
        }
    };
    (excerpt(a), excerpt(b))
}

impl Fusion {
    /// Decides the chains of `plan`, given how each task will run; `enabled: false`
    /// (`--no-fuse`) keeps every task apart but still checks the wiring.
    pub fn decide(
        plan: &Plan,
        prepared: &[Prepared],
        enabled: bool,
    ) -> Result<Fusion, Vec<Mismatch>> {
        let n = plan.tasks.len();
        let tables = |i: usize| -> Option<&[String]> {
            let wasm = plan.tasks[i].component.spec.implementation.wasm.as_ref()?;
            Some(wasm.transform.as_ref()?.tables.as_slice())
        };
        let is_table =
            |i: usize, port: &str| tables(i).is_some_and(|t| t.iter().any(|p| p == port));

        // Wirings table to table between two transform exports must agree.
        let mut mismatches = Vec::new();
        for (b, task) in plan.tasks.iter().enumerate() {
            for (input, source) in &task.inputs {
                let Source::Output { task: a, output } = source else {
                    continue;
                };
                let (Some(pa), Some(pb)) = (&prepared[*a].transform, &prepared[b].transform) else {
                    continue;
                };
                if !is_table(*a, output) || !is_table(b, input) {
                    continue;
                }
                if pa.interface != pb.interface || pa.signature != pb.signature {
                    let (produces, consumes) = if pa.interface != pb.interface {
                        (pa.interface.clone(), pb.interface.clone())
                    } else {
                        let (x, y) = first_difference(&pa.signature, &pb.signature);
                        (
                            format!("{} with `{x}`", pa.interface),
                            format!("{} with `{y}`", pb.interface),
                        )
                    };
                    mismatches.push(Mismatch {
                        producer: plan.tasks[*a].name.clone(),
                        output: output.clone(),
                        consumer: task.name.clone(),
                        input: input.clone(),
                        produces,
                        consumes,
                    });
                }
            }
        }
        if !mismatches.is_empty() {
            return Err(mismatches);
        }

        // Which tasks can run through their transform export, and why not.
        let why_not: Vec<Option<String>> = (0..n)
            .map(|i| {
                let task = &plan.tasks[i];
                let p = &prepared[i];
                if task.kfp.is_some() {
                    return Some("KFP tasks run as their containers".into());
                }
                if tables(i).is_none() {
                    return Some(format!(
                        "component '{}' declares no implementation.wasm.transform",
                        task.component.name()
                    ));
                }
                if p.kind != Kind::Wasm {
                    return Some(format!("runs as {} ({})", p.implementation, p.reason));
                }
                if p.executable_digest.is_none() {
                    // Described without being loaded; the reason says why.
                    return Some(format!("its wasm component {}", p.reason));
                }
                match &p.transform {
                    None => Some(format!(
                        "its component exports no {}",
                        crate::exec::wasm::TRANSFORM_INTERFACE
                    )),
                    Some(e) if !e.callable => Some(format!(
                        "its component exports {} with a type this host cannot call",
                        e.interface
                    )),
                    Some(_) if !enabled => Some("--no-fuse".into()),
                    Some(_) => None,
                }
            })
            .collect();
        let can = |i: usize| why_not[i].is_none();

        // Every reader of each output.
        let mut readers: BTreeMap<(usize, &str), Vec<(usize, &str)>> = BTreeMap::new();
        for (b, task) in plan.tasks.iter().enumerate() {
            for (input, source) in &task.inputs {
                if let Source::Output { task: a, output } = source {
                    readers
                        .entry((*a, output.as_str()))
                        .or_default()
                        .push((b, input.as_str()));
                }
            }
        }
        let served = plan.deploy.as_ref().map(|d| (d.task, d.output.as_str()));

        let mut fusion = Fusion {
            calls: vec![None; n],
            not_fused: vec![None; n],
            ..Fusion::default()
        };
        let mut held: Vec<BTreeSet<String>> = vec![BTreeSet::new(); n];
        let mut written: Vec<BTreeSet<String>> = vec![BTreeSet::new(); n];
        let mut parent: Vec<usize> = (0..n).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let mut linked = vec![false; n];
        for (&(a, output), readers) in &readers {
            if !can(a) || !is_table(a, output) {
                continue;
            }
            let refused = readers.iter().find_map(|&(b, input)| {
                if !can(b) {
                    Some(format!(
                        "read by task '{}', which is not fused",
                        plan.tasks[b].name
                    ))
                } else if !is_table(b, input) {
                    Some(format!(
                        "task '{}' reads it as bytes (input '{input}')",
                        plan.tasks[b].name
                    ))
                } else {
                    None
                }
            });
            if let Some(reason) = refused {
                if readers
                    .iter()
                    .any(|&(b, input)| can(b) && is_table(b, input))
                {
                    fusion.stored.push((a, output.to_owned(), reason));
                }
                continue;
            }
            held[a].insert(output.to_owned());
            // Handed on in memory, and stored too when asked for by name.
            let asked = if plan.tasks[a].keep.iter().any(|k| k == output) {
                Some("the pipeline keeps it")
            } else if served == Some((a, output)) {
                Some("the deploy serves it")
            } else {
                None
            };
            if let Some(reason) = asked {
                written[a].insert(output.to_owned());
                fusion
                    .stored
                    .push((a, output.to_owned(), reason.to_owned()));
            }
            for &(b, input) in readers {
                fusion
                    .in_memory
                    .push((a, output.to_owned(), b, input.to_owned()));
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[ra] = rb;
                linked[a] = true;
                linked[b] = true;
            }
        }
        fusion.in_memory.sort();

        let mut chain_of_root: BTreeMap<usize, usize> = BTreeMap::new();
        for i in 0..n {
            if !linked[i] {
                fusion.not_fused[i] = Some(why_not[i].clone().unwrap_or_else(|| {
                    "no table it reads or writes passes to or from another fused task".into()
                }));
                continue;
            }
            let r = root(&mut parent, i);
            let chain = *chain_of_root.entry(r).or_insert_with(|| {
                fusion.chains.push(Vec::new());
                fusion.chains.len() - 1
            });
            fusion.chains[chain].push(i);
            fusion.calls[i] = Some(Arc::new(TransformCall {
                tables: tables(i).unwrap_or_default().iter().cloned().collect(),
                in_memory: std::mem::take(&mut held[i]),
                also_written: std::mem::take(&mut written[i]),
            }));
        }
        Ok(fusion)
    }

    /// Whether a task's input arrives in memory.
    pub fn input_in_memory(&self, task: usize, input: &str) -> bool {
        self.in_memory
            .iter()
            .any(|(_, _, b, i)| *b == task && i == input)
    }

    /// The fusion decisions as JSON, for `sluice plan --format json`.
    pub fn to_json(&self, plan: &Plan) -> serde_json::Value {
        let name = |i: usize| plan.tasks[i].name.clone();
        serde_json::json!({
            "chains": self.chains.iter().map(|c| c.iter().map(|&i| name(i)).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "in_memory": self.in_memory.iter().map(|(a, o, b, i)| serde_json::json!({
                "from": format!("{}.{o}", name(*a)),
                "to": format!("{}.{i}", name(*b)),
            })).collect::<Vec<_>>(),
            "stored": self.stored.iter().map(|(a, o, reason)| serde_json::json!({
                "output": format!("{}.{o}", name(*a)),
                "reason": reason,
            })).collect::<Vec<_>>(),
            "not_fused": self.not_fused.iter().enumerate().filter_map(|(i, r)| {
                Some((name(i), serde_json::Value::String(r.clone()?)))
            }).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// The fusion section of `sluice plan`.
    pub fn render(&self, plan: &Plan) -> String {
        // Names and reasons come from files: each on its own line, whatever they hold.
        let name = |i: usize| one_line(&plan.tasks[i].name).into_owned();
        let mut out = String::new();
        if self.chains.is_empty() {
            out.push_str("no fused chains\n");
        }
        for (c, chain) in self.chains.iter().enumerate() {
            let names: Vec<String> = chain.iter().map(|&i| name(i)).collect();
            out.push_str(&format!("fused chain {}: {}\n", c + 1, names.join(", ")));
            for (a, output, b, input) in &self.in_memory {
                if chain.contains(a) {
                    out.push_str(&format!(
                        "  in memory: {}.{} -> {}.{}\n",
                        name(*a),
                        one_line(output),
                        name(*b),
                        one_line(input)
                    ));
                }
            }
            for (a, output, reason) in &self.stored {
                if chain.contains(a) {
                    out.push_str(&format!(
                        "  stored: {}.{} ({})\n",
                        name(*a),
                        one_line(output),
                        one_line(reason)
                    ));
                }
            }
        }
        let apart: Vec<(usize, &String)> = self
            .not_fused
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.as_ref()?)))
            .collect();
        if !apart.is_empty() {
            out.push_str("not fused:\n");
            for (i, reason) in apart {
                out.push_str(&format!("  {}: {}\n", name(i), one_line(reason)));
            }
        }
        out
    }
}
