//! Runs side by side: parameters (those that differ marked), every task's metrics in one
//! table, a bar chart per metric, and ROC curves and confusion matrices where the runs
//! recorded KFP's classification metrics: a `system.ClassificationMetrics` artifact's
//! `confidenceMetrics` and `confusionMatrix` metadata (KFP v2), or an
//! `mlpipeline-ui-metadata` output with `roc` and `confusion_matrix` entries stored
//! inline (KFP v1).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Html;
use maud::{Markup, html};
use serde_json::Value;
use sluice_runtime::store::{RunQuery, RunRecord, Store};

use crate::layout::{self, Nav};
use crate::{PageError, Ui, blocking, charts};

/// Runs one comparison takes at most.
const MAX_RUNS: usize = 6;
/// Bytes of an `mlpipeline-ui-metadata` file read at most.
const UI_METADATA_LIMIT: u64 = 4 << 20;

/// What a run's classification metrics hold, by the task that recorded them.
#[derive(Debug, Default)]
struct Classification {
    /// (false positive rate, true positive rate) points.
    roc: Vec<(f64, f64)>,
    /// Class labels and the matrix, actual by predicted.
    confusion: Option<(Vec<String>, Vec<Vec<f64>>)>,
}

pub(crate) async fn page(
    State(ui): State<Arc<Ui>>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, PageError> {
    let mut ids: Vec<String> = Vec::new();
    for (key, value) in form_pairs(query.as_deref().unwrap_or("")) {
        if key == "run" && !value.is_empty() && !ids.contains(&value) {
            ids.push(value);
        }
    }
    if ids.len() > MAX_RUNS {
        return Err(PageError::bad_request(format!(
            "run: compare at most {MAX_RUNS} runs at once ({} were asked for)",
            ids.len()
        )));
    }
    // Charts are drawn off the async threads, with the reading.
    let body = blocking({
        let ui = ui.clone();
        move || {
            let mut runs: Vec<RunRecord> = Vec::new();
            for id in &ids {
                let id = ui.store.resolve_run(id)?;
                if !runs.iter().any(|r| r.id == id) {
                    runs.push(ui.store.run(&id)?);
                }
            }
            let recent = if runs.len() < 2 {
                ui.store.query_runs(&RunQuery {
                    limit: 50,
                    ..RunQuery::default()
                })?
            } else {
                Vec::new()
            };
            let classification: Vec<BTreeMap<String, Classification>> =
                runs.iter().map(|r| classification(&ui.store, r)).collect();
            Ok(html! {
                h1 { "Compare runs" }
                @if runs.len() < 2 {
                    (chooser(&runs, &recent))
                } @else {
                    (params(&runs))
                    (metrics(&runs))
                    (curves(&runs, &classification))
                }
            })
        }
    })
    .await?;
    Ok(Html(
        layout::page("Compare runs", Nav::Compare, body).into_string(),
    ))
}

/// `key=value` pairs of a query string, percent- and `+`-decoded, in order.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |b: u8| (b as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn chooser(chosen: &[RunRecord], recent: &[RunRecord]) -> Markup {
    html! {
        p { "Choose two or more runs (at most " (MAX_RUNS) "), here or on the runs list." }
        form method="get" action="/ui/compare" {
            fieldset {
                legend { "Recent runs" }
                @for run in recent {
                    @let checked = chosen.iter().any(|c| c.id == run.id);
                    label.choice {
                        input type="checkbox" name="run" value=(run.id) checked[checked];
                        " " code { (run.id) } " " (run.name) " " (layout::state(run.state.as_str()))
                    }
                }
            }
            button type="submit" { "Compare" }
        }
    }
}

fn header(runs: &[RunRecord]) -> Markup {
    html! {
        thead { tr {
            th scope="col" { "" }
            @for r in runs {
                th scope="col" { a href=(layout::run_href(&r.id)) { code { (r.id) } } br; (r.name) }
            }
        } }
    }
}

