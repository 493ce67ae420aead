//! The bytes a wasm task may write. Every byte a file grows by, through any of
//! `wasi:filesystem`'s ways of writing (`write`, `set-size`, a stream from
//! `write-via-stream` or `append-via-stream`, holes left by writing past the end), is
//! charged to the attempt's [`DiskBudget`] before it is written, and each file, folder or
//! link created costs [`ENTRY_COST`]. A write that would pass the budget fails with
//! `insufficient-space` (ENOSPC), and the attempt then fails naming the limit even if the
//! guest carried on. Space a guest frees (by truncating or deleting) is not given back:
//! the budget bounds what it writes, not what it keeps.
//!
//! It works by shadowing those functions of `wasi:filesystem/types` in the linker with
//! wrappers that charge and then call wasmtime-wasi's own implementation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    self as fs, DescriptorFlags, ErrorCode, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};

use super::state::StepState;

use crate::exec::ENTRY_COST;

/// The name wasmtime-wasi registers `wasi:filesystem/types` under; guests importing any
/// 0.2.x version are linked to it.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Bytes one attempt may still write. Shared by the store and the streams it hands out.
#[derive(Debug)]
pub struct DiskBudget {
    cap: u64,
    used: AtomicU64,
    /// What the first refused write would have brought the total to; 0 while none was.
    refused: AtomicU64,
}

impl DiskBudget {
    pub fn new(cap: u64) -> Arc<DiskBudget> {
        Arc::new(DiskBudget {
            cap,
            used: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Bytes charged so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The total a refused write asked for, if one was refused.
    pub fn exceeded(&self) -> Option<u64> {
        match self.refused.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// Charges `bytes`, or refuses (charging nothing) if that would pass the cap.
    pub fn charge(&self, bytes: u64) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let total = used.saturating_add(bytes);
            if total > self.cap {
                let _ =
                    self.refused
                        .compare_exchange(0, total, Ordering::Relaxed, Ordering::Relaxed);
                return false;
            }
            match self
                .used
                .compare_exchange_weak(used, total, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }
}

/// Shadows the writing functions of `wasi:filesystem/types` with charged ones. Call after
/// `wasmtime_wasi::p2::add_to_linker_sync`.
pub fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;

    types.func_wrap(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, buf, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            let (budget, mut view) = split(&mut store);
            let end = offset.saturating_add(buf.len() as u64);
            if let Some(refused) = charge_growth(&budget, &view, &fd, end) {
                return Ok((Err(refused),));
            }
            let result = fs::HostDescriptor::write(&mut view, fd, buf, offset);
            Ok((lower(&mut view, result)?,))
        },
    )?;

    types.func_wrap(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, StepState>, (fd, size): (Resource<Descriptor>, u64)| {
            let (budget, mut view) = split(&mut store);
            if let Some(refused) = charge_growth(&budget, &view, &fd, size) {
                return Ok((Err(refused),));
            }
            let result = fs::HostDescriptor::set_size(&mut view, fd, size);
            Ok((lower(&mut view, result)?,))
        },
    )?;

    types.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, StepState>, (fd, offset): (Resource<Descriptor>, u64)| {
            let (budget, mut view) = split(&mut store);
            let file = file_of(&view, &fd);
            let result = fs::HostDescriptor::write_via_stream(&mut view, fd, offset);
            let result = lower(&mut view, result)?;
            Ok((match (result, file) {
                (Ok(stream), Some(file)) => {
                    Ok(charged(&mut view, stream, file, Some(offset), budget)?)
                }
                (other, _) => other,
            },))
        },
    )?;

    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, StepState>, (fd,): (Resource<Descriptor>,)| {
            let (budget, mut view) = split(&mut store);
            let file = file_of(&view, &fd);
            let result = fs::HostDescriptor::append_via_stream(&mut view, fd);
            let result = lower(&mut view, result)?;
            Ok((match (result, file) {
                (Ok(stream), Some(file)) => Ok(charged(&mut view, stream, file, None, budget)?),
                (other, _) => other,
            },))
        },
    )?;

