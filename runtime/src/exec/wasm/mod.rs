//! Wasm executor: runs `implementation.wasm` components under wasmtime, sandboxed, on
//! the wasm host ([`crate::wasm`]). Loads each component once per executor (through the
//! host's on-disk compile cache), keeps its `InstancePre`, and runs each attempt in a
//! fresh `Store` with a memory cap summed over all memories and a CPU-time deadline
//! checked at every epoch tick, with its wall-clock limit (`Invocation::timeout`, else
//! [`DEFAULT_TIMEOUT`]), which also ends its waits in host calls. Instances come from
//! wasmtime's pooling allocator: an attempt reuses the slot of an earlier one instead of
//! mapping and unmapping its memory. An attempt runs on the thread that asks for it when
//! that is a worker of a multi-threaded tokio runtime (which moves its other work to
//! another thread meanwhile), so a short step costs no hand-over between threads; else on
//! a blocking thread, abandoned if it does not stop within [`GRACE`] of a cancellation.
//! It writes artifacts only through the task folder the scheduler gave it;
//! `exec::collect_outputs` stores them.

mod disk;
mod interfaces;
mod sandbox;
pub(crate) mod state;
mod transform_call;
mod waits;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use wasmtime::component::{InstancePre, Linker, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::sync::CommandPre;

use self::disk::DiskBudget;
use self::sandbox::{GUEST_INPUTS, GUEST_OUTPUTS, Sandbox};
use self::state::{MemoryCap, StepState, Stop};
use self::transform_call::transform_call;
use super::capture::{Capture, StdStreams};
use super::{
    Completion, Executor, Failure, FailureKind, Invocation, Kind, Paths, PrepareError, Prepared,
    Report, Target, TransformExport, expand_args,
};
use crate::events::Stream;
use crate::spec::types::parse_bool;
use crate::spec::{ByteSize, Component, ParamType};
use crate::wasm::bindings::{self, StepError, step, transform};
use crate::wasm::{Host, error_text, is_component};

pub use crate::wasm::cache::CacheStats;
/// The interface a transform component exports, without its version.
pub use interfaces::TRANSFORM as TRANSFORM_INTERFACE;

/// Bytes a wasm attempt may write to its outputs unless its resources say otherwise.
pub const DEFAULT_EPHEMERAL_STORAGE: u64 = 4 << 30;
/// Files, folders, streams and other handles a wasm attempt may hold at once unless its
/// resources say otherwise. Tasks run side by side share the process's descriptors
/// (`RLIMIT_NOFILE`), so no one task may take them all.
pub const DEFAULT_OPEN_FILES: u32 = 1024;
/// How long a cancelled attempt on a blocking thread may take to notice before it is
/// abandoned.
const GRACE: Duration = Duration::from_secs(2);
/// Wall-clock limit of one attempt that sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Wasm attempts that may hold an instance at once unless configured otherwise; more wait.
pub const DEFAULT_INSTANCES: u32 = 256;
/// The most instance slots an executor reserves address space for (each memory slot is
/// 4 GiB of it, and a slot has four): 16 TiB of the 128 TiB a process may map.
pub const MAX_INSTANCES: u32 = 1024;
/// Bytes of an instance's linear memory that are reset in place when its slot is reused
/// (only the pages it touched, found with Linux's `PAGEMAP_SCAN`), rather than given back
/// to the kernel and faulted in again.
const KEEP_RESIDENT: usize = 2 << 20;

#[derive(Clone, Debug)]
pub struct WasmConfig {
    /// Root of the compiled-code cache (a `wasm/` folder is made inside).
    pub cache_dir: PathBuf,
    /// Memory cap when neither task nor component sets `resources.memory`.
    pub default_memory: u64,
    /// CPU time per attempt when neither task nor component sets `resources.cpu_time`.
    pub default_cpu_time: Duration,
    /// Bytes an attempt may write when neither sets `resources.ephemeral_storage`.
    pub default_ephemeral_storage: u64,
    /// Handles an attempt may hold open when neither sets `resources.open_files`.
    pub default_open_files: u32,
    /// Attempts that may hold an instance at once (the pooling allocator's slots, at most
    /// [`MAX_INSTANCES`]); more wait for one to end, and their wall-clock limit counts
    /// from when they have one.
    pub instances: u32,
    /// Bytes kept of the beginning and of the end of each output stream.
    pub log_keep: usize,
    /// Components pulled from registries before the run, by the reference a component
    /// file names: where the cache keeps each, and the reference pinned to its digest.
    pub pulled: HashMap<String, (PathBuf, String)>,
}

impl WasmConfig {
    pub fn new(cache_dir: PathBuf) -> WasmConfig {
        WasmConfig {
            cache_dir,
            default_memory: 1 << 30,
            default_cpu_time: Duration::from_secs(3600),
            default_ephemeral_storage: DEFAULT_EPHEMERAL_STORAGE,
            default_open_files: DEFAULT_OPEN_FILES,
            instances: DEFAULT_INSTANCES,
            log_keep: super::capture::DEFAULT_KEEP,
            pulled: HashMap::new(),
        }
    }
}

pub struct WasmExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    host: Host,
    linker: Linker<StepState>,
    config: WasmConfig,
    /// Loaded components by `.wasm` path; each is loaded once even when asked for concurrently.
    by_path: Mutex<HashMap<PathBuf, Arc<tokio::sync::OnceCell<Arc<Loaded>>>>>,
    /// The same, by content digest, so two paths to one component share it.
    by_digest: Mutex<HashMap<String, Arc<Loaded>>>,
    /// One permit per slot of the pooling allocator, held while an attempt's store lives.
    slots: Arc<tokio::sync::Semaphore>,
}

