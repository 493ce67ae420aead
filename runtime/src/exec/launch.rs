//! Running a KFP step: the launcher context of a KFP v1 component whose command line asks
//! for `executorInput`, and what a step left in its executor output, taken back after it
//! succeeded (see [`crate::launcher`] for the protocol itself).

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::{Completion, Failure, Invocation};
use crate::launcher;
use crate::store::TaskDir;

/// The context of a KFP v1 component task whose command line holds `executorInput`:
/// its parameter inputs as typed values, its other inputs and outputs as artifacts.
pub fn context_for_v1(inv: &Invocation) -> launcher::TaskContext {
    use crate::spec::ParamType;
    let mut params = BTreeMap::new();
    let mut artifacts = BTreeMap::new();
    for (name, arg) in &inv.inputs {
        let param = arg
            .type_
            .as_ref()
            .and_then(crate::spec::TypeSpec::param_type);
        let text = || match &arg.value {
            Some(v) => v.clone(),
            None => super::read_value_file(&inv.dir.input_file(name)),
        };
        match (&arg.type_, param) {
            // An untyped input is a string parameter, as KFP reads v1 components.
            (None, _) => {
                params.insert(name.clone(), Json::String(text()));
            }
            (Some(_), Some(ty)) => {
                let text = text();
                let value = match ty {
                    ParamType::String => Some(Json::String(text.clone())),
                    ParamType::Integer => text.trim().parse::<i64>().map(Json::from).ok(),
                    ParamType::Float => text
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(|f| serde_json::Number::from_f64(f).map(Json::Number)),
                    ParamType::Boolean => crate::spec::types::parse_bool(&text).map(Json::Bool),
                    ParamType::JsonObject | ParamType::JsonArray => {
                        serde_json::from_str(&text).ok()
                    }
                };
                params.insert(name.clone(), value.unwrap_or(Json::String(text)));
            }
            (Some(_), None) => {
                let type_ = launcher::artifact_type(arg.type_.as_ref());
                artifacts.insert(
                    name.clone(),
                    vec![launcher::InputArtifact {
                        key: name.clone(),
                        name: name.clone(),
                        type_,
                        metadata: json!({}),
                        uri: None,
                    }],
                );
            }
        }
    }
    let outputs = &inv.component.spec.outputs;
    launcher::TaskContext {
        params,
        artifacts,
        output_params: outputs
            .iter()
            .filter(|o| o.param_type().is_some())
            .map(|o| o.name.clone())
            .collect(),
        output_artifacts: outputs
            .iter()
            .filter(|o| o.param_type().is_none())
            .map(|o| (o.name.clone(), launcher::artifact_type(o.type_.as_ref())))
            .collect(),
        pipeline_name: inv.component.name(),
        run_id: inv.run_id.clone(),
        task_name: inv.task.clone(),
        task_id: format!("{}-{}", inv.run_id, inv.task),
        created: String::new(),
        // A v1 command line has no `{{$.pipeline_root}}`, and the executor input does not
        // carry it.
        pipeline_root: String::new(),
    }
}

/// Moves an artifact a step wrote at a `uri` of its own (inside its outputs folder) to
/// where Sluice collects it. The `uri` is as the step saw it: a host path, or a path
/// under the container's outputs folder.
fn relocate(dir: &TaskDir, name: &str, uri: &str) -> Result<(), Failure> {
    let outputs = std::path::absolute(dir.outputs()).unwrap_or_else(|_| dir.outputs());
    let container_root = super::docker::CONTAINER_OUTPUTS;
    let host = if let Ok(rest) = std::path::Path::new(uri).strip_prefix(&outputs) {
        outputs.join(rest)
    } else if let Some(rest) = uri
        .strip_prefix(container_root)
        .and_then(|r| r.strip_prefix('/'))
    {
        outputs.join(rest)
    } else {
        // Remote storage, or outside the task's folder: nothing Sluice can collect.
        return Ok(());
    };
    let expected =
        std::path::absolute(dir.output_file(name)).unwrap_or_else(|_| dir.output_file(name));
    if host == expected
        || std::fs::symlink_metadata(&expected).is_ok()
        || !host.starts_with(&outputs)
    {
        return Ok(());
    }
    if host
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(Failure::failed(format!(
            "output '{name}': its uri {uri} leaves the task's folder"
        )));
    }
    if std::fs::symlink_metadata(&host).is_ok() {
        std::fs::rename(&host, &expected)
            .map_err(|e| Failure::failed(format!("output '{name}': cannot take {uri}: {e}")))?;
    }
    Ok(())
}

/// After a step succeeded: takes its executor output (parameter values, artifact
/// metadata, metrics logged to `system.Metrics` artifacts), and leaves an empty file for
/// metrics artifacts the step had no reason to write.
pub fn finish(
    ctx: &launcher::TaskContext,
    dir: &TaskDir,
    completion: &mut Completion,
) -> Result<(), Failure> {
    let path = dir.outputs().join(launcher::EXECUTOR_OUTPUT);
    let read = crate::files::read_limited(
        &path,
        crate::files::GUEST_JSON_MAX,
        crate::files::Follow::No,
    );
    let bytes = match read {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Failure::failed(format!(
                "the executor output {} {e}",
                launcher::EXECUTOR_OUTPUT
            )));
        }
    };
    if let Some(bytes) = bytes {
        let output = launcher::parse_executor_output(&bytes)
            .map_err(|e| Failure::failed(crate::error_chain(&e)))?;
        for (name, uri) in &output.uris {
            if ctx.output_artifacts.contains_key(name) {
                relocate(dir, name, uri)?;
            }
        }
        for (name, value) in output.params {
            if ctx.output_params.contains(&name) {
                completion.params.entry(name).or_insert(value);
            }
        }
        for (name, metadata) in output.metadata {
            let Some(type_) = ctx.output_artifacts.get(&name) else {
                continue;
            };
            if type_.title() == "system.Metrics"
                && let Some(map) = metadata.as_object()
            {
                for (metric, value) in map {
                    if let Some(v) = value.as_f64() {
                        completion.metrics.insert(metric.clone(), v);
                    }
                }
            }
            completion.metadata.insert(name, metadata);
        }
    }
    for (name, type_) in &ctx.output_artifacts {
        let file = dir.output_file(name);
        if launcher::METADATA_ONLY.contains(&type_.title())
            && std::fs::symlink_metadata(&file).is_err()
        {
            std::fs::write(&file, b"")
                .map_err(|e| Failure::failed(format!("output '{name}': {e}")))?;
        }
    }
    Ok(())
}
