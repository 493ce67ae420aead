//! The sandbox of one wasm task attempt: its WASI context, and the adapter that feeds the
//! guest's stdout and stderr into bounded captures.

use std::pin::Pin;
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::exec::capture::Capture;
use crate::store::TaskDir;

/// Where the guest finds its inputs and outputs.
pub const GUEST_INPUTS: &str = "/inputs";
pub const GUEST_OUTPUTS: &str = "/outputs";

pub struct Sandbox<'a> {
    pub dir: &'a TaskDir,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub stdout: Capture,
    pub stderr: Capture,
}

/// A task folder the sandbox cannot give its guest (wasmtime's message kept, on one line).
#[derive(Debug, thiserror::Error)]
#[error("cannot open {}: {detail}", path.display())]
pub struct SandboxError {
    pub path: std::path::PathBuf,
    pub detail: String,
}

/// Builds the WASI context of one task attempt. The guest gets exactly:
/// - `/inputs`, read-only: `/inputs/<name>/data` for each present input, nothing else;
/// - `/outputs`, read-write: an empty folder `/outputs/<name>/` for each declared output;
/// - argv: the component name, then the expanded `args`;
/// - environment: only the variables the component declares in `implementation.wasm.env`;
///   nothing of the host's environment;
/// - stdin: empty; stdout and stderr: captured, bounded, into the run's logs;
/// - no network: TCP and UDP are refused and names do not resolve;
/// - the host's clocks and random numbers. No other host file, socket or resource.
///
/// Memory and CPU limits are the `Store`'s, set by the executor.
pub fn wasi_ctx(sandbox: Sandbox<'_>) -> Result<WasiCtx, SandboxError> {
    let mut b = WasiCtxBuilder::new();
    // Must precede the preopens: file operations then run on the calling thread instead
    // of a blocking-pool hop each, about ten times faster for small steps.
    b.allow_blocking_current_thread(true);
    b.args(sandbox.argv);
    b.envs(sandbox.env);
    b.stdout(CaptureStream(sandbox.stdout));
    b.stderr(CaptureStream(sandbox.stderr));
    b.allow_tcp(false);
    b.allow_udp(false);
    b.allow_ip_name_lookup(false);
    b.socket_addr_check(|_, _| Box::pin(async { false }));
    // A step with no inputs (or no outputs) has no such folder, and sees none.
    let inputs = sandbox.dir.inputs();
    if inputs.exists() {
        b.preopened_dir(&inputs, GUEST_INPUTS, FsPerms::ReadOnly)
            .map_err(|e| SandboxError {
                path: inputs.clone(),
                detail: e.to_string(),
            })?;
    }
    let outputs = sandbox.dir.outputs();
    if outputs.exists() {
        b.preopened_dir(&outputs, GUEST_OUTPUTS, FsPerms::ReadWrite)
            .map_err(|e| SandboxError {
                path: outputs.clone(),
                detail: e.to_string(),
            })?;
    }
    Ok(b.build())
}

/// A guest output stream writing into a [`Capture`]. Never blocks, never fails: once the
/// capture is full it keeps only the tail.
struct CaptureStream(Capture);

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(CaptureStream(self.0.clone()))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(CaptureStream(self.0.clone()))
    }
}

/// The most a guest may write in one call.
const WRITE_BUDGET: usize = 64 * 1024;

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.0.write(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