enum Pre {
    Command(CommandPre<StepState>),
    Step(InstancePre<StepState>, step::GuestIndices),
}

struct Loaded {
    digest: String,
    /// The command or typed step form; `None` for a component that is only a transform.
    pre: Option<Pre>,
    /// The transform export, when the component has one this host can call.
    transform: Option<(InstancePre<StepState>, transform::GuestIndices)>,
    /// The transform export as the binary declares it, callable or not.
    transform_export: Option<TransformExport>,
}

impl Loaded {
    fn prepared(&self) -> Prepared {
        Prepared {
            kind: Kind::Wasm,
            implementation: match self.pre {
                Some(Pre::Command(_)) => "wasm command".into(),
                Some(Pre::Step(..)) => "wasm step".into(),
                None => "wasm transform".into(),
            },
            reason: "wasm runs by default".into(),
            executable_digest: Some(self.digest.clone()),
            transform: self.transform_export.clone(),
        }
    }
}

impl WasmExecutor {
    pub fn new(config: WasmConfig) -> Result<WasmExecutor, PrepareError> {
        let other = |message: String| PrepareError::Other { message };
        let instances = config.instances.clamp(1, MAX_INSTANCES);
        let host = Host::new(pooled(instances), &config.cache_dir)
            .map_err(|e| other(super::error_chain(&e)))?;
        let mut linker = host.linker().map_err(|e| other(e.to_string()))?;
        disk::add_to_linker(&mut linker)
            .and_then(|()| waits::add_to_linker(&mut linker))
            .map_err(|e| other(format!("cannot set up wasmtime: {}", error_text(&e))))?;
        let slots = Arc::new(tokio::sync::Semaphore::new(instances as usize));
        Ok(WasmExecutor {
            inner: Arc::new(Inner {
                host,
                linker,
                config,
                by_path: Mutex::new(HashMap::new()),
                by_digest: Mutex::new(HashMap::new()),
                slots,
            }),
        })
    }

