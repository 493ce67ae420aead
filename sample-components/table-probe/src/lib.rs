//! `table-probe`: a transform whose `table` type differs from Sluice's (see
//! `wit/table-probe.wit`), for the host's tests that wiring is checked against the types
//! read from each component's binary. It hands every input back as output `out`.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

/// The generated glue needs `unsafe` for the canonical ABI; no hand-written code here does.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "table-probe",
    });

    #[cfg(target_arch = "wasm32")]
    use super::TableProbe;
    #[cfg(target_arch = "wasm32")]
    export!(TableProbe with_types_in self);
}

use bindings::exports::sluice::pipeline::transform::{Guest, Port, Request, Response};
use bindings::sluice::pipeline::types::StepError;

struct TableProbe;

impl Guest for TableProbe {
    fn transform(request: Request) -> Result<Response, StepError> {
        Ok(Response {
            outputs: request
                .inputs
                .into_iter()
                .map(|port| Port {
                    name: "out".to_owned(),
                    data: port.data,
                })
                .collect(),
            params: Vec::new(),
            metrics: Vec::new(),
        })
    }
}
