//! Feeds arbitrary bytes to the Sluice pipeline file parser and planner. Run with `fuzz/run.sh
//! [SECONDS] pipeline_yaml`; an input that crashed it is kept in `fuzz/regressions/pipeline_yaml/`,
//! which the test suite replays.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzzing::pipeline_yaml(data));