    /// Components served from the compile cache and compiled, since this executor started.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.host.cache.stats()
    }

    /// The file of a component's wasm implementation: its own path, or where a pull put it.
    fn wasm_file(&self, component: &Component) -> Result<PathBuf, PrepareError> {
        if let Some(reference) = component.wasm_reference() {
            return match self.inner.config.pulled.get(reference) {
                Some((path, _)) => Ok(path.clone()),
                None => Err(PrepareError::Other {
                    message: format!("{reference} was not pulled before the run"),
                }),
            };
        }
        component.wasm_path().ok_or_else(|| PrepareError::NoWasm {
            component: component.name(),
        })
    }

    async fn loaded(&self, component: &Component) -> Result<Arc<Loaded>, PrepareError> {
        let path = self.wasm_file(component)?;
        let cell = self
            .inner
            .by_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(path.clone())
            .or_default()
            .clone();
        let inner = self.inner.clone();
        cell.get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || inner.load(&path))
                .await
                .map_err(|e| PrepareError::Other {
                    message: format!("loading the component failed: {e}"),
                })?
        })
        .await
        .cloned()
    }
}

impl Inner {
    fn load(&self, path: &Path) -> Result<Arc<Loaded>, PrepareError> {
        let bytes = crate::files::read_limited(
            path,
            crate::files::WASM_FILE_MAX,
            crate::files::Follow::Yes,
        )
        .map_err(|source| PrepareError::Read {
            path: path.to_owned(),
            source,
        })?;
        let digest = crate::spec::sha256_hex(&bytes);
        if let Some(loaded) = self.lock_digests().get(&digest) {
            return Ok(loaded.clone());
        }
        let invalid = |e: wasmtime::Error| PrepareError::Invalid {
            path: path.to_owned(),
            message: error_text(&e),
        };
        if !is_component(&bytes) {
            return Err(PrepareError::Invalid {
                path: path.to_owned(),
                message: "expected a WebAssembly component (a core module must first be made \
                          a component, e.g. by building for wasm32-wasip2)"
                    .into(),
            });
        }
        let component = self
            .host
            .cache
            .load(&self.host.engine, &digest, &bytes)
            .map_err(invalid)?;
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.host.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        // A transform export of another version or shape is described (so that wiring
        // can be checked against it) but never called.
        let transform_export = interfaces::transform_export(&self.host.engine, &component);
        let transform = match &transform_export {
            Some(export) if export.callable => Some((
                pre.clone(),
                transform::GuestIndices::new(&pre).map_err(invalid)?,
            )),
            _ => None,
        };
        let form = if exports
            .iter()
            .any(|e| e.starts_with("sluice:pipeline/step@"))
        {
            let indices = step::GuestIndices::new(&pre).map_err(invalid)?;
            Some(Pre::Step(pre, indices))
        } else if exports.iter().any(|e| e.starts_with("wasi:cli/run@")) {
            Some(Pre::Command(CommandPre::new(pre).map_err(invalid)?))
        } else if transform_export.is_some() {
            None
        } else {
            return Err(PrepareError::Invalid {
                path: path.to_owned(),
                message: format!(
                    "exports none of wasi:cli/run (a command), sluice:pipeline/step (a typed step) or sluice:pipeline/transform; it exports: {}",
                    if exports.is_empty() {
                        "nothing".to_owned()
                    } else {
                        exports.join(", ")
                    }
                ),
            });
        };
        let loaded = Arc::new(Loaded {
            digest: digest.clone(),
            pre: form,
            transform,
            transform_export,
        });
        self.lock_digests().insert(digest, loaded.clone());
        Ok(loaded)
    }

