//! Deploying: a pipeline's last act. Once every task of a run succeeded and the gate over
//! its metrics holds, the chosen task output is published, with its predictor, as the next
//! version of a model in the home's repository, and a server running in that home is told
//! to load it (it warms the new version before moving traffic). Anything short of that is
//! recorded on the run with the reason.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::models::{Publication, Repository};
use crate::plan::Plan;
use crate::serve::predictor::{PoolConfig, PredictorEngine};
use crate::spec::sha256_hex;
use crate::store::{DeployRecord, DeployState, RunRecord, RunState, Store, TaskState};

use crate::spec::gate::Gate;

/// Runs the deploy section of `plan` for the finished run `record`, records the outcome on
/// the run and returns it; `None` when the pipeline has no deploy section.
pub async fn deploy(
    store: &Store,
    plan: &Plan,
    record: &RunRecord,
    cache_dir: &Path,
) -> Option<DeployRecord> {
    let section = plan.deploy.as_ref()?;
    let outcome = decide(store, plan, record, cache_dir).await;
    let deploy = match outcome {
        Ok((version, message)) => DeployRecord {
            model: section.model.clone(),
            state: DeployState::Deployed,
            version: Some(version),
            message,
        },
        Err((state, message)) => DeployRecord {
            model: section.model.clone(),
            state,
            version: None,
            message,
        },
    };
    if let Err(e) = store.set_deploy(&record.id, &deploy) {
        let mut deploy = deploy;
        deploy.message = format!(
            "{} (and it could not be recorded: {})",
            deploy.message,
            crate::error_chain(&e)
        );
        return Some(deploy);
    }
    Some(deploy)
}

type Refusal = (DeployState, String);

async fn decide(
    store: &Store,
    plan: &Plan,
    record: &RunRecord,
    cache_dir: &Path,
) -> Result<(u64, String), Refusal> {
    let section = plan.deploy.as_ref().expect("checked by the caller");
    let skipped = |m: String| (DeployState::Skipped, m);
    let failed = |m: String| (DeployState::Failed, m);
    if record.state != RunState::Succeeded {
        let unfinished: Vec<String> = record
            .tasks
            .iter()
            .filter(|t| t.state != TaskState::Succeeded)
            .map(|t| format!("{} {}", t.name, t.state.as_str()))
            .collect();
        return Err(skipped(format!(
            "the run {} ({})",
            record.state.as_str(),
            if unfinished.is_empty() {
                "no task ran".to_owned()
            } else {
                unfinished.join(", ")
            }
        )));
    }
    let metrics: BTreeMap<String, BTreeMap<String, f64>> = record
        .tasks
        .iter()
        .filter(|t| !t.metrics.is_empty())
        .map(|t| (t.name.clone(), t.metrics.clone()))
        .collect();
    if let Some(source) = &section.gate {
        let gate =
            Gate::compile(source).map_err(|e| failed(format!("the gate `{source}` is {e}")))?;
        let verdict = gate
            .check(&metrics)
            .map_err(|e| failed(format!("the gate `{source}` cannot be evaluated: {e}")))?;
        if !verdict.holds {
            return Err(skipped(format!(
                "the gate `{source}` does not hold ({})",
                verdict.evidence.join(", ")
            )));
        }
    }
    let task = &plan.tasks[section.task];
    let output = record
        .tasks
        .iter()
        .find(|t| t.name == task.name)
        .and_then(|t| t.outputs.iter().find(|o| o.name == section.output))
        .ok_or_else(|| {
            failed(format!(
                "task '{}' recorded no output '{}'",
                task.name, section.output
            ))
        })?;
    let model_path = store
        .artifact_path(&output.digest)
        .map_err(|e| failed(crate::error_chain(&e)))?;
    if !model_path.is_file() {
        return Err(failed(format!(
            "output '{}.{}' is a folder; a served model is one file",
            task.name, section.output
        )));
    }
    let predictor = section.predictor.clone();
    let wasm = crate::files::read_limited(
        &predictor,
        crate::files::WASM_FILE_MAX,
        crate::files::Follow::Yes,
    )
    .map_err(|e| {
        failed(format!(
            "cannot read the predictor {}: {e}",
            predictor.display()
        ))
    })?;
    let wasm_digest = sha256_hex(&wasm);
    let model = std::fs::read(&model_path)
        .map_err(|e| failed(format!("cannot read {}: {e}", model_path.display())))?;

    // Load the model once, as the server will: a predictor that rejects it fails the
    // deploy here rather than the server later, and its signature is the version's.
    let engine_cache = cache_dir.to_owned();
    let digest = wasm_digest.clone();
    let signature = tokio::task::spawn_blocking(move || {
        let config = PoolConfig {
            max_instances: 1,
            total_instances: 2,
            ..PoolConfig::default()
        };
        let engine = Arc::new(PredictorEngine::new(&engine_cache, config)?);
        let pool = engine.load(&wasm, &digest, model)?;
        Ok::<_, crate::serve::predictor::LoadError>(pool.signature().clone())
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(|e| {
        failed(format!(
            "the predictor {} cannot serve the model: {e}",
            predictor.display()
        ))
    })?;

    let repo = Repository::open(store.home());
    // Deploying what already serves changes nothing: no new version, no reload.
    if let Ok(current) = repo.default_version(&section.model)
        && let Ok(serving) = repo.version(&section.model, current)
        && serving.meta.model_digest == output.digest
        && serving.meta.predictor_digest == wasm_digest
    {
        return Ok((
            current,
            format!(
                "model '{}' version {current} already serves this model with this predictor; nothing new to publish",
                section.model
            ),
        ));
    }
    let version = repo
        .publish(&Publication {
            name: &section.model,
            model: &model_path,
            model_digest: &output.digest,
            predictor: &section.predictor,
            predictor_digest: &wasm_digest,
            signature,
            run: Some(&record.id),
            metrics,
            labels: &section.labels,
        })
        .map_err(|e| failed(crate::error_chain(&e)))?;
    let published = format!("published model '{}' version {version}", section.model);
    let message = match crate::serve::find_server(store.home()) {
        None => format!("{published}; no server runs for this home (`sluice serve` serves it)"),
        Some((url, token)) => {
            match crate::serve::admin_request(
                &url,
                &token,
                &section.model,
                "reload",
                serde_json::json!({}),
            )
            .await
            {
                Ok(answer) => format!(
                    "{published}; the server at {url} now serves version {}",
                    answer["version"]
                ),
                Err(e) => format!(
                    "{published}, but the running server was not updated: {}",
                    crate::error_chain(&e)
                ),
            }
        }
    };
    Ok((version, message))
}
