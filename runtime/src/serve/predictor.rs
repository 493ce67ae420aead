//! Predictor instances: the only part of `serve` that touches wasmtime. One engine with
//! the pooling allocator; per model version an `InstancePre` and a pool of instances,
//! each of which has loaded the model once. The pool grows with concurrent requests up to
//! a maximum, gives idle instances back after a while, and can empty entirely (scale to
//! zero) to come back on the next request. Each call runs on a blocking thread under a
//! memory cap and a deadline; an instance that traps is discarded, never reused.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{InstancePre, Linker, ResourceTable};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::models::{Signature, TensorSpec};
use crate::wasm::bindings::predict::{GuestIndices, PredictError};
use crate::wasm::bindings::sluice;
use crate::wasm::bindings::sluice::pipeline::tensors as wit;
use crate::wasm::limits::{MemoryCap, Stop};
use crate::wasm::{Host, HostError, TICK, error_text, is_component};

use super::tensor::{Data, Datatype, Tensor};

/// Limits of the predictor engine and of each pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Most instances one model version may have at once.
    pub max_instances: usize,
    /// Most instances of all models together.
    pub total_instances: u32,
    /// Memory one instance may use (summed over its memories).
    pub memory: u64,
    /// How long one `predict` call may run.
    pub deadline: Duration,
    /// How far an instance's memory may grow past what it had after loading the model
    /// before the instance is dropped after its request (and its memory given back),
    /// rather than kept for the next one: one burst of large batches does not pin memory.
    pub retain_growth: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_instances: std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
            total_instances: 64,
            memory: 256 << 20,
            deadline: Duration::from_secs(10),
            retain_growth: 16 << 20,
        }
    }
}

/// A predictor engine that cannot be set up, or a predictor that cannot serve its model:
/// not a component, does not compile or link, lacks the `predict` export, traps or
/// refuses the model. wasmtime's and the guest's messages are kept, on one line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("the predictor is not a WebAssembly component")]
    NotAComponent,
    #[error("the predictor does not compile: {0}")]
    Compile(String),
    #[error("the predictor cannot be linked: {0}")]
    Link(String),
    #[error("the component does not export sluice:pipeline/predict: {0}")]
    Export(String),
    #[error("the predictor cannot be instantiated: {0}")]
    Instantiate(String),
    #[error("the predictor trapped loading the model: {0}")]
    Trapped(String),
    #[error("the predictor cannot load the model: {0}")]
    Refused(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PredictorError {
    /// The client's request was wrong; answer 400.
    #[error("{0}")]
    Invalid(String),
    /// The predictor failed or the instance trapped; answer 500.
    #[error("{0}")]
    Failed(String),
    /// Every instance is busy and the pool may not grow; answer 503.
    #[error("{0}")]
    Busy(String),
}

pub struct PredictorState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryCap,
}

impl WasiView for PredictorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl sluice::pipeline::types::Host for PredictorState {}
impl sluice::pipeline::tensors::Host for PredictorState {}
impl sluice::pipeline::tables::Host for PredictorState {}

impl sluice::pipeline::host::Host for PredictorState {
    fn log(&mut self, _: sluice::pipeline::host::Level, _: String) {}
    fn metric(&mut self, _: String, _: f64) {}
    fn progress(&mut self, _: u64, _: u64) {}
}

/// The engine all predictors run in.
pub struct PredictorEngine {
    host: Host,
    linker: Linker<PredictorState>,
    config: PoolConfig,
}

impl PredictorEngine {
    /// An engine with a pooling allocator sized by `config`, compiling into (and loading
    /// from) the compile cache under `cache_dir`.
    pub fn new(cache_dir: &Path, config: PoolConfig) -> Result<PredictorEngine, LoadError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.total_instances)
            .total_core_instances(config.total_instances * 8)
            .total_memories(config.total_instances * 4)
            .total_tables(config.total_instances * 8)
            .max_memory_size(config.memory as usize);
        let mut wc = Config::new();
        wc.memory_reservation(config.memory)
            .memory_guard_size(64 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let host = Host::new(wc, cache_dir)?;
        let linker = host.linker()?;
        Ok(PredictorEngine {
            host,
            linker,
            config,
        })
    }

    /// Compiles (or takes from the cache) a predictor, makes one instance and loads the
    /// model in it: the pool starts warm, and a model the predictor rejects is an error
    /// here rather than on the first request.
    pub fn load(
        self: &Arc<Self>,
        wasm: &[u8],
        wasm_digest: &str,
        model: Vec<u8>,
    ) -> Result<Arc<Pool>, LoadError> {
        if !is_component(wasm) {
            return Err(LoadError::NotAComponent);
        }
        let component = self
            .host
            .cache
            .load(&self.host.engine, wasm_digest, wasm)
            .map_err(|e| LoadError::Compile(error_text(&e)))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(error_text(&e)))?;
        let indices = GuestIndices::new(&pre).map_err(|e| LoadError::Export(error_text(&e)))?;
        let mut pool = Pool {
            engine: self.clone(),
            pre,
            indices,
            model: Arc::new(model),
            signature: Signature::default(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(self.config.max_instances)),
            live: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
        };
        let (first, signature) = pool.instantiate()?;
        pool.signature = signature;
        pool.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((first, Instant::now()));
        Ok(Arc::new(pool))
    }
}

