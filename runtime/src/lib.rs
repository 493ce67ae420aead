//! Sluice runtime: everything Sluice does, behind a library API the `sluice` binary drives.
//! Data flows one way: `spec` (parse) -> `plan` (graph, no IO) -> `schedule` (tokio)
//! -> `exec` (wasm) -> `store` (artifacts and run records). See `ARCHITECTURE.md`.

pub mod compose;
pub mod deploy;
pub mod events;
pub mod exec;
pub mod kfp;
pub mod models;
pub mod oci;
pub mod plan;
pub mod schedule;
pub mod serve;
pub mod spec;
pub mod store;
pub mod table;

/// An error and its sources on one line, joined by `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Makes rustls' `ring` provider the process's TLS crypto; every HTTP client (registry
/// pulls, admin requests) needs one. Idempotent.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether a process of this machine is still running.
pub(crate) fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists()
}