fn params(runs: &[RunRecord]) -> Markup {
    let names: BTreeSet<&String> = runs.iter().flat_map(|r| r.params.keys()).collect();
    html! {
        section {
            h2 { "Parameters" }
            p.note { "Rows whose values differ are marked." }
            table.compare {
                (header(runs))
                tbody {
                    @for name in &names {
                        @let values: Vec<Option<&String>> = runs.iter().map(|r| r.params.get(*name)).collect();
                        @let differs = values.iter().any(|v| *v != values[0]);
                        tr class=[differs.then_some("differs")] {
                            th scope="row" { (name) @if differs { " " span.badge { "differs" } } }
                            @for v in &values {
                                td { @if let Some(v) = v { (crate::run::param_value(v)) } @else { span.empty { "—" } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every metric of every run by `task.metric`: a task in a loop records its metrics
/// under its instance's name.
fn metric_table(runs: &[RunRecord]) -> BTreeMap<String, Vec<Option<f64>>> {
    let mut table: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        for task in &run.tasks {
            for (name, value) in &task.metrics {
                table
                    .entry(format!("{}.{name}", task.name))
                    .or_insert_with(|| vec![None; runs.len()])[i] = Some(*value);
            }
        }
    }
    table
}

fn metrics(runs: &[RunRecord]) -> Markup {
    let table = metric_table(runs);
    html! {
        section {
            h2 { "Metrics" }
            @if table.is_empty() {
                p.empty { "None of these runs recorded metrics." }
            } @else {
                table.compare id="metrics" {
                    (header(runs))
                    tbody {
                        @for (name, values) in &table {
                            tr data-metric=(name) {
                                th scope="row" { (name) }
                                @for v in values {
                                    td.num { @match v { Some(v) => (v), None => span.empty { "—" } } }
                                }
                            }
                        }
                    }
                }
                div.charts {
                    @for (name, values) in &table {
                        @let labelled: Vec<(String, Option<f64>)> = runs.iter().zip(values).map(|(r, v)| (r.id.clone(), *v)).collect();
                        (charts::metric_bars(name, &labelled))
                    }
                }
            }
        }
    }
}

fn curves(runs: &[RunRecord], classification: &[BTreeMap<String, Classification>]) -> Markup {
    let tasks: BTreeSet<&String> = classification.iter().flat_map(|c| c.keys()).collect();
    if tasks.is_empty() {
        return html! {};
    }
    html! {
        section {
            h2 { "Classification" }
            @for task in &tasks {
                h3 { (task) }
                @let roc: Vec<(String, Vec<(f64, f64)>)> = runs.iter().zip(classification)
                    .map(|(r, c)| (r.id.clone(), c.get(*task).map(|c| c.roc.clone()).unwrap_or_default()))
                    .collect();
                (charts::roc(&roc))
                div.charts {
                    @for (run, c) in runs.iter().zip(classification) {
                        @if let Some((labels, rows)) = c.get(*task).and_then(|c| c.confusion.as_ref()) {
                            div {
                                p { "Run " code { (run.id) } }
                                (charts::confusion(labels, rows))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The classification metrics `run` recorded, by task.
fn classification(store: &Store, run: &RunRecord) -> BTreeMap<String, Classification> {
    let mut found = BTreeMap::new();
    for task in &run.tasks {
        for out in &task.outputs {
            let c = if let Some(meta) = &out.metadata
                && (meta.get("confidenceMetrics").is_some()
                    || meta.get("confusionMatrix").is_some())
            {
                from_kfp_v2(meta)
            } else if out.name == "mlpipeline-ui-metadata" && out.size <= UI_METADATA_LIMIT {
                match store.read(&out.digest) {
                    Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                        Ok(v) => from_kfp_v1(&v),
                        Err(_) => continue,
                    },
                    Err(_) => continue,
                }
            } else {
                continue;
            };
            if !c.roc.is_empty() || c.confusion.is_some() {
                found.insert(task.name.clone(), c);
            }
        }
    }
    found
}

/// KFP v2's `system.ClassificationMetrics` metadata: `confidenceMetrics` is a list of
/// `{confidenceThreshold, recall, falsePositiveRate}`; `confusionMatrix` is
/// `{annotationSpecs: [{displayName}], rows: [{row: [counts]}]}`.
fn from_kfp_v2(meta: &Value) -> Classification {
    let roc = meta["confidenceMetrics"]
        .as_array()
        .map(|points| {
            points
                .iter()
                .filter_map(|p| Some((p["falsePositiveRate"].as_f64()?, p["recall"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let confusion = (|| {
        let m = meta.get("confusionMatrix")?;
        let labels: Vec<String> = m["annotationSpecs"]
            .as_array()?
            .iter()
            .map(|s| s["displayName"].as_str().unwrap_or("").to_owned())
            .collect();
        let rows: Vec<Vec<f64>> = m["rows"]
            .as_array()?
            .iter()
            .map(|r| {
                r["row"]
                    .as_array()
                    .map(|row| row.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect())
                    .unwrap_or_default()
            })
            .collect();
        (rows.len() == labels.len() && rows.iter().all(|r| r.len() == labels.len()))
            .then_some((labels, rows))
    })();
    Classification { roc, confusion }
}

/// KFP v1's `mlpipeline-ui-metadata`: `{"outputs": [...]}` whose `roc` entries hold
/// `fpr,tpr,thresholds` rows and `confusion_matrix` entries `target,predicted,count`
/// rows with their `labels`, in the order their `schema` names; only entries stored
/// `inline` are read (others name files elsewhere).
fn from_kfp_v1(doc: &Value) -> Classification {
    let mut c = Classification::default();
    let Some(outputs) = doc["outputs"].as_array() else {
        return c;
    };
    for entry in outputs {
        if entry["storage"].as_str() != Some("inline") {
            continue;
        }
        let Some(source) = entry["source"].as_str() else {
            continue;
        };
        let columns: Vec<&str> = entry["schema"]
            .as_array()
            .map(|s| s.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        let col = |name: &str| columns.iter().position(|c| *c == name);
        let rows: Vec<Vec<&str>> = source
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(',').map(str::trim).collect())
            .collect();
        match entry["type"].as_str() {
            Some("roc") => {
                let (Some(fpr), Some(tpr)) = (col("fpr"), col("tpr")) else {
                    continue;
                };
                c.roc = rows
                    .iter()
                    .filter_map(|r| Some((r.get(fpr)?.parse().ok()?, r.get(tpr)?.parse().ok()?)))
                    .collect();
            }
            Some("confusion_matrix") => {
                let (Some(target), Some(predicted), Some(count)) =
                    (col("target"), col("predicted"), col("count"))
                else {
                    continue;
                };
                let labels: Vec<String> = entry["labels"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut matrix = vec![vec![0.0; labels.len()]; labels.len()];
                for r in &rows {
                    let index =
                        |i: usize| r.get(i).and_then(|v| labels.iter().position(|l| l == v));
                    if let (Some(a), Some(p), Some(n)) = (
                        index(target),
                        index(predicted),
                        r.get(count).and_then(|v| v.parse::<f64>().ok()),
                    ) {
                        matrix[a][p] += n;
                    }
                }
                if !labels.is_empty() {
                    c.confusion = Some((labels, matrix));
                }
            }
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_repeated_keys_in_order() {
        assert_eq!(
            form_pairs("run=a&run=b%2Fc&x=1+2&run=&bad=%zz"),
            vec![
                ("run".to_owned(), "a".to_owned()),
                ("run".to_owned(), "b/c".to_owned()),
                ("x".to_owned(), "1 2".to_owned()),
                ("run".to_owned(), String::new()),
                ("bad".to_owned(), "%zz".to_owned()),
            ]
        );
        assert_eq!(form_pairs("a=%4"), vec![("a".to_owned(), "%4".to_owned())]);
    }

    #[test]
    fn kfp_v2_classification_metrics_give_curve_and_matrix() {
        let meta = serde_json::json!({
            "confidenceMetrics": [
                {"confidenceThreshold": 1.0, "recall": 0.0, "falsePositiveRate": 0.0},
                {"confidenceThreshold": 0.5, "recall": 0.9, "falsePositiveRate": 0.1},
            ],
            "confusionMatrix": {
                "annotationSpecs": [{"displayName": "B"}, {"displayName": "M"}],
                "rows": [{"row": [80, 9]}, {"row": [2, 52]}],
            }
        });
        let c = from_kfp_v2(&meta);
        assert_eq!(c.roc, vec![(0.0, 0.0), (0.1, 0.9)]);
        assert_eq!(
            c.confusion,
            Some((
                vec!["B".to_owned(), "M".to_owned()],
                vec![vec![80.0, 9.0], vec![2.0, 52.0]]
            ))
        );
    }

    #[test]
    fn kfp_v1_ui_metadata_gives_curve_and_matrix_in_schema_order() {
        let doc = serde_json::json!({"outputs": [
            {"type": "roc", "format": "csv", "storage": "inline",
             "schema": [{"name": "thresholds", "type": "NUMBER"}, {"name": "fpr", "type": "NUMBER"}, {"name": "tpr", "type": "NUMBER"}],
             "source": "1,0,0\n0.5,0.2,0.8\n0,1,1\n"},
            {"type": "confusion_matrix", "format": "csv", "storage": "inline",
             "schema": [{"name": "target", "type": "CATEGORY"}, {"name": "predicted", "type": "CATEGORY"}, {"name": "count", "type": "NUMBER"}],
             "labels": ["B", "M"],
             "source": "B,B,80\nB,M,9\nM,B,2\nM,M,52\n"},
            {"type": "roc", "storage": "gcs", "source": "gs://elsewhere"}
        ]});
        let c = from_kfp_v1(&doc);
        assert_eq!(c.roc, vec![(0.0, 0.0), (0.2, 0.8), (1.0, 1.0)]);
        assert_eq!(
            c.confusion.map(|(_, m)| m),
            Some(vec![vec![80.0, 9.0], vec![2.0, 52.0]])
        );
    }
}