    fn lock_digests(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Loaded>>> {
        self.by_digest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one attempt to completion on the current (blocking) thread.
    fn run(
        &self,
        loaded: &Loaded,
        mut inv: Invocation,
        io: &Streams,
    ) -> Result<Completion, Failure> {
        let started = tokio::time::Instant::now();
        let limit = inv.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let wasm = inv
            .component
            .spec
            .implementation
            .wasm
            .as_ref()
            .ok_or_else(|| Failure::failed("the component has no wasm implementation"))?;
        let paths = Paths::Under {
            inputs: GUEST_INPUTS,
            outputs: GUEST_OUTPUTS,
        };
        let mut argv = vec![inv.component.name()];
        argv.extend(expand_args(&inv, paths, &wasm.args)?);
        let env: Vec<(String, String)> = wasm
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let wasi = sandbox::wasi_ctx(Sandbox {
            dir: &inv.dir,
            argv: &argv,
            env: &env,
            stdout: io.std.stdout.clone(),
            stderr: io.std.stderr.clone(),
        })
        .map_err(|e| Failure::failed(e.to_string()))?;

        let memory = inv
            .resources
            .memory
            .map_or(self.config.default_memory, |m| m.0);
        let cpu_time = inv
            .resources
            .cpu_time
            .map_or(self.config.default_cpu_time, |d| d.0);
        let mut table = ResourceTable::new();
        table.set_max_capacity(io.open_files as usize);
        let disk = DiskBudget::new(
            inv.resources
                .ephemeral_storage
                .map_or(self.config.default_ephemeral_storage, |b| b.0),
        );
        let mut store = Store::new(
            &self.host.engine,
            StepState {
                wasi,
                table,
                limits: MemoryCap::new(memory),
                sink: inv.sink.clone(),
                metrics: BTreeMap::new(),
                host_log: io.host.clone(),
                disk: disk.clone(),
                cancel: inv.cancel.clone(),
                deadline: (started + limit, limit),
            },
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        let cancel = inv.cancel.clone();
        let cpu_start = thread_cpu_time();
        let (deadline, limit) = store.data().deadline;
        store.epoch_deadline_callback(move |_| {
            if cancel.is_cancelled() {
                return Err(wasmtime::Error::new(Stop::Cancelled));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(wasmtime::Error::new(Stop::TimedOut(limit)));
            }
            if thread_cpu_time().saturating_sub(cpu_start) > cpu_time {
                return Err(wasmtime::Error::new(Stop::CpuTime(cpu_time)));
            }
            Ok(UpdateDeadline::Continue(1))
        });

        // A transform-only component outside a chain is called the same way, its tables
        // read from and written to files.
        let call = inv.transform.clone().or_else(|| {
            loaded.pre.is_none().then(|| {
                Arc::new(super::TransformCall {
                    tables: wasm
                        .transform
                        .iter()
                        .flat_map(|t| t.tables.iter().cloned())
                        .collect(),
                    ..Default::default()
                })
            })
        });
        let result = match (&loaded.pre, call) {
            (_, Some(call)) => match &loaded.transform {
                Some((pre, indices)) => {
                    transform_call(&mut store, pre, indices, &mut inv, &call, io)
                }
                None => Err(Failure::failed(
                    "the component exports no sluice:pipeline/transform@0.1.0 this host can call",
                )),
            },
            (None, None) => Err(Failure::failed(
                "the component has neither a command, a step nor a transform form",
            )),
            (Some(Pre::Command(pre)), None) => {
                let command = pre.instantiate(&mut store).map_err(|e| failure(e, io))?;
                match command.wasi_cli_run().call_run(&mut store) {
                    Ok(Ok(())) => Ok(Completion::default()),
                    // WASI 0.2 carries only success or failure; failure is exit code 1.
                    Ok(Err(())) => Err(with_stderr(Failure::failed("exited with code 1"), io)),
                    Err(e) => match e.downcast_ref::<I32Exit>() {
                        Some(I32Exit(0)) => Ok(Completion::default()),
                        Some(I32Exit(code)) => Err(with_stderr(
                            Failure::failed(format!("exited with code {code}")),
                            io,
                        )),
                        None => Err(failure(e, io)),
                    },
                }
            }
            (Some(Pre::Step(pre, indices)), None) => {
                let invocation = typed_invocation(&inv, paths)?;
                let instance = pre.instantiate(&mut store).map_err(|e| failure(e, io))?;
                let step = indices
                    .load(&mut store, &instance)
                    .map_err(|e| failure(e, io))?;
                let result = step
                    .call_run(&mut store, &invocation)
                    .map_err(|e| failure(e, io))?;
                match result {
                    Ok(outcome) => {
                        let mut metrics = std::mem::take(&mut store.data_mut().metrics);
                        completion(&inv, outcome, &mut metrics)
                    }
                    Err(StepError::InvalidInput(m)) => Err(Failure {
                        kind: FailureKind::InvalidInput,
                        message: format!("invalid input: {m}"),
                    }),
                    Err(StepError::Failed(m)) => Err(Failure::failed(m)),
                }
            }
        };
        let peak = store.data().limits.peak();
        io.host.write(
            format!(
                "[sluice] peak memory {} of {} allowed; CPU time {:.3}s; wrote {} of {} allowed\n",
                ByteSize(peak.max(1)),
                ByteSize(memory),
                thread_cpu_time().saturating_sub(cpu_start).as_secs_f64(),
                ByteSize(disk.used()),
                ByteSize(disk.cap()),
            )
            .as_bytes(),
        );
        // The guest may have carried on past a refused write; its outputs are then not
        // what it meant to write.
        if let Some(asked) = disk.exceeded() {
            return Err(Failure::failed(format!(
                "ephemeral storage limit of {} exceeded (the component tried to write {} in all; \
                 set resources.ephemeral_storage to allow more)",
                ByteSize(disk.cap()),
                ByteSize(asked)
            )));
        }
        result
    }
}

impl Executor for WasmExecutor {
    fn times_itself(&self, _: &Prepared) -> bool {
        true
    }

    fn prepare<'a>(&'a self, target: Target<'a>) -> BoxFuture<'a, Result<Prepared, PrepareError>> {
        Box::pin(async move {
            let mut prepared = self.loaded(target.component).await?.prepared();
            if let Some((_, pinned)) = target
                .component
                .wasm_reference()
                .and_then(|r| self.inner.config.pulled.get(r))
            {
                prepared.implementation = format!("{} {pinned}", prepared.implementation);
            }
            Ok(prepared)
        })
    }

    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let loaded = match self.loaded(&inv.component).await {
                Ok(l) => l,
                Err(e) => {
                    return Report {
                        ran_on: None,
                        result: Err(Failure::failed(super::error_chain(&e))),
                        logs: Vec::new(),
                    };
                }
            };
            // What runs is what was prepared and is recorded: a `.wasm` replaced since
            // (read afresh by another process, a cluster's job) is refused.
            if let Some(prepared) = &inv.prepared.executable_digest
                && *prepared != loaded.digest
            {
                return Report {
                    ran_on: None,
                    result: Err(Failure {
                        kind: FailureKind::InvalidInput,
                        message: format!(
                            "the component's .wasm changed since the run prepared it (prepared {prepared}, now {})",
                            loaded.digest
                        ),
                    }),
                    logs: Vec::new(),
                };
            }
            let keep = self.inner.config.log_keep;
            let streams = Streams {
                std: StdStreams::new(&inv.sink, keep),
                host: Capture::with_limit(Stream::Host, inv.sink.clone(), keep),
                open_files: inv
                    .resources
                    .open_files
                    .unwrap_or(self.inner.config.default_open_files),
            };
            let cancel = inv.cancel.clone();
            let slot = tokio::select! {
                slot = self.inner.slots.clone().acquire_owned() => slot,
                _ = cancel.cancelled() => {
                    return Report {
                        ran_on: None,
                        result: Err(Failure::interrupted("interrupted")),
                        logs: Vec::new(),
                    };
                }
            };
            // Here, without handing the attempt to another thread and back: the runtime
            // moves this worker's other tasks to a new thread meanwhile. The attempt
            // stops itself at its limit or on cancellation (at the next epoch tick, or
            // at once in a host wait); a current-thread runtime cannot lend its thread.
            let multi_thread = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if multi_thread {
                let result = tokio::task::block_in_place(|| {
                    let _slot = slot;
                    self.inner.run(&loaded, inv, &streams)
                });
                return Report {
                    ran_on: None,
                    result,
                    logs: streams.std.finish(&[&streams.host]),
                };
            }
            let inner = self.inner.clone();
            let thread_streams = streams.clone();
            let mut handle = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                inner.run(&loaded, inv, &thread_streams)
            });
            let joined = tokio::select! {
                joined = &mut handle => Some(joined),
                _ = cancel.cancelled() => tokio::time::timeout(GRACE, &mut handle).await.ok(),
            };
            let result = match joined {
                Some(Ok(result)) => result,
                Some(Err(join)) => Err(Failure::failed(format!(
                    "the wasm host thread failed: {join}"
                ))),
                // The guest is blocked in a host call (a long sleep, say) and has not
                // reached an epoch check; its thread finishes on its own and is dropped.
                None => Err(Failure::interrupted(format!(
                    "interrupted (the component did not stop within {}s and was abandoned)",
                    GRACE.as_secs()
                ))),
            };
            Report {
                ran_on: None,
                result,
                logs: streams.std.finish(&[&streams.host]),
            }
        })
    }
}

