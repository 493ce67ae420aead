//! Feeds arbitrary bytes to the loader of pipelines compiled by the KFP SDK (IR YAML and its
//! platform document). Run with `fuzz/run.sh [SECONDS] kfp_ir`; an input that crashed it is kept in
//! `fuzz/regressions/kfp_ir/`, which the test suite replays.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzzing::kfp_ir(data));
