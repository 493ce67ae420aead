//! The guest side of `sluice:pipeline`, shared by the sample typed steps: the one place they
//! generate bindings for the `step-component` world of `wit/pipeline.wit`, and the
//! conversion of an invocation into `sluice_ml::step` types. A step implements
//! [`Guest`] and, in its wasm build, exports itself with
//! `sluice_step_guest::export!(MyStep with_types_in sluice_step_guest);`.

/// The generated glue needs `unsafe` for the canonical ABI; no hand-written code here does.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "step-component",
        pub_export_macro: true,
        default_bindings_module: "sluice_step_guest",
    });
}

pub use bindings::exports::sluice::pipeline::step::Guest;
pub use bindings::sluice::pipeline::host;
pub use bindings::sluice::pipeline::types::{
    Artifact, Invocation, Metric, Outcome, Param, StepError, Value,
};
pub use bindings::*;

use sluice_ml::step;

/// The invocation as `sluice_ml::step` types: parameters by name, artifacts as
/// name and sandbox path.
pub fn convert(inv: Invocation) -> step::Invocation {
    step::Invocation {
        params: inv
            .params
            .into_iter()
            .map(|param| {
                let value = match param.value {
                    Value::Str(text) => step::Value::Str(text),
                    Value::Int(number) => step::Value::Int(number),
                    Value::Float(number) => step::Value::Float(number),
                    Value::Boolean(flag) => step::Value::Bool(flag),
                    Value::Json(text) => step::Value::Json(text),
                };
                (param.name, value)
            })
            .collect(),
        inputs: inv.inputs.into_iter().map(|a| (a.name, a.path)).collect(),
        outputs: inv.outputs.into_iter().map(|a| (a.name, a.path)).collect(),
    }
}