/// The engine configuration of step attempts: wasmtime's pooling allocator with
/// `instances` component instances (already at most [`MAX_INSTANCES`]) and room for what the components of common toolchains
/// hold (Rust, C, Go, and interpreters such as componentize-py's CPython, whose function
/// tables run to tens of thousands of entries): 16 core instances, 4 memories and 8
/// tables per component instance, up to 4 memories and 8 tables per core module, tables
/// of up to 2^20 elements, and memories of up to 4 GiB (all a 32-bit memory can
/// address; a 64-bit memory is held to that too). These are reservations of address
/// space, not of memory. Where Linux offers `PAGEMAP_SCAN` (6.7 and later), a slot's
/// memory is reset in place up to [`KEEP_RESIDENT`] bytes.
fn pooled(instances: u32) -> wasmtime::Config {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(16))
        .total_memories(instances.saturating_mul(4))
        .total_tables(instances.saturating_mul(8))
        .max_memories_per_module(4)
        .max_tables_per_module(8)
        .table_elements(1 << 20)
        .max_core_instance_size(16 << 20)
        .max_memory_size(1 << 32);
    if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10);
    }
    let mut config = wasmtime::Config::new();
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config
}

/// A guest's stdout and stderr, and the lines it logs through `host.log`.
#[derive(Clone)]
struct Streams {
    std: StdStreams,
    host: Capture,
    /// The attempt's open-files limit, to name when it is reached.
    open_files: u32,
}

