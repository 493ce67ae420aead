//! Paths of the sample components, built by this crate's build script: one constant per
//! wasm component (`VALIDATE`, `PACKAGE`, `PREDICTOR`, `PROBE`, `TYPED_PROBE`, ...),
//! `TRAIN_NATIVE` and `PROBE_NATIVE` (the static native builds inside the container
//! images), and `ROOT`, the repository's root folder.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
