//! What a wasm task's `Store` holds: its WASI context and resource table, the memory cap
//! (see [`crate::wasm::limits`]), and the host-import state of typed steps (metrics,
//! logs), with the step's implementation of the `host` interface.

use std::collections::BTreeMap;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::events::TaskSink;
use crate::exec::capture::Capture;
use crate::wasm::bindings::sluice;
pub use crate::wasm::limits::{MemoryCap, Stop};

pub struct StepState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: MemoryCap,
    pub sink: TaskSink,
    /// Metrics reported through `host.metric`.
    pub metrics: BTreeMap<String, f64>,
    /// Lines logged through `host.log`.
    pub host_log: Capture,
    /// Bytes the attempt may still write to its outputs.
    pub disk: std::sync::Arc<super::disk::DiskBudget>,
    /// Cancelled when the attempt is cancelled or times out; ends host waits.
    pub cancel: tokio_util::sync::CancellationToken,
    /// When the attempt's wall-clock limit passes, and that limit: ends host waits too.
    pub deadline: (tokio::time::Instant, std::time::Duration),
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl sluice::pipeline::types::Host for StepState {}
impl sluice::pipeline::tensors::Host for StepState {}
impl sluice::pipeline::tables::Host for StepState {}

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
