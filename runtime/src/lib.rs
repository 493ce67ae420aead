//! Sluice runtime: everything Sluice does, behind a library API the `sluice` binary drives.
//! Data flows one way: `spec` (parse) -> `plan` (graph, no IO) -> `schedule` (tokio)
//! -> `exec` (wasm) -> `store` (artifacts and run records). See `ARCHITECTURE.md`.

pub mod plan;
pub mod spec;
pub mod store;
