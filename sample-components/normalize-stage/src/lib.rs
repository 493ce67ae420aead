//! `normalize-stage`: normalisation as a transform stage (`transform-stage` in
//! `wit/pipeline.wit`). It imports the transform that goes before it, hands that one the
//! whole request, then normalises the one table it returns (output `normalized`, with the
//! statistics as `fitted_stats`) and passes its other outputs, parameters and metrics on.
//! `sluice compose normalize_stage.wasm --plug validate.wasm` makes "validate, then
//! normalise" one component. Parameters it reads: `exclude` (comma-separated, required)
//! and `method` (`zscore` or `minmax`, default `zscore`); all are handed upstream too.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

/// The generated glue needs `unsafe` for the canonical ABI; no hand-written code here does.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "transform-stage",
    });

    #[cfg(target_arch = "wasm32")]
    use super::NormalizeStage;
    #[cfg(target_arch = "wasm32")]
    export!(NormalizeStage with_types_in self);
}

use bindings::exports::sluice::pipeline::transform as export;
use bindings::sluice::pipeline::transform as before;
use bindings::sluice::pipeline::types::{StepError, Value};
use sluice_ml::describe;
use sluice_ml::normalize::{self, Method};

struct NormalizeStage;

impl export::Guest for NormalizeStage {
    fn transform(request: export::Request) -> Result<export::Response, StepError> {
        let text = |name: &str| {
            request
                .params
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| match &p.value {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
        };
        let exclude_text = text("exclude").unwrap_or_default();
        let exclude: Vec<&str> = exclude_text.split(',').filter(|n| !n.is_empty()).collect();
        let method: Method = match text("method") {
            Some(m) => m
                .parse()
                .map_err(|e| StepError::InvalidInput(describe(&e)))?,
            None => Method::Zscore,
        };

        let upstream = before::transform(&before::Request {
            params: request.params.clone(),
            inputs: request
                .inputs
                .into_iter()
                .map(|p| before::Port {
                    name: p.name,
                    data: match p.data {
                        export::Data::Table(t) => before::Data::Table(t),
                        export::Data::Bytes(b) => before::Data::Bytes(b),
                    },
                })
                .collect(),
        })?;

        let mut outputs = Vec::new();
        let mut table = None;
        for port in upstream.outputs {
            match port.data {
                before::Data::Table(t) if table.is_none() => table = Some(t),
                before::Data::Table(_) => {
                    return Err(StepError::Failed(
                        "the transform before this stage returned more than one table".into(),
                    ));
                }
                before::Data::Bytes(b) => outputs.push(export::Port {
                    name: port.name,
                    data: export::Data::Bytes(b),
                }),
            }
        }
        let table = table.ok_or_else(|| {
            StepError::Failed("the transform before this stage returned no table".into())
        })?;
        let table = from_wit(table).map_err(StepError::InvalidInput)?;
        let invalid = |e: normalize::NormalizeError| {
            StepError::InvalidInput(format!("in the table: {}", describe(&e)))
        };
        let stats = normalize::fit_table(&table, &exclude, method).map_err(invalid)?;
        let normalized = normalize::apply_table(table, &stats, &exclude).map_err(invalid)?;
        outputs.push(export::Port {
            name: "normalized".into(),
            data: export::Data::Table(to_wit(normalized)),
        });
        outputs.push(export::Port {
            name: "fitted_stats".into(),
            data: export::Data::Bytes(stats.to_json().into_bytes()),
        });
        Ok(export::Response {
            outputs,
            params: upstream.params,
            metrics: upstream.metrics,
        })
    }
}

sluice_ml::wit_table_conversions!(bindings::sluice::pipeline::tables);