struct Instance {
    store: Store<PredictorState>,
    guest: crate::wasm::bindings::predict::Guest,
    /// Its memory once the model was loaded, in bytes.
    loaded_memory: u64,
}

/// The instances of one model version.
pub struct Pool {
    engine: Arc<PredictorEngine>,
    pre: InstancePre<PredictorState>,
    indices: GuestIndices,
    model: Arc<Vec<u8>>,
    signature: Signature,
    idle: Mutex<Vec<(Instance, Instant)>>,
    /// One per instance the pool may have: a request holds one while it runs, so the pool
    /// never grows past its maximum and requests beyond it wait.
    permits: Arc<tokio::sync::Semaphore>,
    /// Instances in existence, idle or busy.
    live: AtomicUsize,
    busy: AtomicUsize,
    last_used: Mutex<Instant>,
}

/// A pool's size, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSize {
    pub live: usize,
    pub busy: usize,
}

impl Pool {
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    pub fn size(&self) -> PoolSize {
        PoolSize {
            live: self.live.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }

    pub fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    fn new_store(&self) -> Store<PredictorState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let mut store = Store::new(
            &self.engine.host.engine,
            PredictorState {
                wasi: wasi.build(),
                table: ResourceTable::new(),
                limits: MemoryCap::new(self.engine.config.memory),
            },
        );
        store.limiter(|s| &mut s.limits);
        store
    }

    /// A new instance with the model loaded.
    fn instantiate(&self) -> Result<(Instance, Signature), LoadError> {
        let mut store = self.new_store();
        arm_deadline(&mut store, self.engine.config.deadline);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| LoadError::Instantiate(error_text(&e)))?;
        let guest = self
            .indices
            .load(&mut store, &instance)
            .map_err(|e| LoadError::Export(error_text(&e)))?;
        let signature = guest
            .call_load(&mut store, &self.model)
            .map_err(|e| LoadError::Trapped(error_text(&e)))?
            .map_err(|e| match e {
                PredictError::InvalidInput(m) | PredictError::Failed(m) => LoadError::Refused(m),
            })?;
        self.live.fetch_add(1, Ordering::Relaxed);
        let loaded_memory = store.data().limits.total();
        Ok((
            Instance {
                store,
                guest,
                loaded_memory,
            },
            signature_of(&signature),
        ))
    }

    /// Runs one batch through an idle instance, or a new one while the pool may grow;
    /// beyond its maximum, waits for an instance to come free.
    ///
    /// Everything after the wait happens on the blocking thread, which owns the slot,
    /// the instance and the pool's counts until it is done: a client that goes away
    /// mid-request drops only the wait for the answer, never the pool's bookkeeping.
    pub async fn predict(
        self: &Arc<Self>,
        inputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>, PredictorError> {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let wait = self.engine.config.deadline;
        let acquire = self.permits.clone().acquire_owned();
        let permit = match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => permit,
            _ => {
                return Err(PredictorError::Busy(format!(
                    "all {} instances of the model stayed busy for {}s; try again",
                    self.engine.config.max_instances,
                    wait.as_secs()
                )));
            }
        };
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            let idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let instance = match idle {
                Some((instance, _)) => instance,
                None => {
                    pool.instantiate()
                        .map_err(|e| PredictorError::Failed(e.to_string()))?
                        .0
                }
            };
            let _busy = Busy::count(&pool.busy);
            let (instance, result) = pool.run(instance, inputs);
            match instance {
                Some(instance) => pool
                    .idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((instance, Instant::now())),
                None => {
                    pool.live.fetch_sub(1, Ordering::Relaxed);
                }
            }
            result
        })
        .await
        .map_err(|e| PredictorError::Failed(e.to_string()))?
    }

    /// Calls `predict`; gives the instance back unless it trapped or its memory grew past
    /// what the pool retains.
    fn run(
        &self,
        mut instance: Instance,
        inputs: Vec<Tensor>,
    ) -> (Option<Instance>, Result<Vec<Tensor>, PredictorError>) {
        arm_deadline(&mut instance.store, self.engine.config.deadline);
        let wit_inputs: Vec<wit::Tensor> = inputs.into_iter().map(to_wit).collect();
        let result = instance
            .guest
            .call_predict(&mut instance.store, &wit_inputs);
        drop(wit_inputs);
        let grown = instance.store.data().limits.total();
        let keep = grown <= instance.loaded_memory + self.engine.config.retain_growth;
        let kept = |instance: Instance| keep.then_some(instance);
        match result {
            Ok(Ok(outputs)) => (
                kept(instance),
                Ok(outputs.into_iter().map(from_wit).collect()),
            ),
            Ok(Err(PredictError::InvalidInput(m))) => {
                (kept(instance), Err(PredictorError::Invalid(m)))
            }
            Ok(Err(PredictError::Failed(m))) => (
                kept(instance),
                Err(PredictorError::Failed(format!("the predictor failed: {m}"))),
            ),
            Err(e) => {
                let message = match e.downcast_ref::<Stop>() {
                    Some(stop) => stop.to_string(),
                    None => error_text(&e),
                };
                (
                    None,
                    Err(PredictorError::Failed(format!(
                        "the predictor trapped: {message}"
                    ))),
                )
            }
        }
    }

    /// Drops idle instances unused for `idle` or longer, oldest first, keeping one warm
    /// instance; drops every idle instance when `all` (scaling to zero).
    pub fn shrink(&self, idle: Duration, all: bool) -> usize {
        let mut instances = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.live.load(Ordering::Relaxed);
        let floor = usize::from(!all);
        let mut dropped = 0;
        // Oldest first: instances go back on the end as they come free.
        instances.retain(|(_, since)| {
            let keep = (!all && since.elapsed() < idle) || live.saturating_sub(dropped) <= floor;
            if !keep {
                dropped += 1;
            }
            keep
        });
        self.live.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }
}