    types.func_wrap(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            let (budget, mut view) = split(&mut store);
            if open_flags.contains(OpenFlags::CREATE) && !budget.charge(ENTRY_COST) {
                return Ok((Err(ErrorCode::InsufficientSpace),));
            }
            let result =
                fs::HostDescriptor::open_at(&mut view, fd, path_flags, path, open_flags, flags);
            Ok((lower(&mut view, result)?,))
        },
    )?;

    types.func_wrap(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, StepState>, (fd, path): (Resource<Descriptor>, String)| {
            let (budget, mut view) = split(&mut store);
            if !budget.charge(ENTRY_COST) {
                return Ok((Err(ErrorCode::InsufficientSpace),));
            }
            let result = fs::HostDescriptor::create_directory_at(&mut view, fd, path);
            Ok((lower(&mut view, result)?,))
        },
    )?;

    types.func_wrap(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, old_path, new_path): (Resource<Descriptor>, String, String)| {
            let (budget, mut view) = split(&mut store);
            if !budget.charge(ENTRY_COST) {
                return Ok((Err(ErrorCode::InsufficientSpace),));
            }
            let result = fs::HostDescriptor::symlink_at(&mut view, fd, old_path, new_path);
            Ok((lower(&mut view, result)?,))
        },
    )?;

    types.func_wrap(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, StepState>,
         (fd, old_flags, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            let (budget, mut view) = split(&mut store);
            if !budget.charge(ENTRY_COST) {
                return Ok((Err(ErrorCode::InsufficientSpace),));
            }
            let result =
                fs::HostDescriptor::link_at(&mut view, fd, old_flags, old_path, new_fd, new_path);
            Ok((lower(&mut view, result)?,))
        },
    )?;

    linker.allow_shadowing(false);
    Ok(())
}

fn split<'a>(
    store: &'a mut StoreContextMut<'_, StepState>,
) -> (
    Arc<DiskBudget>,
    wasmtime_wasi::filesystem::WasiFilesystemCtxView<'a>,
) {
    let state = store.data_mut();
    let budget = state.disk.clone();
    (budget, state.filesystem())
}

/// The host file behind a descriptor, when it is one.
fn file_of(
    view: &wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
    fd: &Resource<Descriptor>,
) -> Option<Arc<std::fs::File>> {
    match view.table.get(fd) {
        Ok(Descriptor::File(f)) => Some(f.file.clone()),
        _ => None,
    }
}

/// Charges what a file grows by if it ends up `end` bytes long; the refusal to return
/// when that passes the budget. A descriptor that is not a file is left to the call,
/// which refuses it.
fn charge_growth(
    budget: &DiskBudget,
    view: &wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
    fd: &Resource<Descriptor>,
    end: u64,
) -> Option<ErrorCode> {
    let file = file_of(view, fd)?;
    let size = file.metadata().map_or(0, |m| m.len());
    (!budget.charge(end.saturating_sub(size))).then_some(ErrorCode::InsufficientSpace)
}

/// A host call's result as the guest receives it: its error code, or a trap.
fn lower<T>(
    view: &mut wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
    result: wasmtime_wasi::p2::FsResult<T>,
) -> wasmtime::Result<Result<T, ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) => Ok(Err(fs::Host::convert_error_code(view, e)?)),
    }
}

/// Swaps the stream a call made for one that charges its writes.
fn charged(
    view: &mut wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
    stream: Resource<DynOutputStream>,
    file: Arc<std::fs::File>,
    position: Option<u64>,
    budget: Arc<DiskBudget>,
) -> wasmtime::Result<Resource<DynOutputStream>> {
    let inner = view.table.delete(stream)?;
    let wrapped: DynOutputStream = Box::new(ChargedStream {
        inner,
        file,
        position,
        high: 0,
        budget,
    });
    Ok(view.table.push(wrapped)?)
}

/// A file output stream whose writes are charged before they reach the file.
struct ChargedStream {
    inner: DynOutputStream,
    file: Arc<std::fs::File>,
    /// Where the next write lands; `None` for an appending stream.
    position: Option<u64>,
    /// The furthest end this stream has written to, which the file's size may not show
    /// yet while a write is in flight.
    high: u64,
    budget: Arc<DiskBudget>,
}

#[wasmtime_wasi::async_trait]
impl OutputStream for ChargedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let size = self.file.metadata().map_or(0, |m| m.len()).max(self.high);
        let start = self.position.unwrap_or(size);
        let end = start.saturating_add(bytes.len() as u64);
        if !self.budget.charge(end.saturating_sub(size)) {
            return Err(StreamError::LastOperationFailed(wasmtime::Error::from(
                std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error()),
            )));
        }
        self.high = self.high.max(end);
        if let Some(position) = &mut self.position {
            *position = end;
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ChargedStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_what_would_pass_it_and_remembers_the_first_refusal() {
        let budget = DiskBudget::new(10_000);
        assert!(budget.charge(6_000));
        assert!(!budget.charge(5_000));
        assert!(budget.charge(4_000));
        assert!(!budget.charge(1));
        assert_eq!(budget.used(), 10_000);
        assert_eq!(budget.exceeded(), Some(11_000));
    }
}
