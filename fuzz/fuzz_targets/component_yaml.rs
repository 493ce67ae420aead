//! Feeds arbitrary bytes to the component file parser (KFP v1 `component.yaml` with
//! `implementation.wasm`). Run with `fuzz/run.sh [SECONDS] component_yaml`; an input that crashed
//! it is kept in `fuzz/regressions/component_yaml/`, which the test suite replays.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzzing::component_yaml(data));
