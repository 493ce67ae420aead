//! Waits a guest makes in the host (`wasi:io/poll`'s `poll` and `pollable.block`: a
//! sleep, a wait on a stream) end at once when the attempt is cancelled or its wall-clock
//! limit passes.
//! Epoch interruption only stops a guest running its own code; without this, a guest
//! asleep in a host call would run on for as long as it asked to sleep.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::runtime::in_tokio;

use super::state::{StepState, Stop};

/// The name wasmtime-wasi registers `wasi:io/poll` under; guests importing any 0.2.x
/// version are linked to it.
const POLL: &str = "wasi:io/poll@0.2.12";

/// Shadows `poll` and `[method]pollable.block` with waits that also end on cancellation.
/// Call after `wasmtime_wasi::p2::add_to_linker_sync`.
pub fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, StepState>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let state = store.data_mut();
            let cancel = state.cancel.clone();
            let (deadline, limit) = state.deadline;
            let table = &mut state.table;
            in_tokio(async {
                tokio::select! {
                    ready = async_poll::Host::poll(table, pollables) => ready.map(|r| (r,)),
                    () = cancel.cancelled() => Err(wasmtime::Error::new(Stop::Cancelled)),
                    () = tokio::time::sleep_until(deadline) => Err(wasmtime::Error::new(Stop::TimedOut(limit))),
                }
            })
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, StepState>, (pollable,): (Resource<DynPollable>,)| {
            let state = store.data_mut();
            let cancel = state.cancel.clone();
            let (deadline, limit) = state.deadline;
            let table = &mut state.table;
            in_tokio(async {
                tokio::select! {
                    done = async_poll::HostPollable::block(table, pollable) => done,
                    () = cancel.cancelled() => Err(wasmtime::Error::new(Stop::Cancelled)),
                    () = tokio::time::sleep_until(deadline) => Err(wasmtime::Error::new(Stop::TimedOut(limit))),
                }
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
