//! Paths of the sample components, built for `wasm32-wasip2` by this crate's build
//! script: one constant per component (`VALIDATE`, `PROBE`, `TYPED_PROBE`, ...), and
//! `ROOT`, the repository's root folder.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