/// Turns a trap or host error into the user's one line.
fn failure(e: wasmtime::Error, io: &Streams) -> Failure {
    if let Some(stop) = e.downcast_ref::<Stop>() {
        return match stop {
            Stop::Cancelled => Failure::interrupted("interrupted"),
            other => Failure::failed(other.to_string()),
        };
    }
    let table_full = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    });
    if table_full {
        return Failure::failed(format!(
            "open-files limit of {} reached (the component held that many files, folders and \
             streams at once; set resources.open_files to allow more)",
            io.open_files
        ));
    }
    let message = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("trapped: {trap}"),
        None => error_text(&e),
    };
    with_stderr(Failure::failed(message), io)
}

/// Adds the last line the program wrote to stderr, which usually says why it failed.
fn with_stderr(f: Failure, io: &Streams) -> Failure {
    Failure {
        message: io.std.explain(f.message),
        ..f
    }
}

/// Builds a typed step's invocation: parameter-typed inputs by value, other inputs and
/// outputs by sandbox path.
fn typed_invocation(inv: &Invocation, paths: Paths<'_>) -> Result<bindings::Invocation, Failure> {
    use bindings::{Artifact, Param};
    let mut out = bindings::Invocation {
        params: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    for input in &inv.component.spec.inputs {
        let Some(arg) = inv.inputs.get(&input.name) else {
            continue;
        };
        let text = || -> Result<String, Failure> {
            match &arg.value {
                Some(v) => Ok(v.clone()),
                None => std::fs::read_to_string(inv.dir.input_file(&input.name)).map_err(|e| {
                    Failure::failed(format!(
                        "input '{}' cannot be read as text: {e}",
                        input.name
                    ))
                }),
            }
        };
        match (input.param_type(), &input.type_) {
            (Some(ty), _) => out.params.push(Param {
                name: input.name.clone(),
                value: typed_value(ty, &text()?).map_err(|m| Failure {
                    kind: FailureKind::InvalidInput,
                    message: format!("input '{}': {m}", input.name),
                })?,
            }),
            (None, None) if arg.value.is_some() => out.params.push(Param {
                name: input.name.clone(),
                value: bindings::Value::Str(text()?),
            }),
            (None, ty) => out.inputs.push(Artifact {
                name: input.name.clone(),
                path: paths.input(&input.name),
                metadata: serde_json::json!({
                    "type": ty.as_ref().map(ToString::to_string),
                    "digest": arg.digest,
                    "size": arg.size,
                })
                .to_string(),
            }),
        }
    }
    for output in &inv.component.spec.outputs {
        if output.param_type().is_none() {
            out.outputs.push(Artifact {
                name: output.name.clone(),
                path: paths.output(&output.name),
                metadata: serde_json::json!({
                    "type": output.type_.as_ref().map(ToString::to_string),
                })
                .to_string(),
            });
        }
    }
    Ok(out)
}

fn typed_value(ty: ParamType, text: &str) -> Result<bindings::Value, String> {
    use bindings::Value;
    ty.check(text).map_err(|e| e.to_string())?;
    Ok(match ty {
        ParamType::String => Value::Str(text.to_owned()),
        ParamType::Integer => Value::Int(text.trim().parse().map_err(|_| "not an integer")?),
        ParamType::Float => Value::Float(text.trim().parse().map_err(|_| "not a number")?),
        ParamType::Boolean => Value::Boolean(parse_bool(text).ok_or("not a boolean")?),
        ParamType::JsonObject | ParamType::JsonArray => Value::Json(text.to_owned()),
    })
}

fn value_text(value: &bindings::Value) -> String {
    use bindings::Value;
    match value {
        Value::Str(s) | Value::Json(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => if *b { "True" } else { "False" }.to_owned(),
    }
}

/// Checks a typed step's outcome against the declared outputs and merges its metrics
/// over those reported through `host.metric`.
fn completion(
    inv: &Invocation,
    outcome: bindings::Outcome,
    metrics: &mut BTreeMap<String, f64>,
) -> Result<Completion, Failure> {
    let mut params = BTreeMap::new();
    for p in outcome.params {
        match inv.component.output(&p.name) {
            Some(o) if o.param_type().is_some() => {
                params.insert(p.name, value_text(&p.value));
            }
            Some(_) => {
                return Err(Failure::failed(format!(
                    "the step returned a value for '{}', which is an artifact output (write its file instead)",
                    p.name
                )));
            }
            None => {
                return Err(Failure::failed(format!(
                    "the step returned '{}', which is not a declared output",
                    p.name
                )));
            }
        }
    }
    for m in outcome.metrics {
        metrics.insert(m.name, m.value);
    }
    Ok(Completion {
        metadata: Default::default(),
        params,
        metrics: std::mem::take(metrics),
        tables: BTreeMap::new(),
    })
}

fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
