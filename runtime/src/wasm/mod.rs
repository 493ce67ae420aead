//! The wasm host: what every use of wasmtime in Sluice builds on. One engine setup
//! (the component model, epoch interruption for deadlines and cancellation, Cranelift at
//! `Speed`), its epoch ticker, the on-disk compile cache, the one `bindgen!` of the
//! `sluice:pipeline` WIT package, a linker with WASI 0.2 and the `host` imports, and the
//! limits a guest is held to. The step executor (`exec::wasm`) and the serving predictor
//! (`serve::predictor`) each add only their own store data and configuration.

pub(crate) mod bindings;
pub(crate) mod cache;
pub(crate) mod limits;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};
use wasmtime_wasi::WasiView;

use self::bindings::{HostRuntime, sluice};
use self::cache::CompileCache;

/// A wasmtime engine that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot set up wasmtime: {0}")]
    Setup(String),
    #[error("cannot start the epoch thread")]
    Ticker(#[source] std::io::Error),
}

/// One engine, its epoch ticker (running while the host lives) and its compile cache.
pub(crate) struct Host {
    pub(crate) engine: Engine,
    pub(crate) cache: CompileCache,
    _ticker: EpochTicker,
}

impl Host {
    /// An engine over `config`, to which the settings every guest needs are added (the
    /// component model, epoch interruption, Cranelift at `Speed`), with its epoch ticker
    /// and the compile cache under `cache_dir` (see [`CompileCache::new`]).
    pub(crate) fn new(mut config: Config, cache_dir: &Path) -> Result<Host, HostError> {
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| HostError::Setup(error_text(&e)))?;
        let ticker = EpochTicker::start(engine.clone()).map_err(HostError::Ticker)?;
        Ok(Host {
            cache: CompileCache::new(cache_dir, &engine),
            engine,
            _ticker: ticker,
        })
    }

    /// A linker for store data `T`: WASI 0.2 (synchronous) and the `sluice:pipeline`
    /// imports (`host`, `types`, `tables`, `tensors`) as `T` implements them.
    pub(crate) fn linker<T>(&self) -> Result<Linker<T>, HostError>
    where
        T: WasiView
            + sluice::pipeline::host::Host
            + sluice::pipeline::types::Host
            + sluice::pipeline::tables::Host
            + sluice::pipeline::tensors::Host
            + 'static,
    {
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| HostRuntime::add_to_linker::<T, HasSelf<T>>(&mut linker, |s| s))
            .map_err(|e| HostError::Setup(error_text(&e)))?;
        Ok(linker)
    }
}

/// How often the epoch advances: the latency of cancellation and of the CPU-time check.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// A wasmtime error and its causes on one line, repeated causes once.
pub(crate) fn error_text(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.dedup();
    parts.join(": ")
}

/// Whether bytes start like a component (preamble version 0x0d, layer 1) rather than a
/// core module (version 1, layer 0).
pub(crate) fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

/// Advances the engine's epoch every [`TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