/// Counts a call as busy until dropped.
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn count(busy: &'a AtomicUsize) -> Busy<'a> {
        busy.fetch_add(1, Ordering::Relaxed);
        Busy(busy)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Stops a call that runs past `deadline`, checked at every epoch tick.
fn arm_deadline(store: &mut Store<PredictorState>, deadline: Duration) {
    let ticks = (deadline.as_millis() / TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_callback(move |_| Err(wasmtime::Error::new(Stop::CpuTime(deadline))));
}

fn datatype_of(d: wit::Datatype) -> Datatype {
    match d {
        wit::Datatype::Fp64 => Datatype::Fp64,
        wit::Datatype::Fp32 => Datatype::Fp32,
        wit::Datatype::Int64 => Datatype::Int64,
        wit::Datatype::Int32 => Datatype::Int32,
        wit::Datatype::Boolean => Datatype::Bool,
        wit::Datatype::Bytes => Datatype::Bytes,
    }
}

fn signature_of(s: &wit::Signature) -> Signature {
    let specs = |list: &[wit::TensorSpec]| {
        list.iter()
            .map(|t| TensorSpec {
                name: t.name.clone(),
                datatype: datatype_of(t.datatype).name().to_owned(),
                shape: t.shape.clone(),
            })
            .collect()
    };
    Signature {
        inputs: specs(&s.inputs),
        outputs: specs(&s.outputs),
    }
}

fn to_wit(t: Tensor) -> wit::Tensor {
    wit::Tensor {
        name: t.name,
        shape: t.shape,
        data: match t.data {
            Data::Fp64(v) => wit::TensorData::Fp64(v),
            Data::Fp32(v) => wit::TensorData::Fp32(v),
            Data::Int64(v) => wit::TensorData::Int64(v),
            Data::Int32(v) => wit::TensorData::Int32(v),
            Data::Bool(v) => wit::TensorData::Boolean(v),
            Data::Bytes(v) => wit::TensorData::Bytes(v),
        },
    }
}

fn from_wit(t: wit::Tensor) -> Tensor {
    Tensor {
        name: t.name,
        shape: t.shape,
        data: match t.data {
            wit::TensorData::Fp64(v) => Data::Fp64(v),
            wit::TensorData::Fp32(v) => Data::Fp32(v),
            wit::TensorData::Int64(v) => Data::Int64(v),
            wit::TensorData::Int32(v) => Data::Int32(v),
            wit::TensorData::Boolean(v) => Data::Bool(v),
            wit::TensorData::Bytes(v) => Data::Bytes(v),
        },
    }
}
