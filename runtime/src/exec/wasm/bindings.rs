//! The one `bindgen!` site: host-side bindings of the `sluice:pipeline` WIT package in
//! `wit/` (its `host-runtime` world: the `step`, `transform` and `predict` exports and the `host`
//! import), and the host's implementation of the `host` interface typed steps import.
//! Exports are reached per interface (`GuestIndices`), since a component exports only one.

use super::state::StepState;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "host-runtime",
});

pub use exports::sluice::pipeline::predict;
pub use exports::sluice::pipeline::step::{self, Invocation, Outcome, StepError};
pub use exports::sluice::pipeline::transform;
pub use sluice::pipeline::tables;
pub use sluice::pipeline::types::{Artifact, Param, Value};

impl sluice::pipeline::types::Host for StepState {}
impl sluice::pipeline::tensors::Host for StepState {}
impl tables::Host for StepState {}

impl sluice::pipeline::host::Host for StepState {
    fn log(&mut self, level: sluice::pipeline::host::Level, message: String) {
        use sluice::pipeline::host::Level;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let line = format!("[{level}] {message}\n");
        self.host_log.write(line.as_bytes());
    }

    fn metric(&mut self, name: String, value: f64) {
        self.sink.metric(name.clone(), value);
        self.metrics.insert(name, value);
    }

    fn progress(&mut self, done: u64, total: u64) {
        self.sink.progress(done, total);
    }
}
