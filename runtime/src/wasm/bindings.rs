//! The one `bindgen!` site: host-side bindings of the `sluice:pipeline` WIT package in
//! `wit/` (its `host-runtime` world: the `step`, `transform` and `predict` exports and the
//! `host` import). Each user implements the `host` interface for its own store data.
//! Exports are reached per interface (`GuestIndices`), since a component exports only one.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "host-runtime",
});

pub use exports::sluice::pipeline::predict;
pub use exports::sluice::pipeline::step::{self, Invocation, Outcome, StepError};
pub use exports::sluice::pipeline::transform;
pub use sluice::pipeline::tables;
pub use sluice::pipeline::types::{Artifact, Param, Value};
