//! Sluice runtime: everything Sluice does, behind a library API the `sluice` binary drives.
//! Data flows one way: `spec` (parse) -> `plan` (graph, no IO) -> `schedule` (tokio)
//! -> `exec` (wasm) -> `store` (artifacts and run records). See `ARCHITECTURE.md`.

pub mod events;
pub mod exec;
pub mod plan;
pub mod schedule;
pub mod spec;
pub mod store;
